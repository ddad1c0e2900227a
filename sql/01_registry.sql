-- 01_registry: registering, changing and removing pipelines.
-- Every function of the registry, its happy path, and each of its errors
-- with the SQLSTATE a client can branch on. After each error we show that
-- nothing changed.
\set SHOW_CONTEXT never
SET client_min_messages = notice;

CREATE SCHEMA raw;
CREATE SCHEMA clean;
CREATE TABLE raw.orders (
    order_id    integer,
    customer    text,
    amount      numeric(10,2),
    is_deleted  boolean DEFAULT false,
    seq         bigserial,
    loaded_at   timestamptz DEFAULT clock_timestamp()
);
CREATE INDEX ON raw.orders (seq);

-- create_pipeline: the smallest useful call. The target does not exist, so
-- it is created from the source's columns, with a primary key on the unique
-- key; the index on the incremental column comes with the first load, which
-- builds it after the data.
SELECT pipeline.create_pipeline('orders', 'raw.orders', 'clean.orders',
                                unique_key => ARRAY['order_id'],
                                incremental_column => 'seq') AS id;
\d clean.orders

SELECT id, name, source, target, mode, unique_key, incremental_column,
       delete_column, soft_delete, lookback, batch_rows, active,
       owner = current_user::regrole AS owned_by_me, watermark,
       last_run_id, last_run_status, description, metadata
  FROM pipeline.pipelines;

-- Every option at once, into an existing target. A source without an
-- index on its incremental column gets a notice with the index to create.
CREATE TABLE raw.customers (customer_id int, name text, region text,
                            gone boolean, changed_at timestamp);
CREATE TABLE clean.customers (customer_id int PRIMARY KEY, name text,
                              region text, gone boolean, changed_at timestamp,
                              loaded_by text DEFAULT current_user);
SELECT pipeline.create_pipeline(
    name => 'customers', source => 'raw.customers', target => 'clean.customers',
    unique_key => ARRAY['customer_id'], incremental_column => 'changed_at',
    mode => 'merge', delete_column => 'gone', soft_delete => true,
    partition_column => 'region', lookback => '2 hours', batch_rows => 5000,
    create_target => false, description => 'customer master data',
    metadata => '{"team": "crm", "tier": 1}') AS id;
SELECT name, mode, delete_column, soft_delete, partition_column, lookback,
       batch_rows, description, metadata
  FROM pipeline.pipelines WHERE name = 'customers';

-- Bad input: each is refused with its own SQLSTATE and registers nothing.
SELECT pipeline.create_pipeline(NULL, 'raw.orders', 'clean.x', ARRAY['order_id']);
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.create_pipeline('x', NULL, 'clean.x', ARRAY['order_id']);
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.create_pipeline('x', 'raw.orders', NULL, ARRAY['order_id']);
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.create_pipeline('', 'raw.orders', 'clean.x', ARRAY['order_id']);
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.create_pipeline(repeat('n', 64), 'raw.orders', 'clean.x', ARRAY['order_id']);
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.create_pipeline('orders', 'raw.orders', 'clean.x', ARRAY['order_id']);
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.create_pipeline('x', 'raw.nope', 'clean.x', ARRAY['order_id']);
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.create_pipeline('x', 'nope.orders', 'clean.x', ARRAY['order_id']);
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.create_pipeline('x', 'raw.orders', 'nope.x', ARRAY['order_id']);
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.create_pipeline('x', 'raw.orders', 'clean.x', ARRAY['order_id'], create_target => false);
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.create_pipeline('x', 'raw.orders', 'clean.x', ARRAY['order_id'], mode => 'upsert');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.create_pipeline('x', 'raw.orders', 'clean.x');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.create_pipeline('x', 'raw.orders', 'clean.x', mode => 'full');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.create_pipeline('x', 'raw.orders', 'clean.x', ARRAY['nope']);
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.create_pipeline('x', 'raw.orders', 'clean.x', ARRAY['order_id', 'order_id']);
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.create_pipeline('x', 'raw.orders', 'clean.x', ARRAY['order_id', NULL]);
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.create_pipeline('x', 'raw.orders', 'clean.x', ARRAY['order_id'], incremental_column => 'nope');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.create_pipeline('x', 'raw.orders', 'clean.x', ARRAY['order_id'], incremental_column => 'customer');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.create_pipeline('x', 'raw.orders', 'clean.x', ARRAY['order_id'], delete_column => 'nope');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.create_pipeline('x', 'raw.orders', 'clean.x', ARRAY['order_id'], delete_column => 'customer');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.create_pipeline('x', 'raw.orders', 'clean.x', ARRAY['order_id'], partition_column => 'nope');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.create_pipeline('x', 'raw.orders', 'clean.x', ARRAY['order_id'], soft_delete => true);
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.create_pipeline('x', 'raw.orders', 'clean.x', ARRAY['order_id'], mode => 'append', delete_column => 'is_deleted');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.create_pipeline('x', 'raw.orders', 'clean.x', mode => 'append');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.create_pipeline('x', 'raw.orders', 'clean.x', mode => 'append', incremental_column => 'loaded_at', lookback => '1 hour');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.create_pipeline('x', 'raw.orders', 'clean.x', ARRAY['order_id'], lookback => '1 hour');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.create_pipeline('x', 'raw.orders', 'clean.x', ARRAY['order_id'], incremental_column => 'seq', lookback => '1 hour');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.create_pipeline('x', 'raw.orders', 'clean.x', ARRAY['order_id'], incremental_column => 'loaded_at', lookback => '-1 hour');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.create_pipeline('x', 'raw.orders', 'clean.x', ARRAY['order_id'], incremental_column => 'seq', batch_rows => 0);
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.create_pipeline('x', 'raw.orders', 'clean.x', ARRAY['order_id'], batch_rows => 100);
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.create_pipeline('x', 'raw.orders', 'clean.x', ARRAY['order_id'], mode => 'full', incremental_column => 'seq', batch_rows => 100);
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.create_pipeline('x', 'raw.orders', 'clean.x', ARRAY['order_id'], metadata => '[1, 2]');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.create_pipeline('x', 'raw.orders', 'raw.orders', ARRAY['order_id']);
\echo :LAST_ERROR_SQLSTATE
CREATE VIEW clean.orders_view AS SELECT * FROM clean.orders;
SELECT pipeline.create_pipeline('x', 'raw.orders', 'clean.orders_view', ARRAY['order_id']);
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE clean.narrow (order_id int PRIMARY KEY, amount numeric);
SELECT pipeline.create_pipeline('x', 'raw.orders', 'clean.narrow', ARRAY['order_id']);
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE raw.shapes (id int, area point);
SELECT pipeline.create_pipeline('x', 'raw.shapes', 'clean.shapes', ARRAY['area']);
\echo :LAST_ERROR_SQLSTATE
-- nothing was registered and no target was created by the failed calls
SELECT count(*) AS pipelines FROM pipeline.pipelines;
SELECT to_regclass('clean.x') AS x, to_regclass('clean.shapes') AS shapes;

-- An unqualified target is created in the first schema of search_path.
SET search_path = clean, public;
SELECT pipeline.create_pipeline('orders_copy', 'raw.orders', 'orders_copy', ARRAY['order_id']) > 0 AS created;
RESET search_path;
SELECT target FROM pipeline.pipelines WHERE name = 'orders_copy';

-- alter_pipeline: NULL leaves an option as it is; '' clears a text option.
SELECT pipeline.alter_pipeline('customers', description => 'CRM customers',
                               lookback => '30 minutes', batch_rows => 0,
                               partition_column => '') AS id;
SELECT name, lookback, batch_rows, partition_column, description, metadata
  FROM pipeline.pipelines WHERE name = 'customers';
SELECT pipeline.alter_pipeline('orders_copy', new_name => 'orders copy', mode => 'full') AS id;
SELECT name, mode FROM pipeline.pipelines WHERE id = 3;
-- a new incremental column resets the watermark, with a notice
SELECT pipeline.reset('orders', '41');
SELECT pipeline.alter_pipeline('orders', incremental_column => 'loaded_at') AS id;
SELECT incremental_column, watermark FROM pipeline.pipelines WHERE name = 'orders';
SELECT pipeline.alter_pipeline('orders', incremental_column => 'seq') AS id;
-- a new target that does not exist yet, created on request
SELECT pipeline.alter_pipeline('orders copy', target => 'clean.orders_full', create_target => true) AS id;
SELECT target FROM pipeline.pipelines WHERE name = 'orders copy';

-- alter_pipeline errors; the definition is unchanged after each
SELECT pipeline.alter_pipeline(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.alter_pipeline('nope', description => 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.alter_pipeline('orders', new_name => 'customers');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.alter_pipeline('orders', new_name => '');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.alter_pipeline('orders', mode => 'sideways');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.alter_pipeline('orders', unique_key => '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.alter_pipeline('orders', incremental_column => 'customer');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.alter_pipeline('orders', target => 'clean.nowhere');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.alter_pipeline('orders', batch_rows => -5);
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.alter_pipeline('orders', metadata => '"text"');
\echo :LAST_ERROR_SQLSTATE
SELECT name, source, target, mode, unique_key, incremental_column, batch_rows, metadata
  FROM pipeline.pipelines WHERE name = 'orders';

-- pause and resume
SELECT pipeline.pause('orders');
SELECT name, active FROM pipeline.pipelines WHERE name = 'orders';
SELECT pipeline.pause('orders');   -- pausing twice is harmless
SELECT pipeline.resume('orders');
SELECT name, active FROM pipeline.pipelines WHERE name = 'orders';
SELECT pipeline.pause('nope');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.resume(NULL);
\echo :LAST_ERROR_SQLSTATE

-- reset: a value is parsed as the incremental column's type and stored in
-- canonical form (ISO dates, UTC); NULL makes the next run read everything.
SELECT pipeline.reset('orders', '1000');
SELECT watermark FROM pipeline.pipelines WHERE name = 'orders';
SET TimeZone = 'America/New_York';
SELECT pipeline.reset('customers', '2024-03-01 10:00');
SELECT watermark FROM pipeline.pipelines WHERE name = 'customers';
RESET TimeZone;
SELECT pipeline.reset('orders');
SELECT watermark FROM pipeline.pipelines WHERE name = 'orders';
SELECT pipeline.reset('orders', 'yesterday-ish');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.reset('customers', 'not a time');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.reset('orders copy', '5');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.reset('nope');
\echo :LAST_ERROR_SQLSTATE

-- drop_pipeline: the target stays unless asked; run history stays.
SELECT pipeline.drop_pipeline('orders copy');
SELECT to_regclass('clean.orders_full') IS NOT NULL AS target_kept;
SELECT pipeline.create_pipeline('scratch', 'raw.orders', 'clean.scratch', ARRAY['order_id']) > 0 AS created;
SELECT pipeline.drop_pipeline('scratch', drop_target => true);
SELECT to_regclass('clean.scratch') AS scratch;
-- a target something depends on is not dropped, and neither is the pipeline
SELECT pipeline.create_pipeline('scratch', 'raw.orders', 'clean.scratch', ARRAY['order_id']) > 0 AS created;
CREATE VIEW clean.scratch_view AS SELECT * FROM clean.scratch;
SELECT pipeline.drop_pipeline('scratch', drop_target => true);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS still_there FROM pipeline.pipelines WHERE name = 'scratch';
SELECT pipeline.drop_pipeline('nope');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.drop_pipeline(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT name FROM pipeline.pipelines ORDER BY id;

-- the catalog tables are not writable directly by ordinary roles
CREATE ROLE registry_reader;
SET ROLE registry_reader;
-- (the views are readable, and show it none of the others' pipelines: 05_visibility)
SELECT count(*) = 0 AS reads_views_sees_none FROM pipeline.pipelines;
DELETE FROM pipeline.pipeline;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
DROP ROLE registry_reader;
