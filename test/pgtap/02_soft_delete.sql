\ir common/preamble.sql
-- test/pgtap/02_soft_delete.sql
--
-- Merge mode with soft deletes: a row flagged deleted keeps its key and its
-- values in the target, sets the flag and takes the tombstone's incremental
-- value, so that downstream pipelines see it (counted as deleted); flagging an absent key
-- is a no-op (unchanged); flagging an already soft-deleted row is unchanged
-- and does not rewrite it; a later non-deleted row revives the key.

SELECT plan(16);

CREATE TABLE customers_raw (
    id         integer,
    name       text,
    upd        integer NOT NULL,
    is_deleted boolean NOT NULL DEFAULT false
);
CREATE TABLE customers (
    id         integer PRIMARY KEY,
    name       text,
    upd        integer NOT NULL,
    is_deleted boolean NOT NULL DEFAULT false
);

SELECT ok(pipeline.create_pipeline('customers', 'customers_raw', 'customers',
          unique_key => '{id}', incremental_column => 'upd',
          delete_column => 'is_deleted', soft_delete => true,
          create_target => false) > 0,
          'a soft-delete pipeline into an existing target');
SELECT is((SELECT soft_delete FROM pipeline.pipelines WHERE name = 'customers'), true,
          'pipelines shows soft_delete');

INSERT INTO customers_raw VALUES
    (1, 'a', 1, false),
    (2, 'b', 2, false),
    (3, 'c', 3, false),
    (4, 'd', 4, true);          -- a delete for a key never loaded
SELECT pipeline.run('customers') AS r1 \gset
SELECT is(run_counts(:r1), 'succeeded read=4 ins=3 upd=0 del=0 unch=1 rej=0',
          'run 1: the delete of an absent key is a no-op counted unchanged');
SELECT results_eq('SELECT * FROM customers ORDER BY id',
    $$VALUES (1, 'a'::text, 1, false), (2, 'b', 2, false), (3, 'c', 3, false)$$,
    'run 1: the absent key stays absent');

INSERT INTO customers_raw VALUES
    (2, 'b2', 5, true),         -- soft delete: the flag and the incremental value change
    (3, 'c2', 6, false),
    (3, 'c3', 7, true),         -- later delete wins over the update
    (1, 'a2', 8, false);        -- ordinary update
CREATE TABLE snap1 AS SELECT id, xmin::text AS x FROM customers;
SELECT pipeline.run('customers') AS r2 \gset
SELECT is(run_counts(:r2), 'succeeded read=4 ins=0 upd=1 del=2 unch=0 rej=0',
          'run 2: two soft deletes counted as deleted, one update');
SELECT results_eq('SELECT * FROM customers ORDER BY id',
    $$VALUES (1, 'a2'::text, 8, false), (2, 'b', 5, true), (3, 'c', 7, true)$$,
    'run 2: soft-deleted rows keep their values and get the flag and the new incremental value');

-- deleting again rewrites nothing
CREATE TABLE snap2 AS SELECT id, xmin::text AS x FROM customers;
INSERT INTO customers_raw VALUES (2, 'b9', 9, true), (4, 'd', 10, true);
SELECT pipeline.run('customers') AS r3 \gset
SELECT is(run_counts(:r3), 'succeeded read=2 ins=0 upd=0 del=0 unch=2 rej=0',
          'run 3: a delete of an already soft-deleted row and of an absent key are unchanged');
SELECT results_eq('SELECT id, xmin::text FROM customers ORDER BY id',
                  'SELECT id, x FROM snap2 ORDER BY id',
                  'run 3 rewrites no row');
SELECT results_eq('SELECT * FROM customers ORDER BY id',
    $$VALUES (1, 'a2'::text, 8, false), (2, 'b', 5, true), (3, 'c', 7, true)$$,
    'run 3: target unchanged');

-- a later non-deleted row revives a soft-deleted key
INSERT INTO customers_raw VALUES (2, 'b-back', 11, false), (5, 'e', 12, false);
SELECT pipeline.run('customers') AS r4 \gset
SELECT is(run_counts(:r4), 'succeeded read=2 ins=1 upd=1 del=0 unch=0 rej=0',
          'run 4: reviving a soft-deleted key is an update');
SELECT results_eq('SELECT * FROM customers ORDER BY id',
    $$VALUES (1, 'a2'::text, 8, false), (2, 'b-back', 11, false), (3, 'c', 7, true),
             (5, 'e', 12, false)$$,
    'run 4: the revived row has the new values and the flag cleared');

-- a soft delete and a revive of the same key in one window: latest wins
INSERT INTO customers_raw VALUES (5, 'e-del', 13, true), (5, 'e-again', 14, false),
                                 (1, 'a-del', 15, true);
SELECT pipeline.run('customers') AS r5 \gset
SELECT is(run_counts(:r5), 'succeeded read=3 ins=0 upd=1 del=1 unch=0 rej=0',
          'run 5: counts');
SELECT results_eq('SELECT * FROM customers ORDER BY id',
    $$VALUES (1, 'a2'::text, 15, true), (2, 'b-back', 11, false), (3, 'c', 7, true),
             (5, 'e-again', 14, false)$$,
    'run 5: contents');

-- reset: re-reading everything changes nothing
CREATE TABLE snap5 AS SELECT id, xmin::text AS x FROM customers;
SELECT pipeline.reset('customers') AS reset_done \gset
SELECT pipeline.run('customers') AS r6 \gset
-- 15 rows; latest per key: 1 delete (already flagged), 2 (11), 3 delete (flagged),
-- 4 delete (absent), 5 (14): all unchanged; 10 duplicates.
SELECT is(run_counts(:r6), 'succeeded read=15 ins=0 upd=0 del=0 unch=5 rej=0',
          'run 6 after reset: everything unchanged');
SELECT results_eq('SELECT id, xmin::text FROM customers ORDER BY id',
                  'SELECT id, x FROM snap5 ORDER BY id',
                  'run 6 rewrites no row');

SELECT throws_ok($$SELECT pipeline.create_pipeline('bad', 'customers_raw', 'customers_x',
                     unique_key => '{id}', incremental_column => 'upd', soft_delete => true)$$,
                 '22023', NULL, 'soft_delete without delete_column fails with 22023');

SELECT * FROM finish();
