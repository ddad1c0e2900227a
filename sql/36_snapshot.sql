-- 36_snapshot: mode snapshot, the history of every key (SCD type 2). The
-- target keeps every version of each key with valid_from, valid_to (NULL
-- for the current one) and is_current (docs/modeling.md). With an
-- incremental column its value is the version's valid_from; without one
-- the versions are stamped with the run's time. A changed row closes the
-- current version and opens a new one, a re-sent unchanged row does
-- nothing, a delete closes the current version, and a late version is put
-- in its place in the history. pipeline.as_of reads a history at a point
-- in time.
\set SHOW_CONTEXT never
-- After each refused call, its SQLSTATE.
\set sqlstate '\\echo SQLSTATE :LAST_ERROR_SQLSTATE'
-- It runs in a database of its own, so that its runs and audit entries do
-- not shift the ids and counts the other suites print.
\set regress_db :DBNAME
CREATE DATABASE pipeline_snapshot;
\c pipeline_snapshot
SET client_min_messages = notice;
SET TimeZone = 'UTC';
CREATE EXTENSION pg_pipeline;
CREATE SCHEMA s;
-- A change log of customers: every change a row, stamped by the application.
CREATE TABLE s.customers (id int, name text, city text, changed_at timestamptz NOT NULL,
                          deleted boolean NOT NULL DEFAULT false);
CREATE INDEX ON s.customers (changed_at);
-- runs(): the last run's counts
CREATE FUNCTION s.last_run() RETURNS TABLE (status text, read bigint, ins bigint, upd bigint, del bigint,
                                            unch bigint, rej bigint)
LANGUAGE sql AS $$
  SELECT status, rows_read, rows_inserted, rows_updated, rows_deleted, rows_unchanged, rows_rejected
    FROM pipeline.runs ORDER BY run_id DESC LIMIT 1 $$;

-- The target a pipeline creates -------------------------------------------
-- Its exclusion constraint compares the key in a GiST index: btree_gist must
-- be installed first (55000, with the command that does it).
SELECT pipeline.create_pipeline('customers', 's.customers', 's.customer_history', '{id}', 'changed_at',
                                mode => 'snapshot', delete_column => 'deleted', lookback => '30 days');
:sqlstate
CREATE EXTENSION btree_gist;
SELECT pipeline.create_pipeline('customers', 's.customers', 's.customer_history', '{id}', 'changed_at',
                                mode => 'snapshot', delete_column => 'deleted', lookback => '30 days') AS id;
-- The source's columns, the history columns (valid_from of the incremental
-- column's type), a primary key on (key, valid_from), and constraints: no
-- two versions of a key overlap, one current version per key, both
-- deferrable (checked at the end of each statement).
\d s.customer_history
-- The history columns are not derived from the source: no lineage edge.
SELECT from_column, to_column FROM pipeline.column_lineage
 WHERE to_relation = 's.customer_history' ORDER BY 1;

-- Versions ------------------------------------------------------------------
-- Ann moved from Oslo to Bergen; Bob lives in Rome.
INSERT INTO s.customers VALUES (1, 'Ann', 'Oslo', '2024-01-01'), (2, 'Bob', 'Rome', '2024-01-01'),
                               (1, 'Ann', 'Bergen', '2024-02-01');
SELECT pipeline.run('customers') AS run;
SELECT id, city, valid_from, valid_to, is_current FROM s.customer_history ORDER BY id, valid_from;
-- inserted counts versions
SELECT * FROM s.last_run();
-- A re-sent unchanged row (a newer changed_at, the same values) does
-- nothing; Bob moves; Cy arrives. Re-read rows (the lookback) are unchanged.
INSERT INTO s.customers VALUES (1, 'Ann', 'Bergen', '2024-02-10'), (2, 'Bob', 'Milan', '2024-02-05'),
                               (3, 'Cy', 'Nice', '2024-02-06');
SELECT pipeline.run('customers') AS run;
SELECT id, city, valid_from, valid_to, is_current FROM s.customer_history ORDER BY id, valid_from;
-- updated counts the versions closed
SELECT * FROM s.last_run();

-- A late version, inside the lookback, goes to its place: Ann lived in
-- Paris from January 15th. Oslo's version is split; the duplicate of an
-- existing version (Bob in Rome again at the same time) does nothing.
INSERT INTO s.customers VALUES (1, 'Ann', 'Paris', '2024-01-15'), (2, 'Bob', 'Rome', '2024-01-01');
SELECT pipeline.run('customers') AS run;
SELECT id, city, valid_from, valid_to, is_current FROM s.customer_history ORDER BY id, valid_from;
SELECT * FROM s.last_run();
-- A late row with the values of the version after it moves that version's
-- start back: Ann was in Bergen from January 20th. Its old row is removed
-- (deleted counts it) and the earlier one inserted.
INSERT INTO s.customers VALUES (1, 'Ann', 'Bergen', '2024-01-20');
SELECT pipeline.run('customers') AS run;
SELECT id, city, changed_at, valid_from, valid_to, is_current FROM s.customer_history
 WHERE id = 1 ORDER BY valid_from;
SELECT * FROM s.last_run();

-- Deletes -------------------------------------------------------------------
-- A row flagged deleted closes the key's current version (deleted counts
-- it); a delete of a key without a current version does nothing; a later
-- row revives the key with a new version.
INSERT INTO s.customers VALUES (2, NULL, NULL, '2024-02-20', true), (9, NULL, NULL, '2024-02-20', true);
SELECT pipeline.run('customers') AS run;
SELECT id, city, valid_from, valid_to, is_current FROM s.customer_history WHERE id IN (2, 9) ORDER BY id, valid_from;
SELECT * FROM s.last_run();
INSERT INTO s.customers VALUES (2, 'Bob', 'Milan', '2024-03-01');
SELECT pipeline.run('customers') AS run;
SELECT id, city, valid_from, valid_to, is_current FROM s.customer_history WHERE id = 2 ORDER BY valid_from;
SELECT * FROM s.last_run();
-- A late delete splits: Cy left on February 8th and came back on the 9th.
INSERT INTO s.customers VALUES (3, NULL, NULL, '2024-02-08', true), (3, 'Cy', 'Nice', '2024-02-09', false);
SELECT pipeline.run('customers') AS run;
SELECT id, city, valid_from, valid_to, is_current FROM s.customer_history WHERE id = 3 ORDER BY valid_from;
SELECT * FROM s.last_run();
-- Batched runs load the same history.
INSERT INTO s.customers VALUES (4, 'Di', 'Lyon', '2024-03-02'), (4, 'Di', 'Metz', '2024-03-03'),
                               (4, 'Di', 'Caen', '2024-03-04');
CALL pipeline.run_batched('customers', 1);
SELECT id, city, valid_from, valid_to, is_current FROM s.customer_history WHERE id = 4 ORDER BY valid_from;
SELECT status, rows_read, rows_inserted, rows_updated, batches FROM pipeline.runs ORDER BY run_id DESC LIMIT 1;

-- The constraints keep every writer to one history -----------------------------
INSERT INTO s.customer_history (id, name, city, changed_at, deleted, valid_from, valid_to, is_current)
VALUES (1, 'Ann', 'Rome', '2024-01-25', false, '2024-01-25', '2024-01-26', false);
:sqlstate
INSERT INTO s.customer_history (id, name, city, changed_at, deleted, valid_from, valid_to, is_current)
VALUES (1, 'Ann', 'Rome', '2099-01-01', false, '2099-01-01', NULL, true);
:sqlstate
UPDATE s.customer_history SET is_current = false WHERE id = 1 AND valid_to IS NULL;
:sqlstate
UPDATE s.customer_history SET valid_to = valid_from WHERE id = 1 AND valid_to IS NULL;
:sqlstate

-- as_of ---------------------------------------------------------------------
-- pipeline.as_of(target, at) returns the versions valid at a point in time,
-- as SETOF record: name the columns you want (any of the target's, with
-- their types) in a column definition list.
SELECT * FROM pipeline.as_of('s.customer_history', '2024-01-16')
    AS h(id int, city text, valid_from timestamptz) ORDER BY id;
SELECT * FROM pipeline.as_of('s.customer_history', '2024-02-21') AS h(city text, id int) ORDER BY id;
-- the same as this query
SELECT id, city FROM s.customer_history
 WHERE valid_from <= '2024-02-21' AND (valid_to IS NULL OR valid_to > '2024-02-21') ORDER BY id;
-- before anything: no rows
SELECT count(*) FROM pipeline.as_of('s.customer_history', '2023-01-01') AS h(id int);
-- without a column definition list (42601), a column the target lacks
-- (42703) or of another type (42804), a relation that keeps no history
-- (22023)
SELECT * FROM pipeline.as_of('s.customer_history', now());
:sqlstate
SELECT * FROM pipeline.as_of('s.customer_history', now()) AS h(id int, email text);
:sqlstate
SELECT * FROM pipeline.as_of('s.customer_history', now()) AS h(id bigint);
:sqlstate
SELECT * FROM pipeline.as_of('s.customers', now()) AS h(id int);
:sqlstate
-- the caller reads with its own privileges
CREATE ROLE snap_reader;
SET ROLE snap_reader;
SELECT * FROM pipeline.as_of('s.customer_history', now()) AS h(id int);
:sqlstate
RESET ROLE;

-- Without an incremental column: stamped with the run's time ------------------
-- A table updated in place, read whole by every run. Each run stamps its
-- versions with one time, taken under the run's lock on the target, later
-- than every bound the history holds; a key that vanished from the source
-- closes its version. snapshot_check_columns names the columns a change is
-- told by (here not the note), snapshot_columns renames the history columns.
CREATE TABLE s.plans (id int PRIMARY KEY, tier text, price numeric, note text);
INSERT INTO s.plans VALUES (1, 'gold', 10, 'a'), (2, 'silver', 5, 'b'), (3, 'bronze', 1, 'c');
SELECT pipeline.create_pipeline('plans', 's.plans', 's.plan_history', '{id}', mode => 'snapshot',
                                snapshot_columns => '{"valid_from": "since", "valid_to": "until", "is_current": "live"}',
                                snapshot_check_columns => '{tier,price}') AS id;
SELECT column_name, data_type FROM information_schema.columns
 WHERE table_schema = 's' AND table_name = 'plan_history' ORDER BY ordinal_position;
SELECT pipeline.run('plans') AS run;
SELECT * FROM s.last_run();
UPDATE s.plans SET note = 'changed' WHERE id = 1;
UPDATE s.plans SET price = 6 WHERE id = 2;
DELETE FROM s.plans WHERE id = 3;
INSERT INTO s.plans VALUES (4, 'gold', 12, 'd');
SELECT pipeline.run('plans') AS run;
SELECT id, tier, price, note, live, until IS NOT NULL AS closed FROM s.plan_history ORDER BY id, since;
SELECT * FROM s.last_run();
-- one stamp per run, later than the bounds before it
SELECT count(DISTINCT since) AS stamps, bool_and(since < until) AS ordered FROM s.plan_history;
SELECT count(*) AS bounds_after_the_first_stamp
  FROM (SELECT since FROM s.plan_history UNION SELECT until FROM s.plan_history) b
 WHERE since > (SELECT min(since) FROM s.plan_history);
-- A vanished key that comes back opens a new version; nothing new, nothing written.
INSERT INTO s.plans VALUES (3, 'bronze', 1, 'c');
SELECT pipeline.run('plans') AS run;
SELECT id, tier, live FROM s.plan_history WHERE id = 3 ORDER BY since;
SELECT * FROM s.last_run();
SELECT pipeline.run('plans') AS run;
SELECT * FROM s.last_run();
-- as_of through the renamed columns
SELECT * FROM pipeline.as_of('s.plan_history', now()) AS h(id int, price numeric) ORDER BY id;

-- snapshot_keep_deleted keeps a deleted key's version open.
SELECT pipeline.create_pipeline('plans_kept', 's.plans', 's.plan_kept', '{id}', mode => 'snapshot',
                                snapshot_keep_deleted => true) > 0 AS created;
SELECT pipeline.run('plans_kept') > 0 AS ran;
DELETE FROM s.plans WHERE id = 4;
SELECT pipeline.run('plans_kept') > 0 AS ran;
SELECT id, is_current FROM s.plan_kept ORDER BY id;
SELECT * FROM s.last_run();
INSERT INTO s.plans VALUES (4, 'gold', 12, 'd');

-- An integer incremental column versions by its values: as_of refuses
-- (42804) and says the query.
CREATE TABLE s.changes (change_id bigint PRIMARY KEY, id int, v text);
INSERT INTO s.changes VALUES (1, 1, 'a'), (2, 1, 'b'), (3, 2, 'x');
SELECT pipeline.create_pipeline('changes', 's.changes', 's.change_history', '{id}', 'change_id',
                                mode => 'snapshot') > 0 AS created;
SELECT pipeline.run('changes') > 0 AS ran;
SELECT id, v, valid_from, valid_to, is_current FROM s.change_history ORDER BY id, valid_from;
SELECT * FROM pipeline.as_of('s.change_history', now()) AS h(id int);
:sqlstate

-- What a run executes: one MERGE, also into an empty target (no initial load).
SELECT pipeline.create_pipeline('plans_explained', 's.plans', 's.plan_explained', '{id}',
                                mode => 'snapshot') > 0 AS created;
SELECT * FROM pipeline.explain('plans_explained');

-- Row checks work inside the load --------------------------------------------------
-- The gate of the row checks is in the window's rows, as in every mode: a
-- row it quarantines is no event of the history.
SELECT pipeline.add_check('customers', 'city_known', 'expression', '{"sql": "deleted OR city IS NOT NULL"}',
                          'quarantine') > 0 AS added;
INSERT INTO s.customers VALUES (5, 'Ed', NULL, '2024-03-05'), (6, 'Flo', 'Pau', '2024-03-05');
SELECT pipeline.run('customers') AS run;
SELECT id, city, is_current FROM s.customer_history WHERE id IN (5, 6) ORDER BY id;
SELECT status, rows_read, rows_inserted, rows_unchanged, rows_quarantined FROM pipeline.runs ORDER BY run_id DESC LIMIT 1;
SELECT pipeline.drop_check('customers', 'city_known');
-- A replay of the quarantine puts the replayed row at its place in the history.
SELECT pipeline.replay_quarantine('customers') > 0 AS replayed;
SELECT id, city, valid_from, is_current FROM s.customer_history WHERE id = 5;
SELECT status, rows_read, rows_inserted, triggered_by FROM pipeline.runs ORDER BY run_id DESC LIMIT 1;

-- Run records, audit -----------------------------------------------------------
SELECT action, outcome, details->>'rows_inserted' AS inserted, details->>'rows_updated' AS updated,
       details->>'rows_deleted' AS deleted
  FROM pipeline.audit_log WHERE action = 'run_end' AND object_name = 'customers' ORDER BY seq DESC LIMIT 3;
-- the options are in the config while not their defaults
SELECT config_of->'mode' AS mode, config_of->'snapshot_columns' AS columns,
       config_of->'snapshot_check_columns' AS check_columns,
       config_of ? 'snapshot_keep_deleted' AS keep_deleted_shown
  FROM pipeline.config_of('plans');
SELECT pipeline.config_of('plans_kept')->'snapshot_keep_deleted' AS keep_deleted;
-- apply takes them as keys
SELECT name, action FROM pipeline.apply('{"name": "plans_applied", "source": "s.plans", "target": "s.plan_applied",
    "unique_key": ["id"], "mode": "snapshot", "snapshot_check_columns": ["tier"], "snapshot_keep_deleted": true}');

-- Refused, each with its SQLSTATE ---------------------------------------------
-- an unknown mode names snapshot among the modes
SELECT pipeline.create_pipeline('bad', 's.plans', 's.bad', '{id}', mode => 'scd2');
:sqlstate
-- no unique key; soft_delete (a delete closes the version)
SELECT pipeline.create_pipeline('bad', 's.plans', 's.bad', mode => 'snapshot');
:sqlstate
SELECT pipeline.create_pipeline('bad', 's.customers', 's.bad', '{id}', 'changed_at', mode => 'snapshot',
                                delete_column => 'deleted', soft_delete => true);
:sqlstate
-- the snapshot options belong to mode snapshot
SELECT pipeline.create_pipeline('bad', 's.plans', 's.bad', '{id}', snapshot_keep_deleted => true);
:sqlstate
SELECT pipeline.create_pipeline('bad', 's.plans', 's.bad', '{id}', snapshot_check_columns => '{tier}');
:sqlstate
SELECT pipeline.alter_pipeline('plans', mode => 'merge');
:sqlstate
-- snapshot_columns: an object of the three keys to distinct names
SELECT pipeline.create_pipeline('bad', 's.plans', 's.bad', '{id}', mode => 'snapshot', snapshot_columns => '["since"]');
:sqlstate
SELECT pipeline.create_pipeline('bad', 's.plans', 's.bad', '{id}', mode => 'snapshot', snapshot_columns => '{"from": "since"}');
:sqlstate
SELECT pipeline.create_pipeline('bad', 's.plans', 's.bad', '{id}', mode => 'snapshot', snapshot_columns => '{"valid_to": 3}');
:sqlstate
SELECT pipeline.create_pipeline('bad', 's.plans', 's.bad', '{id}', mode => 'snapshot', snapshot_columns => '{"valid_to": ""}');
:sqlstate
SELECT pipeline.create_pipeline('bad', 's.plans', 's.bad', '{id}', mode => 'snapshot',
                                snapshot_columns => '{"valid_to": "valid_from"}');
:sqlstate
SELECT pipeline.create_pipeline('bad', 's.plans', 's.bad', '{id}', mode => 'snapshot', snapshot_columns => NULL);
:sqlstate
-- snapshot_check_columns: no NULL, empty or repeated name; columns the
-- pipeline loads, not the key
SELECT pipeline.create_pipeline('bad', 's.plans', 's.bad', '{id}', mode => 'snapshot',
                                snapshot_check_columns => ARRAY['tier', NULL]);
:sqlstate
SELECT pipeline.create_pipeline('bad', 's.plans', 's.bad', '{id}', mode => 'snapshot', snapshot_check_columns => '{""}');
:sqlstate
SELECT pipeline.create_pipeline('bad', 's.plans', 's.bad', '{id}', mode => 'snapshot', snapshot_check_columns => '{tier,tier}');
:sqlstate
SELECT pipeline.create_pipeline('bad', 's.plans', 's.bad', '{id}', mode => 'snapshot', snapshot_check_columns => '{colour}');
:sqlstate
SELECT pipeline.create_pipeline('bad', 's.plans', 's.bad', '{id}', mode => 'snapshot', snapshot_check_columns => '{id}');
:sqlstate
-- a source column with a history column's name
CREATE TABLE s.clash (id int PRIMARY KEY, valid_from date);
SELECT pipeline.create_pipeline('bad', 's.clash', 's.bad', '{id}', mode => 'snapshot');
:sqlstate
-- a key of a type no GiST operator class covers
CREATE TABLE s.doc_keyed (doc jsonb PRIMARY KEY, v text);
SELECT pipeline.create_pipeline('bad', 's.doc_keyed', 's.bad', '{doc}', mode => 'snapshot');
:sqlstate
-- An existing target must have the history columns, of the right types,
-- and no unique index on the key alone (55000: a merge pipeline's target);
-- without the constraints it gets WARNINGs that say how to add them.
CREATE TABLE s.no_history (id int, tier text, price numeric, note text);
SELECT pipeline.create_pipeline('bad', 's.plans', 's.no_history', '{id}', mode => 'snapshot');
:sqlstate
CREATE TABLE s.wrong_type (id int, tier text, price numeric, note text, valid_from date, valid_to date,
                           is_current boolean);
SELECT pipeline.create_pipeline('bad', 's.plans', 's.wrong_type', '{id}', mode => 'snapshot');
:sqlstate
CREATE TABLE s.merge_target (id int PRIMARY KEY, tier text, price numeric, note text,
                             valid_from timestamptz, valid_to timestamptz, is_current boolean);
SELECT pipeline.create_pipeline('bad', 's.plans', 's.merge_target', '{id}', mode => 'snapshot');
:sqlstate
CREATE TABLE s.bare_history (id int, tier text, price numeric, note text,
                             valid_from timestamptz NOT NULL, valid_to timestamptz, is_current boolean NOT NULL,
                             PRIMARY KEY (id, valid_from));
SELECT pipeline.create_pipeline('bare', 's.plans', 's.bare_history', '{id}', mode => 'snapshot') > 0 AS created;
ALTER TABLE s.bare_history ADD EXCLUDE USING gist (id WITH =, tstzrange(valid_from, valid_to) WITH &&) DEFERRABLE,
                           ADD EXCLUDE USING btree (id WITH =) WHERE (is_current) DEFERRABLE;
SELECT pipeline.alter_pipeline('bare', description => 'guarded now') > 0 AS altered;
SELECT pipeline.run('bare') > 0 AS ran;
SELECT count(*) AS versions FROM s.bare_history;
-- A run refuses a target that lost its history column (42703), and records it.
ALTER TABLE s.bare_history RENAME COLUMN is_current TO current;
SELECT pipeline.run('bare');
:sqlstate
SELECT status, error_sqlstate FROM pipeline.runs ORDER BY run_id DESC LIMIT 1;

-- The owner needs DELETE on the target (a late version removes a redundant one).
CREATE ROLE snap_owner;
GRANT USAGE ON SCHEMA s TO snap_owner;
GRANT SELECT ON s.plans TO snap_owner;
GRANT SELECT, INSERT, UPDATE ON s.plan_history TO snap_owner;
SET ROLE snap_owner;
SELECT pipeline.create_pipeline('owned', 's.plans', 's.plan_history', '{id}', mode => 'snapshot',
                                snapshot_columns => '{"valid_from": "since", "valid_to": "until", "is_current": "live"}');
:sqlstate
RESET ROLE;

-- Clean up.
\c :regress_db
DROP DATABASE pipeline_snapshot WITH (FORCE);
DROP ROLE snap_reader, snap_owner;
