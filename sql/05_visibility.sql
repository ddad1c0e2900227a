-- 05_visibility: who sees what. A role sees a pipeline, and everything of
-- it (definition, runs and their errors, alerts, queue, lineage, versions,
-- audit entries), when it has the privileges of the pipeline's owner: the
-- owner, a member of the owner, a superuser. Nobody else sees any of it,
-- not even through a leaky function of their own. The owner may cancel the
-- pipeline's runs; nobody else may.
\set SHOW_CONTEXT never
-- It runs in a database of its own, so that its runs and audit entries do
-- not shift the ids and counts the other suites print.
\set regress_db :DBNAME
CREATE DATABASE pipeline_visibility;
\c pipeline_visibility
CREATE EXTENSION pg_pipeline;
CREATE ROLE vis_ann;
CREATE ROLE vis_ben;
CREATE ROLE vis_cat IN ROLE vis_ann;   -- a member of vis_ann
CREATE SCHEMA vis;
GRANT USAGE, CREATE ON SCHEMA vis TO vis_ann, vis_ben;
GRANT USAGE ON SCHEMA vis TO vis_cat;

-- vis_ann owns a chain of two pipelines that run fine.
SET ROLE vis_ann;
CREATE TABLE vis.ann_src (id int PRIMARY KEY, v text);
INSERT INTO vis.ann_src VALUES (1, 'a'), (2, 'b');
SELECT pipeline.create_pipeline('vis_ann_p', 'vis.ann_src', 'vis.ann_dst', unique_key => '{id}') > 0 AS created;
SELECT pipeline.create_pipeline('vis_ann_down', 'vis.ann_dst', 'vis.ann_down', unique_key => '{id}') > 0 AS created;
SELECT pipeline.run('vis_ann_p') > 0 AS ran;
SELECT pipeline.run('vis_ann_down') > 0 AS ran;
RESET ROLE;

-- vis_ben owns one whose run fails with an error that quotes a source value.
SET ROLE vis_ben;
CREATE TABLE vis.ben_src (id int PRIMARY KEY, code text);
INSERT INTO vis.ben_src VALUES (1, 'SSN-123');
CREATE VIEW vis.ben_v AS SELECT id, code::int AS code FROM vis.ben_src;
CREATE TABLE vis.ben_dst (id int PRIMARY KEY, code int);
SELECT pipeline.create_pipeline('vis_ben_p', 'vis.ben_v', 'vis.ben_dst', unique_key => '{id}') > 0 AS created;
SELECT pipeline.run('vis_ben_p');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- The superuser sees the error, as run record, alert and audit entry.
SELECT status, error_sqlstate, error_message FROM pipeline.runs WHERE pipeline_name = 'vis_ben_p';
SELECT kind, observed, message FROM pipeline.alerts WHERE pipeline_name = 'vis_ben_p';
SELECT details->>'message' AS audited FROM pipeline.audit_log
 WHERE object_name = 'vis_ben_p' AND action = 'run_end';

-- A pending run of each (the launcher is not running here).
INSERT INTO pipeline.run_queue (pipeline_id, reason)
SELECT id, 'trigger' FROM pipeline.pipelines WHERE name IN ('vis_ann_p', 'vis_ben_p');

-- seen() lists, as whoever calls it, which of these pipelines each view,
-- table and function shows. It runs as its caller.
CREATE TABLE vis.ids AS SELECT id, name FROM pipeline.pipelines WHERE name LIKE 'vis\_%';
GRANT SELECT ON vis.ids TO PUBLIC;
CREATE FUNCTION vis.seen() RETURNS TABLE (object text, pipelines text)
LANGUAGE sql AS $$
    SELECT 'pipelines', string_agg(name, ' ' ORDER BY name) FROM pipeline.pipelines
     WHERE name LIKE 'vis\_%'
    UNION ALL
    SELECT 'status', string_agg(name, ' ' ORDER BY name) FROM pipeline.status
     WHERE name LIKE 'vis\_%'
    UNION ALL
    SELECT 'runs', string_agg(DISTINCT pipeline_name, ' ') FROM pipeline.runs
     WHERE pipeline_name LIKE 'vis\_%'
    UNION ALL
    SELECT 'dependencies', string_agg(DISTINCT i.name || '<-' || u.name, ' ')
      FROM pipeline.dependencies d JOIN vis.ids i ON i.id = d.pipeline_id
      JOIN vis.ids u ON u.id = d.upstream_id
    UNION ALL
    SELECT 'alerts', string_agg(DISTINCT pipeline_name, ' ') FROM pipeline.alerts
     WHERE pipeline_name LIKE 'vis\_%'
    UNION ALL
    SELECT 'queue', string_agg(DISTINCT pipeline_name, ' ') FROM pipeline.queue
     WHERE pipeline_name LIKE 'vis\_%'
    UNION ALL
    SELECT 'run_lineage', string_agg(DISTINCT pipeline, ' ') FROM pipeline.run_lineage
     WHERE pipeline LIKE 'vis\_%'
    UNION ALL
    SELECT 'lineage', string_agg(DISTINCT pipeline, ' ') FROM pipeline.lineage
     WHERE pipeline LIKE 'vis\_%'
    UNION ALL
    SELECT 'column_lineage', string_agg(DISTINCT pipeline, ' ') FROM pipeline.column_lineage
     WHERE pipeline LIKE 'vis\_%'
    UNION ALL
    SELECT 'pipeline_versions', string_agg(DISTINCT i.name, ' ')
      FROM pipeline.pipeline_versions v JOIN vis.ids i ON i.id = v.pipeline_id
    UNION ALL
    SELECT 'audit_log', string_agg(DISTINCT i.name, ' ')
      FROM pipeline.audit_log a JOIN vis.ids i ON i.id = a.pipeline_id
    UNION ALL
    SELECT 'any SSN', string_agg(what, ' ') FROM (
        SELECT 'runs' FROM pipeline.runs WHERE error_message LIKE '%SSN%'
        UNION ALL SELECT 'alerts' FROM pipeline.alerts WHERE message LIKE '%SSN%'
        UNION ALL SELECT 'audit_log' FROM pipeline.audit_log WHERE details::text LIKE '%SSN%') s(what)
$$;

-- The superuser sees both.
SELECT * FROM vis.seen();
-- vis_ann sees hers only, and no trace of vis_ben's error.
SET ROLE vis_ann;
SELECT * FROM vis.seen();
RESET ROLE;
-- vis_cat, a member of vis_ann, sees what vis_ann sees.
SET ROLE vis_cat;
SELECT * FROM vis.seen();
RESET ROLE;
-- vis_ben sees his only.
SET ROLE vis_ben;
SELECT * FROM vis.seen();
RESET ROLE;

-- Functions that return a run's or a pipeline's data answer as the views do.
SELECT run_id AS ann_run FROM pipeline.runs WHERE pipeline_name = 'vis_ann_p' \gset
SELECT run_id AS ben_run FROM pipeline.runs WHERE pipeline_name = 'vis_ben_p' \gset
SET ROLE vis_ann;
SELECT pipeline_name, status FROM pipeline.run_tree(:ann_run);
SELECT count(*) AS ben_runs_in_tree FROM pipeline.run_tree(:ben_run);
SELECT count(*) > 0 AS has_events FROM pipeline.openlineage_events(:ann_run);
SELECT count(*) FROM pipeline.openlineage_events(:ben_run);
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.config_of('vis_ann_p')->>'name' AS config_of_own;
SELECT pipeline.config_of('vis_ben_p');
\echo :LAST_ERROR_SQLSTATE
-- impact analysis and the graph walk the edges of visible pipelines only
SELECT string_agg(DISTINCT pipeline, ' ') AS downstream_of_ann_src FROM pipeline.downstream('vis.ann_src');
SELECT count(*) AS downstream_of_ben_src FROM pipeline.downstream('vis.ben_src');
SELECT count(*) AS upstream_of_ben_col FROM pipeline.column_upstream('vis.ben_dst', 'code');
SELECT pipeline.lineage_graph() LIKE '%vis_ann_p%' AS graph_has_ann,
       pipeline.lineage_graph() LIKE '%vis_ben_p%' AS graph_has_ben,
       pipeline.lineage_graph('mermaid') LIKE '%vis_ben_p%' AS mermaid_has_ben;
RESET ROLE;
SELECT string_agg(DISTINCT pipeline, ' ') AS superuser_downstream_of_ben_src
  FROM pipeline.downstream('vis.ben_src');
SET ROLE vis_ben;
SELECT pipeline_name, status FROM pipeline.run_tree(:ben_run);
SELECT event->'run'->'facets'->'errorMessage'->>'message' AS own_error
  FROM pipeline.openlineage_events(:ben_run) AS e(event)
 WHERE event->>'eventType' = 'FAIL';
RESET ROLE;

-- A leaky function in the caller's WHERE clause sees only the rows the
-- caller may see: the views are security barriers, and the two tables read
-- directly have row-level security. It is as cheap as can be, so that the
-- planner would call it first if it could.
CREATE FUNCTION vis.leak(a text, b text) RETURNS boolean
LANGUAGE plpgsql COST 0.0000001 AS
$$BEGIN
    IF b LIKE '%SSN%' THEN RAISE NOTICE 'leaked: % %', a, b; END IF;
    RETURN true;
END$$;
SET ROLE vis_ann;
SELECT count(*) >= 0 AS queried FROM pipeline.runs WHERE vis.leak(pipeline_name, error_message);
SELECT count(*) >= 0 AS queried FROM pipeline.alerts WHERE vis.leak(pipeline_name, message);
SELECT count(*) >= 0 AS queried FROM pipeline.audit_log WHERE vis.leak(object_name, details::text);
RESET ROLE;
-- Without the barrier the same function would see vis_ben's error: the
-- planner runs it before the costlier visibility test.
CREATE VIEW vis.runs_no_barrier AS
SELECT h.pipeline_name, h.error_message FROM pipeline.run_history h
 WHERE h.pipeline_id IN (SELECT v.pipeline_id FROM pipeline._visible_pipelines v);
GRANT SELECT ON vis.runs_no_barrier TO vis_ann;
SET ROLE vis_ann;
SELECT count(*) >= 0 AS queried FROM vis.runs_no_barrier WHERE vis.leak(pipeline_name, error_message);
RESET ROLE;
DROP VIEW vis.runs_no_barrier;

-- Cancel: a pending run leaves the queue; only the owner (or a member, or a
-- superuser) may cancel, and a refused cancel cancels nothing.
SELECT pipeline.cancel(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.cancel('vis_nope');
\echo :LAST_ERROR_SQLSTATE
SET ROLE vis_ben;
SELECT pipeline.cancel('vis_ann_p');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT pipeline_name FROM pipeline.queue WHERE pipeline_name LIKE 'vis\_%' ORDER BY 1;
SET ROLE vis_cat;
SELECT pipeline.cancel('vis_ann_p') AS cancelled;
SELECT pipeline.cancel('vis_ann_p') AS cancelled_again;
RESET ROLE;
SET ROLE vis_ben;
SELECT pipeline.cancel('vis_ben_p') AS cancelled;
RESET ROLE;
-- (vis_ann_down stays: vis_ann_p's run queued it, as a downstream pipeline)
SELECT pipeline_name AS still_queued FROM pipeline.queue WHERE pipeline_name LIKE 'vis\_%';

-- A dropped pipeline's runs, alerts, versions and audit entries stay
-- visible to its owner, and to nobody else. An audit entry is visible to
-- the role that made it too: vis_ben sees his refused cancel of vis_ann_p,
-- vis_ann her refused config_of('vis_ben_p') (the refusal, not the config).
SET ROLE vis_ben;
SELECT pipeline.drop_pipeline('vis_ben_p');
SELECT * FROM vis.seen() WHERE object IN ('runs', 'alerts', 'pipeline_versions', 'audit_log', 'pipelines');
RESET ROLE;
SET ROLE vis_ann;
SELECT * FROM vis.seen() WHERE object IN ('runs', 'alerts', 'pipeline_versions', 'audit_log', 'pipelines');
RESET ROLE;
SELECT name, owner FROM pipeline.dropped_pipeline WHERE name LIKE 'vis\_%';

-- Clean up.
SET ROLE vis_ann;
SELECT pipeline.drop_pipeline('vis_ann_down');
SELECT pipeline.drop_pipeline('vis_ann_p');
RESET ROLE;
\c :regress_db
DROP DATABASE pipeline_visibility WITH (FORCE);
DROP ROLE vis_cat, vis_ann, vis_ben;
