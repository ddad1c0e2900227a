-- 15_openlineage_time: a run's OpenLineage events describe the relations as
-- the run saw them, not as they are when the events are read. pg_pipeline
-- records the columns and comments of every relation in a pipeline's lineage
-- whenever its lineage is refreshed (create_pipeline, refresh_lineage, and
-- the DDL trigger on CREATE/ALTER/DROP and COMMENT), and only when they
-- changed; an event built later uses the latest record made before its run.
\set SHOW_CONTEXT never
\set regress_db :DBNAME
CREATE DATABASE pipeline_openlineage_time;
\c pipeline_openlineage_time
SET client_min_messages = warning;
CREATE EXTENSION pg_pipeline;
CREATE SCHEMA olt;
CREATE TABLE olt.orders (id int PRIMARY KEY, amount numeric(10,2) NOT NULL, region text);
COMMENT ON TABLE olt.orders IS 'orders as they arrive';
COMMENT ON COLUMN olt.orders.amount IS 'in euros';
CREATE VIEW olt.orders_v AS SELECT id, amount, region FROM olt.orders WHERE region IS NOT NULL;
INSERT INTO olt.orders VALUES (1, 10.50, 'eu'), (2, 20.00, 'us');
SELECT pipeline.create_pipeline('olt', 'olt.orders_v', 'olt.orders_dst',
                                unique_key => '{id}', mode => 'full') > 0 AS created;
SELECT pipeline.run('olt') AS first_run \gset

-- The record of each relation: one per change, none for a refresh that
-- changed nothing.
SELECT relation, jsonb_array_length(fields) AS columns, description
  FROM pipeline.relation_schema ORDER BY relation, schema_id;
SELECT pipeline.refresh_lineage('olt');
SELECT count(*) AS records FROM pipeline.relation_schema;

-- Then the source changes: the view the pipeline read is dropped, a column
-- of the table under it is retyped and its comment rewritten, the table's
-- comment too. A comment on the target is recorded at once (the DDL trigger
-- fires on COMMENT); the table is in no pipeline's lineage once the view is
-- gone, so its changes are recorded when it is again.
DROP VIEW olt.orders_v;
ALTER TABLE olt.orders ALTER COLUMN amount TYPE text;
COMMENT ON COLUMN olt.orders.amount IS 'free text now';
COMMENT ON TABLE olt.orders IS 'orders, retyped';
COMMENT ON TABLE olt.orders_dst IS 'loaded orders';
SELECT relation, jsonb_array_length(fields) AS columns, description
  FROM pipeline.relation_schema ORDER BY relation, schema_id;

-- The first run's events still say what that run saw: amount numeric(10,2)
-- "in euros", the table's first comment, and the view with its columns.
SELECT d->>'name' AS dataset, f->>'name' AS field, f->>'type' AS type, f->>'description' AS description
  FROM pipeline.openlineage_events(:first_run) AS e(ev),
       jsonb_array_elements(ev->'inputs') AS d,
       jsonb_array_elements(d->'facets'->'schema'->'fields') AS f
 WHERE ev->>'eventType' = 'COMPLETE'
 ORDER BY 1, 2;
SELECT d->>'name' AS dataset, d->'facets'->'documentation'->>'description' AS documentation
  FROM pipeline.openlineage_events(:first_run) AS e(ev),
       jsonb_array_elements(ev->'inputs') AS d
 WHERE ev->>'eventType' = 'COMPLETE' ORDER BY 1;

-- And the lineage it had: its inputs (the view and the table under it) and
-- where each target column came from, though the view is gone.
SELECT string_agg(d->>'name', ', ' ORDER BY d->>'name') AS inputs
  FROM pipeline.openlineage_events(:first_run) AS e(ev), jsonb_array_elements(ev->'inputs') AS d
 WHERE ev->>'eventType' = 'COMPLETE';
SELECT c.key AS target_column, i->>'name' AS dataset, i->>'field' AS field,
       i->'transformations'->0->>'type' AS type, i->'transformations'->0->>'subtype' AS subtype
  FROM pipeline.openlineage_events(:first_run) AS e(ev),
       jsonb_each(ev->'outputs'->0->'facets'->'columnLineage'->'fields') AS c,
       jsonb_array_elements(c.value->'inputFields') AS i
 WHERE ev->>'eventType' = 'COMPLETE' ORDER BY 1, 2, 3;
SELECT i->>'field' AS field, i->'transformations'->0->>'subtype' AS subtype
  FROM pipeline.openlineage_events(:first_run) AS e(ev),
       jsonb_array_elements(ev->'outputs'->0->'facets'->'columnLineage'->'dataset') AS i
 WHERE ev->>'eventType' = 'COMPLETE' ORDER BY 1, 2;
-- One record of the lineage per change: at create_pipeline, and when the
-- view was dropped (not for the comment, which changed no edge).
SELECT count(*) AS lineage_records FROM pipeline.lineage_snapshot;

-- A run after the change is described with the new columns.
CREATE VIEW olt.orders_v AS SELECT id, amount::numeric(10,2) AS amount, region FROM olt.orders;
SELECT pipeline.run('olt') AS second_run \gset
SELECT d->>'name' AS dataset, f->>'name' AS field, f->>'type' AS type, f->>'description' AS description
  FROM pipeline.openlineage_events(:second_run) AS e(ev),
       jsonb_array_elements(ev->'inputs') AS d,
       jsonb_array_elements(d->'facets'->'schema'->'fields') AS f
 WHERE ev->>'eventType' = 'COMPLETE' AND f->>'name' = 'amount'
 ORDER BY 1, 2;

-- Without pipeline.openlineage_url nothing goes to the outbox: no delivery to
-- watch, nothing dead to send again; an unknown run is an error.
SELECT count(*) AS deliveries FROM pipeline.openlineage_deliveries;
SELECT pipeline.openlineage_redeliver() AS revived;
SELECT pipeline.openlineage_redeliver(:second_run) AS revived;
SELECT pipeline.openlineage_redeliver(999999);

-- The records are the extension's: other roles read them through the events
-- of the runs they may see.
CREATE ROLE olt_reader;
SET ROLE olt_reader;
SELECT count(*) FROM pipeline.relation_schema;
SELECT count(*) FROM pipeline.lineage_snapshot;
RESET ROLE;
DROP ROLE olt_reader;

\c :regress_db
DROP DATABASE pipeline_openlineage_time WITH (FORCE);
