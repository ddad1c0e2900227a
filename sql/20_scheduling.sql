-- 20_scheduling: dependencies, triggers, schedules, limits and status.
-- This server has neither pg_cron nor the pg_pipeline launcher, so this
-- suite shows the registry side and every error; the workers themselves
-- are exercised by test/t/003_workers.pl and pg_cron by test/t/004_pg_cron.pl.
\set SHOW_CONTEXT never
SET TimeZone = 'UTC';
CREATE SCHEMA flow;
CREATE TABLE flow.raw (id bigserial PRIMARY KEY, k int, v int);
INSERT INTO flow.raw (k, v) VALUES (1, 10), (2, 20);

-- A chain: b reads a's target through a view, so b depends on a (inferred);
-- c declares that it depends on b.
SELECT pipeline.create_pipeline('a', 'flow.raw', 'flow.a', unique_key => '{id}',
                                incremental_column => 'id') > 0 AS created;
CREATE VIEW flow.a_by_k AS SELECT k, sum(v)::bigint AS total FROM flow.a GROUP BY k;
SELECT pipeline.create_pipeline('b', 'flow.a_by_k', 'flow.b', unique_key => '{k}',
                                mode => 'full', max_retries => 2, retry_delay => '5 seconds',
                                timeout => '10 minutes', freshness => '1 hour',
                                timeliness => '5 minutes') > 0 AS created;
CREATE TABLE flow.other (k int PRIMARY KEY, label text);
SELECT pipeline.create_pipeline('c', 'flow.other', 'flow.c', unique_key => '{k}',
                                mode => 'full', depends_on => '{b}') > 0 AS created;
SELECT p.name, u.name AS upstream, d.kind
  FROM pipeline.dependencies d
  JOIN pipeline.pipelines p ON p.id = d.pipeline_id
  JOIN pipeline.pipelines u ON u.id = d.upstream_id
 WHERE p.name IN ('a', 'b', 'c')
 ORDER BY 1, 2;
SELECT name, depends_on, max_retries, retry_delay, timeout, freshness, timeliness,
       freshness_muted, timeliness_muted, schedule
  FROM pipeline.pipelines WHERE name IN ('a', 'b', 'c') ORDER BY id;
-- The edges one pipeline's run, cycle check and launcher read
-- (pipeline._upstreams and _downstreams, by index) are the view's.
WITH view_edges AS (SELECT pipeline_id, upstream_id, kind FROM pipeline.dependencies),
     up_edges AS (SELECT p.pipeline_id, u.upstream_id, u.kind
                    FROM pipeline.pipeline p CROSS JOIN LATERAL pipeline._upstreams(p.pipeline_id) u),
     down_edges AS (SELECT d.pipeline_id, p.pipeline_id AS upstream_id, d.kind
                      FROM pipeline.pipeline p CROSS JOIN LATERAL pipeline._downstreams(p.pipeline_id) d)
SELECT (SELECT count(*) FROM view_edges e JOIN pipeline.pipeline p USING (pipeline_id)
         WHERE p.name IN ('a', 'b', 'c')) AS edges_of_abc,
       (SELECT count(*) FROM ((TABLE view_edges EXCEPT TABLE up_edges) UNION ALL
                              (TABLE up_edges EXCEPT TABLE view_edges)) x) AS upstreams_differ,
       (SELECT count(*) FROM ((TABLE view_edges EXCEPT TABLE down_edges) UNION ALL
                              (TABLE down_edges EXCEPT TABLE view_edges)) x) AS downstreams_differ;

-- A run that changes data queues its downstream pipelines for the workers.
SELECT pipeline.run('a') AS a_run \gset
SELECT pipeline_name, reason, parent_run_id = :a_run AS parent_is_a, attempt
  FROM pipeline.queue WHERE pipeline_name IN ('a', 'b', 'c');
-- nothing changed: nothing queued again, and the pending entry stays single
SELECT pipeline.run('a') > 0 AS ran;
SELECT count(*) AS queued FROM pipeline.queue WHERE pipeline_name IN ('a', 'b', 'c');
-- pausing a pipeline drops its pending run
SELECT pipeline.pause('b');
SELECT count(*) AS queued FROM pipeline.queue WHERE pipeline_name IN ('a', 'b', 'c');
SELECT pipeline.resume('b');

-- run_tree: a run and every run it triggered (here only the run itself)
SELECT run_id = :a_run AS is_a, depth, pipeline_name, status, triggered_by, attempt
  FROM pipeline.run_tree(:a_run);
SELECT count(*) FROM pipeline.run_tree(-1);

-- status: one row per pipeline
SELECT name, last_run_status, consecutive_failures, source_ahead_by, schedule,
       next_scheduled_at, freshness_state, timeliness_state
  FROM pipeline.status WHERE name IN ('a', 'b', 'c') ORDER BY id;
INSERT INTO flow.raw (k, v) VALUES (3, 30), (3, 31);
SELECT name, source_ahead_by FROM pipeline.status WHERE name = 'a';

-- next_run_time computes when a cron schedule fires next (UTC)
SELECT pipeline.next_run_time('*/15 * * * *', '2024-01-01 10:07:00+00');
SELECT pipeline.next_run_time('0 3 * * 1-5', '2024-01-05 04:00:00+00');  -- a Friday
SELECT pipeline.next_run_time('@monthly', '2024-01-31 23:59:00+00');
SELECT pipeline.next_run_time('0 0 31 2 *', '2024-01-01 00:00:00+00');    -- never

-- Errors, each with its SQLSTATE; nothing changes.
-- a cycle: a declared dependency of a on c closes a -> ... -> c -> b -> a
SELECT pipeline.alter_pipeline('a', depends_on => '{c}');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.create_pipeline('self', 'flow.other', 'flow.self', unique_key => '{k}',
                                depends_on => '{self}');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.create_pipeline('d', 'flow.other', 'flow.d', unique_key => '{k}',
                                depends_on => '{nope}');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.create_pipeline('d', 'flow.other', 'flow.d', unique_key => '{k}',
                                depends_on => ARRAY['b', NULL]);
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.create_pipeline('d', 'flow.other', 'flow.d', unique_key => '{k}', max_retries => -1);
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.create_pipeline('d', 'flow.other', 'flow.d', unique_key => '{k}', retry_delay => '0');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.create_pipeline('d', 'flow.other', 'flow.d', unique_key => '{k}', timeout => '-1 second');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.create_pipeline('d', 'flow.other', 'flow.d', unique_key => '{k}', freshness => '-1 hour');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.create_pipeline('d', 'flow.other', 'flow.d', unique_key => '{k}', timeliness => '0');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.create_pipeline('d', 'flow.other', 'flow.d', unique_key => '{k}', schedule => '61 * * * *');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.create_pipeline('d', 'flow.other', 'flow.d', unique_key => '{k}', schedule => 'every day');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.create_pipeline('d', 'flow.other', 'flow.d', unique_key => '{k}', schedule => '@fortnightly');
\echo :LAST_ERROR_SQLSTATE
-- a valid schedule still needs pg_cron in this database
SELECT pipeline.create_pipeline('d', 'flow.other', 'flow.d', unique_key => '{k}', schedule => '*/5 * * * *');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.schedule('b', '0 * * * *');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.schedule('b', 'not cron');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.schedule('nope', '0 * * * *');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.schedule('b', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.next_run_time('* * *');
\echo :LAST_ERROR_SQLSTATE
SELECT name FROM pipeline.pipelines WHERE name IN ('self', 'd');
SELECT to_regclass('flow.d') AS d_target;
SELECT name, schedule FROM pipeline.pipelines WHERE name = 'b';

-- unschedule is harmless without a schedule or pg_cron
SELECT pipeline.unschedule('b') AS removed;
SELECT pipeline.unschedule('nope');
\echo :LAST_ERROR_SQLSTATE

-- trigger needs the launcher (shared_preload_libraries, pipeline.databases)
SELECT pipeline.trigger('b');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.pause('b');
SELECT pipeline.trigger('b');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.resume('b');
SELECT pipeline.trigger('nope');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.trigger(NULL);
\echo :LAST_ERROR_SQLSTATE

-- cancel: nothing is running, so nothing is cancelled
SELECT pipeline.cancel('b') AS cancelled;
SELECT pipeline.cancel('nope');
\echo :LAST_ERROR_SQLSTATE

-- scheduled_run, what a pg_cron job calls, skips a paused pipeline quietly
SELECT pipeline.pause('c');
CALL pipeline.scheduled_run('c');
SELECT pipeline.resume('c');
CALL pipeline.scheduled_run('c');
SELECT pipeline_name, status, triggered_by FROM pipeline.runs WHERE pipeline_name = 'c';

-- alter keeps limits and dependencies in step; '0' removes a limit, '{}' the declared dependencies
SELECT pipeline.alter_pipeline('c', depends_on => '{}', freshness => '2 hours',
                               mute_freshness => true) > 0 AS altered;
SELECT pipeline.alter_pipeline('b', timeout => '0', timeliness => '0', max_retries => 0) > 0 AS altered;
SELECT name, depends_on, freshness, freshness_muted, timeout, timeliness, max_retries
  FROM pipeline.pipelines WHERE name IN ('b', 'c') ORDER BY name;
SELECT name, freshness_state FROM pipeline.status WHERE name = 'c';

-- dropping an upstream pipeline removes its edges
SELECT pipeline.drop_pipeline('b');
SELECT count(*) AS edges FROM pipeline.dependencies d
  JOIN pipeline.pipelines p ON p.id = d.pipeline_id WHERE p.name IN ('a', 'b', 'c');

-- launcher_status lists the running launchers: none on this server
SELECT count(*) AS launchers FROM pipeline.launcher_status();
