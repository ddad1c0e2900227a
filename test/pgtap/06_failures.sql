\ir common/preamble.sql
-- test/pgtap/06_failures.sql
--
-- A failed run: the caller gets the original error; the target and the
-- watermark are unchanged; a 'failed' run record with the SQLSTATE and the
-- message survives, even when the caller's whole transaction rolls back.
-- A successful run rolled back by its caller leaves nothing behind.

SELECT plan(26);

CREATE FUNCTION watermark_of(text) RETURNS text LANGUAGE sql AS $$
  SELECT watermark FROM pipeline.pipelines WHERE name = $1 $$;
-- The failed-run record is written by a separate (autonomous) transaction;
-- wait for it with a deadline instead of assuming it is synchronous.
CREATE FUNCTION last_failure(p text, after bigint, OUT status text, OUT error_sqlstate text,
                             OUT error_message text, OUT run_id bigint)
LANGUAGE plpgsql AS $$
DECLARE deadline timestamptz := clock_timestamp() + interval '10 seconds';
BEGIN
    LOOP
        SELECT r.status, r.error_sqlstate, r.error_message, r.run_id
          INTO status, error_sqlstate, error_message, run_id
          FROM pipeline.runs r
         WHERE r.pipeline_name = p AND r.run_id > after AND r.status = 'failed'
         ORDER BY r.run_id DESC LIMIT 1;
        EXIT WHEN FOUND OR clock_timestamp() > deadline;
        PERFORM pg_sleep(0.05);
    END LOOP;
END $$;
CREATE FUNCTION max_run() RETURNS bigint LANGUAGE sql AS $$
  SELECT coalesce(max(run_id), 0) FROM pipeline.runs $$;

CREATE TABLE f_raw (id integer, seq integer NOT NULL, v integer);
CREATE TABLE f_target (id integer PRIMARY KEY, seq integer NOT NULL, v integer CHECK (v < 100));
SELECT ok(pipeline.create_pipeline('f', 'f_raw', 'f_target', unique_key => '{id}',
          incremental_column => 'seq', create_target => false) > 0, 'pipeline f');

INSERT INTO f_raw VALUES (1, 1, 1), (2, 2, 2);
SELECT pipeline.run('f') AS r1 \gset
SELECT is(run_counts(:r1), 'succeeded read=2 ins=2 upd=0 del=0 unch=0 rej=0', 'a good first run');

-- 1. failure inside a subtransaction (throws_ok) -------------------------------
INSERT INTO f_raw VALUES (3, 3, 3), (1, 4, 1000);
SELECT max_run() AS before1 \gset
SELECT throws_ok($$SELECT pipeline.run('f')$$, '23514', NULL,
                 'the caller gets the original error (check violation)');
SELECT results_eq($$SELECT status, error_sqlstate FROM last_failure('f', $$ || :before1 || ')',
                  $$VALUES ('failed'::text, '23514'::text)$$,
                  'the failed run is recorded with its SQLSTATE');
SELECT ok((SELECT error_message FROM last_failure('f', :before1)) ~ 'f_target_v_check',
          'and with the error message');
SELECT results_eq('SELECT * FROM f_target ORDER BY id', $$VALUES (1, 1, 1), (2, 2, 2)$$,
                  'the target is unchanged (row 3 of the failed window is not loaded either)');
SELECT is(watermark_of('f'), '2', 'the watermark is unchanged');
SELECT is((SELECT last_run_status FROM pipeline.pipelines WHERE name = 'f'), 'failed',
          'pipelines shows the last run as failed');

-- 2. failure, then the caller rolls back its whole transaction ----------------
SELECT max_run() AS before2 \gset
\set ON_ERROR_STOP 0
BEGIN;
INSERT INTO f_raw VALUES (50, 50, 50);   -- the caller's own work, rolled back below
SELECT pipeline.run('f');
\set rb_err :SQLSTATE
ROLLBACK;
\set ON_ERROR_STOP 1
SELECT is(:'rb_err'::text, '23514', 'in an explicit transaction the caller gets the error too');
SELECT results_eq($$SELECT status, error_sqlstate FROM last_failure('f', $$ || :before2 || ')',
                  $$VALUES ('failed'::text, '23514'::text)$$,
                  'the failed run record survives the rollback of the caller''s transaction');
SELECT is((SELECT count(*)::int FROM f_raw WHERE id = 50), 0, 'the caller''s own work rolled back');
SELECT is(watermark_of('f'), '2', 'the watermark is still unchanged');

-- 3. failure, caller rolls back to a savepoint and commits -------------------
SELECT max_run() AS before3 \gset
\set ON_ERROR_STOP 0
BEGIN;
INSERT INTO f_raw VALUES (60, 60, 60);
SAVEPOINT s;
SELECT pipeline.run('f');
ROLLBACK TO SAVEPOINT s;
COMMIT;
\set ON_ERROR_STOP 1
SELECT is((SELECT status FROM last_failure('f', :before3)), 'failed',
          'a failure rolled back to a savepoint is recorded');
SELECT is((SELECT count(*)::int FROM f_raw WHERE id = 60), 1, 'the caller''s work before the savepoint commits');
SELECT is(watermark_of('f'), '2', 'the watermark is still unchanged');

-- 4. a successful run rolled back by its caller ------------------------------
UPDATE f_raw SET v = 4 WHERE seq = 4;
BEGIN;
SELECT pipeline.run('f') AS r_rolled \gset
ROLLBACK;
SELECT is((SELECT count(*)::int FROM pipeline.runs WHERE run_id = :r_rolled), 0,
          'a successful run rolled back by its caller leaves no run record');
SELECT is(watermark_of('f'), '2', 'nor a watermark');
SELECT results_eq('SELECT * FROM f_target ORDER BY id', $$VALUES (1, 1, 1), (2, 2, 2)$$,
                  'nor data');

-- 5. the fixed pipeline loads the window once --------------------------------
SELECT pipeline.run('f') AS r2 \gset
-- window (2, 60]: seq 3, 4, 60 (the row with seq 50 was rolled back)
SELECT is(run_counts(:r2), 'succeeded read=3 ins=2 upd=1 del=0 unch=0 rej=0', 'the next run loads the window');
SELECT results_eq('SELECT * FROM f_target ORDER BY id',
                  $$VALUES (1, 4, 4), (2, 2, 2), (3, 3, 3), (60, 60, 60)$$, 'contents after the fix');

-- 6. an error raised by the source (a view) ----------------------------------
CREATE VIEW f_view AS SELECT id, seq, 100 / v AS v FROM f_raw;
SELECT ok(pipeline.create_pipeline('fv', 'f_view', 'fv_target', unique_key => '{id}',
          incremental_column => 'seq') > 0, 'pipeline over a view');
INSERT INTO f_raw VALUES (70, 70, 0);
SELECT max_run() AS before6 \gset
SELECT throws_ok($$SELECT pipeline.run('fv')$$, '22012', NULL, 'an error in the source reaches the caller');
SELECT is((SELECT error_sqlstate FROM last_failure('fv', :before6)), '22012',
          'and is recorded');
SELECT is((SELECT count(*)::int FROM fv_target), 0, 'nothing is loaded');

-- 7. the source dropped since registration ----------------------------------
DROP VIEW f_view;
SELECT max_run() AS before7 \gset
SELECT throws_ok($$SELECT pipeline.run('fv')$$, '42P01', NULL, 'a dropped source: 42P01');
SELECT is((SELECT error_sqlstate FROM last_failure('fv', :before7)), '42P01',
          'and the failed run is recorded');

SELECT * FROM finish();
