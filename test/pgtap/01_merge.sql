\ir common/preamble.sql
-- test/pgtap/01_merge.sql
--
-- Merge mode with hard deletes: the created target, exact target contents
-- and exact run counts after each run, duplicate keys in one window (latest
-- by the incremental column; ties: deleted row wins, then the remaining
-- columns in column order, greater wins, NULLs lose), NULL keys rejected,
-- NULL incremental values never read, NULL transitions in non-key columns,
-- watermark advancement, reset(), and unchanged rows left untouched (xmin).

SELECT plan(48);

CREATE FUNCTION watermark_of(text) RETURNS text LANGUAGE sql AS $$
  SELECT watermark FROM pipeline.pipelines WHERE name = $1 $$;

CREATE SCHEMA stg;
CREATE SCHEMA core;
CREATE TABLE stg.orders (
    id      integer,          -- the unique key (nullable here on purpose)
    seq     bigint,           -- the incremental column (nullable on purpose)
    amount  numeric,
    note    text,
    deleted boolean
);

SELECT ok(pipeline.create_pipeline('orders', 'stg.orders', 'core.orders',
          unique_key => '{id}', incremental_column => 'seq',
          delete_column => 'deleted') > 0,
          'create_pipeline returns an id');

-- the created target ----------------------------------------------------------
SELECT has_table('core', 'orders', 'the target is created');
SELECT columns_are('core', 'orders', ARRAY['id', 'seq', 'amount', 'note', 'deleted'],
                   'the target has the source''s columns');
SELECT col_is_pk('core', 'orders', ARRAY['id'], 'the target''s primary key is the unique key');
SELECT col_type_is('core', 'orders', 'seq', 'bigint', 'column types are copied');
SELECT ok(NOT EXISTS (SELECT 1 FROM pg_index i
                        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                       WHERE i.indrelid = 'core.orders'::regclass AND a.attname = 'seq'),
          'the target has no index on the incremental column yet: its first load builds it');
SELECT results_eq($$SELECT mode, unique_key::text COLLATE "default", incremental_column::text COLLATE "default", delete_column::text COLLATE "default",
                           soft_delete, active, watermark
                      FROM pipeline.pipelines WHERE name = 'orders'$$,
                  $$VALUES ('merge'::text, '{id}'::text, 'seq'::text, 'deleted'::text,
                            false, true, NULL::text)$$,
                  'pipelines shows the definition and a NULL watermark');

-- run 1: first load ----------------------------------------------------------
INSERT INTO stg.orders VALUES
    (1,    1,    10,   'a',       false),
    (2,    2,    20,   NULL,      false),
    (3,    3,    NULL, 'c',       NULL),   -- NULL delete flag: not deleted
    (NULL, 4,    99,   'nullkey', false),  -- rejected
    (4,    5,    40,   'd',       false),
    (4,    6,    41,   'd2',      false),  -- later seq wins
    (5,    7,    50,   'x',       false),
    (5,    7,    51,   'y',       false),  -- tie on seq: greater amount wins
    (6,    8,    60,   'e',       false),
    (6,    8,    60,   NULL,      false),  -- tie on seq and amount: NULL note loses
    (7,    9,    70,   'f',       false),
    (7,    9,    70,   'g',       true),   -- tie on seq: the deleted row wins
    (8,    NULL, 80,   'nullinc', false),  -- NULL incremental value: never read
    (9,    10,   NULL, NULL,      false);

SELECT pipeline.run('orders') AS r1 \gset

SELECT is(run_counts(:r1), 'succeeded read=13 ins=7 upd=0 del=0 unch=1 rej=1',
          'run 1 counts: 13 read, 7 inserted, the delete of an absent key unchanged, 1 rejected');
SELECT results_eq('SELECT * FROM core.orders ORDER BY id',
    $$VALUES (1, 1::bigint, 10::numeric, 'a'::text, false),
             (2, 2, 20, NULL, false),
             (3, 3, NULL, 'c', NULL),
             (4, 6, 41, 'd2', false),
             (5, 7, 51, 'y', false),
             (6, 8, 60, 'e', false),
             (9, 10, NULL, NULL, false)$$,
    'run 1: one row per key, latest wins, ties broken as documented');
SELECT is(watermark_of('orders'), '10', 'run 1 advances the watermark to the high-water mark');
SELECT ok(EXISTS (SELECT 1 FROM pg_index i
                    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                   WHERE i.indrelid = 'core.orders'::regclass AND a.attname = 'seq'),
          'run 1 built the index on the incremental column, after the data');
SELECT col_is_pk('core', 'orders', ARRAY['id'], 'the primary key is still the unique key');
SELECT results_eq(format('SELECT watermark_from, watermark_to, batches >= 0 FROM pipeline.runs WHERE run_id = %s', :r1),
                  $$VALUES (NULL::text, '10'::text, true)$$,
                  'run 1 records its window');
SELECT is((SELECT last_run_id FROM pipeline.pipelines WHERE name = 'orders'), :r1::bigint,
          'pipelines shows the last run');

CREATE TABLE snap1 AS SELECT id, xmin::text AS x FROM core.orders;

-- run 2: nothing new ---------------------------------------------------------
SELECT pipeline.run('orders') AS r2 \gset
SELECT is(run_counts(:r2), 'idle',
          'run 2 with nothing new reads nothing: an idle run, counted, not recorded');
SELECT is((SELECT idle_runs FROM pipeline.status WHERE name = 'orders'), 1::bigint,
          'run 2 is counted on its pipeline');
SELECT is(watermark_of('orders'), '10', 'run 2 keeps the watermark');
SELECT results_eq('SELECT id, xmin::text FROM core.orders ORDER BY id',
                  'SELECT id, x FROM snap1 ORDER BY id',
                  'run 2 rewrites no row');

-- run 3: updates, NULL transitions, deletes, duplicates ----------------------
INSERT INTO stg.orders VALUES
    (2,    11, 20,   'now',   false),  -- note NULL -> value: update
    (3,    12, 30,   'c',     NULL),   -- amount NULL -> value: update
    (4,    13, NULL, 'd2',    false),  -- amount value -> NULL: update
    (1,    14, 10,   'a',     true),   -- delete key 1
    (10,   15, 100,  'new',   false),
    (10,   16, 101,  'newer', false),  -- later wins: insert
    (5,    17, 51,   'y',     true),
    (5,    17, 52,   'z',     false),  -- tie: the deleted row wins: delete key 5
    (6,    18, 60,   'e',     true),
    (6,    19, 61,   'e2',    false),  -- later non-deleted row wins: update
    (7,    20, 70,   'back',  false),  -- key 7 was never loaded: insert
    (NULL, 21, 1,    'x',     true);   -- rejected

SELECT pipeline.run('orders') AS r3 \gset
SELECT is(run_counts(:r3), 'succeeded read=12 ins=2 upd=4 del=2 unch=0 rej=1',
          'run 3 counts: inserts, updates (NULL<->value), deletes, rejected');
SELECT results_eq('SELECT * FROM core.orders ORDER BY id',
    $$VALUES (2, 11::bigint, 20::numeric, 'now'::text, false),
             (3, 12, 30, 'c', NULL),
             (4, 13, NULL, 'd2', false),
             (6, 19, 61, 'e2', false),
             (7, 20, 70, 'back', false),
             (9, 10, NULL, NULL, false),
             (10, 16, 101, 'newer', false)$$,
    'run 3: target contents');
SELECT is(watermark_of('orders'), '21', 'run 3 advances the watermark');
SELECT results_eq(format('SELECT watermark_from, watermark_to FROM pipeline.runs WHERE run_id = %s', :r3),
                  $$VALUES ('10'::text, '21'::text)$$,
                  'run 3 records its window');
SELECT is((SELECT x FROM snap1 WHERE id = 9), (SELECT xmin::text FROM core.orders WHERE id = 9),
          'run 3 leaves the row it did not change untouched');
SELECT is((SELECT count(*)::int FROM core.orders o JOIN snap1 s USING (id)
            WHERE o.xmin::text = s.x AND o.id IN (2, 3, 4, 6)), 0,
          'run 3 rewrote the changed rows');

-- run 4: a delete for a key that is not in the target ------------------------
INSERT INTO stg.orders VALUES (1, 22, NULL, NULL, true);
SELECT pipeline.run('orders') AS r4 \gset
SELECT is(run_counts(:r4), 'succeeded read=1 ins=0 upd=0 del=0 unch=1 rej=0',
          'run 4: deleting an absent key is a no-op counted unchanged');
SELECT is((SELECT count(*)::int FROM core.orders), 7, 'run 4 changes nothing');

-- run 5: reset() re-reads everything; nothing is rewritten --------------------
CREATE TABLE snap4 AS SELECT id, xmin::text AS x FROM core.orders;
SELECT lives_ok($$SELECT pipeline.reset('orders')$$, 'reset(name)');
SELECT is(watermark_of('orders'), NULL, 'reset(name) clears the watermark');
SELECT pipeline.run('orders') AS r5 \gset
-- 26 rows with a seq; 2 rejected; keys 1..7, 9, 10 kept (9); 15 duplicates.
SELECT is(run_counts(:r5), 'succeeded read=26 ins=0 upd=0 del=0 unch=9 rej=2',
          'run 5 re-reads every row and finds every kept row unchanged (NULL->NULL included)');
SELECT results_eq('SELECT id, xmin::text FROM core.orders ORDER BY id',
                  'SELECT id, x FROM snap4 ORDER BY id',
                  'run 5 rewrites no row');
SELECT is(watermark_of('orders'), '22', 'run 5 restores the watermark');
SELECT is((SELECT count(*)::int FROM core.orders WHERE id = 8), 0,
          'a row with a NULL incremental value is never loaded');

-- reset to an explicit watermark ---------------------------------------------
SELECT lives_ok($$SELECT pipeline.reset('orders', '19')$$, 'reset(name, watermark)');
SELECT is(watermark_of('orders'), '19', 'reset stores the given watermark');
SELECT throws_ok($$SELECT pipeline.reset('orders', 'nineteen')$$, '22P02', NULL,
                 'reset with text that is not an integer fails with 22P02');
SELECT is(watermark_of('orders'), '19', 'a failed reset changes nothing');
SELECT pipeline.run('orders') AS r6 \gset
-- window (19, 22]: seq 20, 21, 22 -> key 7 unchanged, NULL key rejected, key 1 delete no-op
SELECT is(run_counts(:r6), 'succeeded read=3 ins=0 upd=0 del=0 unch=2 rej=1',
          'run 6 reads only the window after the reset watermark');

-- the watermark is committed with the data ----------------------------------
BEGIN;
INSERT INTO stg.orders VALUES (11, 23, 1, 'rolled back', false);
SELECT pipeline.run('orders') AS r7 \gset
ROLLBACK;
SELECT is((SELECT count(*)::int FROM pipeline.runs WHERE run_id = :r7), 0,
          'a run rolled back by its caller leaves no run record');
SELECT is(watermark_of('orders'), '22', 'a run rolled back by its caller leaves the watermark');
SELECT is((SELECT count(*)::int FROM core.orders WHERE id = 11), 0,
          'a run rolled back by its caller leaves the target');

-- explain shows the statements without running them -------------------------
SELECT ok((SELECT count(*) FROM pipeline.explain('orders')) >= 2,
          'explain returns a comment row and at least one statement');
SELECT ok((SELECT bool_or(s ~* 'merge') FROM pipeline.explain('orders') AS e(s)),
          'explain shows the MERGE');
-- six runs so far: five recorded, and run 2, which found nothing new, counted
SELECT is((SELECT count(*)::int FROM pipeline.runs WHERE pipeline_name = 'orders')
          + (SELECT idle_runs::int FROM pipeline.status WHERE name = 'orders'), 6,
          'explain does not run the pipeline');

-- the same run in a REPEATABLE READ transaction is refused --------------------
-- (psql captures the SQLSTATE: a pgTAP call inside a rolled-back transaction
-- would lose its own bookkeeping)
\set ON_ERROR_STOP 0
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT pipeline.run('orders');
\set rr_err :SQLSTATE
ROLLBACK;
\set ON_ERROR_STOP 1
SELECT is(:'rr_err'::text, '25000', 'a run inside a REPEATABLE READ transaction fails with 25000');
SELECT throws_ok($$SELECT pipeline.run('no such pipeline')$$, '42704', NULL,
                 'running an unknown pipeline fails with 42704');

-- a row delivered again with only a newer incremental value: nothing in it
-- changed, so it is unchanged and not rewritten, and the target keeps the
-- incremental value of its last real change (downstream sees no change)
CREATE TABLE snap8 AS SELECT xmin::text AS x FROM core.orders WHERE id = 9;
INSERT INTO stg.orders VALUES (9, 30, NULL, NULL, false);
SELECT pipeline.run('orders') AS r8 \gset
SELECT is(run_counts(:r8), 'succeeded read=1 ins=0 upd=0 del=0 unch=1 rej=0',
          'a re-delivered row whose only change is the incremental column is unchanged');
SELECT results_eq('SELECT * FROM core.orders WHERE id = 9',
                  $$VALUES (9, 10::bigint, NULL::numeric, NULL::text, false)$$,
                  'the target row keeps the incremental value of its last real change');
SELECT results_eq('SELECT xmin::text FROM core.orders WHERE id = 9', 'SELECT x FROM snap8',
                  'and is not rewritten');

SELECT * FROM finish();
