\ir common/preamble.sql
-- test/pgtap/05_run_batched.sql
--
-- CALL pipeline.run_batched: batches of at most batch_rows source rows that
-- never split one incremental value (a value with more rows forms one
-- oversized batch); each batch commits with its watermark and the cumulative
-- counts of the one run record; a failing batch leaves the earlier batches
-- committed, the watermark at the last good batch and a failed run record
-- with its SQLSTATE; the next batched run resumes from there.
--
-- CALL run_batched commits, so this file runs statement by statement (no
-- surrounding transaction) and captures errors of CALL with psql's :SQLSTATE.

SELECT plan(27);

CREATE FUNCTION watermark_of(text) RETURNS text LANGUAGE sql AS $$
  SELECT watermark FROM pipeline.pipelines WHERE name = $1 $$;
CREATE FUNCTION last_run_of(text) RETURNS bigint LANGUAGE sql AS $$
  SELECT max(run_id) FROM pipeline.runs WHERE pipeline_name = $1 $$;

CREATE TABLE b_raw (id integer, seq integer NOT NULL, v integer);
SELECT ok(pipeline.create_pipeline('b', 'b_raw', 'b_target',
          unique_key => '{id}', incremental_column => 'seq', batch_rows => 3) > 0,
          'a pipeline with batch_rows 3');
SELECT is((SELECT batch_rows FROM pipeline.pipelines WHERE name = 'b'), 3::bigint,
          'pipelines shows batch_rows');

-- seq values 1 1 | 2 (3 rows) ; 3 3 3 3 (one value, 4 rows: one oversized batch) ; 4 5
INSERT INTO b_raw VALUES (1, 1, 1), (2, 1, 2), (3, 2, 3),
                         (4, 3, 4), (5, 3, 5), (6, 3, 6), (7, 3, 7),
                         (8, 4, 8), (9, 5, 9);
-- the third batch, (3, 5], will fail on the row with v = 9
ALTER TABLE b_target ADD CONSTRAINT v_small CHECK (v < 9);

\set ON_ERROR_STOP 0
CALL pipeline.run_batched('b');
\set batch_err :SQLSTATE
\set ON_ERROR_STOP 1
SELECT is(:'batch_err'::text, '23514', 'the failing batch raises the original error to the caller');
SELECT last_run_of('b') AS rb1 \gset
SELECT results_eq(format('SELECT status, error_sqlstate, batches, rows_read, rows_inserted
                            FROM pipeline.runs WHERE run_id = %s', :rb1),
                  $$VALUES ('failed'::text, '23514'::text, 2, 7::bigint, 7::bigint)$$,
                  'one failed run record: 2 batches committed, their cumulative counts, the SQLSTATE');
SELECT ok((SELECT error_message FROM pipeline.runs WHERE run_id = :rb1) ~ 'v_small',
          'the run record keeps the error message');
SELECT is((SELECT count(*)::int FROM pipeline.runs WHERE pipeline_name = 'b'), 1,
          'a batched run writes one run record');
SELECT is(watermark_of('b'), '3', 'the watermark stays at the last committed batch');
SELECT results_eq('SELECT id FROM b_target ORDER BY id',
                  'SELECT generate_series(1, 7)',
                  'the two committed batches stay, the failed batch (seq 4 and 5) is rolled back');

-- fix and resume
ALTER TABLE b_target DROP CONSTRAINT v_small;
CALL pipeline.run_batched('b', 100);
SELECT last_run_of('b') AS rb2 \gset
SELECT is(run_counts(:rb2), 'succeeded read=2 ins=2 upd=0 del=0 unch=0 rej=0',
          'the next batched run resumes after the last good batch');
SELECT is((SELECT batches FROM pipeline.runs WHERE run_id = :rb2), 1, 'one batch of 2 rows');
SELECT is(watermark_of('b'), '5', 'watermark at the end');
SELECT results_eq('SELECT * FROM b_target ORDER BY id',
                  'SELECT id, seq, v FROM b_raw ORDER BY id',
                  'every row loaded exactly once');

-- batch boundaries and cumulative counts with duplicates across batches
INSERT INTO b_raw VALUES (10, 6, 6), (11, 7, 7), (12, 8, 8), (13, 9, 9),
                         (10, 10, 10), (11, 11, 11), (14, 12, 12), (NULL, 13, 13),
                         (16, 14, 14), (10, 15, 15);
CALL pipeline.run_batched('b', 4);
SELECT last_run_of('b') AS rb3 \gset
-- batches: seq 6-9 (ins 4); 10-13 (upd 2, ins 1, rej 1); 14-15 (ins 1, upd 1)
SELECT is(run_counts(:rb3), 'succeeded read=10 ins=6 upd=3 del=0 unch=0 rej=1',
          'a batched run sums the counts of its batches');
SELECT is((SELECT batches FROM pipeline.runs WHERE run_id = :rb3), 3, 'three batches of at most 4 rows');
SELECT is(watermark_of('b'), '15', 'watermark after the batched run');
SELECT results_eq('SELECT * FROM b_target WHERE id >= 10 ORDER BY id',
    $$VALUES (10, 15, 15), (11, 11, 11), (12, 8, 8), (13, 9, 9), (14, 12, 12), (16, 14, 14)$$,
    'the latest row per key wins across batches');

CALL pipeline.run_batched('b');
SELECT last_run_of('b') AS rb4 \gset
SELECT is(run_counts(:rb4), 'succeeded read=0 ins=0 upd=0 del=0 unch=0 rej=0',
          'a batched run with nothing new');
SELECT is((SELECT batches FROM pipeline.runs WHERE run_id = :rb4), 0, 'has no batch');

-- a failure in the first batch: nothing committed, watermark unchanged
INSERT INTO b_raw VALUES (20, 16, 16), (21, 17, 17);
ALTER TABLE b_target ADD CONSTRAINT v_tiny CHECK (v < 16);
\set ON_ERROR_STOP 0
CALL pipeline.run_batched('b', 1);
\set batch_err2 :SQLSTATE
\set ON_ERROR_STOP 1
SELECT is(:'batch_err2'::text, '23514', 'a failing first batch raises the error');
SELECT last_run_of('b') AS rb5 \gset
SELECT results_eq(format('SELECT status, error_sqlstate, batches FROM pipeline.runs WHERE run_id = %s', :rb5),
                  $$VALUES ('failed'::text, '23514'::text, 0)$$,
                  'the failed run is recorded with no committed batch');
SELECT is(watermark_of('b'), '15', 'watermark unchanged');
ALTER TABLE b_target DROP CONSTRAINT v_tiny;

-- errors of run_batched
\set ON_ERROR_STOP 0
BEGIN;
CALL pipeline.run_batched('b', 1);
\set txn_err :SQLSTATE
ROLLBACK;
\set ON_ERROR_STOP 1
SELECT is(:'txn_err'::text, '2D000', 'run_batched inside a transaction block: 2D000');
SELECT is(watermark_of('b'), '15', 'and nothing was committed');

CREATE TABLE nokey_raw (id integer, v integer);
SELECT pipeline.create_pipeline('no inc', 'nokey_raw', 'nokey_target', unique_key => '{id}') AS noinc_id \gset
\set ON_ERROR_STOP 0
CALL pipeline.run_batched('no inc', 10);
\set noinc_err :SQLSTATE
CALL pipeline.run_batched('b', 0);
\set zero_err :SQLSTATE
\set ON_ERROR_STOP 1
SELECT is(:'noinc_err'::text, '22023', 'run_batched without an incremental column: 22023');
SELECT is(:'zero_err'::text, '22023', 'run_batched with batch_rows 0: 22023');

CALL pipeline.run_batched('b', 1);
SELECT last_run_of('b') AS rb6 \gset
SELECT results_eq(format('SELECT status, batches, rows_inserted FROM pipeline.runs WHERE run_id = %s', :rb6),
                  $$VALUES ('succeeded'::text, 2, 2::bigint)$$,
                  'batch_rows 1: one batch per incremental value');
SELECT is(watermark_of('b'), '17', 'final watermark');

SELECT * FROM finish();
