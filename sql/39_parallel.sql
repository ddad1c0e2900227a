-- sql/39_parallel.sql
--
-- Parallel loads (issue 12, docs/parallel.md): parallel_workers, its
-- errors, and a run into a partitioned target loaded by part workers, each
-- its partitions in a prepared transaction that commits with the run. The
-- server runs with max_prepared_transactions = 8 (scripts/lib.sh).
SET client_min_messages = warning;
CREATE SCHEMA par_stage;
CREATE SCHEMA par_core;
CREATE TABLE par_stage.events (
    region      text NOT NULL,
    id          bigint NOT NULL,
    amount      integer,
    is_deleted  boolean NOT NULL DEFAULT false,
    updated_at  timestamptz NOT NULL
);
CREATE TABLE par_core.events (
    region      text NOT NULL,
    id          bigint NOT NULL,
    amount      integer,
    is_deleted  boolean NOT NULL DEFAULT false,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (region, id)
) PARTITION BY LIST (region);
CREATE TABLE par_core.events_eu PARTITION OF par_core.events FOR VALUES IN ('eu');
CREATE TABLE par_core.events_us PARTITION OF par_core.events FOR VALUES IN ('us');
CREATE TABLE par_core.events_asia PARTITION OF par_core.events FOR VALUES IN ('asia');
-- the same target, loaded serially, to compare with
CREATE TABLE par_core.events_serial (LIKE par_core.events INCLUDING ALL);
INSERT INTO par_stage.events
SELECT (ARRAY['eu', 'us', 'asia'])[1 + g % 3], g % 40, g, false,
       timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute'
  FROM generate_series(1, 100) AS g;

-- parallel_workers is an option like any other: from 1 (the default,
-- serial) to 32; the config shows it once it is not 1.
SELECT pipeline.create_pipeline('par', 'par_stage.events', 'par_core.events',
                                unique_key => ARRAY['region', 'id'], incremental_column => 'updated_at',
                                delete_column => 'is_deleted', partition_column => 'region',
                                create_target => false, parallel_workers => 2) > 0 AS created;
SELECT pipeline.create_pipeline('par_serial', 'par_stage.events', 'par_core.events_serial',
                                unique_key => ARRAY['region', 'id'], incremental_column => 'updated_at',
                                delete_column => 'is_deleted', partition_column => 'region',
                                create_target => false) > 0 AS created;
SELECT pipeline.config_of('par')->'parallel_workers' AS par,
       pipeline.config_of('par_serial') ? 'parallel_workers' AS serial_shows_it;

-- Its errors: out of range (22023), a mode that cannot split its window
-- (22023), no partition column (22023).
\set VERBOSITY default
\set sqlstate '\\echo SQLSTATE :LAST_ERROR_SQLSTATE'
SELECT pipeline.alter_pipeline('par', parallel_workers => 0);
:sqlstate
SELECT pipeline.alter_pipeline('par', parallel_workers => 33);
:sqlstate
SELECT pipeline.alter_pipeline('par', mode => 'full');
:sqlstate
SELECT pipeline.alter_pipeline('par', partition_column => '');
:sqlstate
-- More parts than the server can prepare transactions for: 55000.
SELECT pipeline.alter_pipeline('par', parallel_workers => 9);
:sqlstate
\set VERBOSITY terse

-- explain says how a run of it is split.
SELECT line FROM pipeline.explain('par') AS line WHERE line LIKE '-- parallel_workers%';

-- The first run loads the three partitions in two parts (eu and asia in
-- one, us in the other), each empty partition by the initial load's
-- INSERT; the counts are those of the serial run, and nothing is left
-- prepared.
SET client_min_messages = notice;
SELECT pipeline.run('par') AS first_run \gset
RESET client_min_messages;
SELECT pipeline.run('par_serial') AS serial_run \gset
SELECT r.status, r.rows_read, r.rows_inserted, r.rows_updated, r.rows_deleted, r.rows_unchanged,
       r.rows_rejected
  FROM pipeline.runs r WHERE r.run_id IN (:first_run, :serial_run) ORDER BY r.run_id;
SELECT count(*) AS prepared_left FROM pg_prepared_xacts WHERE gid LIKE 'pg_pipeline:%';
SELECT (SELECT count(*) FROM par_core.events) AS loaded,
       (SELECT count(*) FROM par_core.events_eu) AS eu,
       NOT EXISTS (SELECT * FROM par_core.events EXCEPT SELECT * FROM par_core.events_serial)
   AND NOT EXISTS (SELECT * FROM par_core.events_serial EXCEPT SELECT * FROM par_core.events) AS same_rows;
SELECT (SELECT watermark_to FROM pipeline.runs WHERE run_id = :first_run) =
       (SELECT watermark_to FROM pipeline.runs WHERE run_id = :serial_run) AS same_watermark;

-- An incremental run merges per part: updates, deletes, unchanged rows.
UPDATE par_stage.events SET amount = -amount, updated_at = updated_at + interval '1 day' WHERE id % 5 = 0;
UPDATE par_stage.events SET is_deleted = true, updated_at = updated_at + interval '1 day' WHERE id = 7;
INSERT INTO par_stage.events VALUES ('eu', 1000, 1, false, '2024-02-01 00:00:00+00');
SELECT pipeline.run('par') AS second_run \gset
SELECT pipeline.run('par_serial') AS serial_second \gset
SELECT r.status, r.rows_read, r.rows_inserted, r.rows_updated, r.rows_deleted, r.rows_unchanged
  FROM pipeline.runs r WHERE r.run_id IN (:second_run, :serial_second) ORDER BY r.run_id;
SELECT NOT EXISTS (SELECT * FROM par_core.events EXCEPT SELECT * FROM par_core.events_serial)
   AND NOT EXISTS (SELECT * FROM par_core.events_serial EXCEPT SELECT * FROM par_core.events) AS same_rows;
-- the run's lineage row is the serial run's but for its target
SELECT i.source_relation, i.target_relation, i.watermark_from = j.watermark_from AS same_from,
       i.watermark_to = j.watermark_to AS same_to,
       (i.rows_read, i.rows_inserted, i.rows_updated, i.rows_deleted)
         = (j.rows_read, j.rows_inserted, j.rows_updated, j.rows_deleted) AS same_counts
  FROM pipeline.run_io i, pipeline.run_io j
 WHERE i.run_id = :second_run AND j.run_id = :serial_second;
-- the audit log has the same actions and outcomes for both
SELECT a.action, a.outcome, count(*) FILTER (WHERE p.name = 'par') AS par,
       count(*) FILTER (WHERE p.name = 'par_serial') AS par_serial
  FROM pipeline.audit_log a JOIN pipeline.pipeline p USING (pipeline_id)
 WHERE p.name IN ('par', 'par_serial') AND a.action LIKE 'run%'
 GROUP BY a.action, a.outcome ORDER BY a.action, a.outcome;

-- A part that fails rolls every part back: a row no partition takes fails
-- the run with 23514 as a serial run would, and nothing of it is loaded.
INSERT INTO par_stage.events VALUES ('eu', 2000, 1, false, '2024-03-01 00:00:00+00'),
                                    ('mars', 1, 1, false, '2024-03-01 00:00:00+00');
SELECT pipeline.run('par');
SELECT status, error_sqlstate FROM pipeline.runs WHERE pipeline_name = 'par' ORDER BY run_id DESC LIMIT 1;
SELECT count(*) AS eu_2000 FROM par_core.events WHERE id = 2000;
SELECT count(*) AS prepared_left FROM pg_prepared_xacts WHERE gid LIKE 'pg_pipeline:%';
DELETE FROM par_stage.events WHERE region = 'mars';
SELECT pipeline.run('par') > 0 AS ran;
SELECT count(*) AS eu_2000 FROM par_core.events WHERE id = 2000;

-- A row check of severity error fails the run from the part that meets the
-- row, recorded as a serial failure is (its check included).
SELECT pipeline.add_check('par', 'not_negative', 'expression', '{"sql": "amount >= 0"}', 'error') > 0 AS added;
INSERT INTO par_stage.events VALUES ('asia', 2500, -1, false, '2024-03-02 00:00:00+00');
SELECT pipeline.run('par');
SELECT r.status, r.error_sqlstate, c.check_name, c.failed_rows, c.outcome
  FROM pipeline.runs r JOIN pipeline.check_results c USING (run_id)
 WHERE r.pipeline_name = 'par' ORDER BY r.run_id DESC LIMIT 1;
SELECT count(*) AS prepared_left FROM pg_prepared_xacts WHERE gid LIKE 'pg_pipeline:%';
SELECT pipeline.drop_check('par', 'not_negative');
DELETE FROM par_stage.events WHERE id = 2500;

-- A run in a transaction that wrote before it loads serially, and says why.
SET client_min_messages = notice;
BEGIN;
INSERT INTO par_stage.events VALUES ('us', 3000, 1, false, '2024-04-01 00:00:00+00');
SELECT pipeline.run('par') > 0 AS ran;
COMMIT;
RESET client_min_messages;
SELECT count(*) AS us_3000 FROM par_core.events WHERE id = 3000;

-- A target that is not partitioned by the partition column loads serially.
SET client_min_messages = notice;
SELECT pipeline.alter_pipeline('par_serial', parallel_workers => 2) > 0 AS altered;
INSERT INTO par_stage.events VALUES ('us', 3001, 1, false, '2024-04-02 00:00:00+00');
SELECT pipeline.run('par_serial') > 0 AS ran;
RESET client_min_messages;

-- The parts evaluate the load with their leader's settings, as a serial
-- run does: a source whose rows depend on TimeZone, DateStyle and
-- work_mem loads the same rows either way, under the caller's settings
-- (here not the server's). A part starts no parallel worker of its own
-- (helpers: max_parallel_maintenance_workers and
-- max_parallel_workers_per_gather), whatever its leader's session allows.
CREATE VIEW par_stage.local AS
SELECT region, id, updated_at, updated_at::text AS local_time,
       current_setting('DateStyle') AS date_style, current_setting('work_mem') AS work_mem,
       current_setting('max_parallel_maintenance_workers') || ' ' ||
       current_setting('max_parallel_workers_per_gather') AS helpers
  FROM par_stage.events;
CREATE TABLE par_core.local (region text NOT NULL, id bigint NOT NULL, updated_at timestamptz NOT NULL,
                             local_time text, date_style text, work_mem text, helpers text,
                             PRIMARY KEY (region, id)) PARTITION BY LIST (region);
CREATE TABLE par_core.local_eu PARTITION OF par_core.local FOR VALUES IN ('eu');
CREATE TABLE par_core.local_us PARTITION OF par_core.local FOR VALUES IN ('us');
CREATE TABLE par_core.local_asia PARTITION OF par_core.local FOR VALUES IN ('asia');
CREATE TABLE par_core.local_serial (LIKE par_core.local INCLUDING ALL);
SELECT pipeline.create_pipeline(p, 'par_stage.local', t, unique_key => ARRAY['region', 'id'],
                                incremental_column => 'updated_at', partition_column => 'region',
                                create_target => false, parallel_workers => w) > 0 AS created
  FROM (VALUES ('par_local', 'par_core.local', 2), ('par_local_serial', 'par_core.local_serial', 1)) AS v(p, t, w);
SET TimeZone = 'Asia/Tokyo';
SET DateStyle = 'SQL, DMY';
SET work_mem = '5MB';
SET max_parallel_maintenance_workers = 1;
SET max_parallel_workers_per_gather = 1;
SET client_min_messages = notice;
SELECT pipeline.run('par_local') > 0 AS ran, pipeline.run('par_local_serial') > 0 AS ran_serial;
RESET client_min_messages;
SELECT count(*) AS loaded,
       NOT EXISTS (SELECT region, id, updated_at, local_time, date_style, work_mem FROM par_core.local
                   EXCEPT SELECT region, id, updated_at, local_time, date_style, work_mem FROM par_core.local_serial)
   AND NOT EXISTS (SELECT region, id, updated_at, local_time, date_style, work_mem FROM par_core.local_serial
                   EXCEPT SELECT region, id, updated_at, local_time, date_style, work_mem FROM par_core.local) AS same_rows
  FROM par_core.local;
SELECT DISTINCT right(local_time, 3) AS zone, date_style, work_mem, helpers FROM par_core.local;
SELECT DISTINCT helpers AS serial_helpers FROM par_core.local_serial;
RESET TimeZone;
RESET DateStyle;
RESET work_mem;
RESET max_parallel_maintenance_workers;
RESET max_parallel_workers_per_gather;
SELECT pipeline.drop_pipeline('par_local');
SELECT pipeline.drop_pipeline('par_local_serial');

-- Each part builds the indexes of the partitions it loads empty after
-- their rows, as a serial initial load does (each index gets a new file),
-- when it can lock them at once and the run is all its transaction does
-- (a statement that only calls pipeline.run, as here, or a run worker's).
-- A leader whose own transaction read the target first holds locks on
-- them that its parts must not wait for: they fill those indexes row by
-- row instead, in the files they had, and the run neither waits nor
-- fails. amcheck finds every index holding exactly its partition's rows
-- either way.
CREATE EXTENSION amcheck;
CREATE TABLE par_core.built (region text NOT NULL, id bigint NOT NULL, amount integer,
                             is_deleted boolean NOT NULL DEFAULT false, updated_at timestamptz NOT NULL,
                             PRIMARY KEY (region, id)) PARTITION BY LIST (region);
CREATE INDEX ON par_core.built (amount);
CREATE TABLE par_core.built_eu PARTITION OF par_core.built FOR VALUES IN ('eu');
CREATE TABLE par_core.built_us PARTITION OF par_core.built FOR VALUES IN ('us');
CREATE TABLE par_core.built_asia PARTITION OF par_core.built FOR VALUES IN ('asia');
SELECT pipeline.create_pipeline('par_built', 'par_stage.events', 'par_core.built',
                                unique_key => ARRAY['region', 'id'], incremental_column => 'updated_at',
                                partition_column => 'region', create_target => false,
                                parallel_workers => 2) > 0 AS created;
-- the partitions' indexes, and their files before a load
CREATE VIEW par_stage.built_indexes AS
SELECT i.indexrelid::regclass AS index, pg_relation_filenode(i.indexrelid) AS file
  FROM pg_index i JOIN pg_inherits h ON h.inhrelid = i.indrelid
 WHERE h.inhparent = 'par_core.built'::regclass;
CREATE TABLE par_stage.files AS SELECT * FROM par_stage.built_indexes;
-- after a load: the rows, the keys of the source, the indexes built anew,
-- and those amcheck checked
CREATE VIEW par_stage.built_state AS
SELECT (SELECT count(*) FROM par_core.built) AS loaded,
       (SELECT count(*) FROM (SELECT DISTINCT region, id FROM par_stage.events) AS k) AS keys,
       count(*) FILTER (WHERE n.file <> f.file) AS built_anew, count(*) AS indexes,
       count(bt_index_check(f.index, true)) AS checked
  FROM par_stage.files f JOIN par_stage.built_indexes n USING (index);
-- an empty target again, its watermark reset and its index files kept
CREATE FUNCTION par_stage.empty_built() RETURNS void LANGUAGE sql AS $$
    TRUNCATE par_core.built;
    SELECT pipeline.reset('par_built');
    TRUNCATE par_stage.files;
    INSERT INTO par_stage.files SELECT * FROM par_stage.built_indexes $$;
SET client_min_messages = notice;
SELECT pipeline.run('par_built') > 0 AS ran;
RESET client_min_messages;
SELECT * FROM par_stage.built_state;
-- A run in a transaction block loads serially, and says why: a later
-- statement of the block that wrote the target, as this UPDATE does, would
-- otherwise wait for ever for the locks of the run's own prepared parts
-- (lock_timeout would end such a wait). The serial run builds the indexes
-- after the rows itself.
SELECT par_stage.empty_built();
BEGIN;
SET LOCAL client_min_messages = notice;
SET LOCAL lock_timeout = '10s';
SELECT pipeline.run('par_built') > 0 AS ran;
UPDATE par_core.built SET amount = amount WHERE region = 'eu';
COMMIT;
SELECT * FROM par_stage.built_state;
-- Parts whose leader's transaction goes on after the run, in a function, a
-- procedure or a DO block, or in a statement that does more than call
-- pipeline.run once, fill the indexes row by row: their leader could then
-- read the target and wait for ever for the parts' locks on indexes they
-- built. Here the DO block reads the target right after the run without
-- waiting (lock_timeout would end a wait). It reads no row: the parts'
-- rows are theirs, prepared, until its transaction commits.
SELECT par_stage.empty_built();
SET lock_timeout = '10s';
DO $$
BEGIN
    PERFORM pipeline.run('par_built');
    RAISE NOTICE 'read right after the run: % rows', (SELECT count(*) FROM par_core.built);
END $$;
RESET lock_timeout;
SELECT * FROM par_stage.built_state;
SELECT r.status, r.rows_read, r.rows_inserted
  FROM pipeline.runs r WHERE r.pipeline_name = 'par_built' ORDER BY r.run_id;
SELECT count(*) AS prepared_left FROM pg_prepared_xacts WHERE gid LIKE 'pg_pipeline:%';
SELECT pipeline.drop_pipeline('par_built');
DROP VIEW par_stage.built_state;
DROP EXTENSION amcheck;

-- pipeline._partition_rows(these, next) marks a part's scan of the source:
-- in a part, the first of two partitions' statement names both partitions'
-- constraints in it, and one scan returns this partition's rows and keeps
-- the next one's, sorted, for the next statement (docs/parallel.md, "One
-- scan for two partitions"; test/t/016_parallel_one_scan.pl reads the
-- parts' plans). Anywhere else it is its first argument, and a statement
-- that names it plans as it would without it: an ordinary scan.
SELECT pipeline._partition_rows(true, false) AS these, pipeline._partition_rows(false, true) AS next,
       pipeline._partition_rows(NULL, true) AS unknown, pipeline._partition_rows(true, NULL) AS last;
EXPLAIN (COSTS OFF)
SELECT DISTINCT ON (s.id) s.id FROM par_stage.events AS s
 WHERE pipeline._partition_rows(s.region = 'eu', s.region = 'us') ORDER BY s.id;

SELECT pipeline.drop_pipeline('par');
SELECT pipeline.drop_pipeline('par_serial');
DROP SCHEMA par_stage CASCADE;
DROP SCHEMA par_core CASCADE;
