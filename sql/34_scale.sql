-- sql/34_scale.sql
--
-- Scale (issue 12): what a run that finds nothing new records, and when it
-- is recorded in full instead (docs/exactly-once.md, "What a run records").
SET client_min_messages = warning;
CREATE SCHEMA sc_stage;
CREATE SCHEMA sc_core;
CREATE TABLE sc_stage.orders (
    id          bigint PRIMARY KEY,
    amount      integer,
    updated_at  timestamptz NOT NULL
);
CREATE INDEX ON sc_stage.orders (updated_at);
INSERT INTO sc_stage.orders
SELECT g, g * 10, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute'
  FROM generate_series(1, 5) AS g;
SELECT pipeline.create_pipeline('sc_idle', 'sc_stage.orders', 'sc_core.idle',
                                unique_key => ARRAY['id'], incremental_column => 'updated_at',
                                create_target => true) > 0 AS created;
SELECT pipeline.run('sc_idle') AS first_run \gset

-- A run with nothing new returns a new id, greater than the last run's,
-- writes no run record and no audit entry, and is counted on its pipeline.
SELECT count(*) AS audit_before FROM pipeline.audit_log \gset
SELECT pipeline.run('sc_idle') AS idle1 \gset
SELECT pipeline.run('sc_idle') AS idle2 \gset
SELECT :idle1 > :first_run AS later, :idle2 > :idle1 AS each_its_own;
SELECT count(*) AS records FROM pipeline.runs WHERE pipeline_name = 'sc_idle';
SELECT count(*) - :audit_before AS new_audit_entries FROM pipeline.audit_log;
SELECT idle_runs, last_run_id = :idle2 AS last_is_idle2, last_run_status,
       last_run_finished_at = last_idle_at AS finished, last_success_at = last_idle_at AS success,
       consecutive_failures
  FROM pipeline.status WHERE name = 'sc_idle';
SELECT last_run_id = :idle2 AS last_is_idle2, last_run_status
  FROM pipeline.pipelines WHERE name = 'sc_idle';

-- The count is part of the caller's transaction: a rollback undoes it.
BEGIN;
SELECT pipeline.run('sc_idle') > 0 AS ran;
ROLLBACK;
SELECT idle_runs, last_run_id = :idle2 AS still_idle2 FROM pipeline.status WHERE name = 'sc_idle';

-- A run that loads is recorded as always, and is then the latest run.
INSERT INTO sc_stage.orders VALUES (6, 60, '2024-01-02 00:00:00+00');
SELECT pipeline.run('sc_idle') AS loaded \gset
SELECT status, rows_read, rows_inserted FROM pipeline.runs WHERE run_id = :loaded;
SELECT last_run_id = :loaded AS latest_loaded, idle_runs FROM pipeline.status WHERE name = 'sc_idle';

-- An idle run after a failure is the last success: the failures end.
ALTER TABLE sc_core.idle ADD CONSTRAINT small CHECK (amount < 100) NOT VALID;
INSERT INTO sc_stage.orders VALUES (7, 700, '2024-01-03 00:00:00+00');
SELECT pipeline.run('sc_idle');
SELECT last_run_status, consecutive_failures FROM pipeline.status WHERE name = 'sc_idle';
DELETE FROM sc_stage.orders WHERE id = 7;
SELECT pipeline.run('sc_idle') AS after_failure \gset
SELECT last_run_id = :after_failure AS latest, last_run_status, consecutive_failures
  FROM pipeline.status WHERE name = 'sc_idle';
ALTER TABLE sc_core.idle DROP CONSTRAINT small;

-- Recorded in full: a run that took longer than the timeliness limit (the
-- alert names it), a batched run (its start is recorded first), a run that
-- found rows at infinity.
SELECT pipeline.alter_pipeline('sc_idle', timeliness => '1 microsecond') > 0 AS altered;
SELECT pipeline.run('sc_idle') AS slow \gset
SELECT status, rows_read, batches FROM pipeline.runs WHERE run_id = :slow;
SELECT last_run_id = :slow AS latest, timeliness_state FROM pipeline.status WHERE name = 'sc_idle';
SELECT pipeline.alter_pipeline('sc_idle', timeliness => '1 hour') > 0 AS altered;
CALL pipeline.run_batched('sc_idle', 2);
SELECT status, rows_read, batches FROM pipeline.runs
 WHERE pipeline_name = 'sc_idle' ORDER BY run_id DESC LIMIT 1;
INSERT INTO sc_stage.orders VALUES (8, 80, 'infinity');
SELECT pipeline.run('sc_idle') AS at_infinity \gset
SELECT status, rows_read, rows_rejected, batches FROM pipeline.runs WHERE run_id = :at_infinity;
DELETE FROM sc_stage.orders WHERE id = 8;
SELECT idle_runs FROM pipeline.status WHERE name = 'sc_idle';

-- A run with a lookback always reads its window: it is never idle.
SELECT pipeline.alter_pipeline('sc_idle', lookback => '1 minute') > 0 AS altered;
SELECT pipeline.run('sc_idle') AS lookback_run \gset
SELECT status, rows_read, rows_unchanged FROM pipeline.runs WHERE run_id = :lookback_run;

SELECT pipeline.drop_pipeline('sc_idle', drop_target => true);
