-- 17_roles: the three team roles. pipeline_viewer reads every pipeline,
-- pipeline_operator also runs, triggers, cancels, pauses and resumes them,
-- pipeline_admin may do everything; without them a role keeps its own
-- pipelines. Each refusal is 42501 and changes nothing; a run by an
-- operator still executes as the pipeline's owner.
\set SHOW_CONTEXT never
-- It runs in a database of its own, so that its runs and audit entries do
-- not shift the ids and counts the other suites print.
\set regress_db :DBNAME
CREATE DATABASE pipeline_roles;
\c pipeline_roles
SET client_min_messages = notice;

-- The roles ----------------------------------------------------------------------
-- The regression database installed the extension already, so the roles
-- exist: a second database's CREATE EXTENSION finds them and works.
CREATE EXTENSION pg_pipeline;
SELECT rolname, rolcanlogin, rolsuper, rolinherit, shobj_description(oid, 'pg_authid') AS comment
  FROM pg_roles WHERE rolname IN ('pipeline_viewer', 'pipeline_operator', 'pipeline_admin')
 ORDER BY rolname;
-- roles are cluster-wide, not members of the extension: DROP EXTENSION
-- leaves them, and CREATE EXTENSION again finds them
DROP EXTENSION pg_pipeline;
SELECT count(*) AS roles_left FROM pg_roles
 WHERE rolname IN ('pipeline_viewer', 'pipeline_operator', 'pipeline_admin');
CREATE EXTENSION pg_pipeline;

-- A pipeline of roles_owner, and one role per kind of grant ------------------------
CREATE ROLE roles_owner;
CREATE ROLE roles_viewer IN ROLE pipeline_viewer;
CREATE ROLE roles_operator IN ROLE pipeline_operator;
CREATE ROLE roles_admin IN ROLE pipeline_admin;
CREATE ROLE roles_nobody;
-- a member without INHERIT does not have the role's privileges (USAGE)
CREATE ROLE roles_noinherit NOINHERIT IN ROLE pipeline_operator;
CREATE SCHEMA team;
GRANT USAGE, CREATE ON SCHEMA team TO roles_owner;
GRANT USAGE ON SCHEMA team TO roles_viewer, roles_operator, roles_admin, roles_nobody, roles_noinherit;
CREATE TABLE team.orders (id int PRIMARY KEY, seq int NOT NULL, amount int);
INSERT INTO team.orders VALUES (1, 1, 10), (2, 2, 20);
-- the source's view says who reads it
CREATE VIEW team.orders_who AS SELECT id, seq, amount, current_user::text AS who FROM team.orders;
GRANT SELECT ON team.orders_who TO roles_owner;
SET ROLE roles_owner;
SELECT pipeline.create_pipeline('team_orders', 'team.orders_who', 'team.orders_dst',
                                unique_key => '{id}', incremental_column => 'seq') > 0 AS created;
RESET ROLE;

-- What each role sees -------------------------------------------------------------
-- the viewer, the operator and the admin see the pipeline and its rows;
-- a role without a team role sees nothing of it (as before)
SET ROLE roles_owner;
SELECT pipeline.run('team_orders') > 0 AS ran;
RESET ROLE;
CREATE FUNCTION seen() RETURNS TABLE (pipelines bigint, status bigint, runs bigint, versions bigint, audit bigint)
LANGUAGE sql AS $$
  SELECT (SELECT count(*) FROM pipeline.pipelines WHERE name = 'team_orders'),
         (SELECT count(*) FROM pipeline.status WHERE name = 'team_orders'),
         (SELECT count(*) FROM pipeline.runs WHERE pipeline_name = 'team_orders'),
         (SELECT count(*) FROM pipeline.pipeline_versions),
         (SELECT count(*) FROM pipeline.audit_log) $$;
SET ROLE roles_viewer;   SELECT 'viewer' AS role, * FROM seen();
SET ROLE roles_operator; SELECT 'operator' AS role, * FROM seen();
SET ROLE roles_admin;    SELECT 'admin' AS role, * FROM seen();
SET ROLE roles_nobody;   SELECT 'nobody' AS role, * FROM seen();
SET ROLE roles_noinherit; SELECT 'noinherit' AS role, * FROM seen();
RESET ROLE;
-- the viewer sees the lag too, and may explain and read the config
SET ROLE roles_viewer;
SELECT source_ahead_by, source_lag_reason FROM pipeline.status WHERE name = 'team_orders';
SELECT count(*) > 0 AS explained FROM pipeline.explain('team_orders');
SELECT pipeline.config_of('team_orders')->>'mode' AS mode;
RESET ROLE;

-- The viewer may not act (42501), and nothing changes ------------------------------
CREATE FUNCTION state() RETURNS TABLE (active boolean, watermark text, runs bigint, target_rows bigint)
LANGUAGE sql AS $$
  SELECT p.active, p.watermark,
         (SELECT count(*) FROM pipeline.runs r WHERE r.pipeline_name = 'team_orders'),
         (SELECT count(*) FROM team.orders_dst)
    FROM pipeline.pipelines p WHERE p.name = 'team_orders' $$;
INSERT INTO team.orders VALUES (3, 3, 30);
SELECT * FROM state();
SET ROLE roles_viewer;
SELECT pipeline.run('team_orders');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.pause('team_orders');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.alter_pipeline('team_orders', description => 'changed');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT * FROM state();

-- The operator runs, pauses, resumes, triggers and cancels -------------------------
SET ROLE roles_operator;
SELECT pipeline.run('team_orders') > 0 AS ran;
SELECT pipeline.pause('team_orders');
SELECT pipeline.resume('team_orders');
-- trigger passes the privilege check; this server has no launcher (55000)
SELECT pipeline.trigger('team_orders');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.cancel('team_orders') AS cancelled;
RESET ROLE;
SELECT * FROM state();
-- the run executed as the owner: the source's view saw roles_owner, and
-- the operator itself still may not read the source or the target
SELECT DISTINCT who FROM team.orders_dst;
SET ROLE roles_operator;
SELECT count(*) FROM team.orders_dst;
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM team.orders;
\echo :LAST_ERROR_SQLSTATE
-- but it may not change the definition, reset, drop, schedule or add checks
SELECT pipeline.alter_pipeline('team_orders', description => 'changed');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.reset('team_orders', '0');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.drop_pipeline('team_orders');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.schedule('team_orders', '0 * * * *');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.add_check('team_orders', 'positive', 'expression', '{"sql": "amount > 0"}');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT * FROM state();
SELECT description, schedule FROM pipeline.pipelines WHERE name = 'team_orders';
SELECT count(*) AS checks FROM pipeline.checks WHERE pipeline = 'team_orders';

-- Without a team role (or without INHERIT), nothing --------------------------------
SET ROLE roles_nobody;
SELECT pipeline.run('team_orders');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.config_of('team_orders');
\echo :LAST_ERROR_SQLSTATE
SET ROLE roles_noinherit;
SELECT pipeline.run('team_orders');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT * FROM state();

-- The admin may do what the owner may ------------------------------------------------
SET ROLE roles_admin;
SELECT pipeline.alter_pipeline('team_orders', description => 'by the admin') IS NOT NULL AS altered;
SELECT pipeline.reset('team_orders', '1');
SELECT pipeline.run('team_orders') > 0 AS ran;
SELECT pipeline.drop_pipeline('team_orders');
RESET ROLE;
SELECT count(*) AS pipelines_left FROM pipeline.pipelines;
-- the dropped pipeline's runs stay visible to the team roles
SET ROLE roles_viewer;
SELECT count(*) > 0 AS runs_seen FROM pipeline.runs WHERE pipeline_name = 'team_orders';
RESET ROLE;

-- Clean up (the three extension roles stay).
\c :regress_db
DROP DATABASE pipeline_roles WITH (FORCE);
DROP ROLE roles_owner, roles_viewer, roles_operator, roles_admin, roles_nobody, roles_noinherit;
