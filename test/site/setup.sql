-- test/site/setup.sql: pipelines whose names need escaping in HTML, DOT,
-- SVG and Mermaid, with several runs each (one failing), a freshness limit,
-- a data check that quarantines rows, and a pipeline whose source view was
-- dropped, for the site test (run.sh).
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_pipeline;

CREATE SCHEMA "shop & <co>";
CREATE TABLE "shop & <co>"."orders <raw>" (id int PRIMARY KEY, amount numeric, note text, seq bigserial);
CREATE VIEW "shop & <co>"."clean'd ""orders""" AS
SELECT id, amount * 2 AS amount_x2, upper(note) AS note, seq FROM "shop & <co>"."orders <raw>";
SELECT pipeline.create_pipeline('<script>alert(1)</script> & "orders"',
       '"shop & <co>"."clean''d ""orders"""', '"shop & <co>"."orders > clean"',
       unique_key => ARRAY['id'], incremental_column => 'seq',
       description => 'Cleans <b>orders</b> & doubles "amounts" — it''s fine',
       freshness => '1 hour') > 0 AS created;

CREATE VIEW "shop & <co>".daily AS
SELECT amount_x2 > 10 AS big, count(*) AS orders, sum(amount_x2) AS total
  FROM "shop & <co>"."orders > clean" GROUP BY 1;
SELECT pipeline.create_pipeline('totals <by size>', '"shop & <co>".daily', '"shop & <co>".totals',
       unique_key => ARRAY['big'], mode => 'full') > 0 AS created;

-- a pipeline whose source fails at run time, then is dropped: a failed run,
-- and a missing relation in the lineage
CREATE VIEW "shop & <co>".broken AS SELECT id, 1 / (id - id) AS boom FROM "shop & <co>"."orders <raw>";
SELECT pipeline.create_pipeline('broken ''quote''', '"shop & <co>".broken', '"shop & <co>".broken_out',
       unique_key => ARRAY['id'], mode => 'full') > 0 AS created;

-- a data check whose name needs escaping, which quarantines a row
SELECT pipeline.add_check('<script>alert(1)</script> & "orders"', '<i>small</i> & "amounts"', 'range',
       '{"column": "amount_x2", "max": 30}', 'quarantine') > 0 AS added;

-- runs: three loads of growing size
INSERT INTO "shop & <co>"."orders <raw>" (id, amount, note)
SELECT g, g, 'n<' || g || '>' FROM generate_series(1, 5) g;
SELECT pipeline.run('<script>alert(1)</script> & "orders"') > 0 AS ran;
SELECT pipeline.run('totals <by size>') > 0 AS ran;
INSERT INTO "shop & <co>"."orders <raw>" (id, amount, note)
SELECT g, g, 'n&' || g FROM generate_series(6, 20) g;
SELECT pipeline.run('<script>alert(1)</script> & "orders"') > 0 AS ran;
SELECT pipeline.run('totals <by size>') > 0 AS ran;
UPDATE "shop & <co>"."orders <raw>" SET amount = amount + 1, seq = nextval(pg_get_serial_sequence('"shop & <co>"."orders <raw>"', 'seq')) WHERE id <= 8;
SELECT pipeline.run('<script>alert(1)</script> & "orders"') > 0 AS ran;
SELECT pipeline.run('totals <by size>') > 0 AS ran;
\set ON_ERROR_STOP 0
SELECT pipeline.run('broken ''quote''');
\set ON_ERROR_STOP 1
DROP VIEW "shop & <co>".broken;
