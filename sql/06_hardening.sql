-- 06_hardening: values and definitions that could only fail later, or
-- silently, are handled where they enter; one pipeline never breaks the
-- status of the others; an error never leaves the session broken.
\set SHOW_CONTEXT never
-- It runs in a database of its own, so that its runs and audit entries do
-- not shift the ids and counts the other suites print.
\set regress_db :DBNAME
CREATE DATABASE pipeline_hardening;
\c pipeline_hardening
SET client_min_messages = notice;
CREATE EXTENSION pg_pipeline;
CREATE SCHEMA hard;

-- Values at infinity ----------------------------------------------------------
-- A row at +infinity would become the watermark and hide every later row.
-- It never becomes the watermark: it stays in the source, is not loaded, and
-- every run that finds it counts it as read and rejected, with a WARNING.
CREATE TABLE hard.events (id int PRIMARY KEY, at timestamptz NOT NULL, v text);
INSERT INTO hard.events VALUES (1, '2026-01-01 10:00+00', 'a'),
                               (2, 'infinity', 'bad clock'),
                               (3, '-infinity', 'very old');
SELECT pipeline.create_pipeline('hard_events', 'hard.events', 'hard.events_dst',
                                unique_key => '{id}', incremental_column => 'at') > 0 AS created;
SELECT pipeline.run('hard_events') > 0 AS ran;
SELECT id, at, v FROM hard.events_dst ORDER BY id;
SELECT status, rows_read, rows_inserted, rows_rejected, watermark_to
  FROM pipeline.runs WHERE pipeline_name = 'hard_events' ORDER BY run_id;
-- later rows are loaded, not hidden behind infinity
INSERT INTO hard.events VALUES (4, '2026-01-02 10:00+00', 'later');
SELECT pipeline.run('hard_events') > 0 AS ran;
SELECT id, v FROM hard.events_dst ORDER BY id;
SELECT status, rows_read, rows_inserted, rows_rejected, watermark_to
  FROM pipeline.runs WHERE pipeline_name = 'hard_events' ORDER BY run_id DESC LIMIT 1;
-- once the row is fixed at the source, it loads
UPDATE hard.events SET at = '2026-01-03 10:00+00' WHERE id = 2;
SELECT pipeline.run('hard_events') > 0 AS ran;
SELECT id, v FROM hard.events_dst ORDER BY id;
-- the same for date columns
CREATE TABLE hard.days (id int PRIMARY KEY, d date NOT NULL);
INSERT INTO hard.days VALUES (1, '2026-01-01'), (2, 'infinity');
SELECT pipeline.create_pipeline('hard_days', 'hard.days', 'hard.days_dst',
                                unique_key => '{id}', incremental_column => 'd') > 0 AS created;
SELECT pipeline.run('hard_days') > 0 AS ran;
SELECT rows_rejected, watermark_to FROM pipeline.runs WHERE pipeline_name = 'hard_days';

-- reset() refuses a watermark at an end of its type (22023), and nothing
-- changes
SELECT pipeline.reset('hard_events', 'infinity');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.reset('hard_events', '-infinity');
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE hard.ids (id bigint PRIMARY KEY, v text);
SELECT pipeline.create_pipeline('hard_ids', 'hard.ids', 'hard.ids_dst',
                                unique_key => '{id}', incremental_column => 'id') > 0 AS created;
SELECT pipeline.reset('hard_ids', '9223372036854775807');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.reset('hard_ids', '-9223372036854775808');
\echo :LAST_ERROR_SQLSTATE
SELECT name, watermark FROM pipeline.pipelines WHERE name IN ('hard_events', 'hard_ids') ORDER BY name;
-- a value inside the range is fine
SELECT pipeline.reset('hard_ids', '100');
SELECT name, watermark FROM pipeline.pipelines WHERE name = 'hard_ids';

-- Monitoring degrades per pipeline ---------------------------------------------
-- Each of these used to make pipeline.status fail for everyone: a watermark
-- at infinity (stored before 0.2.0), a bigint watermark at its minimum, and
-- a source whose owner lost SELECT. Now each row says why it has no lag.
CREATE ROLE hard_owner;
GRANT USAGE, CREATE ON SCHEMA hard TO hard_owner;
CREATE TABLE hard.revoked (id int PRIMARY KEY, n bigint NOT NULL);
GRANT SELECT ON hard.revoked TO hard_owner;
INSERT INTO hard.revoked VALUES (1, 1);
SET ROLE hard_owner;
SELECT pipeline.create_pipeline('hard_revoked', 'hard.revoked', 'hard.revoked_dst',
                                unique_key => '{id}', incremental_column => 'n') > 0 AS created;
SELECT pipeline.run('hard_revoked') > 0 AS ran;
RESET ROLE;
REVOKE SELECT ON hard.revoked FROM hard_owner;   -- the documented way to stop it
UPDATE pipeline.watermark SET value = 'infinity'
 WHERE pipeline_id = (SELECT id FROM pipeline.pipelines WHERE name = 'hard_days');
UPDATE pipeline.watermark SET value = '-9223372036854775808'
 WHERE pipeline_id = (SELECT id FROM pipeline.pipelines WHERE name = 'hard_ids');
INSERT INTO hard.ids VALUES (5, 'x');
SELECT name, source_ahead_by, source_lag_reason
  FROM pipeline.status WHERE name LIKE 'hard%' ORDER BY name;
-- a source that fails when read gives a reason with its SQLSTATE
CREATE TABLE hard.base (id int PRIMARY KEY, n int NOT NULL, z int NOT NULL);
INSERT INTO hard.base VALUES (1, 1, 1);
CREATE VIEW hard.fragile AS SELECT id, n FROM hard.base WHERE 1 / z > 0;
SELECT pipeline.create_pipeline('hard_fragile', 'hard.fragile', 'hard.fragile_dst',
                                unique_key => '{id}', incremental_column => 'n') > 0 AS created;
SELECT pipeline.run('hard_fragile') > 0 AS ran;
UPDATE hard.base SET z = 0, n = 2;
SELECT name, source_ahead_by, source_lag_reason FROM pipeline.status WHERE name = 'hard_fragile';
SELECT lag, reason FROM pipeline.source_lag_detail((SELECT id FROM pipeline.pipelines WHERE name = 'hard_fragile'));
SELECT pipeline.source_lag(-1) IS NULL AS no_lag, (pipeline.source_lag_detail(-1)).reason;

-- The extension's own relations are neither source nor target (22023):
-- pipeline.status reading its own source recursed until the stack ran out.
SELECT pipeline.create_pipeline('hard_self', 'pipeline.status', 'hard.self_dst', unique_key => '{id}');
\echo :LAST_ERROR_SQLSTATE
CREATE VIEW hard.over_runs AS SELECT run_id, status FROM pipeline.runs;
SELECT pipeline.create_pipeline('hard_self', 'hard.over_runs', 'hard.self_dst', unique_key => '{run_id}');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.create_pipeline('hard_self', 'hard.ids', 'pipeline.run_history', mode => 'append',
                                incremental_column => 'id', create_target => false);
\echo :LAST_ERROR_SQLSTATE

-- Definitions that could only fail later are refused at registration ---------
-- a source column named like an internal alias of the generated SQL
CREATE TABLE hard.clash (id int, seq int NOT NULL, __pipeline_kept int, __pipeline_kept_1 text);
INSERT INTO hard.clash VALUES (1, 1, 7, 'x'), (1, 2, 8, 'y'), (2, 3, 9, 'z');
SELECT pipeline.create_pipeline('hard_clash', 'hard.clash', 'hard.clash_dst',
                                unique_key => '{id}', incremental_column => 'seq') > 0 AS created;
SELECT pipeline.run('hard_clash') > 0 AS ran;
SELECT * FROM hard.clash_dst ORDER BY id;
-- an existing target whose types do not match the source's (42804)
CREATE TABLE hard.typed_src (id int PRIMARY KEY, v int);
CREATE TABLE hard.typed_dst (id text PRIMARY KEY, v int);
SELECT pipeline.create_pipeline('hard_typed', 'hard.typed_src', 'hard.typed_dst',
                                unique_key => '{id}', create_target => false);
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE hard.typed_dst2 (id int PRIMARY KEY, v text);
SELECT pipeline.create_pipeline('hard_typed', 'hard.typed_src', 'hard.typed_dst2',
                                unique_key => '{id}', create_target => false);
\echo :LAST_ERROR_SQLSTATE
-- an append never compares non-key columns, so a type it can assign is fine
SELECT pipeline.create_pipeline('hard_typed', 'hard.typed_src', 'hard.typed_dst2',
                                unique_key => '{id}', mode => 'append', create_target => false) > 0 AS created;
-- and a retype after registration fails the run with the same error
SELECT pipeline.create_pipeline('hard_retyped', 'hard.typed_src', 'hard.retyped_dst',
                                unique_key => '{id}') > 0 AS created;
ALTER TABLE hard.retyped_dst ALTER COLUMN id TYPE text;
SELECT pipeline.run('hard_retyped');
\echo :LAST_ERROR_SQLSTATE
-- temporary tables belong to one session (42809)
CREATE TEMP TABLE hard_tmp (id int PRIMARY KEY, v text);
SELECT pipeline.create_pipeline('hard_tmp', 'hard_tmp', 'hard.tmp_dst', unique_key => '{id}');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.create_pipeline('hard_tmp', 'hard.typed_src', 'pg_temp.tmp_dst', unique_key => '{id}');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.create_pipeline('hard_tmp', 'hard.typed_src', 'hard_tmp', unique_key => '{id}',
                                create_target => false);
\echo :LAST_ERROR_SQLSTATE
-- a source view that reads the pipeline's own target (22023)
CREATE TABLE hard.loop_dst (id int PRIMARY KEY, v int);
CREATE VIEW hard.loop_src AS SELECT id, v + 1 AS v FROM hard.loop_dst;
SELECT pipeline.create_pipeline('hard_loop', 'hard.loop_src', 'hard.loop_dst',
                                unique_key => '{id}', create_target => false);
\echo :LAST_ERROR_SQLSTATE
-- nothing was registered by the refused calls
SELECT name FROM pipeline.pipelines WHERE name IN ('hard_self', 'hard_tmp', 'hard_loop')
   OR (name = 'hard_typed' AND mode <> 'append');

-- refresh_lineage: only the owner (or a member, or a superuser) refreshes a
-- pipeline's lineage; without a name, a role refreshes only its own.
CREATE ROLE hard_other;
SET ROLE hard_other;
SELECT pipeline.refresh_lineage('hard_events');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.refresh_lineage() AS refreshed;
RESET ROLE;
SET ROLE hard_owner;
SELECT pipeline.refresh_lineage() AS refreshed;
RESET ROLE;

-- An error never leaves the session broken ------------------------------------
-- apply() on an existing pipeline that fails inside its subtransaction used
-- to leave the session answering 25P02, and ROLLBACK then ended it (FATAL).
BEGIN;
SELECT * FROM pipeline.apply('{"name": "hard_ids", "source": "hard.ids", "target": "hard.ids_dst",
                               "unique_key": ["id"], "incremental_column": "id", "mode": "bogus"}');
ROLLBACK;
SELECT 1 AS alive;
SELECT * FROM pipeline.apply('{"name": "hard_ids", "source": "hard.ids", "target": "hard.ids_dst",
                               "unique_key": ["id"], "incremental_column": "no_such_column"}');
\echo :LAST_ERROR_SQLSTATE
SELECT 1 AS alive;
BEGIN;
SELECT * FROM pipeline.apply('{"name": "hard_ids", "source": "hard.ids", "target": "hard.ids_dst",
                               "unique_key": ["id"], "incremental_column": "no_such_column"}');
SELECT 1;
ROLLBACK;
SELECT 1 AS alive;
-- and inside a savepoint, the transaction goes on after ROLLBACK TO
BEGIN;
SAVEPOINT s;
SELECT * FROM pipeline.apply('{"name": "hard_ids", "source": "hard.ids", "target": "hard.ids_dst",
                               "unique_key": ["id"], "mode": "bogus"}');
ROLLBACK TO SAVEPOINT s;
SELECT name, mode FROM pipeline.pipelines WHERE name = 'hard_ids';
COMMIT;

-- Clean up.
\c :regress_db
DROP DATABASE pipeline_hardening WITH (FORCE);
DROP ROLE hard_owner, hard_other;
