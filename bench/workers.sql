-- bench/workers.sql
--
-- Measures the background workers, on a server with pg_pipeline preloaded:
--   hops: the latency from an upstream run's commit (its run record's
--         finished_at, written just before the commit) to the start of the
--         downstream run a worker executes for it (the worker's run record's
--         started_at), over :hops hops after 5 warm-up hops;
--   idle: the launcher's pass time with :idle registered idle pipelines, each
--         with freshness and timeliness limits, so every pass checks them all.
\set ON_ERROR_STOP on
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_pipeline;
CREATE SCHEMA hop;
CREATE TABLE hop.src (id bigserial PRIMARY KEY, v int NOT NULL);
SELECT pipeline.create_pipeline('up', 'hop.src', 'hop.up', unique_key => '{id}',
                                incremental_column => 'id') > 0 AS up;
SELECT pipeline.create_pipeline('down', 'hop.up', 'hop.down', unique_key => '{id}',
                                incremental_column => 'id') > 0 AS down;

-- run_hops: n times, load a row upstream, commit, wait for the downstream run
CREATE PROCEDURE hop.run_hops(n int) LANGUAGE plpgsql AS $$
DECLARE
    r   bigint;
    t0  timestamptz;
BEGIN
    FOR i IN 1..n LOOP
        INSERT INTO hop.src (v) VALUES (i);
        r := pipeline.run('up');
        COMMIT;
        t0 := clock_timestamp();
        LOOP
            EXIT WHEN EXISTS (SELECT 1 FROM pipeline.runs
                               WHERE parent_run_id = r AND status <> 'running');
            IF clock_timestamp() - t0 > interval '30 seconds' THEN
                RAISE EXCEPTION 'the downstream run of hop % did not finish', i;
            END IF;
            PERFORM pg_sleep(0.001);
        END LOOP;
    END LOOP;
END $$;

CALL hop.run_hops(5);
SELECT max(run_id) AS warm FROM pipeline.runs \gset
CALL hop.run_hops(:hops);
SELECT count(*) AS hops,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2) AS median_ms,
       round(percentile_cont(0.95) WITHIN GROUP (ORDER BY ms)::numeric, 2) AS p95_ms,
       round(max(ms)::numeric, 2) AS max_ms
  FROM (SELECT extract(epoch FROM d.started_at - u.finished_at) * 1000 AS ms
          FROM pipeline.runs u
          JOIN pipeline.runs d ON d.parent_run_id = u.run_id
         WHERE u.pipeline_name = 'up' AND u.run_id > :warm) h \gset
SELECT (SELECT count(*) FROM hop.down) = (SELECT count(*) FROM hop.src) AS down_complete \gset
\echo HOPS :hops MEDIAN_MS :median_ms P95_MS :p95_ms MAX_MS :max_ms COMPLETE :down_complete

-- idle pipelines: each its own source and target, with limits to check
CREATE SCHEMA idle;
SELECT format('CREATE TABLE idle.s%s (id bigint PRIMARY KEY, ts timestamptz NOT NULL)', g)
  FROM generate_series(1, :idle) g \gexec
SELECT count(pipeline.create_pipeline('idle_' || g, format('idle.s%s', g)::regclass,
                                      format('idle.t%s', g), unique_key => '{id}',
                                      freshness => '1 day', timeliness => '1 hour')) AS registered
  FROM generate_series(1, :idle) g;
SELECT pg_sleep(3);    -- let the launcher see them
SELECT passes AS p0, avg_pass_ms * passes AS t0 FROM pipeline.launcher_status() \gset
SELECT pg_sleep(15);
SELECT passes - :p0 AS passes,
       round(((avg_pass_ms * passes - :t0) / nullif(passes - :p0, 0))::numeric, 2) AS pass_ms,
       round(max_pass_ms::numeric, 2) AS max_pass_ms
  FROM pipeline.launcher_status() \gset
SELECT count(*) AS pipelines FROM pipeline.pipelines \gset
\echo IDLE :pipelines PASSES :passes PASS_MS :pass_ms MAX_PASS_MS :max_pass_ms
