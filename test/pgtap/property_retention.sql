\ir common/preamble.sql
-- test/pgtap/property_retention.sql
--
-- Property test of raw retention (docs/privacy.md#raw-retention).
--
-- For each of 8 fixed seeds, a plpgsql driver writes random rows to one
-- source table, timestamps moving forward from five days ago, and late
-- rows: timestamps up to two days below the watermark of r1, written after
-- runs have moved past them; some fall inside r2's lookback of six hours,
-- most below it, many older than the retention of a day. Two pipelines
-- read the table on different schedules:
--
--   r1  merge, no lookback, raw_retention 1 day (plain runs)
--   r2  merge, lookback 6 hours (plain runs, or CALL run_batched)
--
-- and at random points r1's raw rows are purged (pipeline._purge_raw) in
-- batches of a random size, sometimes until nothing is left to purge.
--
-- The reference is plain SQL: every row ever written, with the order of
-- its commit; every run, with the window it read ((watermark - lookback,
-- high-water mark], as docs/exactly-once.md says) and the last row
-- committed before it. A row was loaded by a pipeline when one of its
-- runs' windows holds its timestamp and the row was committed before that
-- run. After every step:
--
--   safe     every row gone from the source was loaded by both r1 and r2;
--   targets  each target holds exactly the rows its pipeline loaded (the
--            keys are unique, so the target is the loaded set);
--   counts   the rows_deleted of r1's retention_log add up to the rows gone;
--
-- and after each purge run until nothing was left:
--
--   complete no row older than the bound that both loaded is left.
SET client_min_messages = warning;
SET TimeZone = 'UTC';

\set nseeds 8
\set steps 40
SELECT set_config('prr.nseeds', :'nseeds', false) AS nseeds_set,
       set_config('prr.steps', :'steps', false) AS steps_set \gset
SELECT plan(:nseeds * 4 + 6);

CREATE SCHEMA prr;
CREATE TABLE prr.checks (
    id     bigserial PRIMARY KEY,
    seed   integer NOT NULL,
    what   text NOT NULL,
    ok     boolean NOT NULL,
    detail text
);
-- every row written, in commit order (seq), and every run's window
CREATE TABLE prr.written (seed integer, id integer, ts timestamptz, v text, seq bigint, late boolean,
                          PRIMARY KEY (seed, id));
CREATE TABLE prr.windows (seed integer, pipe text, lo timestamptz, hi timestamptz, upto bigint);
CREATE TABLE prr.model_wm (pipe text PRIMARY KEY, wm timestamptz, lookback interval);
CREATE TABLE prr.purges (seed integer, deleted bigint, complete boolean);
-- per seed, at its end: rows older than the retention left in the source, by who loaded them
CREATE TABLE prr.kept (seed integer, late bigint, only_r1 bigint, only_r2 bigint, neither bigint);
CREATE SEQUENCE prr.seq;

-- loaded(seed, p, ts, seq): a run of p read the row (plain SQL, from the model's windows)
CREATE FUNCTION prr.loaded(s integer, p text, t timestamptz, q bigint) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM prr.windows w
                    WHERE w.seed = s AND w.pipe = p AND (w.lo IS NULL OR t > w.lo) AND t <= w.hi
                      AND q <= w.upto)
$$;

-- model_run records the window the next run of p reads, as the engine computes it.
CREATE FUNCTION prr.model_run(s integer, p text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    m prr.model_wm;
    hi timestamptz := (SELECT max(ts) FROM prr.src);
BEGIN
    SELECT * INTO m FROM prr.model_wm WHERE pipe = p;
    IF hi IS NULL OR (m.wm IS NOT NULL AND m.lookback IS NULL AND hi <= m.wm) THEN
        RETURN;                 -- nothing new: no window
    END IF;
    INSERT INTO prr.windows VALUES (s, p, m.wm - coalesce(m.lookback, interval '0'), hi,
                                    (SELECT last_value FROM prr.seq));
    UPDATE prr.model_wm SET wm = greatest(wm, hi) WHERE pipe = p;
END $$;

CREATE FUNCTION prr.check_step(s integer, step integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    bad bigint;
    sample text;
    gone bigint;
    logged numeric;
BEGIN
    SELECT count(*), string_agg(w.id::text, ',') INTO bad, sample
      FROM prr.written w
     WHERE w.seed = s AND NOT EXISTS (SELECT 1 FROM prr.src x WHERE x.id = w.id)
       AND NOT (prr.loaded(s, 'r1', w.ts, w.seq) AND prr.loaded(s, 'r2', w.ts, w.seq));
    INSERT INTO prr.checks (seed, what, ok, detail)
    VALUES (s, 'safe', bad = 0, format('step %s: rows gone that a pipeline had not loaded: %s', step, sample));

    SELECT count(*), string_agg(d::text, ' ') INTO bad, sample
      FROM ((SELECT 't1' AS t, id, ts, v FROM prr.t1
             EXCEPT SELECT 't1', id, ts, v FROM prr.written w
                     WHERE w.seed = s AND prr.loaded(s, 'r1', w.ts, w.seq))
            UNION ALL
            (SELECT 't1-missing', id, ts, v FROM prr.written w
              WHERE w.seed = s AND prr.loaded(s, 'r1', w.ts, w.seq)
             EXCEPT SELECT 't1-missing', id, ts, v FROM prr.t1)
            UNION ALL
            (SELECT 't2', id, ts, v FROM prr.t2
             EXCEPT SELECT 't2', id, ts, v FROM prr.written w
                     WHERE w.seed = s AND prr.loaded(s, 'r2', w.ts, w.seq))
            UNION ALL
            (SELECT 't2-missing', id, ts, v FROM prr.written w
              WHERE w.seed = s AND prr.loaded(s, 'r2', w.ts, w.seq)
             EXCEPT SELECT 't2-missing', id, ts, v FROM prr.t2)) d;
    INSERT INTO prr.checks (seed, what, ok, detail)
    VALUES (s, 'targets', bad = 0, format('step %s: %s rows differ: %s', step, bad, sample));

    SELECT count(*) INTO gone FROM prr.written w
     WHERE w.seed = s AND NOT EXISTS (SELECT 1 FROM prr.src x WHERE x.id = w.id);
    SELECT coalesce(sum(rows_deleted), 0) INTO logged FROM pipeline.retention_log
     WHERE pipeline_id = (SELECT id FROM pipeline.pipelines WHERE name = 'r1');
    INSERT INTO prr.checks (seed, what, ok, detail)
    VALUES (s, 'counts', gone = logged, format('step %s: %s rows gone, %s logged', step, gone, logged));
END $$;

-- check_complete: after a purge that left nothing to delete under bound
CREATE FUNCTION prr.check_complete(s integer, step integer, bound timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    bad bigint;
    sample text;
BEGIN
    SELECT count(*), string_agg(w.id::text, ',') INTO bad, sample
      FROM prr.written w JOIN prr.src x USING (id)
     WHERE w.seed = s AND x.ts < bound
       AND prr.loaded(s, 'r1', w.ts, w.seq) AND prr.loaded(s, 'r2', w.ts, w.seq);
    INSERT INTO prr.checks (seed, what, ok, detail)
    VALUES (s, 'complete', bad = 0, format('step %s: rows both loaded left under the bound: %s', step, sample));
END $$;

-- record_kept: the rows older than the retention a seed leaves, by who loaded them
CREATE FUNCTION prr.record_kept(s integer) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO prr.kept
    SELECT s, count(*) FILTER (WHERE w.late),
           count(*) FILTER (WHERE l.l1 AND NOT l.l2), count(*) FILTER (WHERE l.l2 AND NOT l.l1),
           count(*) FILTER (WHERE NOT l.l1 AND NOT l.l2)
      FROM prr.written w JOIN prr.src x USING (id),
           LATERAL (SELECT prr.loaded(s, 'r1', w.ts, w.seq) AS l1,
                           prr.loaded(s, 'r2', w.ts, w.seq) AS l2) l
     WHERE w.seed = s AND x.ts < now() - interval '1 day';
END $$;

CREATE FUNCTION prr.setup_seed() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM pipeline.pipelines WHERE name = 'r1') THEN
        PERFORM pipeline.drop_pipeline('r1', drop_target => true);
        PERFORM pipeline.drop_pipeline('r2', drop_target => true);
    END IF;
    DROP TABLE IF EXISTS prr.src;
    CREATE TABLE prr.src (id integer PRIMARY KEY, ts timestamptz NOT NULL, v text);
    CREATE INDEX ON prr.src (ts);
    TRUNCATE prr.model_wm;
    INSERT INTO prr.model_wm VALUES ('r1', NULL, NULL), ('r2', NULL, interval '6 hours');
    PERFORM pipeline.create_pipeline('r1', 'prr.src', 'prr.t1', '{id}', 'ts', raw_retention => '1 day');
    PERFORM pipeline.create_pipeline('r2', 'prr.src', 'prr.t2', '{id}', 'ts', lookback => '6 hours');
END $$;

-- write_row writes one source row and its reference row, in one transaction
CREATE FUNCTION prr.write_row(s integer, t timestamptz, is_late boolean) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    q bigint := nextval('prr.seq');
BEGIN
    INSERT INTO prr.src VALUES (q, t, md5(q::text));
    INSERT INTO prr.written VALUES (s, q, t, md5(q::text), q, is_late);
END $$;

DO $driver$
DECLARE
    nseeds integer := current_setting('prr.nseeds')::int;
    steps integer := current_setting('prr.steps')::int;
    seed integer;
    step integer;
    clock timestamptz;
    wm1 timestamptz;
    n integer;
    deleted bigint;
    total bigint;
    bound timestamptz;
    rounds integer;
BEGIN
    FOR seed IN 1..nseeds LOOP
        PERFORM setseed(seed / (nseeds + 1.0));
        PERFORM prr.setup_seed();
        clock := now() - interval '5 days';
        COMMIT;
        FOR step IN 1..steps LOOP
            -- new rows
            FOR i IN 1..1 + floor(random() * 5)::int LOOP
                clock := clock + make_interval(mins => floor(random() * 180)::int);
                PERFORM prr.write_row(seed, clock, false);
                IF random() < 0.3 THEN COMMIT; END IF;
            END LOOP;
            COMMIT;
            -- late rows: below the greater watermark, some inside r2's lookback
            wm1 := (SELECT max(wm) FROM prr.model_wm);
            IF wm1 IS NOT NULL AND random() < 0.6 THEN
                FOR i IN 1..1 + floor(random() * 3)::int LOOP
                    PERFORM prr.write_row(seed, wm1 - make_interval(mins => floor(random() * 2880)::int), true);
                END LOOP;
                COMMIT;
            END IF;
            -- r1 runs often, r2 less often (sometimes in batches)
            IF random() < 0.45 THEN
                PERFORM prr.model_run(seed, 'r1');
                COMMIT;
                PERFORM pipeline.run('r1');
                COMMIT;
            END IF;
            IF random() < 0.25 THEN
                PERFORM prr.model_run(seed, 'r2');
                COMMIT;
                IF random() < 0.4 THEN
                    CALL pipeline.run_batched('r2', 1 + floor(random() * 6)::int);
                ELSE
                    PERFORM pipeline.run('r2');
                END IF;
                COMMIT;
            END IF;
            -- purges: one batch, or until nothing is left
            IF random() < 0.35 THEN
                PERFORM set_config('pipeline.retention_batch_rows', (1 + floor(random() * 10))::text, false);
                IF random() < 0.5 THEN
                    deleted := pipeline._purge_raw('r1');
                    INSERT INTO prr.purges VALUES (seed, deleted, false);
                    COMMIT;
                ELSE
                    total := 0;
                    rounds := 0;
                    LOOP
                        deleted := pipeline._purge_raw('r1');
                        bound := now() - interval '1 day';  -- the purge's own bound
                        total := total + deleted;
                        rounds := rounds + 1;
                        COMMIT;
                        EXIT WHEN deleted < current_setting('pipeline.retention_batch_rows')::int
                               OR rounds > 200;
                    END LOOP;
                    INSERT INTO prr.purges VALUES (seed, total, true);
                    PERFORM prr.check_complete(seed, step, bound);
                    COMMIT;
                END IF;
            END IF;
            PERFORM prr.check_step(seed, step);
            COMMIT;
        END LOOP;
        PERFORM prr.record_kept(seed);
        COMMIT;
    END LOOP;
END $driver$;

CREATE FUNCTION prr.emit(nseeds integer) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    s integer;
    w text;
    n bigint;
    bad bigint;
    first_bad text;
BEGIN
    FOR s IN 1..nseeds LOOP
        FOREACH w IN ARRAY ARRAY['safe', 'targets', 'counts', 'complete'] LOOP
            SELECT count(*), count(*) FILTER (WHERE NOT ok),
                   (SELECT detail FROM prr.checks c2 WHERE c2.seed = s AND c2.what = w AND NOT c2.ok
                     ORDER BY id LIMIT 1)
              INTO n, bad, first_bad
              FROM prr.checks c WHERE c.seed = s AND c.what = w;
            RETURN NEXT ok(n > 0 AND bad = 0, format('seed %s: %s after each of %s checks', s, w, n));
            IF bad > 0 THEN
                RETURN NEXT diag(format('%s of %s checks failed; first: %s', bad, n, first_bad));
            END IF;
        END LOOP;
    END LOOP;
END $$;

SELECT * FROM prr.emit(:nseeds);

-- The scenarios the properties are about did happen.
SELECT cmp_ok((SELECT sum(deleted) FROM prr.purges), '>=', 100::numeric, 'purges deleted rows');
SELECT cmp_ok((SELECT count(*) FROM prr.purges WHERE complete AND deleted > 0), '>=', 8::bigint,
              'purges ran until nothing was left');
SELECT cmp_ok((SELECT sum(late) FROM prr.kept), '>=', 10::numeric,
              'late rows older than the retention were kept');
SELECT cmp_ok((SELECT sum(only_r2) FROM prr.kept), '>=', 3::numeric,
              'rows only r2 had loaded, older than the retention, were kept');
SELECT cmp_ok((SELECT sum(only_r1) FROM prr.kept), '>=', 1::numeric,
              'rows only r1 had loaded, older than the retention, were kept');
SELECT cmp_ok((SELECT count(*) FROM pipeline.runs WHERE pipeline_name = 'r2' AND batches > 1), '>=', 3::bigint,
              'r2 ran in batches');

SELECT * FROM finish();
