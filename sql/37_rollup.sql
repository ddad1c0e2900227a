-- 37_rollup: mode rollup, the aggregated stage kept incrementally. A
-- pipeline in mode rollup reads a detail table and keeps, per (bucket,
-- group_by ...) cell, the measures its rollup declares. Triggers on the
-- source write the cells each change touches to "<target>__dirty" with the
-- change; a run recomputes exactly those cells. A change in a bucket that
-- closed (allowed_lateness behind the high-water time) is late: counted,
-- kept in pipeline.quarantine, not folded in.
\set SHOW_CONTEXT never
-- After each refused call, its SQLSTATE.
\set sqlstate '\\echo SQLSTATE :LAST_ERROR_SQLSTATE'
-- It runs in a database of its own, so that its runs and audit entries do
-- not shift the ids and counts the other suites print.
\set regress_db :DBNAME
CREATE DATABASE pipeline_rollup;
\c pipeline_rollup
SET client_min_messages = notice;
SET TimeZone = 'UTC';
CREATE EXTENSION pg_pipeline;
CREATE SCHEMA core;
CREATE SCHEMA mart;
CREATE TABLE core.orders (id int PRIMARY KEY, ordered_at timestamptz, region text,
                          customer_id int, amount numeric(10,2), note json);
CREATE INDEX ON core.orders (ordered_at);
INSERT INTO core.orders
SELECT g, timestamptz '2024-01-01 00:00+00' + g * interval '5 hours',
       (ARRAY['eu', 'us', 'apac'])[g % 3 + 1], g % 4, g * 10, NULL
  FROM generate_series(1, 24) g;
-- The plain-SQL recompute the target must equal (core.diff, below: the
-- difference both ways).
CREATE FUNCTION core.recompute() RETURNS TABLE (bucket timestamptz, region text, orders bigint,
                                                revenue numeric, customers bigint)
LANGUAGE sql AS $$
  SELECT date_bin('1 day', ordered_at, timestamptz '2000-01-01 00:00+00'), region,
         count(*), sum(amount), count(DISTINCT customer_id)
    FROM core.orders WHERE ordered_at IS NOT NULL GROUP BY 1, 2 $$;
\set rollup '{"time_column": "ordered_at", "bucket": "1 day", "group_by": ["region"], "measures": {"orders": "count(*)", "revenue": "sum(amount)", "customers": "count(DISTINCT customer_id)"}}'

-- Registration -------------------------------------------------------------------
-- The target is created by default: the bucket and the group_by columns
-- are its key (a unique key that holds NULL groups, since region may be
-- NULL), then the measures, of the types the aggregates give.
SELECT pipeline.create_pipeline('daily', 'core.orders', 'mart.daily', mode => 'rollup',
                                rollup => :'rollup', allowed_lateness => '2 days') > 0 AS created;
SELECT attname, format_type(atttypid, atttypmod) AS type, attnotnull
  FROM pg_attribute WHERE attrelid = 'mart.daily'::regclass AND attnum > 0 ORDER BY attnum;
SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'mart.daily'::regclass;
CREATE VIEW core.diff AS
  (SELECT 'missing' AS side, * FROM core.recompute()
   EXCEPT ALL SELECT 'missing', bucket, region, orders, revenue, customers FROM mart.daily)
  UNION ALL
  (SELECT 'extra', bucket, region, orders, revenue, customers FROM mart.daily
   EXCEPT ALL SELECT 'extra', * FROM core.recompute());
-- Where the invalidation comes from: four statement triggers on the
-- source, and the dirty-cells table next to the target.
SELECT tgname, pg_get_triggerdef(oid) LIKE '%FOR EACH STATEMENT EXECUTE FUNCTION pipeline._rollup_capture(''1'')' AS statement_trigger
  FROM pg_trigger WHERE tgrelid = 'core.orders'::regclass ORDER BY tgname;
SELECT attname, format_type(atttypid, atttypmod) AS type
  FROM pg_attribute WHERE attrelid = 'mart.daily__dirty'::regclass AND attnum > 0 ORDER BY attnum;
-- The config holds rollup and allowed_lateness (left out while NULL).
SELECT c->'mode' AS mode, c->'rollup'->'measures' AS measures, c->'allowed_lateness' AS lateness,
       c->'unique_key' AS unique_key
  FROM pipeline.config_of('daily') AS c;

-- The first run -------------------------------------------------------------------
-- With no high-water time yet, the run recomputes every cell; its
-- watermark is the high-water time: the latest ordered_at folded in.
SELECT pipeline.run('daily') > 0 AS ran;
SELECT rows_read, rows_inserted, rows_updated, rows_deleted, rows_unchanged, rows_quarantined,
       watermark_from, watermark_to
  FROM pipeline.runs WHERE pipeline_name = 'daily' ORDER BY run_id DESC LIMIT 1;
SELECT * FROM mart.daily ORDER BY bucket, region;
SELECT * FROM core.diff;
-- Nothing changed: the run is idle, counted on the watermark row.
SELECT pipeline.run('daily') > 0 AS ran;
SELECT count(*) AS runs_recorded FROM pipeline.runs WHERE pipeline_name = 'daily';

-- Changes ------------------------------------------------------------------------
-- An insert, an update that moves a row to another group and bucket, a
-- delete, an update of a measure's column: each writes the cells it
-- touched (the cell a row left too), with how many rows changed there and
-- the latest time that arrived.
INSERT INTO core.orders VALUES (100, '2024-01-05 23:00+00', 'eu', 9, 5, NULL);
UPDATE core.orders SET region = 'us', ordered_at = '2024-01-05 01:00+00' WHERE id = 20;
DELETE FROM core.orders WHERE id = 21;
UPDATE core.orders SET amount = amount + 1 WHERE id = 22;
-- a rolled back change leaves no dirty cell
BEGIN;
INSERT INTO core.orders VALUES (101, '2024-01-05 12:00+00', 'apac', 1, 1, NULL);
ROLLBACK;
SELECT __change, bucket, region, __at, __n, __row FROM mart.daily__dirty ORDER BY bucket, region, __n;
-- The run takes them and recomputes only those cells: the cell a row
-- left is updated (or deleted when empty), a new cell inserted, a cell
-- recomputed to the same values left alone and counted unchanged.
SELECT pipeline.run('daily') > 0 AS ran;
SELECT rows_read, rows_inserted, rows_updated, rows_deleted, rows_unchanged, rows_quarantined,
       watermark_from, watermark_to
  FROM pipeline.runs WHERE pipeline_name = 'daily' ORDER BY run_id DESC LIMIT 1;
SELECT count(*) AS dirty_left FROM mart.daily__dirty;
SELECT * FROM core.diff;
-- An update that changes nothing a measure reads still dirties the cell,
-- which is recomputed unchanged; a row whose cell empties deletes it.
UPDATE core.orders SET note = '{"x": 1}' WHERE id = 23;
DELETE FROM core.orders WHERE id = 100;
SELECT pipeline.run('daily') > 0 AS ran;
SELECT rows_read, rows_inserted, rows_updated, rows_deleted, rows_unchanged, rows_quarantined
  FROM pipeline.runs WHERE pipeline_name = 'daily' ORDER BY run_id DESC LIMIT 1;
SELECT * FROM core.diff;
-- Rows without a time are in no bucket; a NULL group is a cell of its own.
INSERT INTO core.orders VALUES (102, NULL, 'eu', 1, 1000, NULL), (103, '2024-01-05 02:00+00', NULL, 1, 7, NULL);
SELECT pipeline.run('daily') > 0 AS ran;
SELECT * FROM mart.daily WHERE region IS NULL OR revenue >= 1000;
SELECT * FROM core.diff;

-- Late rows ------------------------------------------------------------------------
-- The high-water time is 2024-01-06 00:00; with allowed_lateness 2 days,
-- buckets ending at or before 2024-01-04 00:00 (those of January 1 to 3)
-- are closed. A change there is late: counted, kept in the quarantine
-- with its row (as it arrived, or as it left) and why, and not folded in;
-- it dirties no cell, so a closed cell keeps the value it had. A row that
-- leaves a closed bucket for an open one is late where it left only.
INSERT INTO core.orders VALUES (104, '2024-01-02 10:00+00', 'eu', 3, 50, NULL);
UPDATE core.orders SET ordered_at = '2024-01-05 03:00+00' WHERE id = 2;
DELETE FROM core.orders WHERE id = 3;
SELECT __change, bucket, region, __at, __n, __row ->> 'id' AS id FROM mart.daily__dirty ORDER BY __change, bucket, region;
SELECT pipeline.run('daily') > 0 AS ran;
SELECT rows_read, rows_inserted, rows_updated, rows_deleted, rows_unchanged, rows_quarantined
  FROM pipeline.runs WHERE pipeline_name = 'daily' ORDER BY run_id DESC LIMIT 1;
SELECT key, "row" ->> 'id' AS id, incremental_value, failed_checks, reason, status
  FROM pipeline.quarantine WHERE pipeline = 'daily' ORDER BY quarantine_id;
-- The difference from a plain recompute is exactly the late changes: the
-- closed cells of 2024-01-01 and 2024-01-02 keep their values.
SELECT * FROM core.diff ORDER BY side, bucket, region;
-- A late row cannot be replayed one by one.
SELECT pipeline.replay_quarantine('daily');
:sqlstate
-- A larger allowed_lateness opens the buckets again; a change there
-- recomputes its cell, which then holds the late changes too: they are
-- closed as replayed.
SELECT pipeline.alter_pipeline('daily', allowed_lateness => '10 days') > 0 AS altered;
UPDATE core.orders SET amount = amount WHERE id = 104;
SELECT pipeline.run('daily') > 0 AS ran;
SELECT "row" ->> 'id' AS id, status FROM pipeline.quarantine WHERE pipeline = 'daily' ORDER BY quarantine_id;
SELECT * FROM core.diff ORDER BY side, bucket, region;
-- reset: the next run recomputes every cell, closed or not, and closes
-- the late rows still open.
SELECT pipeline.alter_pipeline('daily', allowed_lateness => '1 day') > 0 AS altered;
INSERT INTO core.orders VALUES (105, '2024-01-01 10:00+00', 'us', 3, 50, NULL);
SELECT pipeline.run('daily') > 0 AS ran;
SELECT count(*) FILTER (WHERE status = 'open') AS open_late FROM pipeline.quarantine WHERE pipeline = 'daily';
SELECT pipeline.reset('daily');
SELECT pipeline.run('daily') > 0 AS ran;
SELECT rows_read, rows_inserted, rows_updated, rows_deleted, rows_unchanged, rows_quarantined, watermark_from
  FROM pipeline.runs WHERE pipeline_name = 'daily' ORDER BY run_id DESC LIMIT 1;
SELECT count(*) FILTER (WHERE status = 'open') AS open_late FROM pipeline.quarantine WHERE pipeline = 'daily';
SELECT * FROM core.diff;

-- TRUNCATE, and a capture that went missing ---------------------------------------
-- A TRUNCATE of the source is recorded too: the next run recomputes every cell.
TRUNCATE core.orders;
INSERT INTO core.orders VALUES (1, '2024-02-01 10:00+00', 'eu', 1, 10, NULL);
SELECT pipeline.run('daily') > 0 AS ran;
SELECT rows_read, rows_inserted, rows_updated, rows_deleted, rows_unchanged FROM pipeline.runs
 WHERE pipeline_name = 'daily' ORDER BY run_id DESC LIMIT 1;
SELECT * FROM core.diff;
-- A dropped trigger or dirty-cells table: changes may go unrecorded, so
-- the next run makes them again and recomputes every cell.
DROP TABLE mart.daily__dirty;
INSERT INTO core.orders VALUES (2, '2024-02-01 11:00+00', 'eu', 2, 20, NULL);
SELECT pipeline.run('daily') > 0 AS ran;
SELECT count(*) AS triggers FROM pg_trigger WHERE tgrelid = 'core.orders'::regclass;
SELECT * FROM core.diff;

-- Who may write the source --------------------------------------------------------
-- Writers of the source need no privilege on the dirty-cells table: the
-- triggers write it as the pipeline owner.
CREATE ROLE rollup_writer;
GRANT USAGE ON SCHEMA core TO rollup_writer;
GRANT INSERT, UPDATE, DELETE, SELECT ON core.orders TO rollup_writer;
SET ROLE rollup_writer;
INSERT INTO core.orders VALUES (3, '2024-02-02 10:00+00', 'us', 3, 30, NULL);
RESET ROLE;
SELECT count(*) AS dirty FROM mart.daily__dirty;
SELECT pipeline.run('daily') > 0 AS ran;
SELECT * FROM core.diff;
-- The trigger function fires only for its pipeline's source.
CREATE TABLE core.other (id int, ordered_at timestamptz, region text);
CREATE TRIGGER forged AFTER INSERT ON core.other REFERENCING NEW TABLE AS pipeline_new
  FOR EACH STATEMENT EXECUTE FUNCTION pipeline._rollup_capture('1');
INSERT INTO core.other VALUES (1, now(), 'eu');
:sqlstate
-- and its statements' functions only inside a rollup's run
SELECT pipeline._rollup_unchanged();
:sqlstate

-- What a run executes, lineage, audit ----------------------------------------------
SELECT line FROM pipeline.explain('daily') AS line WHERE line LIKE '--%';
SELECT strpos(line, 'CROSS JOIN LATERAL') > 0 AS per_cell, strpos(line, 'DELETE FROM mart.daily__dirty') > 0 AS takes_dirty
  FROM pipeline.explain('daily') AS line WHERE line LIKE 'WITH d AS%';
-- The measures' column lineage: sum(amount) derives from amount.
SELECT from_column, to_column, transformation, how FROM pipeline.column_lineage
 WHERE pipeline = 'daily' ORDER BY to_column, from_column;
SELECT action, outcome, details->>'rows_read' AS read, details->>'rows_inserted' AS inserted
  FROM pipeline.audit_log WHERE action = 'run_end'
   AND run_id = (SELECT max(run_id) FROM pipeline.runs WHERE pipeline_name = 'daily');

-- Other time columns and buckets -------------------------------------------------------
-- A date column (buckets of whole days, the bucket a date), a timestamp
-- with buckets of 15 minutes, no group_by at all (one cell per bucket).
CREATE TABLE core.visits (id int PRIMARY KEY, day date NOT NULL, at timestamp NOT NULL, pages int);
CREATE INDEX ON core.visits (day);
CREATE INDEX ON core.visits (at);
INSERT INTO core.visits SELECT g, date '2024-03-01' + g % 10, timestamp '2024-03-01 00:00' + g * interval '7 minutes', g FROM generate_series(1, 40) g;
SELECT pipeline.create_pipeline('weekly', 'core.visits', 'mart.weekly', mode => 'rollup',
  rollup => '{"time_column": "day", "bucket": "7 days", "measures": {"visits": "count(*)", "pages": "sum(pages)", "first": "min(at)"}}') > 0 AS created;
SELECT pipeline.create_pipeline('quarter_hours', 'core.visits', 'mart.quarter_hours', mode => 'rollup',
  rollup => '{"time_column": "at", "bucket": "15 minutes", "measures": {"n": "count(*)", "avg_pages": "round(avg(pages), 2)"}}') > 0 AS created;
SELECT pipeline.run('weekly') > 0 AND pipeline.run('quarter_hours') > 0 AS ran;
UPDATE core.visits SET day = day + 7, at = at + interval '1 hour' WHERE id % 5 = 0;
SELECT pipeline.run('weekly') > 0 AND pipeline.run('quarter_hours') > 0 AS ran;
SELECT * FROM mart.weekly ORDER BY bucket;
(SELECT date_bin('7 days', day::timestamp, timestamp '2000-01-01')::date, count(*), sum(pages), min(at) FROM core.visits GROUP BY 1
 EXCEPT ALL SELECT bucket, visits, pages, first FROM mart.weekly)
UNION ALL
(SELECT bucket, visits, pages, first FROM mart.weekly
 EXCEPT ALL SELECT date_bin('7 days', day::timestamp, timestamp '2000-01-01')::date, count(*), sum(pages), min(at) FROM core.visits GROUP BY 1);
(SELECT date_bin('15 minutes', at, timestamp '2000-01-01'), count(*), round(avg(pages), 2) FROM core.visits GROUP BY 1
 EXCEPT ALL SELECT bucket, n, avg_pages FROM mart.quarter_hours)
UNION ALL
(SELECT bucket, n, avg_pages FROM mart.quarter_hours
 EXCEPT ALL SELECT date_bin('15 minutes', at, timestamp '2000-01-01'), count(*), round(avg(pages), 2) FROM core.visits GROUP BY 1);
-- apply takes rollup and allowed_lateness as keys.
SELECT action FROM pipeline.apply(jsonb_build_object('name', 'weekly', 'source', 'core.visits',
  'target', 'mart.weekly', 'mode', 'rollup', 'allowed_lateness', '30 days',
  'rollup', '{"time_column": "day", "bucket": "7 days", "measures": {"visits": "count(*)", "pages": "sum(pages)", "first": "min(at)"}}'::jsonb));
SELECT allowed_lateness FROM pipeline.pipeline WHERE name = 'weekly';

-- The medallion chain: a merge pipeline keeps core.items from a change log
-- (updated and deleted in place), and a rollup of core.items follows it;
-- the merge's writes fire the rollup's triggers in the merge's run.
CREATE SCHEMA staging;
CREATE TABLE staging.item_changes (change_id bigserial, id int, at timestamptz, kind text,
                                   qty int, deleted boolean NOT NULL DEFAULT false);
INSERT INTO staging.item_changes (id, at, kind, qty)
SELECT g, timestamptz '2024-04-01 00:00+00' + g * interval '3 hours', (ARRAY['x', 'y'])[g % 2 + 1], g
  FROM generate_series(1, 20) g;
SELECT pipeline.create_pipeline('items', 'staging.item_changes', 'core.items', unique_key => '{id}',
                                incremental_column => 'change_id', delete_column => 'deleted') > 0 AS created;
SELECT pipeline.run('items') > 0 AS ran;
SELECT pipeline.create_pipeline('items_daily', 'core.items', 'mart.items_daily', mode => 'rollup',
  rollup => '{"time_column": "at", "bucket": "1 day", "group_by": ["kind"], "measures": {"items": "count(*)", "qty": "sum(qty)"}}') > 0 AS created;
SELECT pipeline.run('items_daily') > 0 AS ran;
-- a change of kind, a move to another day, a delete, a new item
INSERT INTO staging.item_changes (id, at, kind, qty, deleted) VALUES
  (1, '2024-04-01 03:00+00', 'x', 1, false), (2, '2024-04-05 00:00+00', 'x', 2, false),
  (3, NULL, NULL, NULL, true), (21, '2024-04-03 12:00+00', 'x', 21, false);
SELECT pipeline.run('items') > 0 AS ran;
SELECT pipeline.run('items_daily') > 0 AS ran;
SELECT rows_read, rows_inserted, rows_updated, rows_deleted, rows_unchanged FROM pipeline.runs
 WHERE pipeline_name = 'items_daily' ORDER BY run_id DESC LIMIT 1;
(SELECT date_bin('1 day', at, timestamptz '2000-01-01 00:00+00'), kind, count(*), sum(qty) FROM core.items GROUP BY 1, 2
 EXCEPT ALL SELECT bucket, kind, items, qty FROM mart.items_daily)
UNION ALL
(SELECT bucket, kind, items, qty FROM mart.items_daily
 EXCEPT ALL SELECT date_bin('1 day', at, timestamptz '2000-01-01 00:00+00'), kind, count(*), sum(qty) FROM core.items GROUP BY 1, 2);
SELECT depth, relation, pipeline FROM pipeline.downstream('core.items') ORDER BY 1, 2;

-- Errors -------------------------------------------------------------------------------
\set VERBOSITY default
-- The options that go with mode rollup, and those it refuses (22023).
SELECT pipeline.create_pipeline('bad', 'core.orders', 'mart.bad', mode => 'rollup');
:sqlstate
SELECT pipeline.create_pipeline('bad', 'core.orders', 'mart.bad', unique_key => '{id}', rollup => :'rollup');
:sqlstate
SELECT pipeline.create_pipeline('bad', 'core.orders', 'mart.bad', unique_key => '{id}', allowed_lateness => '1 day');
:sqlstate
SELECT pipeline.create_pipeline('bad', 'core.orders', 'mart.bad', unique_key => '{id}', mode => 'rollup', rollup => :'rollup');
:sqlstate
SELECT pipeline.create_pipeline('bad', 'core.orders', 'mart.bad', incremental_column => 'ordered_at', mode => 'rollup', rollup => :'rollup');
:sqlstate
SELECT pipeline.create_pipeline('bad', 'core.orders', 'mart.bad', raw_retention => '1 day', mode => 'rollup', rollup => :'rollup');
:sqlstate
SELECT pipeline.create_pipeline('bad', 'core.orders', 'mart.bad', on_schema_change => 'ignore', mode => 'rollup', rollup => :'rollup');
:sqlstate
SELECT pipeline.create_pipeline('bad', 'core.orders', 'mart.bad', mode => 'rollup', rollup => :'rollup', allowed_lateness => '-1 day');
:sqlstate
-- The rollup object's shape (22023; a repeated name 42701; a bucket that is no interval 22007).
SELECT pipeline.create_pipeline('bad', 'core.orders', 'mart.bad', mode => 'rollup', rollup => '["ordered_at"]');
:sqlstate
SELECT pipeline.create_pipeline('bad', 'core.orders', 'mart.bad', mode => 'rollup',
  rollup => '{"time_column": "ordered_at", "bucket": "1 day", "measures": {"n": "count(*)"}, "where": "x"}');
:sqlstate
SELECT pipeline.create_pipeline('bad', 'core.orders', 'mart.bad', mode => 'rollup',
  rollup => '{"bucket": "1 day", "measures": {"n": "count(*)"}}');
:sqlstate
SELECT pipeline.create_pipeline('bad', 'core.orders', 'mart.bad', mode => 'rollup',
  rollup => '{"time_column": "ordered_at", "bucket": "a day", "measures": {"n": "count(*)"}}');
:sqlstate
SELECT pipeline.create_pipeline('bad', 'core.orders', 'mart.bad', mode => 'rollup',
  rollup => '{"time_column": "ordered_at", "bucket": "-1 hour", "measures": {"n": "count(*)"}}');
:sqlstate
SELECT pipeline.create_pipeline('bad', 'core.orders', 'mart.bad', mode => 'rollup',
  rollup => '{"time_column": "ordered_at", "bucket": "1 month", "measures": {"n": "count(*)"}}');
:sqlstate
SELECT pipeline.create_pipeline('bad', 'core.orders', 'mart.bad', mode => 'rollup',
  rollup => '{"time_column": "ordered_at", "bucket": "1 day", "group_by": "region", "measures": {"n": "count(*)"}}');
:sqlstate
SELECT pipeline.create_pipeline('bad', 'core.orders', 'mart.bad', mode => 'rollup',
  rollup => '{"time_column": "ordered_at", "bucket": "1 day", "measures": {}}');
:sqlstate
SELECT pipeline.create_pipeline('bad', 'core.orders', 'mart.bad', mode => 'rollup',
  rollup => '{"time_column": "ordered_at", "bucket": "1 day", "measures": {"n": 1}}');
:sqlstate
SELECT pipeline.create_pipeline('bad', 'core.orders', 'mart.bad', mode => 'rollup',
  rollup => '{"time_column": "ordered_at", "bucket": "1 day", "group_by": ["region"], "measures": {"region": "count(*)"}}');
:sqlstate
SELECT pipeline.create_pipeline('bad', 'core.orders', 'mart.bad', mode => 'rollup',
  rollup => '{"time_column": "ordered_at", "bucket": "1 day", "measures": {"bucket": "count(*)"}}');
:sqlstate
SELECT pipeline.create_pipeline('bad', 'core.orders', 'mart.bad', mode => 'rollup',
  rollup => '{"time_column": "ordered_at", "bucket": "1 day", "measures": {"__n": "count(*)"}}');
:sqlstate
-- The columns, against the source (42703, 42804; a date cut in hours 22023).
SELECT pipeline.create_pipeline('bad', 'core.orders', 'mart.bad', mode => 'rollup',
  rollup => '{"time_column": "placed_at", "bucket": "1 day", "measures": {"n": "count(*)"}}');
:sqlstate
SELECT pipeline.create_pipeline('bad', 'core.orders', 'mart.bad', mode => 'rollup',
  rollup => '{"time_column": "amount", "bucket": "1 day", "measures": {"n": "count(*)"}}');
:sqlstate
SELECT pipeline.create_pipeline('bad', 'core.visits', 'mart.bad', mode => 'rollup',
  rollup => '{"time_column": "day", "bucket": "6 hours", "measures": {"n": "count(*)"}}');
:sqlstate
SELECT pipeline.create_pipeline('bad', 'core.orders', 'mart.bad', mode => 'rollup',
  rollup => '{"time_column": "ordered_at", "bucket": "1 day", "group_by": ["country"], "measures": {"n": "count(*)"}}');
:sqlstate
SELECT pipeline.create_pipeline('bad', 'core.orders', 'mart.bad', mode => 'rollup',
  rollup => '{"time_column": "ordered_at", "bucket": "1 day", "group_by": ["note"], "measures": {"n": "count(*)"}}');
:sqlstate
-- The measures, parsed and analysed as the owner over the source, with
-- the parser's SQLSTATE; each one aggregate expression, reading nothing
-- but its cell's rows, the same every time.
SELECT pipeline.create_pipeline('bad', 'core.orders', 'mart.bad', mode => 'rollup',
  rollup => '{"time_column": "ordered_at", "bucket": "1 day", "measures": {"n": "sum(amount"}}');
:sqlstate
SELECT pipeline.create_pipeline('bad', 'core.orders', 'mart.bad', mode => 'rollup',
  rollup => '{"time_column": "ordered_at", "bucket": "1 day", "measures": {"n": "sum(price)"}}');
:sqlstate
SELECT pipeline.create_pipeline('bad', 'core.orders', 'mart.bad', mode => 'rollup',
  rollup => '{"time_column": "ordered_at", "bucket": "1 day", "measures": {"n": "total(amount)"}}');
:sqlstate
SELECT pipeline.create_pipeline('bad', 'core.orders', 'mart.bad', mode => 'rollup',
  rollup => '{"time_column": "ordered_at", "bucket": "1 day", "measures": {"n": "amount"}}');
:sqlstate
SELECT pipeline.create_pipeline('bad', 'core.orders', 'mart.bad', mode => 'rollup',
  rollup => '{"time_column": "ordered_at", "bucket": "1 day", "measures": {"n": "1"}}');
:sqlstate
SELECT pipeline.create_pipeline('bad', 'core.orders', 'mart.bad', mode => 'rollup',
  rollup => '{"time_column": "ordered_at", "bucket": "1 day", "measures": {"n": "sum(sum(amount)) OVER ()"}}');
:sqlstate
SELECT pipeline.create_pipeline('bad', 'core.orders', 'mart.bad', mode => 'rollup',
  rollup => '{"time_column": "ordered_at", "bucket": "1 day", "measures": {"n": "sum(amount) + (SELECT count(*) FROM core.visits)"}}');
:sqlstate
SELECT pipeline.create_pipeline('bad', 'core.orders', 'mart.bad', mode => 'rollup',
  rollup => '{"time_column": "ordered_at", "bucket": "1 day", "measures": {"n": "sum(amount * random())"}}');
:sqlstate
SELECT pipeline.create_pipeline('bad', 'core.orders', 'mart.bad', mode => 'rollup',
  rollup => '{"time_column": "ordered_at", "bucket": "1 day", "measures": {"n": "count(*), sum(amount)"}}');
:sqlstate
SELECT pipeline.create_pipeline('bad', 'core.orders', 'mart.bad', mode => 'rollup',
  rollup => '{"time_column": "ordered_at", "bucket": "1 day", "measures": {"n": "count(*)) AS n FROM core.visits --"}}');
:sqlstate
-- The source must be a table (its triggers find the changes); an existing
-- target must have the rollup's columns; the owner needs TRIGGER on the
-- source; "<target>__dirty" must fit in a name.
CREATE VIEW core.orders_view AS SELECT * FROM core.orders;
SELECT pipeline.create_pipeline('bad', 'core.orders_view', 'mart.bad', mode => 'rollup', rollup => :'rollup');
:sqlstate
CREATE TABLE mart.bad (bucket timestamptz, region text, orders bigint, revenue numeric);
SELECT pipeline.create_pipeline('bad', 'core.orders', 'mart.bad', mode => 'rollup', rollup => :'rollup');
:sqlstate
DROP TABLE mart.bad;
CREATE TABLE mart.bad (bucket date, region text, orders bigint, revenue numeric, customers bigint);
SELECT pipeline.create_pipeline('bad', 'core.orders', 'mart.bad', mode => 'rollup', rollup => :'rollup');
:sqlstate
DROP TABLE mart.bad;
SELECT pipeline.create_pipeline('bad', 'core.orders', 'mart.a_target_name_so_long_that_its_dirty_cells_table_cannot_be_named',
                                mode => 'rollup', rollup => :'rollup');
:sqlstate
CREATE ROLE rollup_owner;
GRANT USAGE, CREATE ON SCHEMA mart TO rollup_owner;
GRANT USAGE ON SCHEMA core TO rollup_owner;
GRANT SELECT ON core.orders TO rollup_owner;
SET ROLE rollup_owner;
SELECT pipeline.create_pipeline('bad', 'core.orders', 'mart.bad', mode => 'rollup', rollup => :'rollup');
:sqlstate
RESET ROLE;
-- With TRIGGER granted, a role that does not own the source can register
-- it: the triggers are made as the source's owner.
GRANT TRIGGER ON core.orders TO rollup_owner;
SET ROLE rollup_owner;
SELECT pipeline.create_pipeline('owned', 'core.orders', 'mart.owned', mode => 'rollup', rollup => :'rollup') > 0 AS created;
SELECT pipeline.run('owned') > 0 AS ran;
RESET ROLE;
SELECT relname, pg_get_userbyid(relowner) AS owner FROM pg_class WHERE relname IN ('owned', 'owned__dirty') ORDER BY 1;
-- alter_pipeline cannot turn a pipeline into a rollup or back; row checks
-- do not apply to a rollup (it reads changes, not rows).
SELECT pipeline.alter_pipeline('daily', mode => 'merge');
:sqlstate
SELECT pipeline.create_pipeline('copy', 'core.orders', 'mart.copy', unique_key => '{id}') > 0 AS created;
SELECT pipeline.alter_pipeline('copy', mode => 'rollup', rollup => :'rollup');
:sqlstate
SELECT pipeline.add_check('daily', 'has_region', 'not_null', '{"columns": ["region"]}');
:sqlstate
-- Set checks judge the target after the run.
SELECT pipeline.add_check('daily', 'one_row_per_cell', 'unique', '{"columns": ["bucket", "region"]}') > 0 AS added;
UPDATE core.orders SET amount = 31 WHERE id = 3;
SELECT pipeline.run('daily') > 0 AS ran;
SELECT check_name, outcome, failed_rows FROM pipeline.check_results
 WHERE run_id = (SELECT max(run_id) FROM pipeline.runs WHERE pipeline_name = 'daily');
\set VERBOSITY terse

-- Dropping ---------------------------------------------------------------------------
-- drop_pipeline takes the triggers and the dirty-cells table away.
SELECT pipeline.drop_pipeline('owned', true);
SELECT pipeline.drop_pipeline('daily', false);
SELECT count(*) AS triggers FROM pg_trigger WHERE tgrelid = 'core.orders'::regclass;
SELECT relname FROM pg_class WHERE relname LIKE '%\_\_dirty' ORDER BY 1;
INSERT INTO core.orders VALUES (9, '2024-02-03 10:00+00', 'us', 3, 30, NULL);

-- Clean up.
\c :regress_db
DROP DATABASE pipeline_rollup WITH (FORCE);
DROP ROLE rollup_writer, rollup_owner;
