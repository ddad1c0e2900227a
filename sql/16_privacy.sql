-- 16_privacy: knowing where personal data is. The owner of a relation
-- declares the class of its columns (pipeline.classify); pipeline.pii_columns
-- follows them through column lineage to every column derived from them;
-- pipeline.suggest_pii samples values and says which columns look like
-- personal data; OpenLineage events tag those columns.
\set SHOW_CONTEXT never
\set regress_db :DBNAME
CREATE DATABASE pipeline_privacy;
\c pipeline_privacy
SET client_min_messages = notice;
CREATE EXTENSION pg_pipeline;
CREATE SCHEMA crm;
CREATE ROLE crm_owner;
CREATE ROLE crm_outsider;
GRANT USAGE, CREATE ON SCHEMA crm TO crm_owner;
GRANT USAGE ON SCHEMA crm TO crm_outsider;
SET ROLE crm_owner;
CREATE TABLE crm.customers (id int PRIMARY KEY, email text, phone text, status text,
                            card text, iban text, ssn text, last_ip inet, note text, seq bigint);
CREATE INDEX ON crm.customers (seq);
INSERT INTO crm.customers VALUES
  (1, 'ada@example.com',   '+44 20 7946 0958', 'new', '4111 1111 1111 1111', 'GB82 WEST 1234 5698 7654 32', '123-45-6789', '192.0.2.1',   'likes tea', 1),
  (2, 'bob@example.org',   '(555) 010-0199',   'vip', '5500-0000-0000-0004', 'DE89370400440532013000',      '234-56-7890', '2001:db8::1', 'n/a',       2),
  (3, 'carol@example.net', '555.010.0142',     'new', '4111 1111 1111 1112', 'GB00 WEST 1234 5698 7654 32', '000-12-3456', '198.51.100.7', NULL,       3),
  (4, NULL,                '12345',            'new', NULL,                  NULL,                          NULL,          NULL,          'ok',       4);
-- a view that derives columns from the personal ones, one only as a condition
CREATE VIEW crm.customers_v AS
SELECT id, lower(email) AS email, phone, CASE WHEN status = 'vip' THEN 'gold' ELSE 'plain' END AS tier, seq
  FROM crm.customers;
SELECT pipeline.create_pipeline('crm', 'crm.customers_v', 'crm.customers_clean',
                                unique_key => '{id}', incremental_column => 'seq') > 0 AS created;

-- The classes: a documented list, and custom.<name> for one's own.
SELECT class, description FROM pipeline.pii_classes() ORDER BY class;

-- Declaring: the owner of the relation classifies a column; declaring again
-- replaces the class.
SELECT pipeline.classify('crm.customers', 'email', 'pii.email');
SELECT pipeline.classify('crm.customers', 'phone', 'pii.name');
SELECT pipeline.classify('crm.customers', 'phone', 'pii.phone');
SELECT pipeline.classify('crm.customers', 'status', 'custom.customer_tier');
SELECT relation, column_name, class FROM pipeline.pii_columns WHERE origin = 'declared' ORDER BY 1, 2;

-- Errors, each leaving the classifications as they were.
SELECT pipeline.classify(NULL, 'email', 'pii.email');
SELECT pipeline.classify('crm.customers', NULL, 'pii.email');
SELECT pipeline.classify('crm.customers', 'email', NULL);
SELECT pipeline.classify('crm.customers', 'email', 'pii.emial');
SELECT pipeline.classify('crm.customers', 'email', 'custom.Loyalty ID');
SELECT pipeline.classify('crm.customers', 'mail', 'pii.email');
SELECT pipeline.classify('crm.customers_seq_idx', 'seq', 'pii.email');
RESET ROLE;
CREATE SEQUENCE crm.counter;
SET ROLE crm_owner;
SELECT pipeline.classify('crm.counter', 'last_value', 'pii.email');
-- a temporary table (its schema's name differs by session: SQLSTATE only)
CREATE TEMPORARY TABLE crm_scratch (email text);
\set VERBOSITY sqlstate
SELECT pipeline.classify('crm_scratch', 'email', 'pii.email');
SELECT pipeline.declare_subject('crm_scratch', 'email', 'customer');
\set VERBOSITY default
DROP TABLE crm_scratch;
SET ROLE crm_outsider;
SELECT pipeline.classify('crm.customers', 'note', 'sensitive');
SELECT pipeline.unclassify('crm.customers', 'email');
SET ROLE crm_owner;
SELECT relation, column_name, class FROM pipeline.pii_columns WHERE origin = 'declared' ORDER BY 1, 2;

-- Where the personal data is: the declared columns, and through the view and
-- the pipeline every column derived from them. tier only tests status (a
-- CASE condition): it holds no status value.
SELECT relation, column_name, class, origin, source_relation, source_column, masked
  FROM pipeline.pii_columns ORDER BY relation::text, column_name, class;

-- The lineage graph draws a relation that holds personal data red, its
-- label naming those columns.
SELECT pipeline.lineage_graph('dot', 'crm.customers_clean');
SELECT pipeline.lineage_graph('mermaid', 'crm.customers_clean');

-- A role that may not read a relation sees nothing of it, in the graph either.
SET ROLE crm_outsider;
SELECT count(*) AS visible FROM pipeline.pii_columns;
SELECT pipeline.lineage_graph('dot', 'crm.customers_clean') ~ 'PII' AS marks_pii;
SET ROLE crm_owner;

-- A classified relation renamed keeps its classes.
ALTER TABLE crm.customers RENAME TO clients;
SELECT relation, column_name, class FROM pipeline.pii_columns WHERE origin = 'declared' ORDER BY 1, 2;
ALTER TABLE crm.clients RENAME TO customers;

-- OpenLineage events tag the columns: on the source as declared, on the
-- target through lineage.
SELECT pipeline.run('crm') AS crm_run \gset
SELECT d->>'name' AS dataset, t->>'field' AS field, t->>'value' AS class, t->>'source' AS source
  FROM pipeline.openlineage_events(:crm_run) AS e(ev),
       jsonb_array_elements((ev->'inputs') || (ev->'outputs')) AS d,
       jsonb_array_elements(d->'facets'->'tags'->'tags') AS t
 WHERE ev->>'eventType' = 'COMPLETE' ORDER BY 1, 2, 3;

-- Unclassifying: true when a class was removed, false when there was none.
SELECT pipeline.unclassify('crm.customers', 'status');
SELECT pipeline.unclassify('crm.customers', 'status');

-- Every change is in the audit log; a refusal too.
SELECT action, object_type, object_name, outcome, config_before, config_after
  FROM pipeline.audit_log WHERE object_type = 'column' ORDER BY seq;

-- Suggestions: each text or network column's most frequent kind of value
-- and the share of its non-null values of that kind. The card of row 3
-- fails the Luhn check, the IBAN of row 3 its checksum, the SSN of row 3
-- has area 000, the phone of row 4 has no separator: none of them counts.
SELECT column_name, suggested_class, match_rate FROM pipeline.suggest_pii('crm.customers');
SELECT column_name, suggested_class, match_rate FROM pipeline.suggest_pii('crm.customers', 1);
SELECT pipeline.suggest_pii(NULL);
SELECT pipeline.suggest_pii('crm.customers', 0);
SET ROLE crm_outsider;
SELECT pipeline.suggest_pii('crm.customers');
RESET ROLE;

-- suggest_pii reads a view as the view's owner, restricted, never as its
-- caller: a function the view calls sees the owner, even for a superuser.
SET ROLE crm_owner;
CREATE FUNCTION crm.who(v text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    RAISE NOTICE 'sampled as %, search_path %', current_user,
        (SELECT setting FROM pg_settings WHERE name = 'search_path');
    RETURN v;
END $$;
CREATE VIEW crm.watched AS SELECT crm.who(email) AS email FROM crm.customers WHERE id = 1;
RESET ROLE;
SELECT column_name, suggested_class FROM pipeline.suggest_pii('crm.watched');

-- What is recorded of a failed run holds no personal value: its record,
-- alert, audit entry and OpenLineage events. (The caller still gets the
-- error as PostgreSQL raised it.) A data error quotes the value; an
-- integrity error's detail lists the key.
CREATE TABLE crm.signups (id int PRIMARY KEY, email text, ssn text);
INSERT INTO crm.signups VALUES (1, 'zed@example.com', 'SSN-999-88-7777'),
                               (2, 'zed@example.com', '123');
SELECT pipeline.classify('crm.signups', 'ssn', 'pii.national_id'),
       pipeline.classify('crm.signups', 'email', 'pii.email');
CREATE VIEW crm.signups_v AS SELECT id, email, ssn::int AS ssn_number FROM crm.signups;
SELECT pipeline.create_pipeline('crm_cast', 'crm.signups_v', 'crm.signups_clean',
                                unique_key => '{id}', mode => 'full') > 0 AS created;
CREATE TABLE crm.signups_dst (id int PRIMARY KEY, email text UNIQUE, ssn text);
SELECT pipeline.create_pipeline('crm_dupes', 'crm.signups', 'crm.signups_dst',
                                unique_key => '{id}', mode => 'full') > 0 AS created;
\set VERBOSITY terse
SELECT pipeline.run('crm_cast');
SELECT pipeline.run('crm_dupes');
\set VERBOSITY default
SELECT pipeline_name, error_sqlstate, error_message, error_detail FROM pipeline.runs
 WHERE status = 'failed' ORDER BY run_id;
SELECT (SELECT count(*) FROM pipeline.runs r
         WHERE concat(r.error_message, r.error_detail) ~ 'SSN-999|zed@') AS in_runs,
       (SELECT count(*) FROM pipeline.alerts a WHERE a.message ~ 'SSN-999|zed@') AS in_alerts,
       (SELECT count(*) FROM pipeline.audit_log l WHERE l.details::text ~ 'SSN-999|zed@') AS in_audit,
       (SELECT count(*) FROM pipeline.runs r, pipeline.openlineage_events(r.run_id) AS e
         WHERE e::text ~ 'SSN-999|zed@') AS in_openlineage;
-- A pipeline without personal data keeps the value in its record.
CREATE TABLE crm.codes (id int PRIMARY KEY, code text);
INSERT INTO crm.codes VALUES (1, 'X-1');
CREATE VIEW crm.codes_v AS SELECT id, code::int AS code FROM crm.codes;
SELECT pipeline.create_pipeline('crm_codes', 'crm.codes_v', 'crm.codes_clean',
                                unique_key => '{id}', mode => 'full') > 0 AS created;
\set VERBOSITY terse
SELECT pipeline.run('crm_codes');
\set VERBOSITY default
SELECT error_message FROM pipeline.runs WHERE pipeline_name = 'crm_codes';

\c :regress_db
DROP DATABASE pipeline_privacy WITH (FORCE);
DROP ROLE crm_owner;
DROP ROLE crm_outsider;
