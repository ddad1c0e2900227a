\ir common/preamble.sql
-- test/pgtap/erasure.sql
--
-- pipeline.forget removes a subject everywhere lineage says it is: a raw
-- staging table (declared), a cleaned table that holds tokens of it (a
-- tokenize mask on the way, before and after a key rotation), an
-- aggregated table grouped by those tokens (through a view, full mode), a
-- copy of the cleaned table, and the quarantine. Afterwards nothing brings
-- it back: a replay of the quarantine with a row edited to carry the
-- value, a late staging row, a reload; each such row is skipped inside the
-- load statement and counted in rows_forgotten, and the counts still add
-- up. Nothing recorded holds the value.
SELECT plan(31);

SELECT pipeline.create_key('default') AS key_version \gset
CREATE SCHEMA stg;
CREATE SCHEMA core;
CREATE SCHEMA mart;
CREATE TABLE stg.orders (order_id int PRIMARY KEY, email text, amount numeric, seq bigint NOT NULL);
CREATE INDEX ON stg.orders (seq);
INSERT INTO stg.orders VALUES
  (1, 'ada@example.com', 10, 1), (2, 'bob@example.org', 20, 2), (3, 'ada@example.com', 5, 3),
  (4, 'eve@example.net', -1, 4), (5, 'ada@example.com', -2, 5), (6, 'bob@example.org', -3, 6),
  (7, 'eve@example.net', 8, 7);

-- raw -> cleaned (tokens) -> aggregated by token, and a copy of the cleaned
SELECT pipeline.create_pipeline('clean', 'stg.orders', 'core.orders', unique_key => '{order_id}',
       incremental_column => 'seq', masks => '{"email": "tokenize"}') AS clean_id \gset
SELECT pipeline.add_check('clean', 'positive', 'range', '{"column": "amount", "min": 0}', 'quarantine')
    AS check_id \gset
CREATE VIEW mart.by_customer_v AS
SELECT email, sum(amount) AS revenue, count(*) AS orders FROM core.orders GROUP BY email;
SELECT pipeline.create_pipeline('agg', 'mart.by_customer_v', 'mart.by_customer',
       unique_key => '{email}', mode => 'full') AS agg_id \gset
SELECT pipeline.create_pipeline('copy', 'core.orders', 'mart.orders_copy', unique_key => '{order_id}',
       incremental_column => 'seq') AS copy_id \gset
SELECT pipeline.declare_subject('stg.orders', 'email', 'customer') AS declared \gset

SELECT pipeline.run('clean') AS first_run \gset
-- a rotation between loads: Ada's rows hold tokens of two versions
SELECT pipeline.rotate_key('default') AS key_version \gset
INSERT INTO stg.orders VALUES (8, 'ada@example.com', 4, 8), (9, 'bob@example.org', 6, 9);
SELECT pipeline.run('clean') AS second_run \gset
SELECT pipeline.run('agg') AS agg_run \gset
SELECT pipeline.run('copy') AS copy_run \gset

SELECT set_eq($$SELECT relation::text, held_as FROM pipeline.subject_columns$$,
              $$VALUES ('stg.orders', 'value'), ('core.orders', 'token'), ('mart.by_customer_v', 'token'),
                       ('mart.by_customer', 'token'), ('mart.orders_copy', 'token')$$,
              'lineage says where the subject is: declared in staging, tokens downstream');
SELECT is((SELECT count(DISTINCT left(email, 4)) FROM core.orders WHERE order_id IN (1, 3, 8)), 2::bigint,
          'Ada''s tokens are of two key versions');
SELECT is((SELECT count(*) FROM pipeline.quarantine WHERE status = 'open'), 3::bigint,
          'three rows in quarantine, one of them Ada''s');

-- the dry run counts what the erasure then removes
SELECT results_eq($$SELECT relation, rows_erased FROM pipeline.forget('customer', 'ada@example.com', true)$$,
                  $$VALUES ('core.orders', 3::bigint), ('mart.by_customer', 2::bigint),
                           ('mart.orders_copy', 3::bigint), ('stg.orders', 4::bigint),
                           ('pipeline.quarantine', 1::bigint)$$,
                  'a dry run counts Ada''s rows in every relation, tokens of both versions matched');
SELECT is((SELECT count(*) FROM stg.orders), 9::bigint, 'a dry run erases nothing');
SELECT results_eq($$SELECT relation, rows_erased FROM pipeline.forget('customer', 'ada@example.com')$$,
                  $$VALUES ('core.orders', 3::bigint), ('mart.by_customer', 2::bigint),
                           ('mart.orders_copy', 3::bigint), ('stg.orders', 4::bigint),
                           ('pipeline.quarantine', 1::bigint)$$,
                  'forget erases what the dry run counted');

SELECT is((SELECT count(*) FROM stg.orders WHERE email = 'ada@example.com'), 0::bigint, 'gone from staging');
SELECT set_eq($$SELECT order_id FROM core.orders$$, ARRAY[2, 7, 9], 'gone from the cleaned table, the others stay');
SELECT set_eq($$SELECT order_id FROM mart.orders_copy$$, ARRAY[2, 7, 9], 'gone from the copy');
SELECT is((SELECT count(*) FROM mart.by_customer), 3::bigint,
          'gone from the aggregate (a group per token version): Bob''s two and Eve''s remain');
SELECT is((SELECT count(*) FROM pipeline.quarantine WHERE "row"->>'email' = 'ada@example.com'), 0::bigint,
          'gone from the quarantine');
SELECT is((SELECT count(*) FROM pipeline.quarantine WHERE status = 'open'), 2::bigint,
          'the others'' quarantined rows stay');

-- A replay: Eve's row is fixed, Bob's is edited to carry Ada's e-mail.
UPDATE pipeline.quarantine SET "row" = jsonb_set("row", '{amount}', '4') WHERE key = '{"order_id": 4}';
UPDATE pipeline.quarantine SET "row" = jsonb_set(jsonb_set("row", '{amount}', '3'), '{email}', '"ada@example.com"')
 WHERE key = '{"order_id": 6}';
SELECT pipeline.replay_quarantine('clean') AS replay \gset
SELECT is((SELECT format('read=%s ins=%s quar=%s forgotten=%s', rows_read, rows_inserted, rows_quarantined,
                         rows_forgotten) FROM pipeline.runs WHERE run_id = :replay),
          'read=2 ins=1 quar=0 forgotten=1', 'the replay loads Eve''s row and skips the forgotten one, counted');
SELECT set_eq($$SELECT order_id FROM core.orders$$, ARRAY[2, 4, 7, 9], 'the replay did not resurrect Ada');
SELECT is((SELECT count(*) FROM pipeline.quarantine_row WHERE "row"->>'email' = 'ada@example.com'), 0::bigint,
          'the skipped quarantine row is erased, not kept as replayed');

-- A late staging row, after the replay.
INSERT INTO stg.orders VALUES (10, 'ada@example.com', 7, 10), (11, 'eve@example.net', 1, 11);
SELECT pipeline.run('clean') AS late \gset
SELECT is((SELECT format('read=%s ins=%s forgotten=%s', rows_read, rows_inserted, rows_forgotten)
             FROM pipeline.runs WHERE run_id = :late),
          'read=2 ins=1 forgotten=1', 'a late staging row of Ada is skipped and counted');
SELECT set_eq($$SELECT order_id FROM core.orders$$, ARRAY[2, 4, 7, 9, 11], 'and not loaded');
SELECT pipeline.run('copy') AS copy_run \gset
SELECT pipeline.run('agg') AS agg_run \gset
-- (the copy reads core incrementally: Eve's replayed row 4 is below its watermark)
SELECT set_eq($$SELECT order_id FROM mart.orders_copy$$, ARRAY[2, 7, 9, 11], 'the copy gets the others only');
SELECT is((SELECT count(*) FROM mart.by_customer), 4::bigint,
          'the aggregate has no row of Ada (Bob''s and Eve''s, two token versions each)');
SELECT ok((SELECT bool_or(e LIKE '%pipeline._unforgotten(%') FROM pipeline.explain('copy') AS e),
          'a pipeline reading tokens of the subject has the gate too');

-- A typed load from text staging: Ada's row, whose age does not convert,
-- is skipped before it is converted, so it never reaches the quarantine
-- (where its values would be kept again); Bob's goes there.
CREATE TABLE stg.signups (id int PRIMARY KEY, email text, age text, seq bigint NOT NULL);
SELECT pipeline.create_pipeline('signups', 'stg.signups', 'core.signups', unique_key => '{id}',
       incremental_column => 'seq', column_types => '{"age": "integer"}') AS signups_id \gset
SELECT pipeline.declare_subject('stg.signups', 'email', 'customer') AS declared \gset
INSERT INTO stg.signups VALUES (1, 'ada@example.com', 'forty', 1), (2, 'bob@example.org', 'x', 2),
                               (3, 'eve@example.net', '30', 3);
SELECT pipeline.run('signups') AS typed \gset
SELECT is((SELECT format('read=%s ins=%s quar=%s forgotten=%s', rows_read, rows_inserted, rows_quarantined,
                         rows_forgotten) FROM pipeline.runs WHERE run_id = :typed),
          'read=3 ins=1 quar=1 forgotten=1', 'a typed load skips the forgotten row before converting it');
SELECT set_eq($$SELECT "row"->>'email' FROM pipeline.quarantine WHERE pipeline = 'signups'$$,
              ARRAY['bob@example.org'], 'only the other row that does not convert is quarantined');

-- A reload reads every staged row again: still skipped.
SELECT pipeline.reset('clean') AS reset_to \gset
SELECT pipeline.run('clean') AS reload \gset
SELECT is((SELECT rows_forgotten FROM pipeline.runs WHERE run_id = :reload), 1::bigint,
          'a reload skips the late row again');
SELECT set_eq($$SELECT order_id FROM core.orders$$, ARRAY[2, 4, 7, 9, 11], 'nothing of Ada after the reload');

-- The counts add up for every run.
SELECT is((SELECT count(*) FROM pipeline.runs
            WHERE status = 'succeeded' AND pipeline_name IN ('clean', 'copy', 'signups')
              AND rows_read <> rows_inserted + rows_updated + rows_deleted + rows_unchanged
                               + rows_quarantined + rows_rejected + rows_forgotten),
          0::bigint, 'rows_read = inserted + updated + deleted + unchanged + quarantined + rejected + forgotten');

-- Forgetting again erases the late row from staging; nothing recorded holds the value.
SELECT results_eq($$SELECT relation, rows_erased FROM pipeline.forget('customer', 'ada@example.com')
                     WHERE rows_erased > 0$$,
                  $$VALUES ('stg.orders', 1::bigint), ('stg.signups', 1::bigint)$$,
                  'a second request erases the late rows');
SELECT is((SELECT count(*) FROM pipeline.audit_log
            WHERE concat(config_before, config_after, details) LIKE '%ada@example%'), 0::bigint,
          'no audit entry holds the value');
SELECT is((SELECT count(*) FROM pipeline.runs
            WHERE concat(error_message, error_detail) LIKE '%ada@example%'), 0::bigint,
          'no run record holds it');
SELECT is((SELECT count(*) FROM pipeline.erasure_tombstone
            WHERE position(convert_to('ada@example.com', 'UTF8') IN digest) > 0), 0::bigint,
          'tombstones are keyed hashes, not the value');
SELECT is((SELECT count(*) FROM pipeline.erasure_requests WHERE status = 'erased'), 2::bigint,
          'both requests are listed');
SELECT is((SELECT count(*) FROM pipeline.audit_log WHERE action = 'forget' AND object_type = 'relation'),
          7::bigint, 'one audit entry per relation erased, per request');

SELECT * FROM finish();
