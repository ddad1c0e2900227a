\ir common/preamble.sql
-- test/pgtap/property_parallel.sql
--
-- Property test of parallel runs (docs/parallel.md). For each of several
-- fixed seeds, a procedure (which commits between steps: part workers see
-- only what committed) makes a target partitioned by list of region into a
-- random number of partitions (2 to 5; a default partition on some seeds),
-- a pipeline into it with a random parallel_workers (2 to 4) and a serial
-- twin into an identical target, both with a quarantine check that fails
-- for some keys (id % 7 = 3) and a delete column. It inserts random batches
-- (duplicate keys from a small key space, NULL keys, deletes, several
-- regions) and runs both pipelines after each batch. Each parallel run
-- must:
--   - count what a plain-SQL reference counts over its window (watermark_from,
--     watermark_to]: every row read once; the NULL keys rejected; of each
--     key its latest row kept, the others skipped as versions; of the kept
--     rows those of failing keys quarantined (and written to the quarantine
--     with the run's id), the others inserted, updated, deleted or unchanged:
--     read = rejected + skipped versions + quarantined + the rest
--     (conservation);
--   - count exactly what the serial twin's run over the same window counts;
--   - leave no prepared transaction behind;
--   - be a parallel run: what it changed in the target is invisible in its
--     own transaction until that commits (its parts commit after it).
-- At the end of each seed both targets equal the plain-SQL reference: of
-- each key of the source not NULL and not failing, its latest row's values,
-- unless it deletes the key; and every source row was read by exactly one run.
-- The procedure keeps its failures in par.fail; the assertions read them.
CREATE SCHEMA par;
CREATE TABLE par.src (
    seq     bigserial,
    region  text,
    id      int,
    v       int,
    del     boolean NOT NULL DEFAULT false
);
CREATE TABLE par.fail (seed int, what text, detail text);
CREATE TABLE par.tally (seed int, runs int, parallel_runs int, rows_read bigint, source_rows bigint);
SET pipeline.parallel_pause = '';

-- last_run(p): the latest recorded run of pipeline p
CREATE FUNCTION par.last_run(p text) RETURNS pipeline.runs LANGUAGE sql AS $$
  SELECT * FROM pipeline.runs WHERE pipeline_name = p ORDER BY run_id DESC LIMIT 1 $$;

-- digest(): the parallel target's rows, as one hash
CREATE FUNCTION par.digest() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  RETURN (SELECT coalesce(md5(string_agg(t::text, ',' ORDER BY region, id)), '') FROM par.t_par t);
END $$;

CREATE PROCEDURE par.run_seed(sd int, steps int) LANGUAGE plpgsql AS $$
DECLARE
    nparts int;
    workers int;
    with_default boolean;
    regions text[] := ARRAY['a', 'b', 'c', 'd', 'e'];
    r pipeline.runs;
    s pipeline.runs;
    last_par bigint := 0;
    ref record;
    bad bigint;
    nruns int := 0;
    parallel_runs int := 0;
    h0 text; h1 text; h2 text;
BEGIN
    PERFORM setseed(sd / 100.0);
    nparts := 2 + floor(random() * 4)::int;
    workers := 2 + floor(random() * 3)::int;
    with_default := random() < 0.4;
    TRUNCATE par.src;
    DROP TABLE IF EXISTS par.t_par, par.t_ser;
    CREATE TABLE par.t_par (seq bigint, region text NOT NULL, id int NOT NULL, v int, del boolean,
                            PRIMARY KEY (region, id)) PARTITION BY LIST (region);
    CREATE TABLE par.t_ser (LIKE par.t_par INCLUDING ALL) PARTITION BY LIST (region);
    FOR i IN 1 .. nparts LOOP
        -- the last partition takes the regions left over, unless a default one does
        EXECUTE format('CREATE TABLE par.t_par_%s PARTITION OF par.t_par FOR VALUES IN (%s)', i,
                       CASE WHEN i < nparts OR with_default THEN quote_literal(regions[i])
                            ELSE (SELECT string_agg(quote_literal(x), ', ') FROM unnest(regions[i:5]) x) END);
        EXECUTE format('CREATE TABLE par.t_ser_%s PARTITION OF par.t_ser FOR VALUES IN (%s)', i,
                       CASE WHEN i < nparts OR with_default THEN quote_literal(regions[i])
                            ELSE (SELECT string_agg(quote_literal(x), ', ') FROM unnest(regions[i:5]) x) END);
    END LOOP;
    IF with_default THEN
        CREATE TABLE par.t_par_default PARTITION OF par.t_par DEFAULT;
        CREATE TABLE par.t_ser_default PARTITION OF par.t_ser DEFAULT;
    END IF;
    PERFORM pipeline.create_pipeline('par_' || sd, 'par.src', 'par.t_par', unique_key => '{region,id}',
                                     incremental_column => 'seq', delete_column => 'del',
                                     partition_column => 'region', create_target => false,
                                     parallel_workers => workers);
    PERFORM pipeline.create_pipeline('ser_' || sd, 'par.src', 'par.t_ser', unique_key => '{region,id}',
                                     incremental_column => 'seq', delete_column => 'del',
                                     partition_column => 'region', create_target => false);
    PERFORM pipeline.add_check('par_' || sd, 'odd', 'expression', '{"sql": "id % 7 <> 3"}', 'quarantine');
    PERFORM pipeline.add_check('ser_' || sd, 'odd', 'expression', '{"sql": "id % 7 <> 3"}', 'quarantine');
    COMMIT;
    FOR step IN 1 .. steps LOOP
        INSERT INTO par.src (region, id, v, del)
        SELECT regions[1 + floor(random() * 5)::int],
               CASE WHEN random() < 0.04 THEN NULL ELSE floor(random() * 30)::int END,
               floor(random() * 100)::int, random() < 0.1
          FROM generate_series(1, 1 + floor(random() * 60)::int);
        COMMIT;
        h0 := par.digest();
        PERFORM pipeline.run('par_' || sd);
        h1 := par.digest();
        COMMIT;
        h2 := par.digest();
        PERFORM pipeline.run('ser_' || sd);
        COMMIT;
        r := par.last_run('par_' || sd);
        s := par.last_run('ser_' || sd);
        IF r.run_id IS NULL OR r.run_id = last_par THEN
            CONTINUE;			-- nothing new (an idle run is counted, not recorded)
        END IF;
        last_par := r.run_id;
        nruns := nruns + 1;
        IF r.status <> 'succeeded' THEN
            INSERT INTO par.fail VALUES (sd, 'run failed', r.error_message);
            CONTINUE;
        END IF;
        IF r.rows_inserted + r.rows_updated + r.rows_deleted > 0 THEN
            IF h1 = h0 AND h2 <> h0 THEN
                parallel_runs := parallel_runs + 1;
            ELSE
                INSERT INTO par.fail VALUES (sd, 'not parallel', format('run %s', r.run_id));
            END IF;
        END IF;
        SELECT count(*) AS rd,
               count(*) FILTER (WHERE id IS NULL) AS rej,
               count(DISTINCT (region, id)) FILTER (WHERE id IS NOT NULL) AS keys,
               count(DISTINCT (region, id)) FILTER (WHERE id IS NOT NULL AND id % 7 = 3) AS quar
          INTO ref
          FROM par.src
         WHERE seq > coalesce(r.watermark_from::bigint, 0) AND seq <= r.watermark_to::bigint;
        IF r.rows_read <> ref.rd OR r.rows_rejected <> ref.rej OR r.rows_quarantined <> ref.quar
           OR r.rows_inserted + r.rows_updated + r.rows_deleted + r.rows_unchanged <> ref.keys - ref.quar
           OR r.rows_read <> r.rows_rejected + (ref.rd - ref.rej - ref.keys) + r.rows_quarantined
                             + r.rows_inserted + r.rows_updated + r.rows_deleted + r.rows_unchanged THEN
            INSERT INTO par.fail VALUES (sd, 'counts', format('run %s: %s against %s', r.run_id, row_to_json(r), row_to_json(ref)));
        END IF;
        SELECT count(*) INTO bad FROM pipeline.quarantine WHERE run_id = r.run_id;
        IF bad <> r.rows_quarantined THEN
            INSERT INTO par.fail VALUES (sd, 'quarantine', format('run %s: %s rows, %s counted', r.run_id, bad, r.rows_quarantined));
        END IF;
        IF (r.watermark_from, r.watermark_to, r.rows_read, r.rows_inserted, r.rows_updated, r.rows_deleted,
            r.rows_unchanged, r.rows_rejected, r.rows_quarantined)
           IS DISTINCT FROM
           (s.watermark_from, s.watermark_to, s.rows_read, s.rows_inserted, s.rows_updated, s.rows_deleted,
            s.rows_unchanged, s.rows_rejected, s.rows_quarantined) THEN
            INSERT INTO par.fail VALUES (sd, 'serial twin', format('%s / %s', row_to_json(r), row_to_json(s)));
        END IF;
        SELECT count(*) INTO bad FROM pg_prepared_xacts WHERE gid LIKE 'pg_pipeline:%';
        IF bad > 0 THEN
            INSERT INTO par.fail VALUES (sd, 'prepared left', bad::text);
        END IF;
        COMMIT;
    END LOOP;
    -- the targets against the plain-SQL reference (a row delivered again with
    -- nothing new keeps the incremental value of its last change: not compared)
    SELECT count(*) INTO bad FROM (
        (SELECT region, id, v FROM par.t_par
         EXCEPT ALL
         SELECT region, id, v FROM (
             SELECT DISTINCT ON (region, id) * FROM par.src WHERE id IS NOT NULL AND id % 7 <> 3
              ORDER BY region, id, seq DESC) x WHERE NOT del)
        UNION ALL
        (SELECT region, id, v FROM (
             SELECT DISTINCT ON (region, id) * FROM par.src WHERE id IS NOT NULL AND id % 7 <> 3
              ORDER BY region, id, seq DESC) x WHERE NOT del
         EXCEPT ALL
         SELECT region, id, v FROM par.t_par)) d;
    IF bad > 0 THEN
        INSERT INTO par.fail VALUES (sd, 'target', bad || ' rows differ from the reference');
    END IF;
    SELECT count(*) INTO bad FROM (
        (SELECT * FROM par.t_par EXCEPT ALL SELECT * FROM par.t_ser)
        UNION ALL (SELECT * FROM par.t_ser EXCEPT ALL SELECT * FROM par.t_par)) d;
    IF bad > 0 THEN
        INSERT INTO par.fail VALUES (sd, 'twin target', bad || ' rows differ from the serial twin''s');
    END IF;
    INSERT INTO par.tally
    SELECT sd, nruns, parallel_runs, coalesce(sum(rows_read), 0), (SELECT count(*) FROM par.src)
      FROM pipeline.runs WHERE pipeline_name = 'par_' || sd;
    COMMIT;
    PERFORM pipeline.drop_pipeline('par_' || sd);
    PERFORM pipeline.drop_pipeline('ser_' || sd);
    COMMIT;
END $$;

CALL par.run_seed(1, 12);
CALL par.run_seed(2, 12);
CALL par.run_seed(3, 12);
CALL par.run_seed(4, 12);
CALL par.run_seed(5, 12);
CALL par.run_seed(6, 12);

SELECT plan(8);
SELECT is((SELECT count(*) FROM par.fail WHERE what IN ('counts', 'run failed')), 0::bigint,
          'every parallel run counts what the plain-SQL reference counts over its window (conservation)');
SELECT is((SELECT count(*) FROM par.fail WHERE what = 'quarantine'), 0::bigint,
          'every row a parallel run counts as quarantined is in the quarantine, with its run id');
SELECT is((SELECT count(*) FROM par.fail WHERE what = 'serial twin'), 0::bigint,
          'every parallel run counts exactly what its serial twin counts over the same window');
SELECT is((SELECT count(*) FROM par.fail WHERE what IN ('target', 'twin target')), 0::bigint,
          'the parallel target equals the plain-SQL reference and the serial twin''s target');
SELECT is((SELECT count(*) FROM par.fail WHERE what = 'prepared left'), 0::bigint,
          'no run leaves a prepared transaction behind');
SELECT is((SELECT count(*) FROM par.fail WHERE what = 'not parallel'), 0::bigint,
          'every run that changed the target was a parallel one: invisible in its own transaction until it committed');
SELECT ok((SELECT bool_and(parallel_runs > 0) AND count(*) = 6 FROM par.tally),
          'each seed made parallel runs');
SELECT is((SELECT count(*) FROM par.tally WHERE rows_read <> source_rows), 0::bigint,
          'every source row was read by exactly one parallel run');
SELECT * FROM par.fail;
SELECT * FROM finish();
