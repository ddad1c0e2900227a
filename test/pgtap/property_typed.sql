\ir common/preamble.sql
-- test/pgtap/property_typed.sql
--
-- Property test of typed loads from text staging. For each of several
-- fixed seeds, random text rows with injected trash (unparsable numbers,
-- numbers too large for numeric(10,2), impossible dates, words for
-- booleans, NULL keys, several spellings of one key: '7', '07', '007'),
-- written in random batches, are loaded by two pipelines into targets
-- created from column_types, each with a quarantine range check on the
-- converted amount (amount >= 0):
--
--   a_*  source prop.ta: one row per key (but trash keys that are not
--        numbers): after every run, every staged row up to the watermark is
--        in exactly one of the target (with the values a plain-SQL
--        conversion gives) and the open quarantine, whose failed_checks is
--        {conversion} exactly when a plain-SQL conversion fails, and the
--        run's counts add up: read = inserted + updated + unchanged +
--        deleted + quarantined + rejected;
--   b_*  source prop.tb: keys from a small space in several spellings,
--        NULL keys: after every run the counts add up, with the NULL keys
--        (rejected) and the versions de-duplication drops (window rows that
--        convert - distinct converted keys).
--
-- Then the rows fixed where they are kept (every value that does not
-- convert replaced, the range check dropped) and both quarantines
-- replayed: nothing is left open, and the targets equal a plain-SQL
-- reference over the fixed staging rows (for b_*, the newest version of
-- each converted key).
--
-- The driver records every check in prop.result; the TAP lines come last.

\set nseeds 5
\set steps 7
SELECT set_config('prop.nseeds', :'nseeds', false) AS nseeds_set,
       set_config('prop.steps', :'steps', false) AS steps_set \gset
SELECT plan(:nseeds * 7);

CREATE SCHEMA prop;
CREATE SEQUENCE prop.seq;
CREATE TABLE prop.ta (k text, amount text, day text, flag text, seq bigint NOT NULL);
CREATE INDEX ON prop.ta (seq);
CREATE TABLE prop.tb (k text, amount text, day text, flag text, seq bigint NOT NULL);
CREATE INDEX ON prop.tb (seq);
CREATE TABLE prop.result (seed integer, what text, ok boolean, detail text);

-- The plain-SQL conversions: the value, or NULL when it does not convert
CREATE FUNCTION prop.num(v text) RETURNS numeric(10,2) LANGUAGE plpgsql AS $$
BEGIN RETURN v::numeric(10,2); EXCEPTION WHEN others THEN RETURN NULL; END $$;
CREATE FUNCTION prop.dt(v text) RETURNS date LANGUAGE plpgsql AS $$
BEGIN RETURN v::date; EXCEPTION WHEN others THEN RETURN NULL; END $$;
CREATE FUNCTION prop.bool(v text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN RETURN v::boolean; EXCEPTION WHEN others THEN RETURN NULL; END $$;
CREATE FUNCTION prop.int(v text) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN RETURN v::bigint; EXCEPTION WHEN others THEN RETURN NULL; END $$;
-- converts: every non-NULL value of the row converts
CREATE FUNCTION prop.converts(k text, amount text, day text, flag text) RETURNS boolean LANGUAGE sql AS $$
  SELECT (k IS NULL OR prop.int(k) IS NOT NULL) AND (amount IS NULL OR prop.num(amount) IS NOT NULL)
     AND (day IS NULL OR prop.dt(day) IS NOT NULL) AND (flag IS NULL OR prop.bool(flag) IS NOT NULL) $$;

-- random values, each kind of trash with a small probability
CREATE FUNCTION prop.rnd_amount() RETURNS text LANGUAGE sql AS $$
  SELECT CASE WHEN random() < 0.05 THEN '1,5' WHEN random() < 0.04 THEN 'abc'
              WHEN random() < 0.04 THEN '123456789012' WHEN random() < 0.05 THEN '-3'
              WHEN random() < 0.03 THEN NULL
              ELSE (floor(random() * 10000) / 100)::text END $$;
CREATE FUNCTION prop.rnd_day() RETURNS text LANGUAGE sql AS $$
  SELECT CASE WHEN random() < 0.05 THEN '2026-02-30' WHEN random() < 0.03 THEN 'not a date'
              ELSE (date '2026-01-01' + floor(random() * 300)::int)::text END $$;
CREATE FUNCTION prop.rnd_flag() RETURNS text LANGUAGE sql AS $$
  SELECT CASE WHEN random() < 0.05 THEN 'maybe' WHEN random() < 0.5 THEN 't' ELSE 'no' END $$;

-- fix: a stored row with every value that does not convert replaced
CREATE FUNCTION prop.fix(r jsonb) RETURNS jsonb LANGUAGE sql AS $$
  SELECT r || jsonb_build_object(
      'amount', CASE WHEN r->>'amount' IS NOT NULL AND prop.num(r->>'amount') IS NULL THEN '0' ELSE r->>'amount' END,
      'day', CASE WHEN r->>'day' IS NOT NULL AND prop.dt(r->>'day') IS NULL THEN '2026-01-01' ELSE r->>'day' END,
      'flag', CASE WHEN r->>'flag' IS NOT NULL AND prop.bool(r->>'flag') IS NULL THEN 'false' ELSE r->>'flag' END,
      'k', CASE WHEN r->>'k' IS NOT NULL AND prop.int(r->>'k') IS NULL THEN (1000000 + (r->>'seq')::bigint)::text
                ELSE r->>'k' END) $$;
-- fixed: a staging table's rows as they are once fixed, converted
CREATE FUNCTION prop.fixed(tbl text)
RETURNS TABLE (k bigint, amount numeric(10,2), day date, flag boolean, seq bigint) LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY EXECUTE format(
        'SELECT prop.int(f->>''k''), prop.num(f->>''amount''), prop.dt(f->>''day''), prop.bool(f->>''flag''),
                (f->>''seq'')::bigint
           FROM (SELECT prop.fix(to_jsonb(s)) AS f FROM prop.%I s WHERE s.k IS NOT NULL) x', tbl);
END $$;

CREATE FUNCTION prop.record(seed integer, what text, bad bigint, detail text DEFAULT NULL)
RETURNS void LANGUAGE sql AS $$
  INSERT INTO prop.result VALUES (seed, what, bad = 0, CASE WHEN bad <> 0 THEN bad || ' bad: ' || coalesce(detail, '') END) $$;
CREATE FUNCTION prop.last_run(p text) RETURNS pipeline.runs LANGUAGE sql AS $$
  SELECT * FROM pipeline.runs WHERE pipeline_name = p ORDER BY run_id DESC LIMIT 1 $$;

SET client_min_messages = error;
DO $$
DECLARE
    nseeds int := current_setting('prop.nseeds')::int;
    steps int := current_setting('prop.steps')::int;
    types jsonb := '{"k": "bigint", "amount": "numeric(10,2)", "day": "date", "flag": "boolean"}';
    a text; b text; adst text; bdst text;
    r pipeline.runs;
    n int;
    next_k int;
    bad bigint;
    fails_a bigint; fails_a_vals bigint; fails_a_cons bigint; fails_b_cons bigint;
BEGIN
    FOR sd IN 1 .. nseeds LOOP
        PERFORM setseed(sd / 100.0);
        a := 'a_' || sd; b := 'b_' || sd;
        adst := 'a_dst_' || sd; bdst := 'b_dst_' || sd;
        TRUNCATE prop.ta, prop.tb;
        PERFORM pipeline.create_pipeline(a, 'prop.ta', 'prop.' || adst, unique_key => '{k}',
                                         incremental_column => 'seq', column_types => types);
        PERFORM pipeline.create_pipeline(b, 'prop.tb', 'prop.' || bdst, unique_key => '{k}',
                                         incremental_column => 'seq', column_types => types);
        PERFORM pipeline.add_check(a, 'c_pos', 'range', '{"column": "amount", "min": 0}', 'quarantine');
        PERFORM pipeline.add_check(b, 'c_pos', 'range', '{"column": "amount", "min": 0}', 'quarantine');
        next_k := 1;
        fails_a := 0; fails_a_vals := 0; fails_a_cons := 0; fails_b_cons := 0;
        FOR step IN 1 .. steps LOOP
            n := 1 + floor(random() * 40)::int;
            INSERT INTO prop.ta
            SELECT CASE WHEN random() < 0.04 THEN 'k' || (next_k + i) ELSE (next_k + i)::text END,
                   prop.rnd_amount(), prop.rnd_day(), prop.rnd_flag(), nextval('prop.seq')
              FROM generate_series(0, n - 1) i;
            next_k := next_k + n;
            INSERT INTO prop.tb
            SELECT CASE WHEN random() < 0.04 THEN NULL
                        ELSE lpad((1 + floor(random() * 12)::int)::text, 1 + floor(random() * 3)::int, '0') END,
                   prop.rnd_amount(), prop.rnd_day(), prop.rnd_flag(), nextval('prop.seq')
              FROM generate_series(1, 1 + floor(random() * 40)::int);

            -- a: every staged row up to the watermark is in exactly one place
            PERFORM pipeline.run(a);
            r := prop.last_run(a);
            EXECUTE format($q$
                SELECT count(*) FROM prop.ta s
                 WHERE s.seq <= %s
                   AND (EXISTS (SELECT 1 FROM prop.%I t WHERE t.seq = s.seq))::int
                     + (SELECT count(*) FROM pipeline.quarantine q
                         WHERE q.pipeline = %L AND q.status = 'open' AND (q."row"->>'seq')::bigint = s.seq)::int <> 1$q$,
                r.watermark_to, adst, a) INTO bad;
            fails_a := fails_a + bad;
            -- ... with the converted values, or in quarantine for the right reason
            EXECUTE format($q$
                SELECT (SELECT count(*) FROM prop.ta s JOIN prop.%I t USING (seq)
                         WHERE NOT prop.converts(s.k, s.amount, s.day, s.flag)
                            OR (t.k, t.amount, t.day, t.flag) IS DISTINCT FROM
                               (prop.int(s.k), prop.num(s.amount), prop.dt(s.day), prop.bool(s.flag))
                            OR t.amount < 0)
                     + (SELECT count(*) FROM pipeline.quarantine q JOIN prop.ta s ON s.seq = (q."row"->>'seq')::bigint
                         WHERE q.pipeline = %L AND q.status = 'open'
                           AND (q.failed_checks IS DISTINCT FROM
                                CASE WHEN NOT prop.converts(s.k, s.amount, s.day, s.flag) THEN '{conversion}'::text[]
                                     WHEN prop.num(s.amount) < 0 THEN '{c_pos}' END
                                OR (q.failed_checks = '{conversion}') <> (q.reason IS NOT NULL)))$q$,
                adst, a) INTO bad;
            fails_a_vals := fails_a_vals + bad;
            fails_a_cons := fails_a_cons + (r.rows_read <> r.rows_inserted + r.rows_updated + r.rows_unchanged
                                            + r.rows_deleted + r.rows_quarantined + r.rows_rejected)::int;

            -- b: the counts add up, with the NULL keys and the dropped versions
            PERFORM pipeline.run(b);
            r := prop.last_run(b);
            IF r.rows_read > 0 THEN
                SELECT count(*) FILTER (WHERE prop.converts(k, amount, day, flag))
                       - count(DISTINCT prop.int(k)) FILTER (WHERE prop.converts(k, amount, day, flag))
                  INTO bad FROM prop.tb
                 WHERE k IS NOT NULL AND seq <= r.watermark_to::bigint AND seq > coalesce(r.watermark_from::bigint, 0);
                fails_b_cons := fails_b_cons
                    + (r.rows_read <> r.rows_inserted + r.rows_updated + r.rows_unchanged + r.rows_deleted
                                      + r.rows_quarantined + r.rows_rejected + bad)::int;
            END IF;
        END LOOP;
        PERFORM prop.record(sd, 'a: after every run, every staged row is in the target or in quarantine, once', fails_a);
        PERFORM prop.record(sd, 'a: loaded rows hold the converted values; quarantined ones say why', fails_a_vals);
        PERFORM prop.record(sd, 'a: every run''s counts add up', fails_a_cons);
        PERFORM prop.record(sd, 'b: every run''s counts add up, NULL keys and dropped versions included', fails_b_cons);
        SELECT count(*) INTO bad FROM pipeline.quarantine
         WHERE pipeline IN (a, b) AND status = 'open' AND failed_checks = '{conversion}';
        PERFORM prop.record(sd, 'some rows did not convert (the test can fail)', (bad = 0)::int);

        -- fix the rows and the rule, replay both quarantines
        UPDATE pipeline.quarantine SET "row" = prop.fix("row") WHERE pipeline IN (a, b) AND status = 'open';
        PERFORM pipeline.drop_check(a, 'c_pos');
        PERFORM pipeline.drop_check(b, 'c_pos');
        PERFORM pipeline.replay_quarantine(a);
        PERFORM pipeline.replay_quarantine(b);
        EXECUTE format($q$
            SELECT (SELECT count(*) FROM pipeline.quarantine WHERE pipeline IN (%L, %L) AND status = 'open')
                 + (SELECT count(*) FROM (
                     (SELECT * FROM prop.fixed('ta') EXCEPT ALL SELECT k, amount, day, flag, seq FROM prop.%I)
                     UNION ALL
                     (SELECT k, amount, day, flag, seq FROM prop.%I EXCEPT ALL SELECT * FROM prop.fixed('ta'))) d)$q$,
            a, b, adst, adst) INTO bad;
        PERFORM prop.record(sd, 'a: after the fix and a replay, the target equals the reference', bad);
        EXECUTE format($q$
            SELECT count(*) FROM (
              (SELECT * FROM (SELECT DISTINCT ON (k) * FROM prop.fixed('tb') ORDER BY k, seq DESC) x
               EXCEPT ALL SELECT k, amount, day, flag, seq FROM prop.%1$I)
              UNION ALL
              (SELECT k, amount, day, flag, seq FROM prop.%1$I
               EXCEPT ALL SELECT * FROM (SELECT DISTINCT ON (k) * FROM prop.fixed('tb') ORDER BY k, seq DESC) x)) d$q$,
            bdst) INTO bad;
        PERFORM prop.record(sd, 'b: after the fix and a replay, the target holds the newest version of each key', bad);
    END LOOP;
END $$;

SELECT ok(r.ok, format('seed %s: %s%s', r.seed, r.what, coalesce(' (' || r.detail || ')', '')))
  FROM prop.result r ORDER BY r.seed, r.what;

SELECT * FROM finish();
