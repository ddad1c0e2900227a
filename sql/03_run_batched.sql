-- 03_run_batched: backfills in committed batches. Each batch commits with
-- its watermark, so a failure keeps the batches before it, and the next run
-- resumes where the last good batch ended.
\set SHOW_CONTEXT never
CREATE SCHEMA backfill;
CREATE TABLE backfill.src (id bigserial PRIMARY KEY, k int, v int);
INSERT INTO backfill.src (k, v) SELECT g % 7, g FROM generate_series(1, 10) g;
SELECT pipeline.create_pipeline('backfill', 'backfill.src', 'backfill.dst',
                                unique_key => ARRAY['id'], incremental_column => 'id',
                                batch_rows => 3) > 0 AS created;

-- 10 rows in batches of at most 3: four batches, one run record.
CALL pipeline.run_batched('backfill');
SELECT status, batches, rows_read, rows_inserted, watermark_from, watermark_to
  FROM pipeline.runs WHERE pipeline_name = 'backfill';
SELECT count(*), min(id), max(id) FROM backfill.dst;

-- the batch size can be given per call
INSERT INTO backfill.src (k, v) SELECT g % 7, g FROM generate_series(11, 15) g;
CALL pipeline.run_batched('backfill', batch_rows => 2);
SELECT status, batches, rows_read, rows_inserted, watermark_from, watermark_to
  FROM pipeline.runs WHERE pipeline_name = 'backfill' ORDER BY run_id DESC LIMIT 1;

-- nothing new: a run of no batches
CALL pipeline.run_batched('backfill');
SELECT status, batches, rows_read FROM pipeline.runs
 WHERE pipeline_name = 'backfill' ORDER BY run_id DESC LIMIT 1;

-- Many rows sharing one incremental value stay in one batch (it may then
-- hold more than batch_rows rows): a batch never splits a value.
CREATE TABLE backfill.daily (day date, item int, qty int);
INSERT INTO backfill.daily
    SELECT DATE '2024-01-01' + (g / 4), g, g FROM generate_series(0, 11) g;
SELECT pipeline.create_pipeline('daily', 'backfill.daily', 'backfill.daily_dst',
                                unique_key => ARRAY['item'], incremental_column => 'day',
                                batch_rows => 6) > 0 AS created;
CALL pipeline.run_batched('daily');
SELECT status, batches, rows_read, rows_inserted, watermark_to
  FROM pipeline.runs WHERE pipeline_name = 'daily';
CALL pipeline.run_batched('daily', 2);   -- nothing new
INSERT INTO backfill.daily
    SELECT DATE '2024-01-10', 100 + g, g FROM generate_series(1, 5) g;
CALL pipeline.run_batched('daily', 2);   -- five rows of one day: one batch
SELECT status, batches, rows_read, rows_inserted, watermark_to
  FROM pipeline.runs WHERE pipeline_name = 'daily' ORDER BY run_id DESC LIMIT 1;

-- A failing batch: batches before it stay committed, the run is recorded
-- as failed with the counts of the committed batches, the watermark stays
-- at the last good batch, and the next run resumes from there.
ALTER TABLE backfill.dst ADD CONSTRAINT v_limit CHECK (v < 20);
INSERT INTO backfill.src (k, v) VALUES (1, 16), (2, 17), (3, 18), (4, 19), (5, 99), (6, 18);
CALL pipeline.run_batched('backfill', 2);
\echo :LAST_ERROR_SQLSTATE
SELECT status, batches, rows_read, rows_inserted, error_sqlstate, watermark_from, watermark_to
  FROM pipeline.runs WHERE pipeline_name = 'backfill' ORDER BY run_id DESC LIMIT 1;
SELECT watermark FROM pipeline.pipelines WHERE name = 'backfill';
SELECT count(*) AS loaded FROM backfill.dst;
UPDATE backfill.src SET v = 19 WHERE v = 99;
CALL pipeline.run_batched('backfill', 2);
SELECT status, batches, rows_read, rows_inserted, watermark_from, watermark_to
  FROM pipeline.runs WHERE pipeline_name = 'backfill' ORDER BY run_id DESC LIMIT 1;
SELECT count(*) AS loaded FROM backfill.dst;

-- Errors of run_batched.
BEGIN;
CALL pipeline.run_batched('backfill');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
CALL pipeline.run_batched(NULL);
\echo :LAST_ERROR_SQLSTATE
CALL pipeline.run_batched('nope');
\echo :LAST_ERROR_SQLSTATE
CALL pipeline.run_batched('backfill', 0);
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE backfill.nokey (k int PRIMARY KEY, v int);
SELECT pipeline.create_pipeline('nobatch', 'backfill.nokey', 'backfill.nokey_dst',
                                unique_key => ARRAY['k']) > 0 AS created;
CALL pipeline.run_batched('nobatch', 10);
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.create_pipeline('nosize', 'backfill.src', 'backfill.nosize',
                                unique_key => ARRAY['id'], incremental_column => 'id') > 0 AS created;
CALL pipeline.run_batched('nosize');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.pause('backfill');
CALL pipeline.run_batched('backfill');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.resume('backfill');
-- none of the refused calls left a run behind
SELECT count(*) AS runs_of_refused_calls FROM pipeline.runs
 WHERE pipeline_name IN ('nobatch', 'nosize');
