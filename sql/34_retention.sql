-- 34_retention: raw retention. A pipeline's raw_retention purges the rows
-- of its source table older than it that every pipeline reading the table
-- has read (docs/privacy.md#raw-retention; what "read" means is
-- docs/exactly-once.md#what-raw-retention-counts-as-loaded). The launcher
-- purges in small batches; pipeline._purge_raw(name) makes one purge now,
-- as the launcher does, and is what this file calls. Each purge is a row
-- of pipeline.retention_log and an audit entry.
\set SHOW_CONTEXT never
-- After each refused call, its SQLSTATE.
\set sqlstate '\\echo SQLSTATE :LAST_ERROR_SQLSTATE'
-- It runs in a database of its own, so that its runs and audit entries do
-- not shift the ids and counts the other suites print.
\set regress_db :DBNAME
CREATE DATABASE pipeline_retention;
\c pipeline_retention
SET client_min_messages = notice;
CREATE EXTENSION pg_pipeline;
CREATE ROLE r_owner;
CREATE ROLE r_other;
CREATE SCHEMA r AUTHORIZATION r_owner;
GRANT USAGE ON SCHEMA r TO r_other;
SET ROLE r_owner;
-- Rows from 30 days ago to now, a day apart: ids are their age in days.
CREATE TABLE r.events (id int PRIMARY KEY, at timestamptz NOT NULL, v text);
CREATE INDEX ON r.events (at);
INSERT INTO r.events SELECT d, now() - make_interval(days => d, hours => 12), 'e' || d
  FROM generate_series(0, 30) d;

-- Registering --------------------------------------------------------------
-- raw_retention is an interval; the config shows it once it is set.
SELECT pipeline.create_pipeline('ev_a', 'r.events', 'r.events_a', unique_key => '{id}',
                                incremental_column => 'at', raw_retention => '10 days') > 0 AS created;
SELECT pipeline.config_of('ev_a')->'raw_retention' AS raw_retention;
-- A second pipeline reads the same table, with a lookback of two days.
SELECT pipeline.create_pipeline('ev_b', 'r.events', 'r.events_b', unique_key => '{id}',
                                incremental_column => 'at', lookback => '2 days') > 0 AS created;

-- Refused at registration, each with its SQLSTATE: a source that is not a
-- table, no time incremental column, a retention that is not positive, a
-- pipeline in mode full, a table with row-level security, an owner who may
-- not delete from the source.
CREATE VIEW r.events_v AS SELECT * FROM r.events;
SELECT pipeline.create_pipeline('bad', 'r.events_v', 'r.bad', unique_key => '{id}',
                                incremental_column => 'at', raw_retention => '10 days');
:sqlstate
SELECT pipeline.create_pipeline('bad', 'r.events', 'r.bad', unique_key => '{id}',
                                raw_retention => '10 days');
:sqlstate
CREATE TABLE r.numbered (seq bigint PRIMARY KEY, v text);
SELECT pipeline.create_pipeline('bad', 'r.numbered', 'r.bad', unique_key => '{seq}',
                                incremental_column => 'seq', raw_retention => '10 days');
:sqlstate
SELECT pipeline.create_pipeline('bad', 'r.events', 'r.bad', unique_key => '{id}',
                                incremental_column => 'at', raw_retention => '-1 day');
:sqlstate
SELECT pipeline.create_pipeline('bad', 'r.events', 'r.bad', unique_key => '{id}',
                                incremental_column => 'at', raw_retention => '0');
:sqlstate
SELECT pipeline.create_pipeline('bad', 'r.events', 'r.bad', unique_key => '{id}', mode => 'full',
                                incremental_column => 'at', raw_retention => '10 days');
:sqlstate
CREATE TABLE r.guarded (id int PRIMARY KEY, at timestamptz NOT NULL);
ALTER TABLE r.guarded ENABLE ROW LEVEL SECURITY;
SELECT pipeline.create_pipeline('bad', 'r.guarded', 'r.bad', unique_key => '{id}',
                                incremental_column => 'at', raw_retention => '10 days');
:sqlstate
CREATE TABLE r.parted (id int, at timestamptz NOT NULL, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
SELECT pipeline.create_pipeline('bad', 'r.parted', 'r.bad', unique_key => '{id,at}',
                                incremental_column => 'at', raw_retention => '10 days');
:sqlstate
RESET ROLE;
CREATE TABLE r.shared (id int PRIMARY KEY, at timestamptz NOT NULL);
GRANT SELECT ON r.shared TO r_owner;
SET ROLE r_owner;
SELECT pipeline.create_pipeline('bad', 'r.shared', 'r.bad', unique_key => '{id}',
                                incremental_column => 'at', raw_retention => '10 days');
:sqlstate
-- None of them was registered.
SELECT count(*) AS pipelines FROM pipeline.pipelines;

-- Purging ------------------------------------------------------------------
-- Nothing is purged before every reader has read the rows: first no run,
-- then only ev_a's.
SELECT pipeline._purge_raw('ev_a') AS deleted;
SELECT pipeline.run('ev_a') > 0 AS ran;
SELECT pipeline._purge_raw('ev_a') AS deleted;
SELECT count(*) AS rows_left FROM r.events;
-- Once ev_b has read them too, the rows older than 10 days go, a batch of
-- at most pipeline.retention_batch_rows at a time.
SELECT pipeline.run('ev_b') > 0 AS ran;
SET pipeline.retention_batch_rows = 8;
SELECT pipeline._purge_raw('ev_a') AS deleted;
SELECT pipeline._purge_raw('ev_a') AS deleted;
SELECT pipeline._purge_raw('ev_a') AS deleted;
RESET pipeline.retention_batch_rows;
SELECT count(*) AS rows_left, max(id) AS oldest_left FROM r.events;
-- The targets keep everything: retention is about the raw copy.
SELECT (SELECT count(*) FROM r.events_a) AS in_a, (SELECT count(*) FROM r.events_b) AS in_b;
-- The log: one row per purge that deleted rows, with the bound (now() -
-- raw_retention when it ran), the pipelines that had all read the rows.
SELECT purge_id, pipeline, relation, rows_deleted, readers, skipped, triggered_by,
       now() - bound::timestamptz BETWEEN '10 days' AND '10 days 1 minute' AS bound_is_10_days_ago
  FROM pipeline.retention_log ORDER BY purge_id;
SELECT sum(rows_deleted) = 31 - (SELECT count(*) FROM r.events) AS counts_add_up
  FROM pipeline.retention_log;
-- and one audit entry per purge, naming the source.
SELECT action, object_type, object_name, outcome, details->'rows_deleted' AS rows_deleted,
       details->'readers' AS readers, details->>'triggered_by' AS triggered_by
  FROM pipeline.audit_log WHERE action = 'purge_raw' ORDER BY seq;

-- Rows never read are never purged --------------------------------------------
-- A row written after both runs with an old timestamp (a late writer, an
-- event replayed from a client's queue) lies below both watermarks: the
-- runs never read it, so it stays, however old.
INSERT INTO r.events VALUES (100, now() - interval '40 days', 'late');
SELECT pipeline.run('ev_a') > 0 AS ran, pipeline.run('ev_b') > 0 AS ran;
SELECT pipeline._purge_raw('ev_a') AS deleted;
SELECT id, v FROM r.events WHERE id = 100;
-- Neither target has it: it was never loaded.
SELECT (SELECT count(*) FROM r.events_a WHERE id = 100) AS in_a,
       (SELECT count(*) FROM r.events_b WHERE id = 100) AS in_b;
-- A late row inside ev_b's lookback is read by ev_b's next run, not by
-- ev_a, which has none.
INSERT INTO r.events VALUES (101, (SELECT max(at) FROM r.events) - interval '1 day', 'late, in the lookback');
SELECT pipeline.run('ev_a') > 0 AS ran, pipeline.run('ev_b') > 0 AS ran;
SELECT (SELECT count(*) FROM r.events_a WHERE id = 101) AS in_a,
       (SELECT count(*) FROM r.events_b WHERE id = 101) AS in_b;
-- With a retention of one day, the rows both have read go (ids 1 to 9);
-- 101, which only ev_b has read, stays, and so does 100.
SELECT pipeline.alter_pipeline('ev_a', raw_retention => '1 day') > 0 AS altered;
SELECT pipeline._purge_raw('ev_a') AS deleted;
SELECT id FROM r.events ORDER BY id;
-- A reset that moves the watermarks forward past a row never read does
-- not make it read.
INSERT INTO r.events VALUES (102, now() - interval '20 days', 'never read');
SELECT pipeline.reset('ev_a', (now() + interval '1 hour')::text);
SELECT pipeline.reset('ev_b', (now() + interval '1 hour')::text);
SELECT pipeline._purge_raw('ev_a') AS deleted;
SELECT id FROM r.events ORDER BY id;
-- A reset to the beginning and a run read everything again: then they go.
SELECT pipeline.reset('ev_a');
SELECT pipeline.reset('ev_b');
SELECT pipeline.run('ev_a') > 0 AS ran, pipeline.run('ev_b') > 0 AS ran;
SELECT pipeline._purge_raw('ev_a') AS deleted;
SELECT id FROM r.events ORDER BY id;

-- Readers that keep the rows -------------------------------------------------
-- Another table, read by two pipelines, one with a retention of a day.
CREATE TABLE r.clicks (id int PRIMARY KEY, at timestamptz NOT NULL, at2 timestamptz);
CREATE INDEX ON r.clicks (at);
INSERT INTO r.clicks SELECT d, now() - make_interval(days => d, hours => 12), NULL
  FROM generate_series(0, 5) d;
CREATE VIEW r.clicks_v AS SELECT * FROM r.clicks;
SELECT pipeline.create_pipeline('c_a', 'r.clicks', 'r.clicks_a', unique_key => '{id}',
                                incremental_column => 'at', raw_retention => '1 day') > 0 AS created;
SELECT pipeline.create_pipeline('c_b', 'r.clicks', 'r.clicks_b', unique_key => '{id}',
                                incremental_column => 'at') > 0 AS created;
SELECT pipeline.run('c_a') > 0 AS ran, pipeline.run('c_b') > 0 AS ran;
-- A pipeline reading the table through a view: its runs' windows say
-- nothing about the table's rows, so nothing is purged, and the log says
-- why (once, however often the launcher tries).
SELECT pipeline.create_pipeline('c_view', 'r.clicks_v', 'r.clicks_view', unique_key => '{id}',
                                incremental_column => 'at') > 0 AS created;
SELECT pipeline._purge_raw('c_a') AS deleted;
SELECT pipeline._purge_raw('c_a') AS deleted;
SELECT pipeline.drop_pipeline('c_view', drop_target => true);
-- A pipeline reading it without an incremental column.
SELECT pipeline.create_pipeline('c_all', 'r.clicks', 'r.clicks_all', unique_key => '{id}') > 0 AS created;
SELECT pipeline._purge_raw('c_a') AS deleted;
SELECT pipeline.drop_pipeline('c_all', drop_target => true);
SELECT pipeline, rows_deleted, skipped, triggered_by FROM pipeline.retention_log
 WHERE skipped IS NOT NULL ORDER BY purge_id;
-- Registering raw_retention while such a reader exists says so.
SELECT pipeline.create_pipeline('c_full', 'r.clicks', 'r.clicks_full', unique_key => '{id}',
                                incremental_column => 'at', mode => 'full') > 0 AS created;
SELECT pipeline.alter_pipeline('c_b', raw_retention => '5 days') > 0 AS altered;
SELECT pipeline.drop_pipeline('c_full', drop_target => true);
SELECT pipeline.alter_pipeline('c_b', raw_retention => '0') > 0 AS altered;
-- Without them, purges go on.
SELECT pipeline._purge_raw('c_a') AS deleted;
SELECT id FROM r.clicks ORDER BY id;

-- A new incremental column forgets what the runs read ---------------------------
INSERT INTO r.clicks SELECT d, now() - make_interval(days => d - 10, hours => 12), NULL
  FROM generate_series(12, 14) d;
UPDATE r.clicks SET at2 = at;
SELECT pipeline.alter_pipeline('c_b', incremental_column => 'at2') > 0 AS altered;
RESET ROLE;
SELECT p.name, w.column_name, count(*) AS windows
  FROM pipeline.read_window w JOIN pipeline.pipeline p USING (pipeline_id)
 WHERE p.name LIKE 'c\_%' GROUP BY 1, 2 ORDER BY 1;
SET ROLE r_owner;
-- c_b now reads at2: a row must lie in a window of c_a over at and in one
-- of c_b over at2. c_a reads the rows again from the start (the update
-- wrote new versions of them), c_b has read nothing by at2 yet.
SELECT pipeline.reset('c_a');
SELECT pipeline.run('c_a') > 0 AS ran;
SELECT pipeline._purge_raw('c_a') AS deleted;
SELECT pipeline.run('c_b') > 0 AS ran;
SELECT pipeline._purge_raw('c_a') AS deleted;
SELECT id FROM r.clicks ORDER BY id;

-- Other types: date and timestamp columns ---------------------------------------
CREATE TABLE r.daily (day date PRIMARY KEY, n int);
INSERT INTO r.daily SELECT current_date - d, d FROM generate_series(0, 9) d;
SELECT pipeline.create_pipeline('daily', 'r.daily', 'r.daily_dst', unique_key => '{day}',
                                incremental_column => 'day', raw_retention => '3 days') > 0 AS created;
SELECT pipeline.run('daily') > 0 AS ran;
SELECT pipeline._purge_raw('daily') AS deleted;
SELECT min(n), max(n) FROM r.daily;
CREATE TABLE r.local (id int PRIMARY KEY, at timestamp NOT NULL);
INSERT INTO r.local SELECT d, localtimestamp - make_interval(days => d, hours => 12) FROM generate_series(0, 9) d;
SELECT pipeline.create_pipeline('local', 'r.local', 'r.local_dst', unique_key => '{id}',
                                incremental_column => 'at', raw_retention => '5 days') > 0 AS created;
SELECT pipeline.run('local') > 0 AS ran;
SELECT pipeline._purge_raw('local') AS deleted;
SELECT max(id) AS oldest_left FROM r.local;

-- apply takes raw_retention as a key ---------------------------------------------
SELECT name, action FROM pipeline.apply('{"name": "daily", "source": "r.daily", "target": "r.daily_dst",
    "unique_key": ["day"], "incremental_column": "day", "raw_retention": "7 days"}');
SELECT pipeline.config_of('daily')->'raw_retention' AS raw_retention;

-- Who may purge, and who sees the log ----------------------------------------------
SELECT pipeline._purge_raw('ev_b');
:sqlstate
SELECT pipeline._purge_raw('no_such_pipeline');
:sqlstate
SELECT pipeline._raw_loaded('1'::xid, now());
:sqlstate
SET ROLE r_other;
SELECT pipeline._purge_raw('ev_a');
:sqlstate
SELECT count(*) AS visible FROM pipeline.retention_log;
SET ROLE r_owner;
SELECT count(*) > 0 AS visible FROM pipeline.retention_log;
-- The owner must still be allowed to delete from the source at each purge.
RESET ROLE;
GRANT SELECT, DELETE ON r.shared TO r_owner;
SET ROLE r_owner;
SELECT pipeline.create_pipeline('shared', 'r.shared', 'r.shared_dst', unique_key => '{id}',
                                incremental_column => 'at', raw_retention => '1 day') > 0 AS created;
RESET ROLE;
REVOKE DELETE ON r.shared FROM r_owner;
SET ROLE r_owner;
SELECT pipeline._purge_raw('shared');
:sqlstate
RESET ROLE;

-- Clean up.
\c :regress_db
DROP DATABASE pipeline_retention WITH (FORCE);
DROP ROLE r_owner, r_other;
