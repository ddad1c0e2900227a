\ir common/preamble.sql
-- test/pgtap/property_snapshot.sql
--
-- Property test of mode snapshot (docs/modeling.md): for each of 12 fixed
-- seeds, a plpgsql driver writes random versions of a small key space
-- (NULL keys, NULLs in values, re-sent unchanged rows, several rows with one
-- timestamp, delete flags, revivals) and late rows (strictly inside the
-- 10-minute lookback below the watermark), and at random points runs three
-- pipelines:
--
--   s_inc   incremental column ts, delete_column del, lookback 10 minutes
--           (plain runs, or CALL run_batched with a random batch_rows)
--   s_keep  the same with snapshot_keep_deleted: deletes are ignored
--   s_full  no incremental column, over a table updated in place (updates,
--           deletes, inserts, revivals): versions stamped with the run's time,
--           a vanished key closes its version
--
-- After every run the target must equal a reference history computed in
-- plain SQL from every event so far (ps.reference: one event per key and
-- time by the documented tie-break, the significant ones by LAG, each
-- version valid until the next significant event by LEAD), have no two
-- overlapping versions of a key and exactly one current version per live
-- key; a plain run's counts must equal those a diff of the target before
-- and after gives (inserted: versions added; updated: versions changed but
-- those a delete closed; deleted: those, and versions removed; unchanged:
-- kept rows that applied nothing); s_full's new bounds must be one stamp,
-- later than every bound before it. s_full's events are the rows of its
-- source at each run's stamp, and a delete for every key seen before and
-- absent now.
SET client_min_messages = error;
SET TimeZone = 'UTC';
CREATE EXTENSION IF NOT EXISTS btree_gist;
-- (the reference reads tables each seed creates anew)
SET check_function_bodies = off;

\set nseeds 12
\set steps 20
SELECT set_config('ps.nseeds', :'nseeds', false) AS nseeds_set,
       set_config('ps.steps', :'steps', false) AS steps_set \gset
-- per seed: s_inc and s_keep 4 kinds of checks, s_full 5; then 6 overall
SELECT plan(:nseeds * 13 + 6);

CREATE SCHEMA ps;
CREATE TABLE ps.checks (
    id     bigserial PRIMARY KEY,
    seed   integer NOT NULL,
    pipe   text NOT NULL,
    what   text NOT NULL,
    ok     boolean NOT NULL,
    detail text
);
CREATE TABLE ps.runlog (seed integer, pipe text, run_id bigint, batched boolean, late_rows integer);
CREATE TABLE ps.full_events (k integer, t timestamptz, v1 integer, v2 text, del boolean);
CREATE TABLE ps.before (pipe text, k integer, v1 integer, v2 text, ts timestamptz, del boolean,
                        vf timestamptz, vt timestamptz, cur boolean);

-- The target of a pipeline, in one shape (s_full has no ts and del)
CREATE FUNCTION ps.target(pipe text)
RETURNS TABLE (k integer, v1 integer, v2 text, ts timestamptz, del boolean, vf timestamptz,
               vt timestamptz, cur boolean)
LANGUAGE plpgsql AS $$
BEGIN
    IF pipe = 's_full' THEN
        RETURN QUERY SELECT h.k, h.v1, h.v2, h.valid_from, false, h.valid_from, h.valid_to, h.is_current
                       FROM ps.h_full h;
    ELSE
        RETURN QUERY EXECUTE format('SELECT k, v1, v2, ts, del, valid_from, valid_to, is_current FROM ps.%I',
                                    'h_' || substr(pipe, 3));
    END IF;
END $$;

-- The reference history of a pipeline from every event so far, in plain SQL
CREATE FUNCTION ps.reference(pipe text)
RETURNS TABLE (k integer, v1 integer, v2 text, vf timestamptz, vt timestamptz, cur boolean)
LANGUAGE sql AS $$
    WITH ev AS (
        SELECT * FROM (
            SELECT DISTINCT ON (e.k, e.t) e.* FROM (
                SELECT s.k, s.ts AS t, s.v1, s.v2, s.del FROM ps.stg s
                 WHERE pipe <> 's_full' AND s.k IS NOT NULL
                UNION ALL
                SELECT f.k, f.t, f.v1, f.v2, f.del FROM ps.full_events f WHERE pipe = 's_full') e
             ORDER BY e.k, e.t, e.del DESC, e.v1 DESC NULLS LAST, e.v2 DESC NULLS LAST) d
         -- s_keep: the delete that wins its tie is then ignored
         WHERE pipe <> 's_keep' OR NOT d.del),
    seq AS (
        SELECT ev.*, lag(ev.t) OVER w AS pt, lag(ev.del) OVER w AS pdel,
               lag(ev.v1) OVER w AS pv1, lag(ev.v2) OVER w AS pv2
          FROM ev WINDOW w AS (PARTITION BY ev.k ORDER BY ev.t)),
    sig AS (
        SELECT * FROM seq
         WHERE CASE WHEN seq.del THEN seq.pt IS NOT NULL AND NOT seq.pdel
                    ELSE seq.pt IS NULL OR seq.pdel OR (seq.v1, seq.v2) IS DISTINCT FROM (seq.pv1, seq.pv2) END),
    hist AS (
        SELECT sig.*, lead(sig.t) OVER w AS nt FROM sig WINDOW w AS (PARTITION BY sig.k ORDER BY sig.t))
    SELECT hist.k, hist.v1, hist.v2, hist.t, hist.nt, hist.nt IS NULL FROM hist WHERE NOT hist.del $$;

-- check_history records, after a run of pipe: contents, overlaps, current versions
CREATE FUNCTION ps.check_history(seed integer, pipe text, run_id bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    diff bigint;
    sample text;
BEGIN
    SELECT count(*), string_agg(d::text, ' ') INTO diff, sample
      FROM ((SELECT 'engine-only' AS side, * FROM
               (SELECT t.k, t.v1, t.v2, t.vf, t.vt, t.cur,
                       pipe = 's_full' OR (t.ts = t.vf AND t.del IS NOT TRUE) AS first_event
                  FROM ps.target(pipe) t
                EXCEPT ALL SELECT r.*, true FROM ps.reference(pipe) r) a)
            UNION ALL
            (SELECT 'reference-only', * FROM
               (SELECT r.*, true FROM ps.reference(pipe) r
                EXCEPT ALL
                SELECT t.k, t.v1, t.v2, t.vf, t.vt, t.cur,
                       pipe = 's_full' OR (t.ts = t.vf AND t.del IS NOT TRUE)
                  FROM ps.target(pipe) t) b)) d;
    INSERT INTO ps.checks (seed, pipe, what, ok, detail)
    VALUES (seed, pipe, 'contents', diff = 0, format('after run %s: %s rows differ: %s', run_id, diff, sample));
    SELECT count(*) INTO diff
      FROM ps.target(pipe) a JOIN ps.target(pipe) b
        ON a.k = b.k AND a.vf < b.vf AND tstzrange(a.vf, a.vt) && tstzrange(b.vf, b.vt);
    INSERT INTO ps.checks (seed, pipe, what, ok, detail)
    VALUES (seed, pipe, 'overlaps', diff = 0, format('after run %s: %s overlapping pairs', run_id, diff));
    SELECT count(*) INTO diff
      FROM (SELECT coalesce(t.k, r.k) FROM (SELECT k, count(*) AS n FROM ps.target(pipe) WHERE cur GROUP BY k) t
              FULL JOIN (SELECT DISTINCT k FROM ps.reference(pipe) WHERE cur) r ON r.k = t.k
             WHERE t.n IS DISTINCT FROM 1 OR r.k IS NULL) x;
    INSERT INTO ps.checks (seed, pipe, what, ok, detail)
    VALUES (seed, pipe, 'current', diff = 0,
            format('after run %s: %s keys without exactly one current version, or current but not live', run_id, diff));
END $$;

-- expected_counts: a plain run's counts from the target before (ps.before)
-- and after it, the window's rows (lo exclusive, hi inclusive; s_full: its
-- source) and what the definition of each count says
CREATE FUNCTION ps.expected_counts(pipe text, lo timestamptz, hi timestamptz) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    n_read bigint; n_rej bigint; n_kept bigint;
    n_ins bigint; n_removed bigint; n_changed bigint; n_replaced bigint; n_closed bigint;
    n_window_closed bigint;
BEGIN
    IF pipe = 's_full' THEN
        SELECT count(*), 0, count(*) INTO n_read, n_rej, n_kept FROM ps.cur;
    ELSE
        SELECT count(*), count(*) FILTER (WHERE k IS NULL), count(DISTINCT (k, ts)) FILTER (WHERE k IS NOT NULL)
          INTO n_read, n_rej, n_kept
          FROM ps.stg WHERE (lo IS NULL OR ts > lo) AND ts <= hi;
    END IF;
    CREATE TEMP TABLE IF NOT EXISTS after_run AS SELECT * FROM ps.target(pipe) LIMIT 0;
    TRUNCATE after_run;
    INSERT INTO after_run SELECT * FROM ps.target(pipe);
    SELECT count(*) INTO n_ins FROM after_run a
     WHERE NOT EXISTS (SELECT 1 FROM ps.before b WHERE b.pipe = expected_counts.pipe AND b.k = a.k AND b.vf = a.vf);
    SELECT count(*) INTO n_removed FROM ps.before b
     WHERE b.pipe = expected_counts.pipe AND NOT EXISTS (SELECT 1 FROM after_run a WHERE b.k = a.k AND b.vf = a.vf);
    SELECT count(*) FILTER (WHERE (a.vt, a.v1, a.v2, a.ts, a.del) IS DISTINCT FROM (b.vt, b.v1, b.v2, b.ts, b.del)),
           count(*) FILTER (WHERE (a.v1, a.v2, a.ts, a.del) IS DISTINCT FROM (b.v1, b.v2, b.ts, b.del)),
           count(*) FILTER (WHERE a.vt IS DISTINCT FROM b.vt AND a.vt IS NOT NULL
                              AND NOT EXISTS (SELECT 1 FROM after_run n WHERE n.k = a.k AND n.vf = a.vt)),
           count(*) FILTER (WHERE a.vt IS DISTINCT FROM b.vt AND a.vt IS NOT NULL
                              AND NOT EXISTS (SELECT 1 FROM after_run n WHERE n.k = a.k AND n.vf = a.vt)
                              AND expected_counts.pipe <> 's_full' AND (lo IS NULL OR a.vt > lo))
      INTO n_changed, n_replaced, n_closed, n_window_closed
      FROM after_run a JOIN ps.before b ON b.pipe = expected_counts.pipe AND b.k = a.k AND b.vf = a.vf;
    RETURN format('succeeded read=%s ins=%s upd=%s del=%s unch=%s rej=%s', n_read, n_ins,
                  n_changed - n_closed, n_removed + n_closed,
                  n_kept - n_ins - n_replaced - n_window_closed, n_rej);
END $$;

-- run_pipe runs pipe (plain, or batched with batch_rows b), checks it, and
-- returns its run id; s_full's events are logged at the run's stamp
CREATE FUNCTION ps.note_full_events(seed integer, run_id bigint, prev_max timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    stamps timestamptz[];
    stamp timestamptz;
BEGIN
    SELECT array_agg(DISTINCT b) INTO stamps
      FROM (SELECT valid_from AS b FROM ps.h_full UNION SELECT valid_to FROM ps.h_full) x
     WHERE b IS NOT NULL AND (prev_max IS NULL OR b > prev_max);
    INSERT INTO ps.checks (seed, pipe, what, ok, detail)
    VALUES (seed, 's_full', 'stamp', coalesce(array_length(stamps, 1), 0) <= 1,
            format('run %s wrote bounds %s after %s', run_id, stamps, prev_max));
    -- a run that changed nothing shows no stamp: its events, at a time past
    -- every bound, must then change nothing in the reference either
    stamp := coalesce(stamps[1], coalesce(prev_max, '2024-01-01') + interval '1 microsecond');
    INSERT INTO ps.full_events SELECT c.k, stamp, c.v1, c.v2, false FROM ps.cur c;
    INSERT INTO ps.full_events
    SELECT DISTINCT f.k, stamp, NULL::integer, NULL::text, true FROM ps.full_events f
     WHERE NOT EXISTS (SELECT 1 FROM ps.cur c WHERE c.k = f.k);
END $$;

CREATE FUNCTION ps.setup_seed() RETURNS void LANGUAGE plpgsql AS $$
DECLARE p text;
BEGIN
    FOREACH p IN ARRAY ARRAY['s_inc', 's_keep', 's_full'] LOOP
        IF EXISTS (SELECT 1 FROM pipeline.pipelines WHERE name = p) THEN
            PERFORM pipeline.drop_pipeline(p, drop_target => true);
        END IF;
    END LOOP;
    DROP TABLE IF EXISTS ps.stg, ps.cur;
    TRUNCATE ps.full_events, ps.before;
    CREATE TABLE ps.stg (k integer, ts timestamptz NOT NULL, v1 integer, v2 text,
                         del boolean NOT NULL DEFAULT false);
    CREATE INDEX ON ps.stg (ts);
    CREATE TABLE ps.cur (k integer PRIMARY KEY, v1 integer, v2 text);
    PERFORM pipeline.create_pipeline('s_inc', 'ps.stg', 'ps.h_inc', '{k}', 'ts', mode => 'snapshot',
                                     delete_column => 'del', lookback => '10 minutes');
    PERFORM pipeline.create_pipeline('s_keep', 'ps.stg', 'ps.h_keep', '{k}', 'ts', mode => 'snapshot',
                                     delete_column => 'del', lookback => '10 minutes',
                                     snapshot_keep_deleted => true);
    PERFORM pipeline.create_pipeline('s_full', 'ps.cur', 'ps.h_full', '{k}', mode => 'snapshot');
END $$;

CREATE FUNCTION ps.rnd_key() RETURNS integer LANGUAGE sql AS
  $$ SELECT CASE WHEN random() < 0.05 THEN NULL ELSE 1 + floor(random() * 6)::int END $$;
CREATE FUNCTION ps.rnd_v1() RETURNS integer LANGUAGE sql AS
  $$ SELECT CASE WHEN random() < 0.2 THEN NULL ELSE floor(random() * 3)::int END $$;
CREATE FUNCTION ps.rnd_v2() RETURNS text LANGUAGE sql AS
  $$ SELECT CASE WHEN random() < 0.2 THEN NULL ELSE (ARRAY['a', 'b'])[1 + floor(random() * 2)::int] END $$;

DO $driver$
DECLARE
    nseeds integer := current_setting('ps.nseeds')::int;
    steps integer := current_setting('ps.steps')::int;
    base timestamptz := '2024-01-01 00:00:00+00';
    seed integer;
    step integer;
    i integer;
    p text;
    clock timestamptz;
    last_ts timestamptz;
    wm timestamptz;
    hi timestamptz;
    ts_row timestamptz;
    prev_max timestamptz;
    expected text;
    got text;
    rid bigint;
    late integer;
BEGIN
    FOR seed IN 1..nseeds LOOP
        PERFORM setseed(seed / (nseeds + 1.0));
        PERFORM ps.setup_seed();
        clock := base;
        last_ts := base;
        wm := NULL;
        late := 0;
        COMMIT;
        FOR step IN 1..steps LOOP
            -- new rows of s_inc and s_keep, sometimes several with one timestamp
            FOR i IN 1..1 + floor(random() * 5)::int LOOP
                IF random() < 0.25 THEN
                    ts_row := last_ts;
                ELSE
                    clock := clock + make_interval(secs => 1 + floor(random() * 120)::int);
                    ts_row := clock;
                END IF;
                last_ts := ts_row;
                INSERT INTO ps.stg VALUES (ps.rnd_key(), ts_row, ps.rnd_v1(), ps.rnd_v2(), random() < 0.15);
            END LOOP;
            -- late rows: at or below the watermark, strictly inside the lookback
            IF wm IS NOT NULL AND random() < 0.6 THEN
                FOR i IN 1..1 + floor(random() * 3)::int LOOP
                    INSERT INTO ps.stg VALUES (ps.rnd_key(), wm - make_interval(secs => floor(random() * 591)::int),
                                               ps.rnd_v1(), ps.rnd_v2(), random() < 0.15);
                    late := late + 1;
                END LOOP;
            END IF;
            -- s_full's source changes in place: updates, deletes, inserts and revivals
            FOR i IN 1..1 + floor(random() * 3)::int LOOP
                IF random() < 0.2 THEN
                    DELETE FROM ps.cur WHERE k = 1 + floor(random() * 6)::int;
                ELSE
                    INSERT INTO ps.cur VALUES (1 + floor(random() * 6)::int, ps.rnd_v1(), ps.rnd_v2())
                    ON CONFLICT (k) DO UPDATE SET v1 = excluded.v1, v2 = CASE WHEN random() < 0.5 THEN excluded.v2 ELSE ps.cur.v2 END;
                END IF;
            END LOOP;
            COMMIT;
            CONTINUE WHEN random() >= 0.5;
            -- a run point: every pipeline runs
            hi := (SELECT max(ts) FROM ps.stg);
            FOREACH p IN ARRAY ARRAY['s_inc', 's_keep', 's_full'] LOOP
                DELETE FROM ps.before WHERE pipe = p;
                INSERT INTO ps.before SELECT p, t.* FROM ps.target(p) t;
                prev_max := (SELECT max(GREATEST(valid_from, valid_to)) FROM ps.h_full);
                COMMIT;
                IF p = 's_inc' AND random() < 0.3 THEN
                    CALL pipeline.run_batched(p, 1 + floor(random() * 5)::int);
                    rid := (SELECT max(h.run_id) FROM pipeline.runs h WHERE h.pipeline_name = p);
                    INSERT INTO ps.checks (seed, pipe, what, ok, detail)
                    SELECT seed, p, 'counts', r.status = 'succeeded', format('batched run %s: %s', r.run_id, r.status)
                      FROM pipeline.runs r WHERE r.run_id = rid;
                    INSERT INTO ps.runlog VALUES (seed, p, rid, true, late);
                ELSE
                    rid := pipeline.run(p);
                    COMMIT;
                    IF p = 's_full' THEN
                        PERFORM ps.note_full_events(seed, rid, prev_max);
                    END IF;
                    expected := ps.expected_counts(p, CASE WHEN p <> 's_full' THEN wm - interval '10 minutes' END, hi);
                    got := run_counts(rid);
                    INSERT INTO ps.checks (seed, pipe, what, ok, detail)
                    VALUES (seed, p, 'counts', got IS NOT DISTINCT FROM expected,
                            format('run %s: got %s, expected %s', rid, coalesce(got, '(no run record)'), expected));
                    INSERT INTO ps.runlog VALUES (seed, p, rid, false, late);
                END IF;
                PERFORM ps.check_history(seed, p, rid);
                COMMIT;
            END LOOP;
            wm := hi;
        END LOOP;
    END LOOP;
END $driver$;

CREATE FUNCTION ps.emit(nseeds integer) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    s integer;
    p text;
    w text;
    n bigint;
    bad bigint;
    first_bad text;
BEGIN
    FOR s IN 1..nseeds LOOP
        FOREACH p IN ARRAY ARRAY['s_inc', 's_keep', 's_full'] LOOP
            FOREACH w IN ARRAY CASE WHEN p = 's_full' THEN ARRAY['contents', 'overlaps', 'current', 'counts', 'stamp']
                                    ELSE ARRAY['contents', 'overlaps', 'current', 'counts'] END LOOP
                SELECT count(*), count(*) FILTER (WHERE NOT ok),
                       (SELECT detail FROM ps.checks c2 WHERE c2.seed = s AND c2.pipe = p AND c2.what = w
                           AND NOT c2.ok ORDER BY id LIMIT 1)
                  INTO n, bad, first_bad
                  FROM ps.checks c WHERE c.seed = s AND c.pipe = p AND c.what = w;
                RETURN NEXT ok(n > 0 AND bad = 0, format('seed %s, %s: %s right after each of %s runs', s, p, w, n));
                IF bad > 0 THEN
                    RETURN NEXT diag(format('%s of %s checks failed; first: %s', bad, n, first_bad));
                END IF;
            END LOOP;
        END LOOP;
    END LOOP;
END $$;

SELECT * FROM ps.emit(:nseeds);

-- the generator reached what the properties are about
SELECT cmp_ok((SELECT min(m) FROM (SELECT max(late_rows) AS m FROM ps.runlog GROUP BY seed) x), '>=', 3,
              'every seed wrote late rows');
SELECT cmp_ok((SELECT count(*) FROM ps.runlog WHERE batched), '>=', 10::bigint, 'batched runs with lookback');
SELECT cmp_ok((SELECT sum(rows_deleted) FROM ps.runlog l JOIN pipeline.runs r USING (run_id) WHERE l.pipe = 's_inc'),
              '>=', 30::numeric, 'versions closed by deletes (or removed)');
SELECT cmp_ok((SELECT sum(rows_updated) FROM ps.runlog l JOIN pipeline.runs r USING (run_id) WHERE l.pipe = 's_full'),
              '>=', 30::numeric, 'versions closed by changes in a full read');
SELECT cmp_ok((SELECT sum(rows_unchanged) FROM ps.runlog l JOIN pipeline.runs r USING (run_id) WHERE l.pipe = 's_inc'),
              '>=', 100::numeric, 're-read and re-sent rows found unchanged');
SELECT cmp_ok((SELECT count(*) FROM (SELECT k FROM ps.h_inc WHERE NOT is_current GROUP BY k) x), '>=', 3::bigint,
              'keys with closed versions in the last seed');

SELECT * FROM finish();
