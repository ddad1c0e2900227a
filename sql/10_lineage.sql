-- 10_lineage: table and column lineage, derived from pipeline definitions
-- and view query trees; impact analysis; the pictures; run lineage and the
-- lineage column. Errors with their SQLSTATE.
\set SHOW_CONTEXT never
SET client_min_messages = warning;

CREATE SCHEMA lin_raw;
CREATE SCHEMA lin_core;
CREATE SCHEMA lin_mart;
CREATE TABLE lin_raw.orders (order_id int, customer_id int, amount numeric(10,2),
                             status text, ordered_on date, seq bigserial);
CREATE TABLE lin_raw.customers (customer_id int PRIMARY KEY, name text, region text);
CREATE TABLE lin_raw.fx (currency text, rate numeric);
INSERT INTO lin_raw.fx VALUES ('EUR', 2);

-- A view of a view: a join, an expression, a function, a cast, a CASE, a
-- scalar subquery, a CTE and a UNION.
CREATE VIEW lin_core.orders_joined AS
SELECT o.order_id, o.customer_id, c.region, o.amount,
       o.amount * (SELECT max(rate) FROM lin_raw.fx WHERE currency = 'EUR') AS amount_eur,
       upper(o.status) AS status, o.ordered_on, o.seq
  FROM lin_raw.orders o JOIN lin_raw.customers c USING (customer_id);
CREATE VIEW lin_core.orders_clean AS
WITH recent AS (SELECT * FROM lin_core.orders_joined)
SELECT order_id, region, amount_eur::numeric(12,2) AS amount_eur,
       CASE WHEN status = 'X' THEN 'CANCELLED' ELSE status END AS status,
       ordered_on, seq, 'web'::text AS channel
  FROM recent;
SELECT pipeline.create_pipeline('lin_orders', 'lin_core.orders_clean', 'lin_core.orders',
                                unique_key => ARRAY['order_id'], incremental_column => 'seq');

-- An aggregate over the target: the next stage.
CREATE VIEW lin_mart.daily AS
SELECT ordered_on AS day, region, sum(amount_eur) AS revenue, count(*) AS orders,
       max(seq) AS seq
  FROM lin_core.orders GROUP BY ordered_on, region;
SELECT pipeline.create_pipeline('lin_daily', 'lin_mart.daily', 'lin_mart.daily_revenue',
                                unique_key => ARRAY['day', 'region'], mode => 'full');

-- A set operation reading both stages.
CREATE VIEW lin_mart.all_amounts AS
SELECT order_id AS id, amount_eur AS amount FROM lin_core.orders
UNION ALL
SELECT customer_id, amount FROM lin_raw.orders;
SELECT pipeline.create_pipeline('lin_amounts', 'lin_mart.all_amounts', 'lin_mart.amounts',
                                mode => 'full', unique_key => ARRAY['id']);

-- Table lineage: every edge, with the pipeline on the pipeline edges.
SELECT from_relation, from_kind, to_relation, to_kind, pipeline
  FROM pipeline.lineage
 WHERE from_relation LIKE 'lin\_%' OR to_relation LIKE 'lin\_%'
 ORDER BY from_relation, to_relation;

-- Column lineage of the views: copied or transformed, and how.
SELECT from_relation, from_column, to_relation, to_column, transformation, how
  FROM pipeline.column_lineage
 WHERE edge_kind = 'view' AND to_relation LIKE 'lin\_%'
 ORDER BY to_relation, to_column, from_relation, from_column;

-- Impact analysis: what is below the raw orders, what is above the daily revenue.
SELECT depth, relation, kind, pipeline, path FROM pipeline.downstream('lin_raw.orders');
SELECT depth, relation, kind, pipeline, path FROM pipeline.upstream('lin_mart.daily_revenue');
-- a relation no pipeline touches has no lineage
CREATE TABLE lin_raw.unrelated (x int);
SELECT count(*) FROM pipeline.downstream('lin_raw.unrelated');

-- Column level: where does revenue come from, what does amount feed?
SELECT depth, relation, column_name, transformation, how, pipeline
  FROM pipeline.column_upstream('lin_mart.daily_revenue', 'revenue');
SELECT depth, relation, column_name, transformation, how, pipeline, path
  FROM pipeline.column_downstream('lin_raw.orders', 'amount');
-- a constant has no source column: the trail ends at the view
SELECT depth, relation, column_name FROM pipeline.column_upstream('lin_core.orders', 'channel');

-- Errors: an unknown relation, an unknown column, a NULL.
SELECT * FROM pipeline.upstream('lin_raw.nope');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pipeline.column_upstream('lin_core.orders', 'nope');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pipeline.column_downstream('lin_raw.nope', 'amount');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM pipeline.upstream(NULL);

-- Lineage follows DDL: replacing a view changes its column edges at once.
CREATE OR REPLACE VIEW lin_core.orders_joined AS
SELECT o.order_id, o.customer_id, c.region, o.amount,
       o.amount * 2 AS amount_eur,
       lower(o.status) AS status, o.ordered_on, o.seq
  FROM lin_raw.orders o JOIN lin_raw.customers c USING (customer_id);
SELECT from_relation, from_column, to_column, transformation, how
  FROM pipeline.column_lineage
 WHERE to_relation = 'lin_core.orders_joined' AND to_column IN ('amount_eur', 'status')
 ORDER BY to_column, from_relation;
-- lin_raw.fx is no longer read
SELECT count(*) AS fx_edges FROM pipeline.lineage WHERE from_relation = 'lin_raw.fx';
-- a column added to the source's view appears as it is created
ALTER TABLE lin_raw.customers ADD COLUMN segment text;
CREATE OR REPLACE VIEW lin_core.orders_joined AS
SELECT o.order_id, o.customer_id, c.region, o.amount, o.amount * 2 AS amount_eur,
       lower(o.status) AS status, o.ordered_on, o.seq, c.segment
  FROM lin_raw.orders o JOIN lin_raw.customers c USING (customer_id);
SELECT from_relation, from_column, to_column FROM pipeline.column_lineage
 WHERE to_relation = 'lin_core.orders_joined' AND to_column = 'segment';

-- Pictures: DOT and Mermaid around one relation, with the last run status
-- of each pipeline on its edge.
INSERT INTO lin_raw.customers VALUES (1, 'ada', 'north'), (2, 'bo', 'south');
INSERT INTO lin_raw.orders (order_id, customer_id, amount, status, ordered_on) VALUES
    (1, 1, 10, 'new', '2024-01-01'), (2, 2, 20, 'X', '2024-01-01'), (3, 1, 5, 'new', '2024-01-02');
SELECT pipeline.run('lin_orders') AS run_id \gset
\pset format unaligned
\pset tuples_only on
SELECT pipeline.lineage_graph('dot', 'lin_core.orders');
SELECT pipeline.lineage_graph('mermaid', 'lin_mart.daily_revenue');
SELECT pipeline.lineage_graph(around => 'lin_raw.unrelated');
\pset format aligned
\pset tuples_only off
SELECT pipeline.lineage_graph('svg');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.lineage_graph(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.lineage_graph('dot', 'lin_raw.nope');
\echo :LAST_ERROR_SQLSTATE

-- Run lineage: what the run read and wrote, and with which config version.
SELECT direction, relation, watermark_from, watermark_to, rows_read, rows_inserted,
       rows_updated, rows_deleted, config_version
  FROM pipeline.run_lineage WHERE run_id = :run_id ORDER BY direction;

-- The lineage column: every row written carries the id of the run that
-- last wrote it; unchanged rows keep theirs.
SELECT pipeline.set_lineage_column('lin_orders', 'loaded_by_run');
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
 WHERE attrelid = 'lin_core.orders'::regclass AND attname = 'loaded_by_run';
UPDATE lin_raw.orders SET amount = 11 WHERE order_id = 1;
INSERT INTO lin_raw.orders (order_id, customer_id, amount, status, ordered_on)
SELECT order_id, customer_id, amount, status, ordered_on FROM lin_raw.orders WHERE order_id = 1;
INSERT INTO lin_raw.orders (order_id, customer_id, amount, status, ordered_on) VALUES
    (4, 2, 7, 'new', '2024-01-02');
SELECT pipeline.run('lin_orders') AS run2 \gset
SELECT order_id, amount_eur, loaded_by_run = :run2 AS written_by_run2, loaded_by_run IS NULL AS untouched
  FROM lin_core.orders ORDER BY order_id;
SELECT direction, relation, rows_read, rows_inserted, rows_updated, lineage_column
  FROM pipeline.run_lineage WHERE run_id = :run2 ORDER BY direction;
-- any row traces back to its run and the source range it was read from
SELECT o.order_id, l.watermark_from, l.watermark_to, l.relation
  FROM lin_core.orders o JOIN pipeline.run_lineage l
    ON l.run_id = o.loaded_by_run AND l.direction = 'read'
 WHERE o.order_id = 4;
-- the planner writes it (pipeline.explain shows the statement)
SELECT count(*) > 0 AS stamps_run_id FROM pipeline.explain('lin_orders') s
 WHERE s LIKE '%loaded_by_run = pipeline._current_run_id()%';
-- errors: a source column of that name, a target column of another type,
-- an unknown pipeline
CREATE TABLE lin_core.typed (order_id int PRIMARY KEY, region text, amount_eur numeric,
                             status text, ordered_on date, seq bigint, channel text,
                             segment text, stamp text);
SELECT pipeline.create_pipeline('lin_typed', 'lin_core.orders_clean', 'lin_core.typed',
                                unique_key => ARRAY['order_id'], incremental_column => 'seq');
SELECT pipeline.set_lineage_column('lin_typed', 'region');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.set_lineage_column('lin_typed', 'stamp');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.set_lineage_column('lin_nope', 'stamp');
\echo :LAST_ERROR_SQLSTATE
-- turned off with NULL
SELECT pipeline.set_lineage_column('lin_orders', NULL);
SELECT lineage_column IS NULL AS off FROM pipeline.pipeline WHERE name = 'lin_orders';

-- Dropping the view a pipeline reads leaves the pipeline
-- edge, by name, marked missing; recreating it restores the lineage.
DROP VIEW lin_mart.all_amounts;
SELECT from_relation, from_kind, to_relation FROM pipeline.lineage WHERE pipeline = 'lin_amounts';
CREATE VIEW lin_mart.all_amounts AS SELECT order_id AS id, amount FROM lin_raw.orders;
SELECT from_relation, from_kind, to_relation FROM pipeline.lineage
 WHERE to_relation IN ('lin_mart.amounts', 'lin_mart.all_amounts') ORDER BY 1;

-- Whatever command drops a relation a pipeline reads, DROP OWNED among
-- them, leaves its edge marked missing at once (an sql_drop trigger).
CREATE ROLE lin_dropper;
CREATE VIEW lin_mart.owned AS SELECT order_id AS id, amount FROM lin_raw.orders;
ALTER VIEW lin_mart.owned OWNER TO lin_dropper;
SELECT pipeline.create_pipeline('lin_owned', 'lin_mart.owned', 'lin_mart.owned_out',
                                mode => 'full', unique_key => ARRAY['id']) > 0 AS created;
SELECT from_relation, from_kind FROM pipeline.lineage WHERE pipeline = 'lin_owned';
DROP OWNED BY lin_dropper;
SELECT from_relation, from_kind FROM pipeline.lineage WHERE pipeline = 'lin_owned';
SELECT pipeline.drop_pipeline('lin_owned', drop_target => true);
DROP ROLE lin_dropper;

-- Dropping a pipeline removes its edges.
SELECT pipeline.drop_pipeline('lin_typed');
SELECT count(*) FROM pipeline.lineage WHERE to_relation = 'lin_core.typed';
-- refresh_lineage recomputes on demand (all pipelines, or one)
SELECT pipeline.refresh_lineage('lin_orders');
SELECT pipeline.refresh_lineage('lin_nope');
\echo :LAST_ERROR_SQLSTATE

-- Pictures of awkward names: Mermaid writes < > & " and # as entity codes,
-- so that a name is drawn as it is spelled (not as markup), and draws a
-- relation that no longer exists dotted, as DOT does.
CREATE SCHEMA lin_esc;
CREATE TABLE lin_esc."<x>" (id int PRIMARY KEY);
CREATE VIEW lin_esc."a&b" AS SELECT id FROM lin_esc."<x>";
CREATE VIEW lin_esc."gone" AS SELECT id FROM lin_esc."<x>";
SELECT pipeline.create_pipeline('<b>esc</b> & "#1"', 'lin_esc."a&b"', 'lin_esc.out',
                                mode => 'full', unique_key => ARRAY['id']) > 0 AS created;
SELECT pipeline.create_pipeline('lin_gone', 'lin_esc.gone', 'lin_esc.gone_out',
                                mode => 'full', unique_key => ARRAY['id']) > 0 AS created;
DROP VIEW lin_esc.gone;
\pset format unaligned
\pset tuples_only on
SELECT pipeline.lineage_graph('mermaid', 'lin_esc.out');
SELECT pipeline.lineage_graph('mermaid', 'lin_esc.gone_out');
SELECT pipeline.lineage_graph('dot', 'lin_esc.gone_out');
\pset format aligned
\pset tuples_only off
-- (dropped again, so that the suites after this one see the same registry)
SELECT pipeline.drop_pipeline('<b>esc</b> & "#1"'), pipeline.drop_pipeline('lin_gone');
DROP SCHEMA lin_esc CASCADE;

-- How a value arrives, per source column. A CASE's tests, NULLIF's second
-- argument and an aggregate's FILTER only choose which value arrives: they
-- are "condition" edges (OpenLineage: INDIRECT, CONDITIONAL), next to the
-- edges of the values themselves; COALESCE and GREATEST pass any argument
-- on. The strongest kind on the way names an edge: a cast or a function
-- over an aggregate is still an aggregate. count(*) reads no column: its
-- edge comes from "*", the rows of the table it counts, under any view.
CREATE SCHEMA lin_kinds;
CREATE TABLE lin_kinds.t (id int PRIMARY KEY, status text, amount numeric, fallback numeric,
                          day date);
CREATE VIEW lin_kinds.rows_v AS
SELECT id, day, status, amount,
       CASE WHEN status = 'x' THEN amount END AS cased,
       CASE status WHEN 'x' THEN 0 ELSE amount END AS simple_cased,
       coalesce(amount, fallback) AS coalesced,
       greatest(amount, fallback) AS greatest,
       nullif(amount, fallback) AS nullified
  FROM lin_kinds.t WHERE amount > 0;
CREATE VIEW lin_kinds.daily AS
SELECT day, sum(amount)::numeric(12,2) AS total, count(*)::int AS n,
       count(*) FILTER (WHERE status = 'x') AS x_count, round(avg(cased), 2) AS avg_cased
  FROM lin_kinds.rows_v GROUP BY day;
SELECT pipeline.create_pipeline('lin_kinds', 'lin_kinds.daily', 'lin_kinds.daily_out',
                                mode => 'full', unique_key => ARRAY['day']) > 0 AS created;
SELECT from_relation, from_column, to_relation, to_column, transformation, how
  FROM pipeline.column_lineage
 WHERE edge_kind = 'view' AND to_relation LIKE 'lin\_kinds.%'
 ORDER BY to_relation, to_column, from_relation, from_column, how;
-- the count reaches the table, not the view it is defined in
SELECT depth, relation, column_name, transformation, how, pipeline
  FROM pipeline.column_upstream('lin_kinds.daily_out', 'n');
SELECT pipeline.drop_pipeline('lin_kinds');
DROP SCHEMA lin_kinds CASCADE;
