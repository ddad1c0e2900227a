-- test/openlineage/events.sql: a raw -> cleaned -> aggregated chain with a
-- succeeded, a nothing-new, a batched and a failed run; prints one
-- OpenLineage event per line (compact JSON).
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_pipeline;
CREATE SCHEMA ol_raw; CREATE SCHEMA ol_core; CREATE SCHEMA ol_mart;
CREATE TABLE ol_raw.orders (order_id int, customer_id int, amount numeric(10,2), status text,
                            day date, seq bigserial);
CREATE INDEX ON ol_raw.orders (seq);
CREATE TABLE ol_raw.customers (customer_id int PRIMARY KEY, "Region Name" text);
CREATE VIEW ol_core.orders_v AS
SELECT o.order_id, c."Region Name" AS region, o.amount * 2 AS amount2,
       CASE WHEN o.status = 'x' THEN 'cancelled' ELSE o.status END AS status,
       10 / (CASE WHEN o.status = 'boom' THEN 0 ELSE 1 END) AS ten, o.day, o.seq
  FROM ol_raw.orders o JOIN ol_raw.customers c USING (customer_id);
SELECT pipeline.create_pipeline('ol_orders', 'ol_core.orders_v', 'ol_core.orders',
                                unique_key => ARRAY['order_id'], incremental_column => 'seq',
                                batch_rows => 2, description => 'orders, cleaned',
                                metadata => '{"team": "sales", "tier": 1}');
COMMENT ON TABLE ol_raw.orders IS 'raw orders';
COMMENT ON COLUMN ol_raw.orders.amount IS 'in EUR';
SELECT pipeline.classify('ol_raw.customers', 'Region Name', 'pii.address');
CREATE VIEW ol_mart.daily_v AS
SELECT day, region, sum(amount2)::numeric(12,2) AS revenue, count(*) AS n, 'web'::text AS channel
  FROM ol_core.orders
 WHERE order_id IS NOT NULL GROUP BY day, region;
SELECT pipeline.create_pipeline('ol daily "revenue"', 'ol_mart.daily_v', 'ol_mart.daily',
                                unique_key => ARRAY['day', 'region'], mode => 'full');
INSERT INTO ol_raw.customers VALUES (1, 'north'), (2, 'south');
INSERT INTO ol_raw.orders (order_id, customer_id, amount, status, day) VALUES
  (1, 1, 10, 'new', '2024-01-01'), (2, 2, 20, 'x', '2024-01-01'), (3, 1, 5, 'new', '2024-01-02');
SELECT pipeline.run('ol_orders');
SELECT pipeline.run('ol daily "revenue"');
-- nothing new: counted on the pipeline, not recorded, no events
-- (docs/exactly-once.md, what a run records)
SELECT pipeline.run('ol_orders');
INSERT INTO ol_raw.orders (order_id, customer_id, amount, status, day) VALUES
  (4, 1, 1, 'new', '2024-01-03'), (5, 2, 2, 'new', '2024-01-03'), (6, 2, 3, 'new', '2024-01-04');
CALL pipeline.run_batched('ol_orders');
INSERT INTO ol_raw.orders (order_id, customer_id, amount, status, day) VALUES (7, 1, 1, 'boom', '2024-01-05');
\set ON_ERROR_STOP 0
SELECT pipeline.run('ol_orders');
\set ON_ERROR_STOP 1
-- names that collide when joined without quoting: "ol_a.b".c and ol_a."b.c";
-- and a table whose name has a space
CREATE SCHEMA "ol_a.b"; CREATE SCHEMA ol_a;
CREATE TABLE "ol_a.b".c (id int PRIMARY KEY, v text);
CREATE TABLE ol_a."my table" (id int PRIMARY KEY, v text, gone boolean NOT NULL DEFAULT false);
INSERT INTO "ol_a.b".c VALUES (1, 'a'); INSERT INTO ol_a."my table" VALUES (1, 'b');
SELECT pipeline.create_pipeline('ol_names', '"ol_a.b".c', 'ol_a."b.c"', unique_key => ARRAY['id']);
SELECT pipeline.create_pipeline('ol_space', 'ol_a."my table"', 'ol_a.spaced', unique_key => ARRAY['id'],
                                delete_column => 'gone');
SELECT pipeline.run('ol_names');
SELECT pipeline.run('ol_space');
-- a run an upstream run triggered, and a skipped run, as the run worker and
-- a run that found the pipeline busy record them
INSERT INTO pipeline.run_history (run_id, pipeline_id, pipeline_name, status, started_at, finished_at,
                                  triggered_by, parent_run_id)
SELECT (SELECT max(run_id) + 1 FROM pipeline.run_history), p.id, p.name, 'succeeded',
       now(), now(), 'upstream', (SELECT min(run_id) FROM pipeline.runs WHERE pipeline_name = 'ol_orders')
  FROM pipeline.pipelines p WHERE p.name = 'ol daily "revenue"';
INSERT INTO pipeline.run_history (run_id, pipeline_id, pipeline_name, status, started_at, finished_at)
SELECT (SELECT max(run_id) + 1 FROM pipeline.run_history), p.id, p.name, 'skipped', now(), now()
  FROM pipeline.pipelines p WHERE p.name = 'ol_names';
-- a run pg_cron started (its schedule fired at 10:00, the run began 7 s later)
INSERT INTO pipeline.run_history (run_id, pipeline_id, pipeline_name, status, started_at, finished_at,
                                  triggered_by)
SELECT (SELECT max(run_id) + 1 FROM pipeline.run_history), p.id, p.name, 'succeeded',
       '2024-05-01 10:00:07.5+00', '2024-05-01 10:00:09+00', 'schedule'
  FROM pipeline.pipelines p WHERE p.name = 'ol_space';
-- the namespaces other producers use for this server, and a job namespace
SET pipeline.openlineage_namespace = 'postgres://db.example.com:5432';
SET pipeline.openlineage_job_namespace = 'pg_pipeline-test';
\pset format unaligned
\pset tuples_only on
\o :out
SELECT e::text FROM pipeline.runs r, pipeline.openlineage_events(r.run_id) WITH ORDINALITY AS x(e, n)
 WHERE r.pipeline_name LIKE 'ol%' ORDER BY r.run_id, x.n;
-- the same export again: the events, runIds included, do not change
\o :out2
SELECT e::text FROM pipeline.runs r, pipeline.openlineage_events(r.run_id) WITH ORDINALITY AS x(e, n)
 WHERE r.pipeline_name LIKE 'ol%' ORDER BY r.run_id, x.n;
\o
