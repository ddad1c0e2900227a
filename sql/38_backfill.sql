-- 38_backfill: CALL pipeline.backfill(name, from_value, to_value, batch_rows)
-- re-applies the source rows whose incremental value lies in [from_value,
-- to_value], both ends included: of each key its newest version in the
-- source, never over a newer version in the target, in committed batches
-- (or one per partition), recorded as one run triggered by 'backfill'. The
-- watermark stays where it is. pipeline.backfill_plan counts what it would
-- do, without writing.
\set SHOW_CONTEXT never
-- After each refused call, its SQLSTATE.
\set sqlstate '\\echo SQLSTATE :LAST_ERROR_SQLSTATE'
-- It runs in a database of its own, so that its runs and audit entries do
-- not shift the ids and counts the other suites print.
\set regress_db :DBNAME
CREATE DATABASE pipeline_backfill;
\c pipeline_backfill
SET client_min_messages = notice;
CREATE EXTENSION pg_pipeline;
CREATE SCHEMA bf;

-- A staging log of order versions, several per key, loaded by a merge
-- pipeline with hard deletes; a second pipeline reads its target.
CREATE TABLE bf.orders (id int, status text, amount int, deleted boolean NOT NULL DEFAULT false,
                        v int NOT NULL);
INSERT INTO bf.orders (id, status, amount, deleted, v) VALUES
  (1, 'new', 10, false, 1), (2, 'new', 20, false, 2), (3, 'new', 30, false, 3),
  (1, 'paid', 10, false, 4), (4, 'new', 40, false, 5), (5, 'new', 50, false, 6),
  (3, 'paid', 35, false, 7), (6, 'new', 60, false, 8), (2, 'new', 20, true, 9),
  (7, 'new', 70, false, 10);
SELECT pipeline.create_pipeline('orders', 'bf.orders', 'bf.orders_dst', unique_key => '{id}',
                                incremental_column => 'v', delete_column => 'deleted') > 0 AS created;
SELECT pipeline.create_pipeline('orders_copy', 'bf.orders_dst', 'bf.orders_copy', unique_key => '{id}',
                                incremental_column => 'v') > 0 AS created;
SELECT pipeline.run('orders') > 0 AS ran;
SELECT pipeline.run('orders_copy') > 0 AS ran;
DELETE FROM pipeline.run_queue;
SELECT id, status, amount, v FROM bf.orders_dst ORDER BY id;
SELECT watermark FROM pipeline.pipelines WHERE name = 'orders';

-- The target is damaged: a row lost, a row changed by hand, a row put back
-- to an older version, and a row moved on past its source (a newer version
-- written by someone else).
DELETE FROM bf.orders_dst WHERE id = 3;
UPDATE bf.orders_dst SET amount = 999 WHERE id = 4;
UPDATE bf.orders_dst SET status = 'new', v = 1 WHERE id = 1;
UPDATE bf.orders_dst SET status = 'shipped', v = 20 WHERE id = 6;

-- The dry run of [2, 8]: seven source rows lie in it; keys 2 and 3 have
-- versions there that are not their newest (key 2 was deleted at 9), so
-- they are read and not applied; key 3 comes back, keys 1 and 4 are
-- repaired, key 5 is as it was, and key 6 keeps its newer version.
SELECT kind, rows FROM pipeline.backfill_plan('orders', '2', '8');
CREATE TEMP TABLE planned AS SELECT * FROM pipeline.backfill_plan('orders', '2', '8');
-- plan_vs_run(pipeline): each kind as planned and as the pipeline's last run did it
CREATE FUNCTION bf.plan_vs_run(p text) RETURNS TABLE (kind text, planned bigint, done bigint)
LANGUAGE sql AS $$
  SELECT k.kind, k.rows,
         CASE k.kind WHEN 'read' THEN r.rows_read WHEN 'inserted' THEN r.rows_inserted
                     WHEN 'updated' THEN r.rows_updated WHEN 'deleted' THEN r.rows_deleted
                     WHEN 'unchanged' THEN r.rows_unchanged ELSE r.rows_rejected END
    FROM planned k,
         (SELECT * FROM pipeline.runs WHERE pipeline_name = p ORDER BY run_id DESC LIMIT 1) r
   ORDER BY k.kind $$;
-- ... and nothing was written
SELECT id, status, amount, v FROM bf.orders_dst ORDER BY id;

-- The backfill does what the plan said, in one run of one batch.
CALL pipeline.backfill('orders', '2', '8');
SELECT status, triggered_by, batches, rows_read, rows_inserted, rows_updated, rows_deleted,
       rows_unchanged, rows_rejected, watermark_from, watermark_to
  FROM pipeline.runs WHERE pipeline_name = 'orders' ORDER BY run_id DESC LIMIT 1;
SELECT * FROM bf.plan_vs_run('orders');
SELECT id, status, amount, v FROM bf.orders_dst ORDER BY id;
-- the watermark stays where it was
SELECT watermark FROM pipeline.pipelines WHERE name = 'orders';
-- the pipeline reading the target is queued, by the backfill's run
SELECT pipeline_name, reason, parent_run_id = (SELECT max(run_id) FROM pipeline.runs
                                                WHERE triggered_by = 'backfill') AS by_backfill
  FROM pipeline.queue;
-- the audit log names the range, and the run's start and end
SELECT action, object_type, outcome, config_after - 'run_id' AS asked,
       config_after->>'run_id' = run_id::text AS names_its_run
  FROM pipeline.audit_log WHERE action = 'backfill';
SELECT action, details->>'triggered_by' AS triggered_by, details->>'rows_read' AS rows_read
  FROM pipeline.audit_log
 WHERE run_id = (SELECT max(run_id) FROM pipeline.runs WHERE triggered_by = 'backfill')
   AND action LIKE 'run_%' ORDER BY seq;

-- Again: nothing to do, every key is as its newest version says.
DELETE FROM pipeline.run_queue;
CALL pipeline.backfill('orders', '2', '8');
SELECT batches, rows_read, rows_inserted, rows_updated, rows_deleted, rows_unchanged
  FROM pipeline.runs WHERE pipeline_name = 'orders' ORDER BY run_id DESC LIMIT 1;
SELECT count(*) AS queued FROM pipeline.queue;

-- Both ends are included: a range of one value.
DELETE FROM bf.orders_dst WHERE id = 7;
SELECT kind, rows FROM pipeline.backfill_plan('orders', '10', '10') WHERE rows > 0;
CALL pipeline.backfill('orders', '10', '10');
SELECT id, status, v FROM bf.orders_dst WHERE id = 7;

-- Batches ----------------------------------------------------------------------
-- The whole history in batches of at most 3 source rows: four batches,
-- committed one by one, one run record; a key is written once, by its
-- newest version, in the batch that holds it.
DELETE FROM bf.orders_dst;
INSERT INTO bf.orders_dst (id, status, amount, deleted, v) VALUES (1, 'new', 10, false, 1);
TRUNCATE planned;
INSERT INTO planned SELECT * FROM pipeline.backfill_plan('orders', '1', '10');
CALL pipeline.backfill('orders', '1', '10', 3);
SELECT status, batches, rows_read, rows_inserted, rows_updated, rows_deleted, rows_unchanged,
       watermark_from, watermark_to
  FROM pipeline.runs WHERE pipeline_name = 'orders' ORDER BY run_id DESC LIMIT 1;
SELECT * FROM bf.plan_vs_run('orders');
SELECT id, status, amount, v FROM bf.orders_dst ORDER BY id;
-- the pipeline's batch_rows is the default batch size
SELECT pipeline.alter_pipeline('orders', batch_rows => 4) > 0 AS altered;
CALL pipeline.backfill('orders', '1', '10');
SELECT batches, rows_read, rows_unchanged
  FROM pipeline.runs WHERE pipeline_name = 'orders' ORDER BY run_id DESC LIMIT 1;
-- one value is never split, even when it has more rows than a batch
INSERT INTO bf.orders (id, status, amount, v) VALUES (8, 'new', 80, 11), (9, 'new', 90, 11), (10, 'new', 100, 11);
CALL pipeline.backfill('orders', '9', '11', 1);
SELECT batches, rows_read, rows_inserted, rows_unchanged
  FROM pipeline.runs WHERE pipeline_name = 'orders' ORDER BY run_id DESC LIMIT 1;
-- rows past the watermark are applied too; the watermark does not move,
-- and the next run finds them loaded
SELECT watermark FROM pipeline.pipelines WHERE name = 'orders';
SELECT pipeline.run('orders') > 0 AS ran;
SELECT rows_read, rows_inserted, rows_unchanged, watermark_to
  FROM pipeline.runs WHERE pipeline_name = 'orders' ORDER BY run_id DESC LIMIT 1;

-- Partitions ------------------------------------------------------------------
-- With a partition_column, each batch is one of its values in the range, in
-- order (NULL last), the value a parameter of the statements. A key that
-- moved between partitions is written once, by its newest version: key 1
-- moved from eu to us, key 2 from us to eu where it was deleted.
CREATE TABLE bf.events (id int, region text, val int, deleted boolean NOT NULL DEFAULT false,
                        v int NOT NULL);
INSERT INTO bf.events VALUES
  (1, 'eu', 1, false, 1), (2, 'us', 2, false, 2), (1, 'us', 11, false, 3),
  (3, 'eu', 3, false, 4), (3, 'eu', 3, true, 5), (4, NULL, 4, false, 6),
  (5, 'it''s', 5, false, 7), (2, 'eu', 22, true, 8);
SELECT pipeline.create_pipeline('events', 'bf.events', 'bf.events_dst', unique_key => '{id}',
                                incremental_column => 'v', delete_column => 'deleted',
                                partition_column => 'region') > 0 AS created;
SELECT pipeline.run('events') > 0 AS ran;
SELECT id, region, val, v FROM bf.events_dst ORDER BY id;
TRUNCATE bf.events_dst;
TRUNCATE planned;
INSERT INTO planned SELECT * FROM pipeline.backfill_plan('events', '1', '8');
CALL pipeline.backfill('events', '1', '8', 1);  -- batch_rows does not apply: partitions do
SELECT status, batches, rows_read, rows_inserted, rows_updated, rows_deleted, rows_unchanged
  FROM pipeline.runs WHERE pipeline_name = 'events' ORDER BY run_id DESC LIMIT 1;
SELECT * FROM bf.plan_vs_run('events');
SELECT id, region, val, v FROM bf.events_dst ORDER BY id;
-- a range with two partitions: two batches
DELETE FROM bf.events_dst WHERE id = 1;
CALL pipeline.backfill('events', '2', '4');
SELECT batches, rows_read, rows_inserted, rows_unchanged
  FROM pipeline.runs WHERE pipeline_name = 'events' ORDER BY run_id DESC LIMIT 1;
SELECT id, region, val FROM bf.events_dst WHERE id = 1;
-- a range without rows: no batch
CALL pipeline.backfill('events', '100', '200');
SELECT status, batches, rows_read
  FROM pipeline.runs WHERE pipeline_name = 'events' ORDER BY run_id DESC LIMIT 1;

-- Checks, conversions, masks and erasure work as in a run --------------------
-- Text staging converted into a typed target, a masked column, and a
-- quarantine check: a backfill leaves the target as the runs left it, and
-- a row quarantined again is not kept twice.
CREATE TABLE bf.raw (id text, email text, amount text, v int NOT NULL);
INSERT INTO bf.raw VALUES ('1', 'ann@example.com', '10', 1), ('2', 'bob@example.com', 'ten', 2),
                          ('3', 'cy@example.com', '5000', 3), ('01', 'ann@example.org', '11', 4);
SELECT pipeline.create_pipeline('raw', 'bf.raw', 'bf.raw_dst', unique_key => '{id}',
                                incremental_column => 'v',
                                column_types => '{"id": "int", "amount": "int"}',
                                masks => '{"email": "partial"}') > 0 AS created;
SELECT pipeline.add_check('raw', 'small', 'range', '{"column": "amount", "max": 1000}',
                          'quarantine') > 0 AS added;
SELECT pipeline.run('raw') > 0 AS ran;
CREATE TEMP TABLE raw_after_run AS SELECT * FROM bf.raw_dst;
SELECT * FROM raw_after_run ORDER BY id;
SELECT count(*) AS open_quarantine FROM pipeline.quarantine WHERE pipeline = 'raw' AND status = 'open';
DELETE FROM bf.raw_dst;
CALL pipeline.backfill('raw', '1', '4');
SELECT rows_read, rows_inserted, rows_quarantined
  FROM pipeline.runs WHERE pipeline_name = 'raw' ORDER BY run_id DESC LIMIT 1;
SELECT count(*) AS differing FROM ((TABLE bf.raw_dst EXCEPT TABLE raw_after_run)
                                   UNION ALL (TABLE raw_after_run EXCEPT TABLE bf.raw_dst)) d;
SELECT count(*) AS open_quarantine FROM pipeline.quarantine WHERE pipeline = 'raw' AND status = 'open';

-- The erasure gate: a late row of a forgotten subject is read, skipped and
-- counted, never loaded back (the plan counts it read, not applied).
CREATE TABLE bf.people (id int, email text, v int NOT NULL);
INSERT INTO bf.people VALUES (1, 'ann@example.com', 1), (2, 'eve@example.com', 2), (3, 'joe@example.com', 3);
SELECT pipeline.create_pipeline('people', 'bf.people', 'bf.people_dst', unique_key => '{id}',
                                incremental_column => 'v') > 0 AS created;
SELECT pipeline.run('people') > 0 AS ran;
SELECT pipeline.declare_subject('bf.people', 'email', 'person');
SELECT count(*) > 0 AS erased FROM pipeline.forget('person', 'eve@example.com');
INSERT INTO bf.people VALUES (2, 'eve@example.com', 2);
DELETE FROM bf.people_dst WHERE id = 1;
SELECT kind, rows FROM pipeline.backfill_plan('people', '1', '3') WHERE rows > 0;
CALL pipeline.backfill('people', '1', '3');
SELECT rows_read, rows_inserted, rows_unchanged, rows_forgotten
  FROM pipeline.runs WHERE pipeline_name = 'people' ORDER BY run_id DESC LIMIT 1;
SELECT id, email FROM bf.people_dst ORDER BY id;
-- The gate serves the load statement only: not after a dry run, nor, in
-- the caller's transaction, after a quarantine replay (55000).
SELECT pipeline.add_check('people', 'email_present', 'not_null', '{"columns": ["email"]}',
                          'quarantine') > 0 AS added;
INSERT INTO bf.people VALUES (4, NULL, 4);
SELECT pipeline.run('people') > 0 AS ran;
BEGIN;
SELECT count(*) AS kinds FROM pipeline.backfill_plan('people', '1', '4');
SELECT pipeline._unforgotten(ARRAY['eve@example.com'], NULL);
:sqlstate
ROLLBACK;
UPDATE pipeline.quarantine SET "row" = "row" || '{"email": "max@example.com"}' WHERE pipeline = 'people';
BEGIN;
SELECT pipeline.replay_quarantine('people') > 0 AS replayed;
SELECT pipeline._unforgotten(ARRAY['eve@example.com'], NULL);
:sqlstate
ROLLBACK;

-- Refused calls change nothing ------------------------------------------------
SELECT count(*) AS runs_before FROM pipeline.runs \gset
SELECT count(*) AS audit_before FROM pipeline.audit_log
 WHERE action IN ('backfill', 'run_start', 'run_end', 'run_skipped') AND outcome <> 'refused' \gset
SELECT md5(string_agg(t::text, ',' ORDER BY id)) AS target_before FROM bf.orders_dst t \gset
-- NULL arguments: 22004
CALL pipeline.backfill(NULL, '1', '2');
:sqlstate
CALL pipeline.backfill('orders', NULL, '2');
:sqlstate
SELECT * FROM pipeline.backfill_plan('orders', '1', NULL);
:sqlstate
-- an unknown pipeline: 42704
CALL pipeline.backfill('nope', '1', '2');
:sqlstate
SELECT * FROM pipeline.backfill_plan('nope', '1', '2');
:sqlstate
-- a batch size that is not positive: 22023
CALL pipeline.backfill('orders', '1', '2', 0);
:sqlstate
-- from past to: 22023
CALL pipeline.backfill('orders', '5', '4');
:sqlstate
SELECT * FROM pipeline.backfill_plan('orders', '5', '4');
:sqlstate
-- a pipeline of mode snapshot: 0A000 (its histories would need rebuilding)
CREATE EXTENSION IF NOT EXISTS btree_gist;
SET client_min_messages = warning;
SELECT pipeline.create_pipeline('orders_hist', 'bf.orders', 'bf.orders_hist', unique_key => '{id}',
                                incremental_column => 'v', mode => 'snapshot') > 0 AS created;
RESET client_min_messages;
CALL pipeline.backfill('orders_hist', '1', '4');
:sqlstate
SELECT pipeline.drop_pipeline('orders_hist', drop_target => true);
-- values the incremental column's type does not take: its own SQLSTATE
CALL pipeline.backfill('orders', 'one', '4');
:sqlstate
CALL pipeline.backfill('orders', '1', '99999999999');
:sqlstate
CREATE TABLE bf.clicks (id int, at timestamptz NOT NULL);
SELECT pipeline.create_pipeline('clicks', 'bf.clicks', 'bf.clicks_dst', unique_key => '{id}',
                                incremental_column => 'at') > 0 AS created;
CALL pipeline.backfill('clicks', 'last tuesday', '2026-01-01');
:sqlstate
-- an end at infinity: 22023 (rows there are never loaded); a start at
-- -infinity is a range like any other
CALL pipeline.backfill('clicks', '2026-01-01', 'infinity');
:sqlstate
SELECT kind, rows FROM pipeline.backfill_plan('clicks', '-infinity', '2026-01-01') WHERE kind = 'read';
-- inside a transaction block: 2D000
BEGIN;
CALL pipeline.backfill('orders', '1', '2');
:sqlstate
ROLLBACK;
-- no incremental column, mode full, append without a unique key: 22023
CREATE TABLE bf.customers (id int PRIMARY KEY, name text, v int NOT NULL);
SELECT pipeline.create_pipeline('customers', 'bf.customers', 'bf.customers_dst',
                                unique_key => '{id}') > 0 AS created;
CALL pipeline.backfill('customers', '1', '2');
:sqlstate
SELECT pipeline.create_pipeline('customers_full', 'bf.customers', 'bf.customers_full',
                                unique_key => '{id}', incremental_column => 'v', mode => 'full') > 0 AS created;
CALL pipeline.backfill('customers_full', '1', '2');
:sqlstate
SELECT pipeline.create_pipeline('orders_log', 'bf.orders', 'bf.orders_log', mode => 'append',
                                incremental_column => 'v') > 0 AS created;
CALL pipeline.backfill('orders_log', '1', '2');
:sqlstate
SELECT * FROM pipeline.backfill_plan('orders_log', '1', '2');
:sqlstate
-- a partition column without an ordering: 42883
CREATE TABLE bf.docs (id int, doc json, v int NOT NULL);
SELECT pipeline.create_pipeline('docs', 'bf.docs', 'bf.docs_dst', unique_key => '{id}',
                                incremental_column => 'v', partition_column => 'doc') > 0 AS created;
CALL pipeline.backfill('docs', '1', '2');
:sqlstate
-- a paused pipeline: 55000 (its dry run is allowed)
SELECT pipeline.pause('orders');
CALL pipeline.backfill('orders', '1', '2');
:sqlstate
SELECT kind, rows FROM pipeline.backfill_plan('orders', '1', '2') WHERE kind = 'read';
SELECT pipeline.resume('orders');
-- a REPEATABLE READ transaction: 25000
SET default_transaction_isolation = 'repeatable read';
CALL pipeline.backfill('orders', '1', '2');
:sqlstate
RESET default_transaction_isolation;
-- a run of the pipeline holds its run lock (in another session): 55P03
CREATE EXTENSION dblink;
SELECT dblink_connect('other', format('host=%s port=%s dbname=%s user=%s',
                      split_part(current_setting('unix_socket_directories'), ',', 1),
                      current_setting('port'), current_database(), current_user)) AS connected;
SELECT dblink_exec('other', 'BEGIN') AS began;
SELECT ran FROM dblink('other', $$SELECT pipeline.run('orders') > 0$$) AS t(ran boolean);
CALL pipeline.backfill('orders', '1', '2');
:sqlstate
SELECT dblink_exec('other', 'ROLLBACK') AS rolled_back;
SELECT dblink_disconnect('other');
-- who may not backfill: 42501. An operator may run the pipeline, not
-- backfill it (nor plan a backfill); an admin may.
CREATE ROLE bf_operator IN ROLE pipeline_operator;
CREATE ROLE bf_admin IN ROLE pipeline_admin;
SET ROLE bf_operator;
CALL pipeline.backfill('orders', '1', '2');
:sqlstate
SELECT * FROM pipeline.backfill_plan('orders', '1', '2');
:sqlstate
RESET ROLE;
-- none of them changed anything: no run, no audit entry of a backfill or
-- a run (refusals of privileges are audited, coalesced: docs/audit.md),
-- the target and the watermark as they were
SELECT count(*) - :runs_before AS new_runs FROM pipeline.runs;
SELECT count(*) - :audit_before AS new_audit_entries FROM pipeline.audit_log
 WHERE action IN ('backfill', 'run_start', 'run_end', 'run_skipped') AND outcome <> 'refused';
SELECT md5(string_agg(t::text, ',' ORDER BY id)) = :'target_before' AS target_unchanged FROM bf.orders_dst t;
SELECT watermark FROM pipeline.pipelines WHERE name = 'orders';
SET ROLE bf_admin;
CALL pipeline.backfill('orders', '1', '2');
SELECT kind, rows FROM pipeline.backfill_plan('orders', '1', '2') WHERE kind = 'read';
RESET ROLE;
SELECT triggered_by, rows_read FROM pipeline.runs WHERE pipeline_name = 'orders'
 ORDER BY run_id DESC LIMIT 1;

-- A backfill that fails is recorded as failed, with the batches it
-- committed before; the watermark has not moved.
-- Key 4 is in the first of three batches, key 10 in the last, which fails.
ALTER TABLE bf.orders_dst ADD CONSTRAINT not_ten CHECK (id <> 10) NOT VALID;
DELETE FROM bf.orders_dst WHERE id IN (4, 10);
CALL pipeline.backfill('orders', '1', '11', 5);
:sqlstate
SELECT status, batches, rows_read, rows_inserted, error_sqlstate, watermark_from, watermark_to
  FROM pipeline.runs WHERE pipeline_name = 'orders' ORDER BY run_id DESC LIMIT 1;
SELECT id FROM bf.orders_dst WHERE id IN (4, 10) ORDER BY id;
SELECT watermark FROM pipeline.pipelines WHERE name = 'orders';
ALTER TABLE bf.orders_dst DROP CONSTRAINT not_ten;

-- Clean up.
\c :regress_db
DROP DATABASE pipeline_backfill WITH (FORCE);
DROP ROLE bf_operator, bf_admin;
