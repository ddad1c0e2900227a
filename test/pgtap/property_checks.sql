\ir common/preamble.sql
-- test/pgtap/property_checks.sql
--
-- Property test of data contracts and quarantine. For each of several fixed
-- seeds, random rows with injected failures for every row-level kind
-- (a NULL amount for not_null, an unknown status for accepted_values, an
-- amount out of [0, 100] for range, a malformed email for regex, a
-- reference to a missing row for relationships, an amount = 3 mod 7 for
-- expression), written in random batches, are loaded by two pipelines whose
-- checks all have severity quarantine:
--
--   a_*  source prop.ev: one row per id (the source's primary key, so no
--        de-duplication): after every run, every source row up to the
--        watermark is in exactly one of the target and the open quarantine,
--        each quarantined row names exactly the checks a plain-SQL reference
--        says it fails, and the run's counts add up: read = inserted +
--        updated + unchanged + deleted + quarantined + rejected;
--   b_*  source prop.kv: keys from a small space (several versions per key,
--        NULL keys): after every run the counts add up, with the versions
--        that de-duplication drops (window rows - distinct keys) and the
--        NULL keys (rejected).
--
-- Then the rule "fixed" (the expression check dropped) and both
-- quarantines replayed: the targets equal a plain-SQL reference (for a_*,
-- the source rows that pass the remaining checks; for b_*, per key the
-- newest of the rows the runs kept that passes them), and the rows still
-- open are exactly those that still fail, with the checks they fail.
--
-- The driver records every check in prop.result; the TAP lines come last.

\set nseeds 6
\set steps 8
SELECT set_config('prop.nseeds', :'nseeds', false) AS nseeds_set,
       set_config('prop.steps', :'steps', false) AS steps_set \gset
SELECT plan(:nseeds * 9);

CREATE SCHEMA prop;
CREATE TABLE prop.refs (id integer PRIMARY KEY);
INSERT INTO prop.refs SELECT generate_series(1, 20);
CREATE SEQUENCE prop.seq;
CREATE TABLE prop.ev (id integer PRIMARY KEY, v numeric, status text, email text, ref integer,
                      seq bigint NOT NULL);
CREATE INDEX ON prop.ev (seq);
CREATE TABLE prop.kv (k integer, v numeric, status text, email text, ref integer, seq bigint NOT NULL);
CREATE INDEX ON prop.kv (seq);
CREATE TABLE prop.result (seed integer, what text, ok boolean, detail text);
CREATE TABLE prop.kept (seed integer, k integer, v numeric, status text, email text, ref integer, seq bigint);

-- failed: the checks a row fails, by name in the order a run lists them,
-- in plain SQL (a NULL passes every check but not_null, as a CHECK does)
CREATE FUNCTION prop.failed(v numeric, status text, email text, ref integer, with_rule boolean)
RETURNS text[] LANGUAGE sql STABLE AS $$
  SELECT coalesce(array_agg(name ORDER BY name COLLATE "C"), '{}') FROM (VALUES
    ('c_email', email !~ '^[a-z]+@x$'),
    ('c_odd', with_rule AND v % 7 = 3),
    ('c_range', v < 0 OR v > 100),
    ('c_ref', ref IS NOT NULL AND ref NOT IN (SELECT id FROM prop.refs)),
    ('c_status', status NOT IN ('a', 'b', 'c')),
    ('c_v', v IS NULL)) AS c (name, fails)
   WHERE fails IS TRUE $$;

-- add_checks gives a pipeline the six quarantine checks
CREATE FUNCTION prop.add_checks(p text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pipeline.add_check(p, 'c_v', 'not_null', '{"columns": ["v"]}', 'quarantine');
    PERFORM pipeline.add_check(p, 'c_status', 'accepted_values', '{"column": "status", "values": ["a", "b", "c"]}', 'quarantine');
    PERFORM pipeline.add_check(p, 'c_range', 'range', '{"column": "v", "min": 0, "max": 100}', 'quarantine');
    PERFORM pipeline.add_check(p, 'c_email', 'regex', '{"column": "email", "pattern": "^[a-z]+@x$"}', 'quarantine');
    PERFORM pipeline.add_check(p, 'c_ref', 'relationships', '{"column": "ref", "to": "prop.refs", "field": "id"}', 'quarantine');
    PERFORM pipeline.add_check(p, 'c_odd', 'expression', '{"sql": "v % 7 <> 3"}', 'quarantine');
    PERFORM pipeline.add_check(p, 'few', 'row_count', '{"max": 25}', 'warn');
END $$;

-- a random row's values, each failure injected with a small probability
CREATE FUNCTION prop.rnd_v() RETURNS numeric LANGUAGE sql AS $$
  SELECT CASE WHEN random() < 0.05 THEN NULL
              WHEN random() < 0.08 THEN (130 + floor(random() * 50))::numeric
              WHEN random() < 0.05 THEN -1
              ELSE floor(random() * 100)::numeric END $$;
CREATE FUNCTION prop.rnd_status() RETURNS text LANGUAGE sql AS $$
  SELECT CASE WHEN random() < 0.05 THEN 'zzz' WHEN random() < 0.03 THEN NULL
              ELSE (ARRAY['a', 'b', 'c'])[1 + floor(random() * 3)::int] END $$;
CREATE FUNCTION prop.rnd_email() RETURNS text LANGUAGE sql AS $$
  SELECT CASE WHEN random() < 0.05 THEN 'not an email' ELSE 'u@x' END $$;
CREATE FUNCTION prop.rnd_ref() RETURNS integer LANGUAGE sql AS $$
  SELECT CASE WHEN random() < 0.05 THEN 99 WHEN random() < 0.05 THEN NULL
              ELSE 1 + floor(random() * 20)::int END $$;

CREATE FUNCTION prop.record(seed integer, what text, bad bigint, detail text DEFAULT NULL)
RETURNS void LANGUAGE sql AS $$
  INSERT INTO prop.result VALUES (seed, what, bad = 0, CASE WHEN bad <> 0 THEN bad || ' bad: ' || coalesce(detail, '') END) $$;

-- the last run of a pipeline
CREATE FUNCTION prop.last_run(p text) RETURNS pipeline.runs LANGUAGE sql AS $$
  SELECT * FROM pipeline.runs WHERE pipeline_name = p ORDER BY run_id DESC LIMIT 1 $$;
SET client_min_messages = error;
DO $$
DECLARE
    nseeds int := current_setting('prop.nseeds')::int;
    steps int := current_setting('prop.steps')::int;
    a text; b text; adst text; bdst text;
    r pipeline.runs;
    n int;
    next_id int;
    bad bigint;
    fails_a bigint := 0; fails_a_cons bigint := 0; fails_a_names bigint := 0; fails_b_cons bigint := 0;
BEGIN
    FOR sd IN 1 .. nseeds LOOP
        PERFORM setseed(sd / 100.0);
        a := 'a_' || sd; b := 'b_' || sd;
        adst := 'a_dst_' || sd; bdst := 'b_dst_' || sd;
        TRUNCATE prop.ev, prop.kv;
        PERFORM pipeline.create_pipeline(a, 'prop.ev', 'prop.' || adst, unique_key => '{id}',
                                         incremental_column => 'seq');
        PERFORM pipeline.create_pipeline(b, 'prop.kv', 'prop.' || bdst, unique_key => '{k}',
                                         incremental_column => 'seq');
        PERFORM prop.add_checks(a);
        PERFORM prop.add_checks(b);
        next_id := 1;
        fails_a := 0; fails_a_cons := 0; fails_a_names := 0; fails_b_cons := 0;
        FOR step IN 1 .. steps LOOP
            n := 1 + floor(random() * 40)::int;
            INSERT INTO prop.ev SELECT next_id + i, prop.rnd_v(), prop.rnd_status(), prop.rnd_email(),
                                       prop.rnd_ref(), nextval('prop.seq')
                                  FROM generate_series(0, n - 1) i;
            next_id := next_id + n;
            INSERT INTO prop.kv SELECT CASE WHEN random() < 0.03 THEN NULL ELSE 1 + floor(random() * 15)::int END,
                                       prop.rnd_v(), prop.rnd_status(), prop.rnd_email(), prop.rnd_ref(),
                                       nextval('prop.seq')
                                  FROM generate_series(1, 1 + floor(random() * 40)::int);
            -- a: every source row up to the watermark is in exactly one place
            PERFORM pipeline.run(a);
            r := prop.last_run(a);
            EXECUTE format($q$
                SELECT count(*) FROM prop.ev s
                 WHERE s.seq <= %s
                   AND (EXISTS (SELECT 1 FROM prop.%I t WHERE t.id = s.id))::int
                     + (SELECT count(*) FROM pipeline.quarantine q
                         WHERE q.pipeline = %L AND q.status = 'open' AND (q.key->>'id')::int = s.id)::int <> 1$q$,
                r.watermark_to, adst, a) INTO bad;
            fails_a := fails_a + bad;
            fails_a_cons := fails_a_cons + (r.rows_read <> r.rows_inserted + r.rows_updated + r.rows_unchanged
                                            + r.rows_deleted + r.rows_quarantined + r.rows_rejected)::int;
            SELECT count(*) INTO bad FROM pipeline.quarantine q
             WHERE q.pipeline = a AND q.status = 'open'
               AND q.failed_checks IS DISTINCT FROM prop.failed((q."row"->>'v')::numeric, q."row"->>'status',
                                                               q."row"->>'email', (q."row"->>'ref')::int, true);
            fails_a_names := fails_a_names + bad;
            -- b: the counts add up, with the dropped versions and the NULL keys
            PERFORM pipeline.run(b);
            r := prop.last_run(b);
            IF r.rows_read > 0 THEN
                SELECT count(*) - count(DISTINCT k) - count(*) FILTER (WHERE k IS NULL) INTO bad FROM prop.kv
                 WHERE seq <= r.watermark_to::bigint AND seq > coalesce(r.watermark_from::bigint, 0);
                fails_b_cons := fails_b_cons
                    + (r.rows_read <> r.rows_inserted + r.rows_updated + r.rows_unchanged + r.rows_deleted
                                      + r.rows_quarantined + r.rows_rejected + bad)::int;
                INSERT INTO prop.kept
                SELECT DISTINCT ON (k) sd, k, v, status, email, ref, seq FROM prop.kv
                 WHERE k IS NOT NULL AND seq <= r.watermark_to::bigint AND seq > coalesce(r.watermark_from::bigint, 0)
                 ORDER BY k, seq DESC;
            END IF;
        END LOOP;
        PERFORM prop.record(sd, 'a: after every run, every source row is in the target or in quarantine, once', fails_a);
        PERFORM prop.record(sd, 'a: every run''s counts add up', fails_a_cons);
        PERFORM prop.record(sd, 'a: each quarantined row names exactly the checks it fails', fails_a_names);
        PERFORM prop.record(sd, 'b: every run''s counts add up, dropped versions and NULL keys included', fails_b_cons);
        SELECT count(*) INTO bad FROM pipeline.quarantine WHERE pipeline IN (a, b) AND status = 'open';
        PERFORM prop.record(sd, 'some rows were quarantined (the test can fail)', (bad = 0)::int);

        -- fix the rule, replay both quarantines
        PERFORM pipeline.drop_check(a, 'c_odd');
        PERFORM pipeline.drop_check(b, 'c_odd');
        PERFORM pipeline.replay_quarantine(a);
        PERFORM pipeline.replay_quarantine(b);
        EXECUTE format($q$
            SELECT count(*) FROM (
              (SELECT id, v, status, email, ref FROM prop.ev
                WHERE prop.failed(v, status, email, ref, false) = '{}'
               EXCEPT ALL SELECT id, v, status, email, ref FROM prop.%1$I)
              UNION ALL
              (SELECT id, v, status, email, ref FROM prop.%1$I
               EXCEPT ALL SELECT id, v, status, email, ref FROM prop.ev
                WHERE prop.failed(v, status, email, ref, false) = '{}')) d$q$, adst) INTO bad;
        PERFORM prop.record(sd, 'a: after the fix and a replay, the target equals the reference', bad);
        SELECT count(*) INTO bad FROM (
            (SELECT id, prop.failed(v, status, email, ref, false) FROM prop.ev
              WHERE prop.failed(v, status, email, ref, false) <> '{}'
             EXCEPT ALL SELECT (key->>'id')::int, failed_checks FROM pipeline.quarantine
              WHERE pipeline = a AND status = 'open')
            UNION ALL
            (SELECT (key->>'id')::int, failed_checks FROM pipeline.quarantine WHERE pipeline = a AND status = 'open'
             EXCEPT ALL SELECT id, prop.failed(v, status, email, ref, false) FROM prop.ev
              WHERE prop.failed(v, status, email, ref, false) <> '{}')) d;
        PERFORM prop.record(sd, 'a: the rows still open are those that still fail, naming the checks', bad);
        EXECUTE format($q$
            SELECT count(*) FROM (
              (SELECT * FROM (SELECT DISTINCT ON (k) k, v, status, email, ref FROM prop.kept
                WHERE seed = %2$s AND prop.failed(v, status, email, ref, false) = '{}' ORDER BY k, seq DESC) x
               EXCEPT ALL SELECT k, v, status, email, ref FROM prop.%1$I)
              UNION ALL
              (SELECT k, v, status, email, ref FROM prop.%1$I
               EXCEPT ALL SELECT * FROM (SELECT DISTINCT ON (k) k, v, status, email, ref FROM prop.kept
                WHERE seed = %2$s AND prop.failed(v, status, email, ref, false) = '{}' ORDER BY k, seq DESC) x)) d$q$,
            bdst, sd) INTO bad;
        PERFORM prop.record(sd, 'b: after the fix and a replay, the target holds the newest passing version of each key', bad);
        SELECT count(*) INTO bad FROM (
            (SELECT k, seq FROM prop.kept kk WHERE kk.seed = sd AND prop.failed(v, status, email, ref, false) <> '{}'
             EXCEPT ALL SELECT (key->>'k')::int, ("row"->>'seq')::bigint FROM pipeline.quarantine
              WHERE pipeline = b AND status = 'open')
            UNION ALL
            (SELECT (key->>'k')::int, ("row"->>'seq')::bigint FROM pipeline.quarantine WHERE pipeline = b AND status = 'open'
             EXCEPT ALL SELECT k, seq FROM prop.kept kk WHERE kk.seed = sd AND prop.failed(v, status, email, ref, false) <> '{}')) d;
        PERFORM prop.record(sd, 'b: the rows still open are the kept versions that still fail', bad);
    END LOOP;
END $$;

SELECT ok(r.ok, format('seed %s: %s%s', r.seed, r.what, coalesce(' (' || r.detail || ')', '')))
  FROM prop.result r ORDER BY r.seed, r.what;

SELECT * FROM finish();
