-- 33_typed_loads: text staging into a typed target. A staging table of
-- text columns (a CSV drop, a web feed) loads into a target whose columns
-- have real types: an existing target's, or the types column_types gives a
-- target the pipeline creates. Each value is converted once, at the
-- boundary, with the target type's input function; a value that does not
-- convert sends its row to pipeline.quarantine with a reason naming the
-- column, the value and the error (on_conversion_error => 'quarantine',
-- the default), or fails the run (on_conversion_error => 'error').
\set SHOW_CONTEXT never
\set sqlstate '\\echo SQLSTATE :LAST_ERROR_SQLSTATE'
\set regress_db :DBNAME
CREATE DATABASE pipeline_typed;
\c pipeline_typed
SET client_min_messages = notice;
CREATE EXTENSION pg_pipeline;
CREATE SCHEMA raw;
CREATE SCHEMA clean;

-- The staging table holds text, as the files were; loaded_at is the
-- incremental column, typed by the loader that appends to staging.
CREATE TABLE raw.orders (order_id text, amount text, ordered_at text, paid text,
                         status varchar(20), loaded_at bigint NOT NULL);
CREATE INDEX ON raw.orders (loaded_at);

-- A target created from column_types: the named columns get those types,
-- the others keep the source's.
SELECT pipeline.create_pipeline('orders', 'raw.orders', 'clean.orders', ARRAY['order_id'],
                                incremental_column => 'loaded_at',
                                column_types => '{"order_id": "bigint", "amount": "numeric(12,2)",
                                                  "ordered_at": "timestamptz", "paid": "boolean",
                                                  "status": "varchar(8)"}') > 0 AS created;
SELECT column_name, data_type, character_maximum_length AS len, numeric_precision AS prec, numeric_scale AS scale
  FROM information_schema.columns WHERE table_schema = 'clean' AND table_name = 'orders'
 ORDER BY ordinal_position;

-- Good values load converted, with the cost of a cast: numeric(12,2)
-- rounds as its input function does, and keys compare as numbers.
INSERT INTO raw.orders VALUES
  ('1', '10.5', '2026-01-01 10:00+00', 'true', 'new', 1),
  ('2', '7.125', '2026-01-02 11:00+00', 'f', 'paid', 2),
  ('03', '1e2', '2026-01-03 12:00+00', 'yes', 'paid', 3);
SELECT pipeline.run('orders') > 0 AS ran;
SELECT * FROM clean.orders ORDER BY order_id;
SELECT rows_read, rows_inserted, rows_quarantined FROM pipeline.runs ORDER BY run_id DESC LIMIT 1;

-- Trash: an unparsable number, an impossible date, a word for a boolean,
-- a status longer than varchar(8), and a key that is not a number. Each
-- such row goes to quarantine, one row whatever the number of bad values,
-- with the reason; the good rows of the same window load, and the
-- watermark moves past all of them.
INSERT INTO raw.orders VALUES
  ('4', '12,50', '2026-01-04 09:00+00', 'true', 'new', 4),
  ('5', '3.00', '2026-02-30 09:00+00', 'maybe', 'new', 5),
  ('6', '4.00', '2026-01-06 09:00+00', 'true', 'refunded_late', 6),
  ('seven', '5.00', '2026-01-07 09:00+00', 'true', 'new', 7),
  ('8', '8.00', '2026-01-08 09:00+00', 'false', 'new', 8);
SELECT pipeline.run('orders') > 0 AS ran;
SELECT order_id, amount FROM clean.orders ORDER BY order_id;
SELECT rows_read, rows_inserted, rows_quarantined, status FROM pipeline.runs ORDER BY run_id DESC LIMIT 1;
SELECT key, incremental_value, failed_checks, reason, status
  FROM pipeline.quarantine ORDER BY quarantine_id;
SELECT watermark FROM pipeline.pipelines WHERE name = 'orders';

-- Fix the rows where they are kept, and replay: those that convert now
-- load, exactly once; the others stay open with their reason.
UPDATE pipeline.quarantine SET "row" = jsonb_set("row", '{amount}', '"12.50"')
 WHERE key = '{"order_id": "4"}';
UPDATE pipeline.quarantine SET "row" = jsonb_set(jsonb_set("row", '{ordered_at}', '"2026-02-28 09:00+00"'),
                                                 '{paid}', '"no"')
 WHERE key = '{"order_id": "5"}';
SELECT pipeline.replay_quarantine('orders') > 0 AS replayed;
SELECT order_id, amount, ordered_at, paid FROM clean.orders WHERE order_id IN (4, 5) ORDER BY order_id;
SELECT key, status, reason IS NOT NULL AS has_reason FROM pipeline.quarantine ORDER BY quarantine_id;
SELECT pipeline.discard_quarantine('orders') AS discarded;

-- Every input row is in exactly one place: loaded, or quarantined.
SELECT (SELECT count(*) FROM raw.orders) AS staged,
       (SELECT count(*) FROM clean.orders) AS loaded,
       (SELECT count(*) FROM pipeline.quarantine WHERE status = 'discarded') AS discarded;

-- Two spellings of one key ('9' and '09') are one key once converted: the
-- newest loads, the other counts as de-duplicated.
INSERT INTO raw.orders VALUES ('9', '1', NULL, NULL, NULL, 9), ('09', '2', NULL, NULL, NULL, 10);
SELECT pipeline.run('orders') > 0 AS ran;
SELECT order_id, amount FROM clean.orders WHERE order_id = 9;

-- Row checks see the converted values: a range check compares numbers.
SELECT pipeline.add_check('orders', 'positive', 'range', '{"column": "amount", "min": 0}', 'quarantine') > 0 AS added;
INSERT INTO raw.orders VALUES ('10', '-5', NULL, NULL, NULL, 11), ('11', '100', NULL, NULL, NULL, 12),
                              ('12', 'ten', NULL, NULL, NULL, 13);
SELECT pipeline.run('orders') > 0 AS ran;
SELECT key, failed_checks, reason FROM pipeline.quarantine WHERE status = 'open' ORDER BY quarantine_id;
SELECT order_id, amount FROM clean.orders WHERE order_id >= 10 ORDER BY order_id;
SELECT pipeline.drop_check('orders', 'positive');

-- on_conversion_error => 'error': a value that does not convert fails the
-- run with the input function's own error, and nothing loads.
SELECT pipeline.alter_pipeline('orders', on_conversion_error => 'error') > 0 AS altered;
INSERT INTO raw.orders VALUES ('13', 'thirteen', NULL, NULL, NULL, 14), ('14', '14', NULL, NULL, NULL, 15);
SELECT pipeline.run('orders');
:sqlstate
SELECT count(*) AS loaded_13_14 FROM clean.orders WHERE order_id IN (13, 14);
SELECT status, error_sqlstate FROM pipeline.runs ORDER BY run_id DESC LIMIT 1;
SELECT pipeline.alter_pipeline('orders', on_conversion_error => 'quarantine') > 0 AS altered;
SELECT pipeline.run('orders') > 0 AS ran;
SELECT count(*) AS loaded_14 FROM clean.orders WHERE order_id = 14;

-- An existing target keeps its own types: column_types must agree with
-- them (42804), and name columns of the source (42703).
CREATE TABLE raw.events (id text, n text, loaded_at bigint);
CREATE TABLE clean.events (id int PRIMARY KEY, n int, loaded_at bigint);
SELECT pipeline.create_pipeline('events', 'raw.events', 'clean.events', ARRAY['id'],
                                incremental_column => 'loaded_at', column_types => '{"n": "bigint"}');
:sqlstate
SELECT pipeline.create_pipeline('events', 'raw.events', 'clean.events', ARRAY['id'],
                                incremental_column => 'loaded_at', column_types => '{"m": "int"}');
:sqlstate
SELECT pipeline.create_pipeline('events', 'raw.events', 'clean.events', ARRAY['id'],
                                incremental_column => 'loaded_at', masks => '{"n": "null"}',
                                column_types => '{"n": "int"}');
:sqlstate
-- Without column_types, an existing typed target is converted into all the same.
SELECT pipeline.create_pipeline('events', 'raw.events', 'clean.events', ARRAY['id'],
                                incremental_column => 'loaded_at') > 0 AS created;
INSERT INTO raw.events VALUES ('1', '10', 1), ('2', 'x', 2), ('3', '99999999999', 3);
SELECT pipeline.run('events') > 0 AS ran;
SELECT * FROM clean.events ORDER BY id;
SELECT key, reason FROM pipeline.quarantine WHERE pipeline = 'events' ORDER BY quarantine_id;

-- A pipeline that holds personal data keeps values out of the reasons
-- (the row itself is kept, under the same row-level rules as the data).
SELECT pipeline.classify('raw.events', 'n', 'sensitive');
INSERT INTO raw.events VALUES ('4', 'secret-42', 4);
SELECT pipeline.run('events') > 0 AS ran;
SELECT key, "row"->>'n' AS kept, reason FROM pipeline.quarantine WHERE pipeline = 'events'
 ORDER BY quarantine_id DESC LIMIT 1;

-- The gate is the load statement's only: called directly, it refuses.
SELECT pipeline._convert_row('{}', NULL, NULL, NULL, ARRAY['1']);
:sqlstate

\c :regress_db
DROP DATABASE pipeline_typed;
