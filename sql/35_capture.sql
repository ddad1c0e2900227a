-- 35_capture: change capture from tables updated in place (docs/capture.md).
-- pipeline.capture(table) starts writing every INSERT, UPDATE, DELETE and
-- TRUNCATE of a table to its capture table <table>__changes, each change
-- with a change id from a sequence; the feed <table>__changes_feed is what
-- a pipeline reads. create_pipeline(..., capture => true) sets both up, so
-- that a merge pipeline loads the table incrementally, deletes included.
-- Changes every consumer has loaded are purged (pipeline.purge_capture, or
-- the launcher); pipeline.uncapture stops it all.
\set SHOW_CONTEXT never
-- After each refused call, its SQLSTATE.
\set sqlstate '\\echo SQLSTATE :LAST_ERROR_SQLSTATE'
-- It runs in a database of its own, so that its runs and audit entries do
-- not shift the ids and counts the other suites print.
\set regress_db :DBNAME
CREATE DATABASE pipeline_capture;
\c pipeline_capture
SET client_min_messages = notice;
CREATE EXTENSION pg_pipeline;
CREATE SCHEMA shop;
CREATE TABLE shop.orders (id int PRIMARY KEY, customer text NOT NULL, amount numeric(10,2));
INSERT INTO shop.orders VALUES (1, 'ada', 10), (2, 'bob', 20), (3, 'cy', 30);

-- Capturing a table ---------------------------------------------------------------
-- capture returns the capture table; the rows the table holds are copied
-- into it as changes of operation S (a snapshot), in the same transaction.
SELECT pipeline.capture('shop.orders');
SELECT column_name, data_type, is_nullable FROM information_schema.columns
 WHERE table_schema = 'shop' AND table_name = 'orders__changes' ORDER BY ordinal_position;
SELECT column_name, data_type FROM information_schema.columns
 WHERE table_schema = 'shop' AND table_name = 'orders__changes_feed' ORDER BY ordinal_position;
SELECT relation, capture_table, feed, key_columns, started_by, consumers, purged_changes
  FROM pipeline.captures;
-- the triggers, fired for replicas too (ENABLE ALWAYS)
SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'shop.orders'::regclass ORDER BY tgname;

-- Every change, in commit order of its statement: an insert, an update, an
-- update of the key (which keeps the old key), a delete.
INSERT INTO shop.orders VALUES (4, 'dee', 40);
UPDATE shop.orders SET amount = 21 WHERE id = 2;
UPDATE shop.orders SET id = 20 WHERE id = 2;
DELETE FROM shop.orders WHERE id = 1;
SELECT _change_id, _op, _old_id, id, customer, amount FROM shop.orders__changes ORDER BY _change_id;
-- The feed: one row per change, and for the key change a second row, with
-- the same change id, that deletes the old key.
SELECT * FROM shop.orders__changes_feed ORDER BY _change_id, _deleted;

-- A merge pipeline over the capture ---------------------------------------------
-- capture => true on a captured table: the pipeline reads the feed, by
-- change id, with _deleted as its delete column and the primary key as its
-- unique key. Its target is created from the feed.
SELECT pipeline.create_pipeline('orders', 'shop.orders', 'shop.orders_copy', capture => true) > 0 AS created;
SELECT config_of->'source' AS source, config_of->'incremental_column' AS incremental_column,
       config_of->'delete_column' AS delete_column, config_of->'unique_key' AS unique_key,
       config_of->'capture' AS capture
  FROM pipeline.config_of('orders');
SELECT pipeline.run('orders') > 0 AS ran;
SELECT rows_read, rows_inserted, rows_updated, rows_deleted, watermark_to FROM pipeline.runs
 WHERE pipeline_name = 'orders' ORDER BY run_id DESC LIMIT 1;
-- the target is the table (plus the change id of each row's last change)
SELECT id, customer, amount FROM shop.orders EXCEPT ALL SELECT id, customer, amount FROM shop.orders_copy;
SELECT id, customer, amount FROM shop.orders_copy EXCEPT ALL SELECT id, customer, amount FROM shop.orders;
SELECT * FROM shop.orders_copy ORDER BY id;

-- A TRUNCATE is captured as one change per row it removes (operation T),
-- and a key deleted and inserted again comes back.
TRUNCATE shop.orders;
INSERT INTO shop.orders VALUES (3, 'cy again', 33), (5, 'eve', 50);
SELECT _change_id, _op, id, customer FROM shop.orders__changes WHERE _change_id > 6 ORDER BY _change_id;
SELECT pipeline.run('orders') > 0 AS ran;
SELECT rows_read, rows_inserted, rows_updated, rows_deleted, watermark_from, watermark_to FROM pipeline.runs
 WHERE pipeline_name = 'orders' ORDER BY run_id DESC LIMIT 1;
SELECT id, customer, amount FROM shop.orders_copy ORDER BY id;
-- a change rolled back is not captured
BEGIN;
INSERT INTO shop.orders VALUES (6, 'gone', 60);
ROLLBACK;
SELECT count(*) AS changes_of_6 FROM shop.orders__changes WHERE id = 6;

-- Lineage shows the captured table upstream: capture table, feed, target.
SELECT from_relation, to_relation, edge_kind, pipeline FROM pipeline.lineage ORDER BY edge_kind, from_relation;
SELECT from_relation, from_column, to_relation, to_column, edge_kind FROM pipeline.column_lineage
 WHERE from_column = 'customer' OR to_column = 'customer' ORDER BY edge_kind, from_relation;

-- Purging ---------------------------------------------------------------------------
-- purge_capture deletes the changes every consumer has loaded (up to the
-- least watermark), counts them in pipeline.captures and audits them.
INSERT INTO shop.orders VALUES (7, 'not loaded yet', 70);
SELECT pipeline.purge_capture('shop.orders') AS purged;
SELECT _change_id, _op, id FROM shop.orders__changes ORDER BY _change_id;
SELECT purged_changes, purged_through, purges, last_purge_at IS NOT NULL AS purged_at FROM pipeline.captures;
-- nothing more is due until the pipeline has loaded change 12
SELECT pipeline.purge_capture('shop.orders') AS purged;
-- capture_retention keeps loaded changes for that long
SELECT pipeline.alter_pipeline('orders', capture_retention => '1 day') > 0 AS altered;
SELECT pipeline.run('orders') > 0 AS ran;
SELECT pipeline.purge_capture('shop.orders') AS purged;
SELECT pipeline.alter_pipeline('orders', capture_retention => '0') > 0 AS altered;
SELECT pipeline.purge_capture('shop.orders') AS purged;
SELECT count(*) AS changes_left FROM shop.orders__changes;
-- A pipeline registered on a capture that has purged changes starts from a
-- fresh snapshot of the table (the purged changes are gone); until it has
-- run, it holds every change.
SELECT pipeline.create_pipeline('orders_late', 'shop.orders', 'shop.orders_late', capture => true) > 0 AS created;
UPDATE shop.orders SET amount = amount + 1 WHERE id = 5;
SELECT pipeline.run('orders') > 0 AS ran;
SELECT pipeline.purge_capture('shop.orders') AS purged;
SELECT pipeline.run('orders_late') > 0 AS ran;
SELECT id, customer, amount FROM shop.orders EXCEPT ALL SELECT id, customer, amount FROM shop.orders_late;
SELECT id, customer, amount FROM shop.orders_late EXCEPT ALL SELECT id, customer, amount FROM shop.orders;
SELECT pipeline.purge_capture('shop.orders') AS purged;
SELECT pipeline.drop_pipeline('orders_late', drop_target => true);
SELECT action, object_type, object_name, config_before, config_after FROM pipeline.audit_log
 WHERE action IN ('capture', 'uncapture', 'capture_purge', 'capture_snapshot') ORDER BY seq;

-- Schema changes --------------------------------------------------------------------
-- The capture table and the feed follow the table's columns; the pipeline
-- sees the change as schema drift of its source (on_schema_change).
ALTER TABLE shop.orders ADD COLUMN note text;
UPDATE shop.orders SET note = 'new column' WHERE id = 3;
SELECT column_name FROM information_schema.columns
 WHERE table_schema = 'shop' AND table_name = 'orders__changes_feed' ORDER BY ordinal_position;
SELECT pipeline.alter_pipeline('orders', on_schema_change => 'append_new_columns') > 0 AS altered;
SELECT pipeline.run('orders') > 0 AS ran;
SELECT id, customer, amount, note FROM shop.orders_copy ORDER BY id;
ALTER TABLE shop.orders ALTER COLUMN amount TYPE numeric(12,2);
SELECT data_type, numeric_precision FROM information_schema.columns
 WHERE table_schema = 'shop' AND table_name = 'orders__changes' AND column_name = 'amount';

-- Switching capture off and on ----------------------------------------------------
-- off: the pipeline reads the table again, whole (its watermark reset)
SELECT pipeline.alter_pipeline('orders', capture => false) > 0 AS altered;
SELECT config_of->'source' AS source, config_of->'incremental_column' AS incremental_column,
       config_of ? 'capture' AS has_capture
  FROM pipeline.config_of('orders');
-- on again: back to the feed
SELECT pipeline.alter_pipeline('orders', capture => true) > 0 AS altered;
SELECT config_of->'source' AS source FROM pipeline.config_of('orders');
SELECT pipeline.run('orders') > 0 AS ran;
SELECT id, customer, amount, note FROM shop.orders EXCEPT ALL SELECT id, customer, amount, note FROM shop.orders_copy;

-- Errors ------------------------------------------------------------------------------
\set VERBOSITY default
-- what cannot be captured
CREATE VIEW shop.orders_v AS SELECT * FROM shop.orders;
SELECT pipeline.capture('shop.orders_v');
:sqlstate
CREATE TABLE shop.parted (id int PRIMARY KEY) PARTITION BY RANGE (id);
SELECT pipeline.capture('shop.parted');
:sqlstate
CREATE TABLE shop.nokey (id int, v text);
SELECT pipeline.capture('shop.nokey');
:sqlstate
CREATE TABLE shop.deferred (id int PRIMARY KEY DEFERRABLE);
SELECT pipeline.capture('shop.deferred');
:sqlstate
SELECT pipeline.capture('shop.orders');
:sqlstate
SELECT pipeline.capture('shop.orders__changes');
:sqlstate
CREATE TABLE shop.clash (id int PRIMARY KEY, _op text);
SELECT pipeline.capture('shop.clash');
:sqlstate
CREATE TABLE shop.a_table_whose_name_is_long_enough_to_overflow_the_suffix (id int PRIMARY KEY);
SELECT pipeline.capture('shop.a_table_whose_name_is_long_enough_to_overflow_the_suffix');
:sqlstate
CREATE TABLE shop.taken (id int PRIMARY KEY);
CREATE TABLE shop.taken__changes (x int);
SELECT pipeline.capture('shop.taken');
:sqlstate
SELECT pipeline.capture('pipeline.pipeline');
:sqlstate
SELECT pipeline.capture(NULL);
:sqlstate
SELECT pipeline.capture(0);
:sqlstate
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT pipeline.capture('shop.taken');
:sqlstate
ROLLBACK;
-- the capture's objects cannot be dropped from under it, nor a column
-- named like a capture column added
DROP TABLE shop.orders__changes;
:sqlstate
DROP VIEW shop.orders__changes_feed;
:sqlstate
ALTER TABLE shop.orders ADD COLUMN _change_id bigint;
:sqlstate
-- options that capture decides
SELECT pipeline.create_pipeline('bad', 'shop.orders', 'shop.bad', capture => true, incremental_column => 'id');
:sqlstate
SELECT pipeline.create_pipeline('bad', 'shop.orders', 'shop.bad', capture => true, mode => 'full');
:sqlstate
SELECT pipeline.create_pipeline('bad', 'shop.orders', 'shop.bad', capture => true, unique_key => ARRAY['customer']);
:sqlstate
SELECT pipeline.create_pipeline('bad', 'shop.orders', 'shop.bad', ARRAY['id'], capture_retention => '1 day');
:sqlstate
SELECT pipeline.create_pipeline('bad', 'shop.orders', 'shop.bad', capture => true, capture_retention => '-1 day');
:sqlstate
SELECT pipeline.create_pipeline('bad', 'shop.nokey', 'shop.bad', capture => true);
:sqlstate
-- stopping and purging what is not captured, or still read
SELECT pipeline.uncapture('shop.taken');
:sqlstate
SELECT pipeline.purge_capture('shop.taken');
:sqlstate
SELECT pipeline.uncapture('shop.orders');
:sqlstate
-- another role: not the table's owner
CREATE ROLE capture_stranger;
GRANT USAGE ON SCHEMA shop TO capture_stranger;
SET ROLE capture_stranger;
SELECT pipeline.capture('shop.taken');
:sqlstate
SELECT pipeline.uncapture('shop.orders');
:sqlstate
SELECT pipeline.purge_capture('shop.orders');
:sqlstate
RESET ROLE;
SELECT action, object_name, outcome FROM pipeline.audit_log WHERE outcome = 'refused' ORDER BY seq;
-- a role that may read the table may read its changes (the grants are
-- copied when capture starts), and build a pipeline over the capture
CREATE TABLE shop.items (id int PRIMARY KEY, name text);
GRANT SELECT ON shop.items TO capture_stranger;
SELECT pipeline.capture('shop.items');
GRANT CREATE ON SCHEMA shop TO capture_stranger;
SET ROLE capture_stranger;
SELECT pipeline.create_pipeline('items', 'shop.items', 'shop.items_copy', capture => true) > 0 AS created;
RESET ROLE;
INSERT INTO shop.items VALUES (1, 'pen');
SELECT pipeline.run('items') > 0 AS ran;
SELECT id, name FROM shop.items_copy;

-- create_pipeline captures a table that is not captured yet (audited as a
-- capture), and its lineage leads back to the table
CREATE TABLE shop.notes (id int PRIMARY KEY, body text);
SELECT pipeline.create_pipeline('notes', 'shop.notes', 'shop.notes_copy', capture => true) > 0 AS created;
SELECT from_relation, to_relation, edge_kind FROM pipeline.lineage
 WHERE to_relation LIKE 'shop.notes%' ORDER BY edge_kind;
SELECT relation, depth FROM pipeline.upstream('shop.notes_copy') ORDER BY depth;
SELECT action, object_name FROM pipeline.audit_log ORDER BY seq DESC LIMIT 2;
SELECT pipeline.drop_pipeline('notes', drop_target => true);
SELECT pipeline.uncapture('shop.notes');

-- Stopping --------------------------------------------------------------------------
-- uncapture drops the triggers, the feed and the capture table, once no
-- pipeline reads them
SELECT pipeline.drop_pipeline('items', drop_target => true);
SELECT pipeline.uncapture('shop.items');
SELECT to_regclass('shop.items__changes') AS capture_table, to_regclass('shop.items__changes_feed') AS feed,
       (SELECT count(*) FROM pg_trigger WHERE tgrelid = 'shop.items'::regclass) AS triggers;
SELECT relation FROM pipeline.captures ORDER BY 1;
-- a captured table that is dropped: its capture is forgotten (audited),
-- its capture table stays
CREATE TABLE shop.temp_rows (id int PRIMARY KEY);
SELECT pipeline.capture('shop.temp_rows');
DROP TABLE shop.temp_rows;
SELECT relation FROM pipeline.captures ORDER BY 1;
SELECT action, config_before FROM pipeline.audit_log WHERE action = 'uncapture' ORDER BY seq DESC LIMIT 1;
DROP TABLE shop.temp_rows__changes CASCADE;

\c :regress_db
DROP DATABASE pipeline_capture;
DROP ROLE capture_stranger;
