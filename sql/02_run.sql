-- 02_run: running pipelines. pipeline.run in every mode, with exact row
-- counts, de-duplication, deletes, soft deletes, NULLs, views as sources,
-- what a run executes (pipeline.explain), and how failures are recorded.
\set SHOW_CONTEXT never
CREATE SCHEMA stage;
CREATE SCHEMA core;

-- A staging table fed by loaders: ids from a sequence, repeated keys,
-- and a flag for deleted rows.
CREATE TABLE stage.orders (
    id          bigserial,
    order_id    int,
    customer    text,
    amount      numeric(10,2),
    deleted     boolean NOT NULL DEFAULT false
);
CREATE INDEX ON stage.orders (id);
INSERT INTO stage.orders (order_id, customer, amount) VALUES
    (1, 'ada', 10), (2, 'bob', 20), (3, 'cy', 30),
    (2, 'bob', 25),             -- a later version of order 2
    (4, NULL, 40);              -- NULL in a non-key column
SELECT pipeline.create_pipeline('shop_orders', 'stage.orders', 'core.orders',
                                unique_key => ARRAY['order_id'],
                                incremental_column => 'id',
                                delete_column => 'deleted') AS id;

-- What the first run will execute: the high-water mark query, then, the
-- target being empty, one INSERT of what the MERGE would load (an initial
-- load), and the index on the incremental column after the data.
\pset format unaligned
\pset tuples_only on
SELECT * FROM pipeline.explain('shop_orders');
\pset format aligned
\pset tuples_only off

-- The first run reads 5 rows, keeps the latest version of each key.
SELECT pipeline.run('shop_orders') AS run_id;
SELECT order_id, customer, amount, deleted FROM core.orders ORDER BY order_id;
SELECT run_id, status, rows_read, rows_inserted, rows_updated, rows_deleted,
       rows_unchanged, rows_rejected, batches, watermark_from, watermark_to,
       triggered_by
  FROM pipeline.runs ORDER BY run_id;

-- Nothing new: the run reads nothing and changes nothing. It is not written
-- to the run history nor to the audit log: its pipeline counts it (idle_runs)
-- and keeps the id it returned and when it finished, which pipeline.status
-- shows as its latest run.
SELECT count(*) AS audit_entries FROM pipeline.audit_log \gset
SELECT pipeline.run('shop_orders') AS idle_run_id \gset
SELECT run_id, status, rows_read, rows_inserted, watermark_from, watermark_to
  FROM pipeline.runs ORDER BY run_id DESC LIMIT 1;
SELECT count(*) AS idle_records FROM pipeline.runs WHERE run_id = :idle_run_id;
SELECT last_run_id = :idle_run_id AS latest_is_idle, last_run_status, idle_runs,
       last_idle_at = last_run_finished_at AS idle_at, last_success_at = last_idle_at AS success_at,
       consecutive_failures
  FROM pipeline.status WHERE name = 'shop_orders';
SELECT count(*) - :audit_entries AS new_audit_entries FROM pipeline.audit_log;

-- New, changed, unchanged, deleted and NULL-key rows in one window:
-- order 1 unchanged, order 3 changed, order 4's NULL becomes a value,
-- order 2 deleted, order 5 new, and a row without a key is rejected.
INSERT INTO stage.orders (order_id, customer, amount, deleted) VALUES
    (1, 'ada', 10, false), (3, 'cy', 31, false), (4, 'dee', 40, false),
    (2, 'bob', 25, true), (5, 'eve', 50, false), (NULL, 'nobody', 1, false);
SELECT xmin AS order1_xmin FROM core.orders WHERE order_id = 1 \gset
SELECT pipeline.run('shop_orders') AS run_id;
SELECT order_id, customer, amount FROM core.orders ORDER BY order_id;
SELECT run_id, rows_read, rows_inserted, rows_updated, rows_deleted,
       rows_unchanged, rows_rejected, watermark_to
  FROM pipeline.runs ORDER BY run_id DESC LIMIT 1;
-- the unchanged row was not rewritten
SELECT xmin = :'order1_xmin' AS order1_untouched FROM core.orders WHERE order_id = 1;

-- A value becoming NULL is a change; a delete of a key the target never
-- had is nothing to do.
INSERT INTO stage.orders (order_id, customer, amount, deleted) VALUES
    (4, NULL, 40, false), (99, 'ghost', 0, true);
SELECT pipeline.run('shop_orders') AS run_id;
SELECT run_id, rows_read, rows_inserted, rows_updated, rows_deleted, rows_unchanged
  FROM pipeline.runs ORDER BY run_id DESC LIMIT 1;
SELECT order_id, customer FROM core.orders WHERE order_id IN (4, 99);

-- Ties: two versions of a key with the same incremental value. A row
-- flagged deleted wins; otherwise the greater values win, column by column.
CREATE TABLE stage.ties (k int, v text, ts int, gone boolean);
INSERT INTO stage.ties VALUES (1, 'a', 5, false), (1, 'b', 5, false),
                              (2, 'z', 5, false), (2, 'y', 5, true),
                              (3, NULL, 5, false), (3, 'x', 5, false);
SELECT pipeline.create_pipeline('ties', 'stage.ties', 'core.ties',
                                unique_key => ARRAY['k'], incremental_column => 'ts',
                                delete_column => 'gone') > 0 AS created;
SELECT pipeline.run('ties') > 0 AS ran;
SELECT * FROM core.ties ORDER BY k;

-- Soft deletes keep the row and set the flag; they count as deletes.
CREATE TABLE stage.members (member_id int PRIMARY KEY, name text, removed boolean, v int);
INSERT INTO stage.members VALUES (1, 'ann', false, 1), (2, 'ben', false, 1);
CREATE INDEX ON stage.members (v);
SELECT pipeline.create_pipeline('members', 'stage.members', 'core.members',
                                unique_key => ARRAY['member_id'], incremental_column => 'v',
                                delete_column => 'removed', soft_delete => true) > 0 AS created;
SELECT pipeline.run('members') > 0 AS ran;
UPDATE stage.members SET removed = true, v = 2 WHERE member_id = 2;
SELECT pipeline.run('members') > 0 AS ran;
SELECT * FROM core.members ORDER BY member_id;
SELECT rows_read, rows_inserted, rows_updated, rows_deleted, rows_unchanged
  FROM pipeline.runs WHERE pipeline_name = 'members' ORDER BY run_id DESC LIMIT 1;
-- the source's primary key makes de-duplication unnecessary: no DISTINCT ON
SELECT statement LIKE '%DISTINCT ON%' AS dedups
  FROM pipeline.explain('members') s(statement) WHERE statement LIKE 'MERGE%';

-- append with a key: new keys are inserted, known keys are skipped.
CREATE TABLE stage.events (event_id int, kind text, at timestamptz);
INSERT INTO stage.events VALUES (1, 'signup', '2024-01-01 10:00+00'),
                                (2, 'login',  '2024-01-01 11:00+00');
SELECT pipeline.create_pipeline('events', 'stage.events', 'core.events',
                                unique_key => ARRAY['event_id'], incremental_column => 'at',
                                mode => 'append', lookback => '1 day') > 0 AS created;
SELECT pipeline.run('events') > 0 AS ran;
-- a late row inside the lookback, and a changed known key (not applied)
INSERT INTO stage.events VALUES (3, 'late', '2024-01-01 09:00+00'),
                                (1, 'changed', '2024-01-01 12:00+00');
SELECT pipeline.run('events') > 0 AS ran;
SELECT * FROM core.events ORDER BY event_id;
SELECT rows_read, rows_inserted, rows_unchanged, watermark_from, watermark_to
  FROM pipeline.runs WHERE pipeline_name = 'events' ORDER BY run_id;

-- append without a key: a log, every new row appended once.
CREATE TABLE stage.clicks (at date, page text);
INSERT INTO stage.clicks VALUES ('2024-02-01', '/'), ('2024-02-01', '/'), ('2024-02-02', '/a');
SELECT pipeline.create_pipeline('clicks', 'stage.clicks', 'core.clicks',
                                incremental_column => 'at', mode => 'append') > 0 AS created;
SELECT pipeline.run('clicks') > 0 AS ran;
INSERT INTO stage.clicks VALUES ('2024-02-03', '/b');
SELECT pipeline.run('clicks') > 0 AS ran;
SELECT pipeline.run('clicks') > 0 AS ran;
SELECT at, page, count(*) FROM core.clicks GROUP BY 1, 2 ORDER BY 1, 2;

-- full: the target becomes equal to the source, vanished keys deleted.
CREATE TABLE stage.products (sku text PRIMARY KEY, price numeric);
INSERT INTO stage.products VALUES ('a', 1), ('b', 2), ('c', 3);
SELECT pipeline.create_pipeline('products', 'stage.products', 'core.products',
                                unique_key => ARRAY['sku'], mode => 'full') > 0 AS created;
SELECT pipeline.run('products') > 0 AS ran;
DELETE FROM stage.products WHERE sku = 'b';
UPDATE stage.products SET price = 30 WHERE sku = 'c';
INSERT INTO stage.products VALUES ('d', 4);
SELECT pipeline.run('products') > 0 AS ran;
SELECT * FROM core.products ORDER BY sku;
SELECT rows_read, rows_inserted, rows_updated, rows_deleted, rows_unchanged
  FROM pipeline.runs WHERE pipeline_name = 'products' ORDER BY run_id DESC LIMIT 1;
\pset format unaligned
\pset tuples_only on
SELECT * FROM pipeline.explain('products');
\pset format aligned
\pset tuples_only off

-- A view is how a transform is written: the cleaned stage reads a view.
CREATE VIEW stage.big_orders AS
    SELECT order_id, upper(customer) AS customer, amount, id
      FROM core.orders WHERE amount >= 30;
SELECT pipeline.create_pipeline('big_orders', 'stage.big_orders', 'core.big_orders',
                                unique_key => ARRAY['order_id'], mode => 'full') > 0 AS created;
SELECT pipeline.run('big_orders') > 0 AS ran;
SELECT * FROM core.big_orders ORDER BY order_id;

-- Errors of pipeline.run, each with its SQLSTATE.
SELECT pipeline.run(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.run('nope');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.pause('shop_orders');
SELECT pipeline.run('shop_orders');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.resume('shop_orders');
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT pipeline.run('shop_orders');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SELECT pipeline.explain('nope');
\echo :LAST_ERROR_SQLSTATE

-- A failing load: the target refuses a row. Target and watermark stay as
-- they were, the failure is recorded, and the caller gets the error.
ALTER TABLE core.orders ADD CONSTRAINT amount_positive CHECK (amount > 0);
INSERT INTO stage.orders (order_id, customer, amount) VALUES (6, 'fay', 60), (7, 'gus', -1);
SELECT count(*) AS rows_before FROM core.orders;
SELECT pipeline.run('shop_orders');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS rows_after FROM core.orders;
SELECT watermark FROM pipeline.pipelines WHERE name = 'shop_orders';
SELECT status, rows_inserted, error_sqlstate, error_message, watermark_from, watermark_to
  FROM pipeline.runs WHERE pipeline_name = 'shop_orders' ORDER BY run_id DESC LIMIT 1;
-- the record of the failure survives the rollback of the caller's transaction
BEGIN;
SELECT pipeline.run('shop_orders');
ROLLBACK;
SELECT status, error_sqlstate FROM pipeline.runs
 WHERE pipeline_name = 'shop_orders' ORDER BY run_id DESC LIMIT 2;
SELECT last_run_status FROM pipeline.pipelines WHERE name = 'shop_orders';
-- fix the data, and the next run loads the window the failed runs did not
UPDATE stage.orders SET amount = 70 WHERE order_id = 7;
SELECT pipeline.run('shop_orders') > 0 AS ran;
SELECT order_id, amount FROM core.orders WHERE order_id IN (6, 7) ORDER BY 1;

-- A source that has gone fails the run with 42P01, recorded.
CREATE TABLE stage.temp_src (k int PRIMARY KEY, v int);
SELECT pipeline.create_pipeline('temp', 'stage.temp_src', 'core.temp',
                                unique_key => ARRAY['k']) > 0 AS created;
DROP TABLE stage.temp_src;
SELECT pipeline.run('temp');
\echo :LAST_ERROR_SQLSTATE
SELECT status, error_sqlstate FROM pipeline.runs WHERE pipeline_name = 'temp';
-- ... and a target that lost a column, 42703.
CREATE TABLE stage.temp_src (k int PRIMARY KEY, v int);
ALTER TABLE core.temp DROP COLUMN v;
SELECT pipeline.run('temp');
\echo :LAST_ERROR_SQLSTATE

-- Running the same pipeline twice in one transaction sees its own watermark.
INSERT INTO stage.orders (order_id, customer, amount) VALUES (8, 'hal', 80);
BEGIN;
SELECT pipeline.run('shop_orders') > 0 AS ran;
SELECT pipeline.run('shop_orders') > 0 AS ran;
COMMIT;
-- the first loaded the new row; the second found nothing new (an idle run,
-- counted, not recorded)
SELECT rows_read, rows_inserted FROM pipeline.runs
 WHERE pipeline_name = 'shop_orders' ORDER BY run_id DESC LIMIT 1;
SELECT s.last_run_id > max(r.run_id) AS latest_is_idle
  FROM pipeline.status s JOIN pipeline.runs r ON r.pipeline_id = s.id
 WHERE s.name = 'shop_orders' GROUP BY s.last_run_id;
