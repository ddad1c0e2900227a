-- 19_erasure: erasing a person on request. The owner of a relation declares
-- which column identifies a data subject (pipeline.declare_subject);
-- pipeline.subject_columns follows the declaration through lineage, to the
-- tokens a mask made of it; pipeline.forget deletes the subject's rows in
-- every relation that holds them and in the quarantine, in one transaction,
-- and keeps tombstones (keyed hashes) so that a later run does not load the
-- subject again: such rows are skipped and counted in rows_forgotten.
\set SHOW_CONTEXT never
-- After each refused call, its SQLSTATE.
\set sqlstate '\\echo SQLSTATE :LAST_ERROR_SQLSTATE'
-- It runs in a database of its own, so that its runs and audit entries do
-- not shift the ids and counts the other suites print.
\set regress_db :DBNAME
CREATE DATABASE pipeline_erasure;
\c pipeline_erasure
SET client_min_messages = notice;
CREATE EXTENSION pg_pipeline;
SELECT pipeline.create_key('default');
CREATE ROLE shop;
CREATE ROLE shop_outsider;
CREATE ROLE shop_admin IN ROLE pipeline_admin;
CREATE SCHEMA staging AUTHORIZATION shop;
CREATE SCHEMA core AUTHORIZATION shop;
CREATE SCHEMA mart AUTHORIZATION shop;
GRANT USAGE ON SCHEMA staging, core, mart TO shop_outsider;

-- A raw -> cleaned -> aggregated chain: e-mails are tokenized on the way to
-- core, and the mart adds up each token's orders.
SET ROLE shop;
CREATE TABLE staging.customers (id int PRIMARY KEY, email text, name text, seq bigint NOT NULL);
CREATE TABLE staging.orders (order_id int PRIMARY KEY, email text, amount numeric, seq bigint NOT NULL);
INSERT INTO staging.customers VALUES
  (1, 'ada@example.com', 'Ada', 1), (2, 'bob@example.org', 'Bob', 2), (3, 'eve@example.net', 'Eve', 3);
INSERT INTO staging.orders VALUES
  (10, 'ada@example.com', 5, 1), (11, 'bob@example.org', 7, 2), (12, 'ada@example.com', 3, 3),
  (13, 'ada@example.com', -1, 4), (14, 'eve@example.net', 2, 5);
SELECT pipeline.create_pipeline('customers', 'staging.customers', 'core.customers',
                                unique_key => '{id}', incremental_column => 'seq',
                                masks => '{"email": "tokenize"}') > 0 AS created;
SELECT pipeline.create_pipeline('orders', 'staging.orders', 'core.orders',
                                unique_key => '{order_id}', incremental_column => 'seq',
                                masks => '{"email": "tokenize"}') > 0 AS created;
SELECT pipeline.add_check('orders', 'positive', 'range', '{"column": "amount", "min": 0}',
                          'quarantine') > 0 AS added;
CREATE VIEW mart.revenue_v AS
SELECT email, sum(amount) AS total, count(*) AS orders FROM core.orders GROUP BY email;
SELECT pipeline.create_pipeline('revenue', 'mart.revenue_v', 'mart.revenue',
                                unique_key => '{email}', mode => 'full') > 0 AS created;
SELECT pipeline.run('customers') > 0 AND pipeline.run('orders') > 0
       AND pipeline.run('revenue') > 0 AS ran;
SELECT count(*) AS revenue_rows, bool_and(email LIKE 'tk1\_%') AS tokens FROM mart.revenue;
SELECT key, failed_checks, status FROM pipeline.quarantine ORDER BY quarantine_id;

-- Declaring --------------------------------------------------------------------
-- The relation's owner says which column identifies a subject; declaring
-- again replaces the subject. subject_columns follows the declarations
-- through lineage: the tokens in core and in the mart identify the same
-- customer (held_as token, with the key of the mask).
SELECT pipeline.declare_subject('staging.customers', 'email', 'client');
SELECT pipeline.declare_subject('staging.customers', 'email', 'customer');
SELECT pipeline.declare_subject('staging.orders', 'email', 'customer');
SELECT relation, column_name, subject, origin, source_relation, held_as, key
  FROM pipeline.subject_columns ORDER BY relation::text, column_name;
-- a column computed from it (an aggregate, a function) holds no value of it
SELECT count(*) AS derived_totals FROM pipeline.subject_columns WHERE column_name IN ('total', 'orders');

-- Errors, each leaving the declarations as they were.
-- NULL arguments: 22004
SELECT pipeline.declare_subject(NULL, 'email', 'customer');
:sqlstate
SELECT pipeline.declare_subject('staging.orders', 'email', NULL);
:sqlstate
-- a subject that is not a plain lower-case name: 22023
SELECT pipeline.declare_subject('staging.orders', 'email', 'Customer Id');
:sqlstate
-- no such column: 42703
SELECT pipeline.declare_subject('staging.orders', 'mail', 'customer');
:sqlstate
-- an index: 42809
SELECT pipeline.declare_subject('staging.orders_pkey', 'order_id', 'customer');
:sqlstate
-- not the owner (the refusal is audited): 42501
SET ROLE shop_outsider;
SELECT pipeline.declare_subject('staging.orders', 'email', 'customer');
:sqlstate
SELECT pipeline.undeclare_subject('staging.orders', 'email');
:sqlstate
-- what another role sees: the relations it may read
SELECT count(*) AS visible FROM pipeline.subject_columns;
SET ROLE shop;
SELECT count(*) AS declared FROM pipeline.subject_columns WHERE origin = 'declared';

-- Forgetting: who may -----------------------------------------------------------
-- The owner of the tables may not: a request erases rows of every owner's
-- relations. Superusers, the extension's owner and pipeline_admin may.
SELECT * FROM pipeline.forget('customer', 'ada@example.com');
:sqlstate
RESET ROLE;
-- NULL arguments: 22004; an empty value: 22023; a subject no column
-- identifies: 42704; a REPEATABLE READ transaction: 25000
SELECT * FROM pipeline.forget(NULL, 'ada@example.com');
:sqlstate
SELECT * FROM pipeline.forget('customer', NULL);
:sqlstate
SELECT * FROM pipeline.forget('customer', '');
:sqlstate
SELECT * FROM pipeline.forget('patient', 'ada@example.com');
:sqlstate
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT * FROM pipeline.forget('customer', 'ada@example.com');
:sqlstate
ROLLBACK;

-- A dry run counts what would be erased, in each relation, and erases
-- nothing: the tokens in core and the mart are matched too.
SET ROLE shop_admin;
SELECT * FROM pipeline.forget('customer', 'ada@example.com', dry_run => true);
RESET ROLE;
SELECT (SELECT count(*) FROM staging.orders) AS staged_orders,
       (SELECT count(*) FROM pipeline.erasure_tombstone) AS tombstones;

-- The erasure: every relation that holds Ada, and her quarantined order.
-- A member of pipeline_admin may, though it may not read the tables.
SET ROLE shop_admin;
SELECT * FROM pipeline.forget('customer', 'ada@example.com');
RESET ROLE;
SELECT (SELECT count(*) FROM staging.customers WHERE email = 'ada@example.com') AS staged,
       (SELECT count(*) FROM staging.orders WHERE email = 'ada@example.com') AS staged_orders,
       (SELECT count(*) FROM core.customers) AS customers,
       (SELECT count(*) FROM core.orders) AS orders,
       (SELECT count(*) FROM mart.revenue) AS revenue_rows,
       (SELECT count(*) FROM pipeline.quarantine) AS quarantined;
-- the others are still there
SELECT name FROM core.customers ORDER BY id;
-- forgetting again finds nothing
SELECT * FROM pipeline.forget('customer', 'ada@example.com');

-- The requests, with the keyed hash of the value (never the value), its
-- status and what each relation gave up.
SELECT request_id, subject, length(value_hash) AS hash_length, status, relations, rows_erased,
       requested_by
  FROM pipeline.erasure_requests ORDER BY request_id;
SELECT count(DISTINCT value_hash) AS one_hash_per_value FROM pipeline.erasure_requests;
-- only those who may read every pipeline see them
SET ROLE shop;
SELECT count(*) AS requests_seen FROM pipeline.erasure_requests;
RESET ROLE;

-- Audited: the request and each relation erased name the request and the
-- hash; no audit entry, nor anything else recorded, holds the value.
SELECT action, object_type, object_name, outcome,
       config_after->'request_id' AS request, config_after->'rows_erased' AS rows_erased
  FROM pipeline.audit_log WHERE action IN ('forget', 'declare_subject', 'undeclare_subject')
 ORDER BY seq;
SELECT count(*) AS entries_with_the_value FROM pipeline.audit_log
 WHERE config_after::text LIKE '%ada@%' OR config_before::text LIKE '%ada@%'
    OR details::text LIKE '%ada@%';
SELECT count(*) AS requests_with_the_value FROM pipeline.erasure_request WHERE relations::text LIKE '%ada@%';

-- Tombstones: a late staging row carrying the forgotten value is skipped
-- inside the load statement, counted in rows_forgotten (with a WARNING:
-- it is still in the source), and never loaded. The statement has the
-- gate (a pipeline whose source holds no forgotten subject does not: see
-- undeclare_subject below).
SET ROLE shop;
INSERT INTO staging.orders VALUES (15, 'ada@example.com', 9, 6), (16, 'bob@example.org', 1, 7);
SELECT bool_or(e LIKE '%pipeline._unforgotten(ARRAY[s.email::pg_catalog.text]%') AS gated
  FROM pipeline.explain('orders') AS e;
SELECT pipeline.run('orders') > 0 AS ran;
SELECT rows_read, rows_inserted, rows_quarantined, rows_rejected, rows_forgotten
  FROM pipeline.runs WHERE pipeline_name = 'orders' ORDER BY run_id DESC LIMIT 1;
SELECT order_id FROM core.orders ORDER BY 1;
SELECT count(*) AS forgotten_in_quarantine FROM pipeline.quarantine;
-- the downstream mart's source holds tokens of the forgotten value: gated too
SELECT bool_or(e LIKE '%pipeline._unforgotten(%') AS gated FROM pipeline.explain('revenue') AS e;
SELECT pipeline.run('revenue') > 0 AS ran;
SELECT count(*) AS revenue_rows FROM mart.revenue;
-- a reload (reset) skips it again
SELECT pipeline.reset('orders') IS NOT NULL AS reset;
SELECT pipeline.run('orders') > 0 AS ran;
SELECT rows_read, rows_inserted + rows_updated + rows_unchanged AS loaded, rows_quarantined,
       rows_forgotten
  FROM pipeline.runs WHERE pipeline_name = 'orders' ORDER BY run_id DESC LIMIT 1;
-- forget again erases the late row from staging
RESET ROLE;
SELECT * FROM pipeline.forget('customer', 'ada@example.com') WHERE rows_erased > 0;
SELECT count(*) AS staged FROM staging.orders WHERE email = 'ada@example.com';

-- The gate is for the load statement only.
SELECT pipeline._unforgotten(ARRAY['ada@example.com'], NULL);
:sqlstate

-- Undeclaring stops following the column; tombstones stay.
SET ROLE shop;
SELECT pipeline.undeclare_subject('staging.customers', 'email') AS undeclared;
SELECT pipeline.undeclare_subject('staging.customers', 'email') AS undeclared_again;
SELECT DISTINCT relation::text FROM pipeline.subject_columns ORDER BY 1;
SELECT bool_or(e LIKE '%pipeline._unforgotten(%') AS gated FROM pipeline.explain('customers') AS e;
-- a relation renamed keeps its declaration
ALTER TABLE staging.orders RENAME TO orders_raw;
SELECT relation, column_name, subject FROM pipeline.subject_columns WHERE origin = 'declared';
RESET ROLE;

\c :regress_db
DROP DATABASE pipeline_erasure WITH (FORCE);
DROP ROLE shop, shop_outsider, shop_admin;
