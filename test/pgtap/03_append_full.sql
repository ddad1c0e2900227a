\ir common/preamble.sql
-- test/pgtap/03_append_full.sql
--
-- Append mode with a key (existing keys skipped and counted unchanged) and
-- without a key (plain insert of every window row), and full mode with hard
-- and soft deletes (keys that vanished from the source, rows flagged deleted),
-- duplicate keys without an incremental column (ties broken by the remaining
-- columns in column order), NULL keys rejected.

SELECT plan(36);

CREATE FUNCTION watermark_of(text) RETURNS text LANGUAGE sql AS $$
  SELECT watermark FROM pipeline.pipelines WHERE name = $1 $$;

-- append with a key ----------------------------------------------------------
CREATE TABLE events_raw (id integer, seq integer NOT NULL, payload text);
SELECT ok(pipeline.create_pipeline('events', 'events_raw', 'events',
          unique_key => '{id}', incremental_column => 'seq', mode => 'append') > 0,
          'append pipeline with a key');

INSERT INTO events_raw VALUES (1, 1, 'a'), (2, 2, 'b'), (2, 3, 'b2'), (NULL, 4, 'n'),
                              (3, 5, NULL);
SELECT pipeline.run('events') AS a1 \gset
SELECT is(run_counts(:a1), 'succeeded read=5 ins=3 upd=0 del=0 unch=0 rej=1',
          'append run 1: duplicates reduced to the latest, NULL key rejected');
SELECT results_eq('SELECT * FROM events ORDER BY id',
    $$VALUES (1, 1, 'a'::text), (2, 3, 'b2'), (3, 5, NULL)$$,
    'append run 1: contents');

CREATE TABLE snap_a AS SELECT id, xmin::text AS x FROM events;
INSERT INTO events_raw VALUES (1, 6, 'a-new'), (4, 7, 'd'), (3, 8, 'c'), (4, 9, 'd2');
SELECT pipeline.run('events') AS a2 \gset
SELECT is(run_counts(:a2), 'succeeded read=4 ins=1 upd=0 del=0 unch=2 rej=0',
          'append run 2: existing keys skipped and counted unchanged');
SELECT results_eq('SELECT * FROM events ORDER BY id',
    $$VALUES (1, 1, 'a'::text), (2, 3, 'b2'), (3, 5, NULL), (4, 9, 'd2')$$,
    'append run 2: existing rows keep their first values (NULL included)');
SELECT results_eq('SELECT id, xmin::text FROM events WHERE id <= 3 ORDER BY id',
                  'SELECT id, x FROM snap_a ORDER BY id',
                  'append run 2 rewrites no existing row');
SELECT is(watermark_of('events'), '9', 'append run 2: watermark');

-- append without a key -------------------------------------------------------
CREATE TABLE log_raw (seq bigint NOT NULL, msg text, level integer);
SELECT ok(pipeline.create_pipeline('log', 'log_raw', 'log_copy',
          incremental_column => 'seq', mode => 'append') > 0,
          'append pipeline without a key');
SELECT is((SELECT count(*)::int FROM pg_index WHERE indrelid = 'log_copy'::regclass AND indisprimary), 0,
          'a keyless append target has no primary key');
INSERT INTO log_raw VALUES (1, 'x', 1), (2, 'y', NULL), (2, 'y', NULL), (3, NULL, NULL);
SELECT pipeline.run('log') AS l1 \gset
SELECT is(run_counts(:l1), 'succeeded read=4 ins=4 upd=0 del=0 unch=0 rej=0',
          'keyless append run 1 inserts every row, duplicates included');
SELECT pipeline.run('log') AS l2 \gset
SELECT is(run_counts(:l2), 'idle',
          'keyless append run 2: nothing new, nothing inserted');
INSERT INTO log_raw VALUES (4, 'z', 4);
SELECT pipeline.run('log') AS l3 \gset
SELECT is(run_counts(:l3), 'succeeded read=1 ins=1 upd=0 del=0 unch=0 rej=0',
          'keyless append run 3 inserts only the new row');
SELECT results_eq('SELECT * FROM log_copy ORDER BY seq, msg',
    $$VALUES (1::bigint, 'x'::text, 1), (2, 'y', NULL), (2, 'y', NULL), (3, NULL, NULL), (4, 'z', 4)$$,
    'keyless append: every source row exactly once');

SELECT throws_ok($$SELECT pipeline.create_pipeline('bad1', 'log_raw', 'bad1', mode => 'append')$$,
                 '22023', NULL, 'append without key and without incremental column: 22023');
SELECT throws_ok($$SELECT pipeline.create_pipeline('bad2', 'events_raw', 'bad2', unique_key => '{id}',
                     incremental_column => 'seq', mode => 'append', delete_column => 'payload')$$,
                 '22023', NULL, 'append with a delete column: 22023');

-- full, hard and soft deletes ------------------------------------------------
CREATE TABLE products_raw (
    id    integer,
    name  text,
    price numeric,
    gone  boolean NOT NULL DEFAULT false
);
SELECT ok(pipeline.create_pipeline('products', 'products_raw', 'products',
          unique_key => '{id}', mode => 'full', delete_column => 'gone') > 0,
          'full pipeline with hard deletes');
SELECT ok(pipeline.create_pipeline('products soft', 'products_raw', 'products_soft',
          unique_key => '{id}', mode => 'full', delete_column => 'gone', soft_delete => true) > 0,
          'full pipeline with soft deletes');

-- state A
INSERT INTO products_raw VALUES (1, 'a', 1, false), (2, 'b', NULL, false), (3, 'c', 3, false),
                                (NULL, 'nk', 0, false);
SELECT pipeline.run('products') AS f1 \gset
SELECT pipeline.run('products soft') AS s1 \gset
SELECT is(run_counts(:f1), 'succeeded read=4 ins=3 upd=0 del=0 unch=0 rej=1', 'full A: counts');
SELECT is(run_counts(:s1), 'succeeded read=4 ins=3 upd=0 del=0 unch=0 rej=1', 'full soft A: counts');

-- state B: update 1, drop 3, add 4 twice (ties: name compared before price), flag absent 5
UPDATE products_raw SET price = 10 WHERE id = 1;
DELETE FROM products_raw WHERE id = 3;
INSERT INTO products_raw VALUES (4, 'd', 5, false), (4, 'e', 1, false), (5, 'x', 1, true);
SELECT pipeline.run('products') AS f2 \gset
SELECT pipeline.run('products soft') AS s2 \gset
SELECT is(run_counts(:f2), 'succeeded read=6 ins=1 upd=1 del=1 unch=2 rej=1',
          'full B: insert, update, delete of the vanished key, flagged absent key unchanged');
SELECT results_eq('SELECT * FROM products ORDER BY id',
    $$VALUES (1, 'a'::text, 10::numeric, false), (2, 'b', NULL, false), (4, 'e', 1, false)$$,
    'full B: target equals the de-duplicated source');
SELECT is(run_counts(:s2), 'succeeded read=6 ins=1 upd=1 del=1 unch=2 rej=1',
          'full soft B: the vanished key is soft-deleted');
SELECT results_eq('SELECT * FROM products_soft ORDER BY id',
    $$VALUES (1, 'a'::text, 10::numeric, false), (2, 'b', NULL, false), (3, 'c', 3, true),
             (4, 'e', 1, false)$$,
    'full soft B: the vanished row is kept with the flag set');

-- state C: 3 comes back, 2 is flagged deleted
INSERT INTO products_raw VALUES (3, 'c', 3, false);
UPDATE products_raw SET gone = true WHERE id = 2;
SELECT pipeline.run('products') AS f3 \gset
SELECT pipeline.run('products soft') AS s3 \gset
SELECT is(run_counts(:f3), 'succeeded read=7 ins=1 upd=0 del=1 unch=3 rej=1', 'full C: counts');
SELECT results_eq('SELECT * FROM products ORDER BY id',
    $$VALUES (1, 'a'::text, 10::numeric, false), (3, 'c', 3, false), (4, 'e', 1, false)$$,
    'full C: contents');
SELECT is(run_counts(:s3), 'succeeded read=7 ins=0 upd=1 del=1 unch=3 rej=1',
          'full soft C: revive is an update, the flagged row a soft delete');
SELECT results_eq('SELECT * FROM products_soft ORDER BY id',
    $$VALUES (1, 'a'::text, 10::numeric, false), (2, 'b', NULL, true), (3, 'c', 3, false),
             (4, 'e', 1, false)$$,
    'full soft C: contents');

-- state D: 1 vanishes
DELETE FROM products_raw WHERE id = 1;
SELECT pipeline.run('products') AS f4 \gset
SELECT pipeline.run('products soft') AS s4 \gset
SELECT is(run_counts(:f4), 'succeeded read=6 ins=0 upd=0 del=1 unch=4 rej=1', 'full D: counts');
SELECT is(run_counts(:s4), 'succeeded read=6 ins=0 upd=0 del=1 unch=4 rej=1', 'full soft D: counts');
SELECT results_eq('SELECT * FROM products_soft ORDER BY id',
    $$VALUES (1, 'a'::text, 10::numeric, true), (2, 'b', NULL, true), (3, 'c', 3, false),
             (4, 'e', 1, false)$$,
    'full soft D: contents');

-- state E: nothing changes; nothing is rewritten
CREATE TABLE snap_f AS SELECT id, xmin::text AS x FROM products;
CREATE TABLE snap_s AS SELECT id, xmin::text AS x FROM products_soft;
SELECT pipeline.run('products') AS f5 \gset
SELECT pipeline.run('products soft') AS s5 \gset
SELECT is(run_counts(:f5), 'succeeded read=6 ins=0 upd=0 del=0 unch=4 rej=1', 'full E: all unchanged');
SELECT is(run_counts(:s5), 'succeeded read=6 ins=0 upd=0 del=0 unch=4 rej=1',
          'full soft E: all unchanged, the vanished soft-deleted row not counted again');
SELECT results_eq('SELECT id, xmin::text FROM products ORDER BY id',
                  'SELECT id, x FROM snap_f ORDER BY id', 'full E rewrites no row');
SELECT results_eq('SELECT id, xmin::text FROM products_soft ORDER BY id',
                  'SELECT id, x FROM snap_s ORDER BY id', 'full soft E rewrites no row');

SELECT throws_ok($$SELECT pipeline.create_pipeline('bad3', 'products_raw', 'bad3', mode => 'full')$$,
                 '22023', NULL, 'full without unique_key: 22023');
SELECT throws_ok($$SELECT pipeline.create_pipeline('bad4', 'events_raw', 'bad4', unique_key => '{id}',
                     incremental_column => 'seq', mode => 'full', batch_rows => 10)$$,
                 '22023', NULL, 'full with batch_rows: 22023');

SELECT * FROM finish();
