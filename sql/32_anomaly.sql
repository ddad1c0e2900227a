-- 32_anomaly: anomaly alerts. With anomaly_sensitivity set, every
-- successful run that loaded new rows is compared with the pipeline's
-- recent successful runs: rows read, inserted, updated, deleted and
-- quarantined, and its duration. A metric whose robust z-score,
-- 0.6745 * (value - median) / MAD, passes the sensitivity makes the run an
-- outlier: one alert of kind 'anomaly' in pipeline.alerts (and on NOTIFY
-- pipeline_alerts: test/pgtap/anomaly.sql listens), in the run's
-- transaction. Durations only vary here, by milliseconds: their spread is
-- never taken below one second, so they raise nothing (docs/quality.md).
\set SHOW_CONTEXT never
-- After each refused call, its SQLSTATE.
\set sqlstate '\\echo SQLSTATE :LAST_ERROR_SQLSTATE'
-- It runs in a database of its own, so that its run ids are its own.
\set regress_db :DBNAME
CREATE DATABASE pipeline_anomaly;
\c pipeline_anomaly
SET client_min_messages = notice;
CREATE EXTENSION pg_pipeline;
CREATE SCHEMA a;
CREATE TABLE a.events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, kind text NOT NULL);
SELECT pipeline.create_pipeline('events', 'a.events', 'a.events_dst',
                                unique_key => '{id}', incremental_column => 'id',
                                anomaly_sensitivity => 4, anomaly_min_runs => 5) > 0 AS created;
-- land(p, n) lands n new rows into a.p and runs pipeline p, each in a
-- transaction of its own; it says which run it was and the alert that run
-- raised.
CREATE PROCEDURE a.land(p text, n int, INOUT run_id bigint DEFAULT NULL, INOUT alert text DEFAULT NULL)
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('INSERT INTO a.%I (kind) SELECT ''click'' FROM generate_series(1, $1)', p) USING n;
    COMMIT;
    run_id := pipeline.run(p);
    COMMIT;
    SELECT string_agg(format('%s %s %s', l.kind, l.observed, l.limit_value), '; ')
      INTO alert FROM pipeline.alerts l WHERE l.run_id = land.run_id;
END
$$;

-- Never on the first runs ------------------------------------------------------
-- A run is scored only against anomaly_min_runs (here 5) successful runs
-- or more: the fifth run loads fifty times more than the others, but only
-- four runs came before it.
CALL a.land('events', 10);
CALL a.land('events', 11);
CALL a.land('events', 12);
CALL a.land('events', 10);
CALL a.land('events', 500);

-- A steady series raises nothing ----------------------------------------------
-- Twelve runs of 10 to 12 rows: the median is 11 rows and the MAD 1 row
-- (the fifth run is one outlier among 17 runs: the median and the MAD do
-- not move for it), so the largest score is 0.6745 * 1 / 1 = 0.67.
DO $$
BEGIN
    FOR i IN 1 .. 12 LOOP
        INSERT INTO a.events (kind) SELECT 'click' FROM generate_series(1, 10 + i % 3);
        COMMIT;
        PERFORM pipeline.run('events');
        COMMIT;
    END LOOP;
END
$$;
SELECT count(*) AS runs, count(*) FILTER (WHERE status = 'succeeded') AS succeeded
  FROM pipeline.runs WHERE pipeline_name = 'events';
SELECT count(*) AS alerts FROM pipeline.alerts;

-- A spike raises one alert --------------------------------------------------------
-- 110 rows: rows read and rows inserted are 99 rows above the median, a
-- score of 0.6745 * 99 / 1 = 66.78. observed names the most extreme metric
-- and its value, limit_value the baseline (the median) and the score; the
-- message lists every outlier metric.
CALL a.land('events', 110);
SELECT run_id AS spike FROM pipeline.alerts WHERE kind = 'anomaly' \gset
SELECT pipeline_name, kind, observed, limit_value, message, resolved_at
  FROM pipeline.alerts WHERE run_id = :spike;

-- The next normal run raises nothing (the median and the MAD barely move),
-- and the spike keeps its one alert.
CALL a.land('events', 11);
SELECT run_id, kind, observed FROM pipeline.alerts ORDER BY alert_id;
-- One anomaly alert per run is also a rule of the catalog: a second one for
-- the same run is refused (23505).
INSERT INTO pipeline.alert_log (pipeline_id, pipeline_name, kind, run_id)
SELECT pipeline_id, pipeline_name, kind, run_id FROM pipeline.alert_log WHERE run_id = :spike;
:sqlstate

-- A drop is as unusual as a spike: its score is negative.
CALL a.land('events', 1);

-- A run that found nothing new is not scored (it says nothing about the
-- data; a source that stopped is what freshness limits are for), and is
-- not part of the baseline.
-- (It is not recorded either: its pipeline only counts it.)
SELECT pipeline.run('events') AS idle \gset
SELECT count(*) AS records FROM pipeline.runs WHERE run_id = :idle;
SELECT idle_runs > 0 AS counted FROM pipeline.status WHERE name = 'events';
SELECT count(*) AS alerts FROM pipeline.alerts WHERE run_id = :idle;

-- A batched run is one run: scored once, as a whole, when its last batch is
-- recorded (five batches of 22 rows make 110 rows: one alert).
INSERT INTO a.events (kind) SELECT 'click' FROM generate_series(1, 110);
CALL pipeline.run_batched('events', 22);
SELECT h.batches, l.kind, l.observed, l.limit_value
  FROM pipeline.runs h JOIN pipeline.alerts l USING (run_id)
 WHERE h.run_id = (SELECT max(run_id) FROM pipeline.runs);

-- A failed run is not scored, and not part of the baseline: 300 rows, one
-- of which fails an error-severity check. Its alert is run_failed only.
SELECT pipeline.add_check('events', 'known_kind', 'accepted_values',
                          '{"column": "kind", "values": ["click"]}') > 0 AS added;
INSERT INTO a.events (kind) SELECT CASE WHEN g = 300 THEN 'boom' ELSE 'click' END
  FROM generate_series(1, 300) g;
SELECT pipeline.run('events');
:sqlstate
SELECT run_id AS failed FROM pipeline.runs WHERE status = 'failed' \gset
SELECT kind, observed FROM pipeline.alerts WHERE run_id = :failed;
SELECT pipeline.drop_check('events', 'known_kind');
DELETE FROM a.events WHERE id > (SELECT max(id) FROM a.events_dst);
CALL a.land('events', 12);

-- Turned off --------------------------------------------------------------------
-- anomaly_sensitivity => 0 turns anomaly alerts off: the same spike raises
-- nothing, and no statement is run for it.
SELECT pipeline.alter_pipeline('events', anomaly_sensitivity => 0) > 0 AS altered;
SELECT anomaly_sensitivity FROM pipeline.pipeline WHERE name = 'events';
CALL a.land('events', 110);

-- When half the baseline or more is one value ----------------------------------
-- The MAD is then 0, and the spread is 1.2533 times the mean absolute
-- deviation from the median instead; whichever it is, the spread is never
-- taken below one row (one second for durations). A constant series scores
-- 0, and a run is scored by how many rows it is away from the constant.
CREATE TABLE a.ticks (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, kind text NOT NULL);
SELECT pipeline.create_pipeline('ticks', 'a.ticks', 'a.ticks_dst',
                                unique_key => '{id}', incremental_column => 'id',
                                anomaly_sensitivity => 4, anomaly_min_runs => 5) > 0 AS created;
DO $$
BEGIN
    FOR i IN 1 .. 6 LOOP
        INSERT INTO a.ticks (kind) SELECT 'click' FROM generate_series(1, 20);
        COMMIT;
        PERFORM pipeline.run('ticks');
        COMMIT;
    END LOOP;
END
$$;
-- 23 rows: 3 rows away from six runs of 20, a score of 3, below 4.
CALL a.land('ticks', 23);
-- 30 rows: the MAD of six runs of 20 and one of 23 is 0, their mean
-- absolute deviation 3/7 of a row: the spread is one row, a score of 10.
CALL a.land('ticks', 30);

-- Every alert of the suite: one per unusual run.
SELECT l.pipeline_name, l.run_id, l.kind, l.observed, l.limit_value
  FROM pipeline.alerts l ORDER BY l.alert_id;

-- Clean up.
\c :regress_db
DROP DATABASE pipeline_anomaly WITH (FORCE);
