-- 18_masks: masks at load. A pipeline's masks option says what the load
-- writes instead of a column's values: a token (keyed HMAC-SHA-256, the same
-- for the same value, so tokens join across tables), a hash with a secret
-- pepper, a partial value, NULL, a date cut to its month or year, a number
-- cut to a bucket. The raw value never reaches the target.
\set SHOW_CONTEXT never
\set regress_db :DBNAME
CREATE DATABASE pipeline_masks;
\c pipeline_masks
SET client_min_messages = notice;
CREATE EXTENSION pg_pipeline;
CREATE SCHEMA hr;
CREATE ROLE hr_clerk;

-- Keys: made and rotated by superusers and members of pipeline_admin, 32
-- random bytes per version, shown without their secret.
SELECT pipeline.create_key('default');
SELECT pipeline.create_key('crm');
SELECT name, version, current FROM pipeline.mask_keys ORDER BY name, version;
SELECT pipeline.create_key('crm');
SELECT pipeline.create_key('Not OK');
SELECT pipeline.create_key(NULL);
SELECT pipeline.rotate_key('nokey');
SET ROLE hr_clerk;
SELECT pipeline.create_key('mine');
SELECT count(*) FROM pipeline.mask_key;
SELECT name FROM pipeline.mask_keys ORDER BY 1;
RESET ROLE;

CREATE TABLE hr.people (id int PRIMARY KEY, email text, ssn text, phone text, notes text,
                        birth_date date, age int, seq bigint NOT NULL);
CREATE INDEX ON hr.people (seq);
INSERT INTO hr.people VALUES
  (1, 'ada@example.com', '123-45-6789', '+44 20 7946 0958', 'allergic to nuts', '1990-05-17', 34, 1),
  (2, 'bob@example.org', '234-56-7890', '555-010-0199',     NULL,               '1985-12-01', 41, 2),
  (3, 'ada@example.com', '345-67-8901', '12',               'ok',               '2001-01-31', 23, 3);

-- Bad masks are refused at registration, and nothing is created.
SELECT pipeline.create_pipeline('hr', 'hr.people', 'hr.people_safe', unique_key => '{id}',
                                incremental_column => 'seq', masks => '["email"]');
SELECT pipeline.create_pipeline('hr', 'hr.people', 'hr.people_safe', unique_key => '{id}',
                                incremental_column => 'seq', masks => '{"email": "scramble"}');
SELECT pipeline.create_pipeline('hr', 'hr.people', 'hr.people_safe', unique_key => '{id}',
                                incremental_column => 'seq', masks => '{"email": {"method": "partial", "keep": 3}}');
SELECT pipeline.create_pipeline('hr', 'hr.people', 'hr.people_safe', unique_key => '{id}',
                                incremental_column => 'seq', masks => '{"emial": "tokenize"}');
SELECT pipeline.create_pipeline('hr', 'hr.people', 'hr.people_safe', unique_key => '{id}',
                                incremental_column => 'seq', masks => '{"email": {"method": "tokenize", "key": "nokey"}}');
SELECT pipeline.create_pipeline('hr', 'hr.people', 'hr.people_safe', unique_key => '{id}',
                                incremental_column => 'seq', masks => '{"seq": "null"}');
SELECT pipeline.create_pipeline('hr', 'hr.people', 'hr.people_safe', unique_key => '{id}',
                                incremental_column => 'seq', masks => '{"id": "null"}');
SELECT pipeline.create_pipeline('hr', 'hr.people', 'hr.people_safe', unique_key => '{id}',
                                incremental_column => 'seq', masks => '{"email": "month"}');
SELECT pipeline.create_pipeline('hr', 'hr.people', 'hr.people_safe', unique_key => '{id}',
                                incremental_column => 'seq', masks => '{"age": {"method": "bucket", "width": 0}}');
SELECT count(*) AS pipelines, to_regclass('hr.people_safe') AS target FROM pipeline.pipelines;

-- A pipeline with every mask. The target is created with text for the
-- columns that get tokens, hashes and partial values.
SELECT pipeline.create_pipeline('hr', 'hr.people', 'hr.people_safe', unique_key => '{id}',
                                incremental_column => 'seq',
                                masks => '{"email": "tokenize", "ssn": {"method": "hash", "key": "crm"},
                                           "phone": "partial", "notes": "null",
                                           "birth_date": "month", "age": {"method": "bucket", "width": 10}}') > 0 AS created;
\d hr.people_safe
SELECT pipeline.config_of('hr')->'masks' AS masks;
-- the statement names each mask's key and version, never its secret
SELECT bool_or(position('_mask_token(s.email::pg_catalog.text, ''default'', 1)' IN e) > 0) AS tokenized,
       bool_or(position('_mask_hash(s.ssn::pg_catalog.text, ''crm'', 1)' IN e) > 0) AS hashed,
       bool_or(e LIKE '%pipeline.mask_key%') AS reads_secrets
  FROM pipeline.explain('hr') AS e;
SELECT pipeline.run('hr') > 0 AS ran;
SELECT id, left(email, 4) AS token_version, length(email) AS token_length,
       left(ssn, 3) AS hash_version, length(ssn) AS hash_length, phone, notes, birth_date, age
  FROM hr.people_safe ORDER BY id;
-- the same value gives the same token; no raw value reached the target
SELECT count(DISTINCT email) AS distinct_tokens FROM hr.people_safe;
SELECT count(*) AS raw_values FROM hr.people_safe p JOIN hr.people r USING (id)
 WHERE p.email = r.email OR p.ssn = r.ssn OR p.phone = r.phone OR p.notes = r.notes;

-- Tokens join across tables: another pipeline tokenizes the same e-mails
-- with the same key.
CREATE TABLE hr.orders (order_id int PRIMARY KEY, email text, amount numeric);
INSERT INTO hr.orders VALUES (10, 'ada@example.com', 5), (11, 'bob@example.org', 7), (12, 'eve@example.net', 1);
SELECT pipeline.create_pipeline('hr_orders', 'hr.orders', 'hr.orders_safe', unique_key => '{order_id}',
                                mode => 'full', masks => '{"email": "tokenize"}') > 0 AS created;
SELECT pipeline.run('hr_orders') > 0 AS ran;
SELECT o.order_id, p.id AS person FROM hr.orders_safe o LEFT JOIN hr.people_safe p USING (email)
 ORDER BY 1, 2;

-- A key column may be tokenized: its tokens are the target's keys.
CREATE TABLE hr.by_email (email text PRIMARY KEY, visits int);
INSERT INTO hr.by_email VALUES ('ada@example.com', 3), ('bob@example.org', 1);
SELECT pipeline.create_pipeline('hr_visits', 'hr.by_email', 'hr.visits_safe', unique_key => '{email}',
                                mode => 'full', masks => '{"email": "tokenize"}') > 0 AS created;
SELECT pipeline.run('hr_visits') > 0 AS ran;
DELETE FROM hr.by_email WHERE email = 'bob@example.org';
SELECT pipeline.run('hr_visits') > 0 AS ran;
SELECT count(*) AS rows, bool_and(email LIKE 'tk1\_%') AS all_tokens FROM hr.visits_safe;
SELECT rows_read, rows_inserted, rows_deleted FROM pipeline.runs WHERE pipeline_name = 'hr_visits' ORDER BY run_id;

-- Rotation: runs use the new version from then on; its tokens differ and
-- say their version. Reloading (reset) re-tokenizes every row.
SELECT pipeline.rotate_key('default');
INSERT INTO hr.people VALUES (4, 'ada@example.com', '456-78-9012', '555-010-0142', NULL, '1970-07-07', 55, 4);
SELECT pipeline.run('hr') > 0 AS ran;
SELECT id, left(email, 4) AS token_version FROM hr.people_safe ORDER BY id;
SELECT count(DISTINCT email) FILTER (WHERE id IN (1, 4)) AS tokens_of_ada FROM hr.people_safe;
SELECT pipeline.reset('hr') IS NOT NULL AS reset;
SELECT pipeline.run('hr') > 0 AS ran;
SELECT string_agg(DISTINCT left(email, 4), ',') AS token_versions FROM hr.people_safe;

-- The masking functions work only inside a run's load: nobody computes a
-- token with a pipeline's key by calling them.
SELECT pipeline._mask_token('ada@example.com', 'default', 1);
SELECT pipeline._mask_partial('ada@example.com', 1, 2) AS email, pipeline._mask_partial('+44 20 7946 0958', 3, 2) AS phone;
-- partial keeps characters, not bytes; a value no longer than what it keeps
-- becomes ***.
SELECT pipeline._mask_partial('Zoë Ångström', 2, 2) AS name, pipeline._mask_partial('abcde', 2, 2) AS five,
       pipeline._mask_partial('abcd', 2, 2) AS four, pipeline._mask_partial('Zoë', 1, 2) AS three;
-- keep counts are those of a mask, 0 to 100 (22023)
SELECT pipeline._mask_partial('own_merge', -1, -1);
SELECT pipeline._mask_partial('own_merge', 2147483647, 2147483647);

-- alter_pipeline changes the masks; {} removes them.
SELECT pipeline.alter_pipeline('hr', masks => '{"email": "tokenize"}') > 0 AS altered;
SELECT pipeline.config_of('hr')->'masks' AS masks;
SELECT pipeline.alter_pipeline('hr', masks => '{"ssn": "month"}');
SELECT pipeline.alter_pipeline('hr_orders', masks => '{}') > 0 AS altered;
SELECT pipeline.config_of('hr_orders') ? 'masks' AS has_masks;

-- pii_columns says which derived columns a pipeline masks on the way: they
-- hold pseudonyms, still personal data, so they stay listed.
SELECT pipeline.classify('hr.people', 'email', 'pii.email'),
       pipeline.classify('hr.people', 'phone', 'pii.phone');
SELECT relation, column_name, origin, masked FROM pipeline.pii_columns ORDER BY 1, 2;

-- Keys and masks are audited.
SELECT action, object_type, object_name, outcome, config_after
  FROM pipeline.audit_log WHERE object_type = 'key' ORDER BY seq;

\c :regress_db
DROP DATABASE pipeline_masks WITH (FORCE);
DROP ROLE hr_clerk;
