\ir common/preamble.sql
-- test/pgtap/08_views_chain.sql
--
-- A view as source (the view is the transform) and a chain of pipelines
-- through the three stages: raw staging -> (view) -> cleaned table ->
-- (aggregate view, full mode) -> aggregated table, plus an incremental
-- pipeline whose source is the target of another pipeline.
SET TimeZone = 'UTC';

SELECT plan(21);

CREATE FUNCTION watermark_of(text) RETURNS text LANGUAGE sql AS $$
  SELECT watermark FROM pipeline.pipelines WHERE name = $1 $$;

CREATE SCHEMA stg;
CREATE SCHEMA core;
CREATE SCHEMA mart;
CREATE TABLE stg.orders (
    order_id   integer,
    seq        bigint NOT NULL,
    customer   text,
    amount     numeric,
    status     text,
    ordered_at timestamptz,
    deleted    boolean NOT NULL DEFAULT false
);
-- the cleaning transform
CREATE VIEW core.orders_v AS
SELECT order_id, seq, lower(btrim(customer)) AS customer, round(amount, 2) AS amount,
       (ordered_at AT TIME ZONE 'UTC')::date AS day, deleted
  FROM stg.orders
 WHERE status IS DISTINCT FROM 'test';

SELECT ok(pipeline.create_pipeline('clean orders', 'core.orders_v', 'core.orders',
          unique_key => '{order_id}', incremental_column => 'seq',
          delete_column => 'deleted') > 0, 'stage 1: a pipeline from a view');
SELECT columns_are('core', 'orders', ARRAY['order_id', 'seq', 'customer', 'amount', 'day', 'deleted'],
                   'the target has the view''s columns');
SELECT col_type_is('core', 'orders', 'day', 'date', 'with the view''s types');

-- the aggregation transform over the cleaned table
CREATE VIEW mart.daily_v AS
SELECT day, count(*)::bigint AS orders, sum(amount) AS revenue
  FROM core.orders GROUP BY day;
SELECT ok(pipeline.create_pipeline('daily revenue', 'mart.daily_v', 'mart.daily_revenue',
          unique_key => '{day}', mode => 'full') > 0, 'stage 2: a full pipeline from an aggregate view');
-- an incremental pipeline chained on the target of the first one
SELECT ok(pipeline.create_pipeline('orders copy', 'core.orders', 'mart.orders_copy',
          unique_key => '{order_id}', incremental_column => 'seq') > 0,
          'a pipeline whose source is another pipeline''s target');

INSERT INTO stg.orders VALUES
    (1, 1, '  Alice ', 10.005, 'ok',   '2024-01-01 10:00+00', false),
    (2, 2, 'BOB',      20,     'ok',   '2024-01-01 11:00+00', false),
    (3, 3, 'carol',    5,      'test', '2024-01-01 12:00+00', false),
    (4, 4, 'dave',     7.5,    'ok',   '2024-01-02 09:00+00', false);

SELECT pipeline.run('clean orders') AS a1 \gset
SELECT pipeline.run('daily revenue') AS b1 \gset
SELECT pipeline.run('orders copy') AS c1 \gset
SELECT is(run_counts(:a1), 'succeeded read=3 ins=3 upd=0 del=0 unch=0 rej=0', 'stage 1 reads the view''s rows');
SELECT results_eq('SELECT * FROM core.orders ORDER BY order_id',
    $$VALUES (1, 1::bigint, 'alice'::text, 10.01::numeric, '2024-01-01'::date, false),
             (2, 2, 'bob', 20.00, '2024-01-01', false),
             (4, 4, 'dave', 7.50, '2024-01-02', false)$$,
    'stage 1 loads the transformed rows');
SELECT is(watermark_of('clean orders'), '4', 'stage 1 watermark');
SELECT is(run_counts(:b1), 'succeeded read=2 ins=2 upd=0 del=0 unch=0 rej=0', 'stage 2 counts');
SELECT results_eq('SELECT * FROM mart.daily_revenue ORDER BY day',
    $$VALUES ('2024-01-01'::date, 2::bigint, 30.01::numeric), ('2024-01-02', 1, 7.50)$$,
    'stage 2 loads the aggregates');
SELECT is(run_counts(:c1), 'succeeded read=3 ins=3 upd=0 del=0 unch=0 rej=0', 'chained pipeline counts');
SELECT results_eq('SELECT * FROM mart.orders_copy ORDER BY order_id',
                  'SELECT * FROM core.orders ORDER BY order_id',
                  'the chained pipeline copies its upstream target');

INSERT INTO stg.orders VALUES
    (2, 5,  'Bob',  25,    'ok',   '2024-01-01 11:00+00', false),  -- update
    (4, 6,  'dave', 7.5,   'ok',   '2024-01-02 09:00+00', true),   -- delete
    (5, 7,  'Eve',  1.234, 'ok',   '2024-01-03 00:00+00', false),  -- insert
    (6, 8,  'x',    1,     'test', '2024-01-03 00:00+00', false),  -- filtered out by the view
    (7, 9,  'Zed',  3,     'ok',   '2024-01-03 01:00+00', false),
    (7, 10, 'Zed',  4,     'ok',   '2024-01-03 01:00+00', false);  -- duplicate key: latest wins

SELECT pipeline.run('clean orders') AS a2 \gset
SELECT pipeline.run('daily revenue') AS b2 \gset
SELECT pipeline.run('orders copy') AS c2 \gset
SELECT is(run_counts(:a2), 'succeeded read=5 ins=2 upd=1 del=1 unch=0 rej=0', 'stage 1, second run');
SELECT results_eq('SELECT * FROM core.orders ORDER BY order_id',
    $$VALUES (1, 1::bigint, 'alice'::text, 10.01::numeric, '2024-01-01'::date, false),
             (2, 5, 'bob', 25.00, '2024-01-01', false),
             (5, 7, 'eve', 1.23, '2024-01-03', false),
             (7, 10, 'zed', 4.00, '2024-01-03', false)$$,
    'stage 1 contents');
SELECT is(watermark_of('clean orders'), '10', 'stage 1 watermark: the highest value the view shows');
SELECT is(run_counts(:b2), 'succeeded read=2 ins=1 upd=1 del=1 unch=0 rej=0',
          'stage 2: one day changed, one appeared, one vanished');
SELECT results_eq('SELECT * FROM mart.daily_revenue ORDER BY day',
    $$VALUES ('2024-01-01'::date, 2::bigint, 35.01::numeric), ('2024-01-03', 2, 5.23)$$,
    'stage 2 equals the aggregate of stage 1');
SELECT results_eq('SELECT * FROM mart.daily_revenue ORDER BY day',
                  'SELECT * FROM mart.daily_v ORDER BY day',
                  'stage 2 equals its source view');
SELECT is(run_counts(:c2), 'succeeded read=3 ins=2 upd=1 del=0 unch=0 rej=0',
          'the chained pipeline reads the rows its upstream changed');
SELECT results_eq('SELECT * FROM mart.orders_copy WHERE order_id <> 4 ORDER BY order_id',
                  'SELECT * FROM core.orders ORDER BY order_id',
                  'the chained pipeline has every upstream row in its latest version');

-- nothing new anywhere: nothing changes
SELECT pipeline.run('daily revenue') AS b3 \gset
SELECT is(run_counts(:b3), 'succeeded read=2 ins=0 upd=0 del=0 unch=2 rej=0', 'stage 2 rerun: unchanged');

SELECT * FROM finish();
