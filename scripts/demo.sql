-- scripts/demo.sql
--
-- A tour of pg_pipeline through the three medallion stages, on generated
-- data. scripts/demo.sh runs it on a throwaway server; you can also run it
-- yourself on a scratch database:  psql -X -v ON_ERROR_STOP=1 -f scripts/demo.sql
--
--   raw          staging.orders       an append-only change log of orders,
--                                     written by loaders (COPY, INSERT):
--                                     new orders, updates, re-sent rows and
--                                     deletions, all as new rows
--   cleaned      core.orders          one current row per order
--                                     (pipeline orders_to_core, mode merge)
--   aggregated   mart.daily_revenue   revenue per day of core.orders
--                                     (pipeline daily_revenue, mode
--                                     rollup: only the days a run touches
--                                     are recomputed)
--
-- and then data contracts with a quarantine and its replay (section 8a),
-- a partner feed of text typed at the boundary, its trash quarantined,
-- fixed and replayed, and an anomaly alert on an unusual batch (8b), and
-- personal data found, classified and masked at load, and a customer
-- forgotten on request, the tombstone keeping a re-sent row out (section 8c),
-- and a customer dimension that keeps every version (mode snapshot, 8d).

\set ON_ERROR_STOP on
\set QUIET on
\pset pager off
\pset null '(null)'
SET client_min_messages = warning;

\echo
\echo '################################################################'
\echo '# 0. Setup: the extension and one schema per stage'
\echo '################################################################'

CREATE EXTENSION IF NOT EXISTS pg_cron;     -- schedules (section 7)
CREATE EXTENSION IF NOT EXISTS pg_pipeline;
-- (so that the demo can run again on the same database)
SELECT pipeline.drop_pipeline(name)
  FROM pipeline.pipelines WHERE name IN ('orders_to_core', 'daily_revenue', 'customers_to_core',
                                         'partner_to_core', 'customer_dim') \g /dev/null
DROP SCHEMA IF EXISTS staging, core, mart CASCADE;
CREATE SCHEMA staging;
CREATE SCHEMA core;
CREATE SCHEMA mart;

SET client_min_messages = notice;
\set QUIET off

\echo
\echo '################################################################'
\echo '# 1. Raw stage: staging.orders, an append-only change log'
\echo '################################################################'
\echo 'change_id comes from a sequence default, assigned by the INSERT that'
\echo 'writes the row: the safest incremental column (see docs/exactly-once.md).'
\echo 'is_deleted = true marks the deletion of an order.'

CREATE TABLE staging.orders (
    change_id   bigserial PRIMARY KEY,
    order_id    bigint NOT NULL,
    customer_id integer NOT NULL,
    status      text NOT NULL,
    amount      numeric(12,2) NOT NULL,
    ordered_at  timestamptz NOT NULL,
    is_deleted  boolean NOT NULL DEFAULT false
);

-- Batch 1 (about 51,000 rows), deterministic so every run of the demo shows
-- the same numbers:
--   40,000 new orders over 30 days in January 2024,
INSERT INTO staging.orders (order_id, customer_id, status, amount, ordered_at)
SELECT g,
       1 + (g * 7919) % 5000,
       'placed',
       round((5 + (g * 37) % 500 + (g % 100) / 100.0)::numeric, 2),
       timestamptz '2024-01-01 00:00:00+00'
           + (g % 30) * interval '1 day' + (g * 13 % 86400) * interval '1 second'
  FROM generate_series(1, 40000) AS g;

--   8,000 of them shipped (a later row for the same order),
INSERT INTO staging.orders (order_id, customer_id, status, amount, ordered_at)
SELECT order_id, customer_id, 'shipped', amount, ordered_at
  FROM staging.orders
 WHERE order_id % 5 = 0;

--   2,000 rows re-sent by a loader, unchanged (duplicates),
INSERT INTO staging.orders (order_id, customer_id, status, amount, ordered_at)
SELECT order_id, customer_id, status, amount, ordered_at
  FROM staging.orders
 WHERE order_id % 20 = 1 AND status = 'placed';

--   1,000 orders cancelled and deleted.
INSERT INTO staging.orders (order_id, customer_id, status, amount, ordered_at, is_deleted)
SELECT order_id, customer_id, 'cancelled', amount, ordered_at, true
  FROM staging.orders
 WHERE order_id % 40 = 3;

SELECT count(*) AS staging_rows,
       count(DISTINCT order_id) AS distinct_orders,
       count(*) FILTER (WHERE is_deleted) AS deletion_rows
  FROM staging.orders;

\echo
\echo '################################################################'
\echo '# 2. Cleaned stage: pipeline orders_to_core, staging.orders -> core.orders'
\echo '################################################################'
\echo 'mode merge: one row per order_id (the latest change wins), new keys'
\echo 'inserted, changed rows updated, unchanged rows left alone, rows flagged'
\echo 'is_deleted delete their order. The target does not exist yet: it is'
\echo 'created with the source columns, a primary key on order_id and an index'
\echo 'on change_id.'

SELECT pipeline.create_pipeline(
           name               => 'orders_to_core',
           source             => 'staging.orders',
           target             => 'core.orders',
           unique_key         => ARRAY['order_id'],
           incremental_column => 'change_id',
           delete_column      => 'is_deleted',
           description        => 'raw order changes -> one current row per order') AS pipeline_id;

\d core.orders

\echo
\echo '################################################################'
\echo '# 3. Aggregated stage: pipeline daily_revenue rolls core.orders up into'
\echo '#    mart.daily_revenue, one row per day'
\echo '################################################################'
\echo 'mode rollup: statement triggers on core.orders note the days each change'
\echo 'touches (left or arrived in); a run recomputes only those days, every'
\echo 'measure, count(DISTINCT) included, so the target always equals a full'
\echo 'recompute. core.orders is updated and deleted in place by the merge.'
\echo 'Its counts are in days: inserted, updated or deleted days; read, the'
\echo 'rows of the days it recomputed.'
CREATE INDEX ON core.orders (ordered_at);

SELECT pipeline.create_pipeline(
           name        => 'daily_revenue',
           source      => 'core.orders',
           target      => 'mart.daily_revenue',
           mode        => 'rollup',
           rollup      => '{"time_column": "ordered_at", "bucket": "1 day",
                            "measures": {"orders": "count(*)", "customers": "count(DISTINCT customer_id)",
                                         "revenue": "sum(amount)", "avg_order": "round(avg(amount), 2)"}}',
           description => 'revenue per day, for the dashboard') AS pipeline_id;
\d mart.daily_revenue

-- the plain-SQL recompute the rollup is checked against at the end
CREATE VIEW core.daily_revenue_v AS
SELECT date_bin('1 day', o.ordered_at, timestamptz '2000-01-01 00:00+00') AS bucket,
       count(*)                                AS orders,
       sum(o.amount)                           AS revenue,
       round(avg(o.amount), 2)                 AS avg_order,
       count(DISTINCT o.customer_id)           AS customers
  FROM core.orders AS o
 GROUP BY 1;

\echo
\echo '== the registry: pipeline.pipelines'
SELECT id, name, source, target, mode, unique_key, incremental_column,
       delete_column, active, owner, watermark
  FROM pipeline.pipelines
 ORDER BY id;

\echo
\echo '== what a run of orders_to_core will execute: pipeline.explain'
\echo '   ($1 = watermark, $2 = high-water mark; no watermark yet, so no $1)'
\set QUIET on
\pset format unaligned
SELECT * FROM pipeline.explain('orders_to_core');
\pset format aligned
\set QUIET off

\echo
\echo '== daily_revenue reads core.orders: it depends on'
\echo '   orders_to_core, inferred, so a background worker runs it by itself'
\echo '   whenever orders_to_core lands new data'
SELECT p.name AS pipeline, u.name AS depends_on, d.kind
  FROM pipeline.dependencies d
  JOIN pipeline.pipelines p ON p.id = d.pipeline_id
  JOIN pipeline.pipelines u ON u.id = d.upstream_id;

-- demo_wait_downstream(upstream run) waits (at most 60 s) until the worker
-- runs of everything downstream of that run have finished
CREATE FUNCTION pg_temp.demo_wait_downstream(upstream bigint) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE deadline timestamptz := clock_timestamp() + interval '60 seconds';
BEGIN
    LOOP
        IF EXISTS (SELECT 1 FROM pipeline.runs WHERE parent_run_id = upstream AND status <> 'running')
           AND NOT EXISTS (SELECT 1 FROM pipeline.queue)
           AND NOT EXISTS (SELECT 1 FROM pipeline.runs WHERE status = 'running') THEN
            RETURN 'downstream runs finished';
        END IF;
        IF clock_timestamp() > deadline THEN
            RETURN 'no downstream run within 60 s: is pg_pipeline in shared_preload_libraries?';
        END IF;
        PERFORM pg_sleep(0.1);
    END LOOP;
END $$;

\echo
\echo '################################################################'
\echo '# 4. First runs: load batch 1; the aggregated stage follows by itself'
\echo '################################################################'

SELECT pipeline.run('orders_to_core') AS run_id \gset first_
SELECT pg_temp.demo_wait_downstream(:first_run_id) AS waited;

\echo
\echo '== the run tree: daily_revenue was started by a worker, triggered by'
\echo '   the orders_to_core run that committed new rows'
SELECT depth, pipeline_name, status, triggered_by,
       CASE WHEN depth > 0
            THEN round(extract(epoch FROM started_at - (SELECT finished_at FROM pipeline.runs
                                                        WHERE run_id = :first_run_id)) * 1000)
       END AS started_ms_after_upstream
  FROM pipeline.run_tree(:first_run_id);

\echo
\echo '== the runs: pipeline.runs'
\echo '   orders_to_core read every staging row (51,000). Several rows per order'
\echo '   collapse to the latest one (duplicates = read minus every other count);'
\echo '   an order created and deleted in the same batch was never in the'
\echo '   target, so its deletion is counted as unchanged.'
SELECT run_id, pipeline_name, status, rows_read, rows_inserted AS inserted,
       rows_updated AS updated, rows_deleted AS deleted,
       rows_unchanged AS unchanged, rows_rejected AS rejected,
       CASE WHEN pipeline_name = 'orders_to_core'
            THEN rows_read - rows_inserted - rows_updated - rows_deleted
                 - rows_unchanged - rows_rejected END AS duplicates,
       watermark_from, watermark_to
  FROM pipeline.runs
 ORDER BY run_id;

\echo
\echo '== core.orders (first rows)'
SELECT * FROM core.orders ORDER BY order_id LIMIT 8;

\echo
\echo '== mart.daily_revenue (first days)'
SELECT * FROM mart.daily_revenue ORDER BY bucket LIMIT 8;

\echo
\echo '################################################################'
\echo '# 5. Batch 2 arrives: new orders, changes, re-sent rows, deletions'
\echo '################################################################'

--   2,000 new orders, on the last days of the month,
INSERT INTO staging.orders (order_id, customer_id, status, amount, ordered_at)
SELECT g,
       1 + (g * 7919) % 5000,
       'placed',
       round((5 + (g * 37) % 500 + (g % 100) / 100.0)::numeric, 2),
       timestamptz '2024-01-28 00:00:00+00' + (g % 3) * interval '1 day'
  FROM generate_series(40001, 42000) AS g;

--   1,500 price corrections of existing orders (they change),
INSERT INTO staging.orders (order_id, customer_id, status, amount, ordered_at)
SELECT o.order_id, o.customer_id, o.status, o.amount - 1, o.ordered_at
  FROM core.orders AS o
 WHERE o.order_id % 25 = 2 AND o.order_id <= 37500;

--   300 rows re-sent exactly as they are in core.orders (no change),
INSERT INTO staging.orders (order_id, customer_id, status, amount, ordered_at)
SELECT o.order_id, o.customer_id, o.status, o.amount, o.ordered_at
  FROM core.orders AS o
 WHERE o.order_id % 100 = 7 AND o.order_id <= 30000;

--   500 orders deleted.
INSERT INTO staging.orders (order_id, customer_id, status, amount, ordered_at, is_deleted)
SELECT o.order_id, o.customer_id, 'cancelled', o.amount, o.ordered_at, true
  FROM core.orders AS o
 WHERE o.order_id % 80 = 11;

SELECT count(*) AS new_staging_rows
  FROM staging.orders
 WHERE change_id > (SELECT watermark::bigint FROM pipeline.pipelines
                     WHERE name = 'orders_to_core');

\echo
\echo '################################################################'
\echo '# 6. Second runs: only the new rows are read'
\echo '################################################################'

SELECT pipeline.run('orders_to_core') AS run_id \gset second_
SELECT pg_temp.demo_wait_downstream(:second_run_id) AS waited;

\echo
\echo '== and a third run of orders_to_core with nothing new: it reads nothing,'
\echo '   changes nothing, and so wakes nothing downstream'
SELECT pipeline.run('orders_to_core') AS run_id;

\echo
\echo '== pipeline.runs after batch 2'
\echo '   orders_to_core read only the batch-2 rows (its window starts at the'
\echo '   watermark); daily_revenue (rollup, run by a worker) recomputes only'
\echo '   the days batch 2 touched: it reads their orders, and updates those days'
SELECT run_id, pipeline_name, status, triggered_by, rows_read, rows_inserted AS inserted,
       rows_updated AS updated, rows_deleted AS deleted,
       rows_unchanged AS unchanged,
       CASE WHEN pipeline_name = 'orders_to_core'
            THEN rows_read - rows_inserted - rows_updated - rows_deleted
                 - rows_unchanged - rows_rejected END AS duplicates,
       watermark_from, watermark_to,
       round(extract(epoch FROM finished_at - started_at) * 1000, 1) AS ms
  FROM pipeline.runs
 ORDER BY run_id;

\echo
\echo '== the registry again: watermarks and last runs'
SELECT name, mode, watermark, last_run_id, last_run_status, description
  FROM pipeline.pipelines
 ORDER BY id;

\echo
\echo '== pipeline.explain now that orders_to_core has a watermark'
\set QUIET on
\pset format unaligned
SELECT * FROM pipeline.explain('orders_to_core');
\echo
\echo '== pipeline.explain of daily_revenue (mode rollup: the days noted dirty,'
\echo '   recomputed from their rows of core.orders, in one MERGE)'
SELECT * FROM pipeline.explain('daily_revenue');
\pset format aligned
\set QUIET off

\echo
\echo '################################################################'
\echo '# 7. On a schedule: pg_cron runs orders_to_core every minute'
\echo '################################################################'
\echo 'The job runs as the pipeline owner; when it lands new rows, the worker'
\echo 'runs daily_revenue after it, as before. Batch 3 arrives; nobody calls'
\echo 'pipeline.run.'
SELECT pipeline.schedule('orders_to_core', '* * * * *');
SELECT jobname, schedule, username FROM cron.job;

INSERT INTO staging.orders (order_id, customer_id, status, amount, ordered_at)
SELECT g, 1 + (g * 7919) % 5000, 'placed', 25.00, timestamptz '2024-01-31 12:00:00+00'
  FROM generate_series(42001, 42100) AS g;

\echo
\echo '== pipeline.status while it waits for the next minute'
SELECT name, active, last_run_status, consecutive_failures, source_ahead_by,
       source_lag_reason, schedule, next_scheduled_at IS NOT NULL AS has_next_run
  FROM pipeline.status ORDER BY id;

\echo
\echo '== waiting for pg_cron (at most a minute)...'
DO $$
DECLARE deadline timestamptz := clock_timestamp() + interval '75 seconds';
BEGIN
    WHILE clock_timestamp() < deadline LOOP
        EXIT WHEN EXISTS (SELECT 1 FROM pipeline.runs r
                           WHERE r.pipeline_name = 'daily_revenue' AND r.status = 'succeeded'
                             AND r.parent_run_id IN (SELECT run_id FROM pipeline.runs
                                                      WHERE triggered_by = 'schedule'
                                                        AND rows_inserted > 0));
        PERFORM pg_sleep(0.5);
    END LOOP;
END $$;
SELECT run_id, pipeline_name, status, triggered_by, parent_run_id, rows_read,
       rows_inserted AS inserted, rows_updated AS updated
  FROM pipeline.runs WHERE run_id > :second_run_id ORDER BY run_id;
SELECT status, return_message FROM cron.job_run_details ORDER BY runid DESC LIMIT 1;
SELECT pipeline.unschedule('orders_to_core');

\echo
\echo '== pipeline.status: every stage caught up'
SELECT name, last_run_status, last_change_at IS NOT NULL AS changed, source_ahead_by,
       freshness_state
  FROM pipeline.status ORDER BY id;

\echo
\echo '################################################################'
\echo '# 8. The results'
\echo '################################################################'

\echo '== core.orders: one current row per live order'
SELECT count(*) AS orders,
       count(*) FILTER (WHERE status = 'shipped') AS shipped,
       sum(amount) AS total_amount
  FROM core.orders;

\echo
\echo '== check: core.orders equals the latest change per order, deletions'
\echo '   removed, computed by plain SQL from staging.orders'
WITH latest AS (
    SELECT DISTINCT ON (order_id) *
      FROM staging.orders
     ORDER BY order_id, change_id DESC
)
SELECT NOT EXISTS (
           SELECT order_id, customer_id, status, amount, ordered_at
             FROM latest WHERE NOT is_deleted
           EXCEPT ALL
           SELECT order_id, customer_id, status, amount, ordered_at FROM core.orders)
       AND NOT EXISTS (
           SELECT order_id, customer_id, status, amount, ordered_at FROM core.orders
           EXCEPT ALL
           SELECT order_id, customer_id, status, amount, ordered_at
             FROM latest WHERE NOT is_deleted) AS core_orders_is_exact;

\echo
\echo '== check: mart.daily_revenue equals a full recompute in plain SQL'
SELECT NOT EXISTS (SELECT bucket, orders, revenue, avg_order, customers FROM core.daily_revenue_v
                   EXCEPT ALL SELECT bucket, orders, revenue, avg_order, customers FROM mart.daily_revenue)
       AND NOT EXISTS (SELECT bucket, orders, revenue, avg_order, customers FROM mart.daily_revenue
                       EXCEPT ALL SELECT bucket, orders, revenue, avg_order, customers FROM core.daily_revenue_v)
       AS daily_revenue_is_exact;

\echo
\echo '== mart.daily_revenue (last days: batch 2 added orders here)'
SELECT * FROM mart.daily_revenue ORDER BY bucket DESC LIMIT 5;

\echo
\echo '################################################################'
\echo '# 8a. Bad data is caught, kept and replayed (docs/quality.md)'
\echo '################################################################'
\echo 'Two contracts on the cleaned stage: a negative amount goes to quarantine,'
\echo 'an unknown status is loaded but recorded (warn). The run loads the rest.'
SELECT pipeline.add_check('orders_to_core', 'amount_not_negative', 'range', '{"column": "amount", "min": 0}',
                          severity => 'quarantine') > 0 AS added;
SELECT pipeline.add_check('orders_to_core', 'known_status', 'accepted_values',
                          '{"column": "status", "values": ["placed", "shipped"]}', severity => 'warn') > 0 AS added;
INSERT INTO staging.orders (order_id, customer_id, status, amount, ordered_at) VALUES
  (90001, 17, 'placed', 25.00, '2024-02-01 10:00+00'),
  (90002, 18, 'placed', -5.00, '2024-02-01 10:05+00'),     -- a refund keyed as an order
  (90003, 19, 'lost', 12.00, '2024-02-01 10:10+00');       -- a status nobody declared
SELECT pipeline.run('orders_to_core') AS run_id \gset quality_
SELECT pg_temp.demo_wait_downstream(:quality_run_id) AS waited;
SELECT check_name, severity, failed_rows, outcome FROM pipeline.check_results
 WHERE run_id = :quality_run_id ORDER BY check_name;
SELECT rows_read, rows_inserted, rows_quarantined FROM pipeline.runs WHERE run_id = :quality_run_id;
SELECT quarantine_id, key, "row"->>'amount' AS amount, failed_checks, status FROM pipeline.quarantine;
\echo '== the loader fixes the row where it is kept, and replays it: loaded once'
UPDATE pipeline.quarantine SET "row" = jsonb_set("row", '{amount}', '5.00') WHERE key = '{"order_id": 90002}';
SELECT pipeline.replay_quarantine('orders_to_core') IS NOT NULL AS replayed;
SELECT order_id, status, amount FROM core.orders WHERE order_id > 90000 ORDER BY order_id;
SELECT quarantine_id, status FROM pipeline.quarantine;

\echo
\echo '################################################################'
\echo '# 8b. A partner feed of text: typed at the boundary, trash kept'
\echo '#     (docs/quality.md#typed-loads-from-text-staging)'
\echo '################################################################'
\echo 'The partner sends CSV: every column is text. column_types gives the'
\echo 'cleaned table real types; each value is converted once, by the input'
\echo 'function of its type. A value that does not convert sends its row to'
\echo 'quarantine with the reason; the rest loads. Anomaly alerts watch the'
\echo 'feed: a batch far from the usual raises one alert.'
CREATE TABLE staging.partner_orders (order_id text, amount text, ordered_at text, paid text,
                                     loaded_at bigint GENERATED ALWAYS AS IDENTITY);
CREATE INDEX ON staging.partner_orders (loaded_at);
SELECT pipeline.create_pipeline('partner_to_core', 'staging.partner_orders', 'core.partner_orders',
         unique_key => '{order_id}', incremental_column => 'loaded_at',
         column_types => '{"order_id": "bigint", "amount": "numeric(10,2)", "ordered_at": "timestamptz",
                           "paid": "boolean"}',
         anomaly_sensitivity => 5, anomaly_min_runs => 3) > 0 AS created;
INSERT INTO staging.partner_orders (order_id, amount, ordered_at, paid) VALUES
  ('70001', '19.90', '2024-02-01 09:00+00', 'true'),
  ('70002', '5,50', '2024-02-01 09:01+00', 'false'),          -- a decimal comma
  ('70003', '7.25', '2024-02-30 09:02+00', 'true'),           -- no such day
  ('70004', '3.10', '2024-02-01 09:03+00', 'maybe'),          -- not a boolean
  ('70005', '12.00', '2024-02-01 09:04+00', 'no');
SELECT pipeline.run('partner_to_core') AS run_id \gset partner_
SELECT rows_read, rows_inserted, rows_quarantined FROM pipeline.runs WHERE run_id = :partner_run_id;
SELECT order_id, amount, ordered_at, paid FROM core.partner_orders ORDER BY order_id;
SELECT key, failed_checks, reason FROM pipeline.quarantine
 WHERE pipeline = 'partner_to_core' ORDER BY quarantine_id;
\echo '== the decimal comma is fixed where the row is kept and replayed; the'
\echo '   other two are discarded'
UPDATE pipeline.quarantine SET "row" = jsonb_set("row", '{amount}', '"5.50"')
 WHERE pipeline = 'partner_to_core' AND key = '{"order_id": "70002"}';
SELECT pipeline.replay_quarantine('partner_to_core') IS NOT NULL AS replayed;
SELECT pipeline.discard_quarantine('partner_to_core') AS discarded;
SELECT order_id, amount FROM core.partner_orders ORDER BY order_id;
\echo '== three ordinary batches, then one forty times larger: one anomaly alert'
DO $$
BEGIN
    FOR b IN 1..3 LOOP
        INSERT INTO staging.partner_orders (order_id, amount, ordered_at, paid)
        SELECT (71000 + b * 100 + g)::text, '10.00', '2024-02-02 10:00+00', 'true' FROM generate_series(1, 10) g;
        PERFORM pipeline.run('partner_to_core');
    END LOOP;
END $$;
INSERT INTO staging.partner_orders (order_id, amount, ordered_at, paid)
SELECT (80000 + g)::text, '10.00', '2024-02-03 10:00+00', 'true' FROM generate_series(1, 400) g;
SELECT pipeline.run('partner_to_core') > 0 AS ran;
SELECT kind, observed, limit_value, message FROM pipeline.alerts
 WHERE pipeline_name = 'partner_to_core' AND kind = 'anomaly';

\echo
\echo '################################################################'
\echo '# 8c. Personal data: found, followed through lineage, masked at load'
\echo '#     (docs/privacy.md)'
\echo '################################################################'
CREATE TABLE staging.customers (customer_id int PRIMARY KEY, email text, phone text,
                                birth_date date, updated_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX ON staging.customers (updated_at);
INSERT INTO staging.customers (customer_id, email, phone, birth_date)
SELECT g, 'customer' || g || '@example.com', '+44 20 7946 ' || lpad(g::text, 4, '0'),
       date '1960-01-01' + g * 7
  FROM generate_series(1, 5000) AS g;
\echo '== which columns look personal (a sample of 1,000 rows; nothing is classified by it)'
SELECT * FROM pipeline.suggest_pii('staging.customers');
SELECT pipeline.classify('staging.customers', 'email', 'pii.email'),
       pipeline.classify('staging.customers', 'phone', 'pii.phone'),
       pipeline.classify('staging.customers', 'birth_date', 'pii.birth_date');
\echo '== the cleaned stage keeps a token of the e-mail (it still joins), part of'
\echo '   the phone and the month of birth: the raw values never reach core'
SELECT pipeline.create_key('default') AS key_version
 WHERE NOT EXISTS (SELECT 1 FROM pipeline.mask_keys WHERE name = 'default');
SELECT pipeline.create_pipeline('customers_to_core', 'staging.customers', 'core.customers',
         unique_key => '{customer_id}', incremental_column => 'updated_at',
         masks => '{"email": "tokenize", "phone": "partial", "birth_date": "month"}') > 0 AS created;
SELECT pipeline.run('customers_to_core') > 0 AS ran;
SELECT customer_id, email, phone, birth_date FROM core.customers ORDER BY customer_id LIMIT 3;
\echo '== where personal data is: declared in staging, followed into core by lineage'
SELECT relation, column_name, class, origin FROM pipeline.pii_columns ORDER BY 1, 2;
\echo '== a customer asks to be forgotten: the e-mail identifies the subject in'
\echo '   staging, and its token identifies them in core (lineage says so)'
SELECT pipeline.declare_subject('staging.customers', 'email', 'customer');
SELECT relation, column_name, subject, origin FROM pipeline.subject_columns ORDER BY 1, 2;
SELECT * FROM pipeline.forget('customer', 'customer42@example.com', dry_run => true);
SELECT * FROM pipeline.forget('customer', 'customer42@example.com');
\echo '== the loader sends the old row again: the tombstone keeps it out, counted'
INSERT INTO staging.customers (customer_id, email, phone, birth_date)
VALUES (42, 'customer42@example.com', '+44 20 7946 0042', date '1960-10-21');
SELECT pipeline.run('customers_to_core') AS run_id \gset forget_
SELECT rows_read, rows_inserted, rows_forgotten FROM pipeline.runs WHERE run_id = :forget_run_id;
SELECT count(*) AS customer42_in_core FROM core.customers WHERE customer_id = 42;
SELECT subject, status, relations FROM pipeline.erasure_requests ORDER BY 1;

\echo
\echo '################################################################'
\echo '# 8d. A customer dimension with its history (mode snapshot, SCD type 2)'
\echo '################################################################'
\echo 'Every version of each customer profile: valid_from (its updated_at),'
\echo 'valid_to (NULL for the current one), is_current. A late, older version'
\echo 'is put in its place in the history; the target forbids overlaps.'
CREATE EXTENSION IF NOT EXISTS btree_gist;
CREATE TABLE staging.customer_profiles (customer_id int NOT NULL, segment text NOT NULL,
                                        region text NOT NULL, updated_at timestamptz NOT NULL);
CREATE INDEX ON staging.customer_profiles (updated_at);
INSERT INTO staging.customer_profiles
SELECT g, CASE WHEN g % 3 = 0 THEN 'gold' ELSE 'standard' END,
       (ARRAY['north', 'south', 'east', 'west'])[1 + g % 4], timestamptz '2024-01-01 00:00+00'
  FROM generate_series(1, 1000) AS g;
SELECT pipeline.create_pipeline('customer_dim', 'staging.customer_profiles', 'core.customer_dim',
         unique_key => '{customer_id}', incremental_column => 'updated_at', mode => 'snapshot',
         lookback => '30 days', description => 'every version of each customer profile') > 0 AS created;
SELECT pipeline.run('customer_dim') > 0 AS ran;
\echo '== customer 7 moves to gold in March, then a correction for February arrives late'
INSERT INTO staging.customer_profiles VALUES (7, 'gold', 'west', '2024-03-01 00:00+00');
SELECT pipeline.run('customer_dim') > 0 AS ran;
INSERT INTO staging.customer_profiles VALUES (7, 'standard', 'north', '2024-02-15 00:00+00');
SELECT pipeline.run('customer_dim') > 0 AS ran;
SELECT customer_id, segment, region, valid_from, valid_to, is_current
  FROM core.customer_dim WHERE customer_id = 7 ORDER BY valid_from;
\echo '== the dimension as it was on 20 February 2024 (pipeline.as_of)'
SELECT customer_id, segment, region
  FROM pipeline.as_of('core.customer_dim', '2024-02-20 00:00+00')
       AS d(customer_id int, segment text, region text, updated_at timestamptz,
            valid_from timestamptz, valid_to timestamptz, is_current boolean)
 WHERE customer_id IN (6, 7) ORDER BY customer_id;

\echo
\echo '== page views land in a fact table partitioned by region; parallel_workers => 2'
\echo '   loads the partitions in two part workers at once, each a prepared'
\echo '   transaction that commits with the run (two-phase commit: all or nothing);'
\echo '   a part reads the staging rows of its two partitions in one scan when it'
\echo '   reads them all, as this first load does (docs/parallel.md)'
CREATE TABLE staging.page_views (region text NOT NULL, view_id bigint NOT NULL,
                                 customer_id int NOT NULL, seconds int NOT NULL,
                                 viewed_at timestamptz NOT NULL);
CREATE INDEX ON staging.page_views (viewed_at);
INSERT INTO staging.page_views
SELECT (ARRAY['north', 'south', 'east', 'west'])[1 + g % 4], g, 1 + g % 1000, 5 + g % 300,
       timestamptz '2024-03-01 00:00+00' + g * interval '1 second'
  FROM generate_series(1, 200000) AS g;
CREATE TABLE core.page_views (region text NOT NULL, view_id bigint NOT NULL,
                              customer_id int NOT NULL, seconds int NOT NULL,
                              viewed_at timestamptz NOT NULL,
                              PRIMARY KEY (region, view_id)) PARTITION BY LIST (region);
CREATE TABLE core.page_views_north PARTITION OF core.page_views FOR VALUES IN ('north');
CREATE TABLE core.page_views_south PARTITION OF core.page_views FOR VALUES IN ('south');
CREATE TABLE core.page_views_east PARTITION OF core.page_views FOR VALUES IN ('east');
CREATE TABLE core.page_views_west PARTITION OF core.page_views FOR VALUES IN ('west');
SELECT pipeline.create_pipeline('page_views', 'staging.page_views', 'core.page_views',
         unique_key => '{region,view_id}', incremental_column => 'viewed_at',
         partition_column => 'region', create_target => false, parallel_workers => 2,
         description => 'page views, one partition per region, loaded in parallel') > 0 AS created;
SELECT pipeline.run('page_views') > 0 AS ran;
\echo '== a second batch: 2,000 new views and 500 corrected ones, merged by the parts'
INSERT INTO staging.page_views
SELECT (ARRAY['north', 'south', 'east', 'west'])[1 + g % 4], g, 1 + g % 1000, 5 + g % 300,
       timestamptz '2024-03-10 00:00+00' + g * interval '1 second'
  FROM generate_series(200001, 202000) AS g
UNION ALL
SELECT (ARRAY['north', 'south', 'east', 'west'])[1 + g % 4], g, 1 + g % 1000, 999,
       timestamptz '2024-03-11 00:00+00' + g * interval '1 millisecond'
  FROM generate_series(1, 200000, 400) AS g;
SELECT pipeline.run('page_views') > 0 AS ran;
SELECT run_id, status, rows_read, rows_inserted AS inserted, rows_updated AS updated,
       rows_unchanged AS unchanged
  FROM pipeline.runs WHERE pipeline_name = 'page_views' ORDER BY run_id;
\echo '== check: each partition holds its region, the target equals the latest row per key,'
\echo '   and no prepared transaction is left behind'
SELECT tableoid::regclass AS partition, count(*) AS rows, min(region) = max(region) AS one_region
  FROM core.page_views GROUP BY 1 ORDER BY 1;
SELECT (SELECT count(*) FROM (
          SELECT region, view_id, customer_id, seconds, viewed_at FROM core.page_views
          EXCEPT
          (SELECT DISTINCT ON (region, view_id) region, view_id, customer_id, seconds, viewed_at
             FROM staging.page_views ORDER BY region, view_id, viewed_at DESC)) d) = 0
       AND (SELECT count(*) FROM core.page_views)
         = (SELECT count(DISTINCT (region, view_id)) FROM staging.page_views) AS target_is_exact,
       (SELECT count(*) FROM pg_prepared_xacts) AS prepared_left;

\echo
\echo '################################################################'
\echo '# 9. Lineage and audit: where data comes from, who changed what'
\echo '################################################################'
\echo '== what depends on staging.orders (tables, views and pipelines below it)'
SELECT depth, relation, kind, pipeline FROM pipeline.downstream('staging.orders') ORDER BY depth, relation;

\echo
\echo '== where mart.daily_revenue.revenue comes from, column by column'
SELECT depth, relation, column_name, transformation, how
  FROM pipeline.column_upstream('mart.daily_revenue', 'revenue')
 ORDER BY depth, relation, column_name;

\echo
\echo '== the lineage graph as Mermaid (paste into a Markdown file to render it)'
\set QUIET on
\pset format unaligned
\pset tuples_only on
\set QUIET off
SELECT pipeline.lineage_graph('mermaid');
\set QUIET on
\pset format aligned
\pset tuples_only off
\set QUIET off

\echo
\echo '== OpenLineage: each run wrote its events to the outbox in its own transaction;'
\echo '   the sender worker posts them to pipeline.openlineage_url (a stand-in collector here)'
DO $$
BEGIN
    FOR i IN 1..100 LOOP
        EXIT WHEN NOT EXISTS (SELECT 1 FROM pipeline.openlineage_deliveries WHERE state = 'pending');
        PERFORM pg_sleep(0.1);
    END LOOP;
END $$;
SELECT pipeline_name, event_type, state, count(*) AS events, max(attempts) AS max_attempts
  FROM pipeline.openlineage_deliveries
 GROUP BY 1, 2, 3 ORDER BY 1, 2 DESC;

\echo
\echo '== the audit log: every registry change and run, hash-chained'
SELECT seq, action, object_name, outcome, role_name FROM pipeline.audit_log ORDER BY seq DESC LIMIT 6;
SELECT valid, entries_checked, problem FROM pipeline.verify_audit();

\echo
\echo 'Done. Next: docs/reference/ for every function, docs/exactly-once.md'
\echo 'for the guarantees, docs/workers.md for schedules and background workers,'
\echo 'docs/lineage.md and docs/audit.md, bash scripts/test.sh for the test suites.'
