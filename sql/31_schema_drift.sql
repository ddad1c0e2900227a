-- 31_schema_drift: what a run does when its source's columns changed. Each
-- run compares the source with the snapshot of its last successful run
-- (pipeline.source_snapshot) and with the target, and does what the
-- pipeline's on_schema_change says: fail (the default), ignore,
-- append_new_columns or sync_all_columns. Every change is a row of
-- pipeline.schema_history and an audit entry; the DDL trigger writes the
-- changes as they happen ('detected'), the next run what it did about them.
\set SHOW_CONTEXT never
-- After each refused call, its SQLSTATE.
\set sqlstate '\\echo SQLSTATE :LAST_ERROR_SQLSTATE'
-- It runs in a database of its own, so that its runs and audit entries do
-- not shift the ids and counts the other suites print.
\set regress_db :DBNAME
CREATE DATABASE pipeline_drift;
\c pipeline_drift
SET client_min_messages = notice;
CREATE EXTENSION pg_pipeline;
CREATE SCHEMA d;

-- columns_of(r): a relation's columns and types
CREATE FUNCTION columns_of(r regclass) RETURNS text LANGUAGE sql AS $$
    SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum)
      FROM pg_attribute WHERE attrelid = r AND attnum > 0 AND NOT attisdropped $$;
-- new_changes(p): the rows of pipeline.schema_history of pipeline p not
-- shown yet; by: the DDL trigger (ddl) or a run (run)
CREATE TABLE shown (change_id bigint PRIMARY KEY);
CREATE FUNCTION new_changes(p text)
RETURNS TABLE (change text, column_name text, old_column_name text, old_type text,
               new_type text, action text, by text)
LANGUAGE sql AS $$
    WITH n AS (INSERT INTO shown SELECT h.change_id FROM pipeline.schema_history h
                WHERE h.pipeline = p AND h.change_id NOT IN (SELECT change_id FROM shown)
               RETURNING change_id)
    SELECT h.change, h.column_name, h.old_column_name, h.old_type, h.new_type, h.action,
           CASE WHEN h.run_id IS NULL THEN 'ddl' ELSE 'run' END
      FROM pipeline.schema_history h JOIN n USING (change_id)
     ORDER BY h.change_id $$;
-- state(p): the last run of p, its error, and its watermark
CREATE FUNCTION state(p text) RETURNS TABLE (status text, error_sqlstate text, watermark text)
LANGUAGE sql AS $$
    SELECT r.status, r.error_sqlstate, l.watermark
      FROM pipeline.pipelines l JOIN pipeline.runs r ON r.run_id = l.last_run_id
     WHERE l.name = p $$;
-- make_source(name): a source and a pipeline over it, run once
CREATE PROCEDURE make_source(name text, policy text) LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE TABLE d.%I (id int PRIMARY KEY, at int NOT NULL, a int,
                    b varchar(10), c numeric(6,2), e text)', name);
    EXECUTE format('CREATE INDEX ON d.%I (at)', name);
    EXECUTE format($i$INSERT INTO d.%I VALUES (1, 1, 1, 'one', 1.5, 'e')$i$, name);
    PERFORM pipeline.create_pipeline(name, format('d.%I', name)::regclass, format('d.%I_dst', name),
                                     unique_key => '{id}', incremental_column => 'at',
                                     on_schema_change => policy);
    PERFORM pipeline.run(name);
END $$;

-- The snapshot ---------------------------------------------------------------
-- Registering a pipeline keeps its source's columns (name, type, attnum);
-- each successful run that found a change keeps them again.
CALL make_source('f', 'fail');
SELECT relation, run_id, jsonb_array_length(columns) AS columns, columns -> 3 AS fourth
  FROM pipeline.source_snapshot;

-- fail (the default) -------------------------------------------------------------
-- It fails where the load could not work, as runs always did, but with an
-- error naming the change, its SQLSTATE and a hint; nothing changes.

-- added: a column the target does not have fails the run (42703). The DDL
-- trigger wrote the change as the column was added.
ALTER TABLE d.f ADD COLUMN x int;
INSERT INTO d.f VALUES (2, 2, 2, 'two', 2.5, 'e', 20);
SELECT * FROM new_changes('f');
SELECT pipeline.run('f');
:sqlstate
SELECT * FROM new_changes('f');
SELECT columns_of('d.f_dst'), * FROM state('f');
-- the target gets the column, and the run follows
ALTER TABLE d.f_dst ADD COLUMN x int;
SELECT pipeline.run('f') > 0 AS ran;
SELECT * FROM new_changes('f');
SELECT id, x FROM d.f_dst ORDER BY id;

-- dropped: the run goes on, the target keeps its column (NULL for new rows)
ALTER TABLE d.f DROP COLUMN e;
INSERT INTO d.f VALUES (3, 3, 3, 'three', 3.5, 30);
SELECT pipeline.run('f') > 0 AS ran;
SELECT * FROM new_changes('f');
SELECT id, e FROM d.f_dst ORDER BY id;

-- retyped, widening or narrowing: the run goes on while the target can take
-- the new type (an assignment cast, and an equality operator where the load
-- compares); the target keeps its type
ALTER TABLE d.f ALTER COLUMN a TYPE bigint, ALTER COLUMN c TYPE numeric(4,2);
INSERT INTO d.f VALUES (4, 4, 4, 'four', 4.5, 40);
SELECT pipeline.run('f') > 0 AS ran;
SELECT * FROM new_changes('f');
SELECT columns_of('d.f_dst');

-- retyped into what the target cannot take (42804)
ALTER TABLE d.f ALTER COLUMN a TYPE text;
SELECT pipeline.run('f');
:sqlstate
SELECT * FROM new_changes('f');
SELECT columns_of('d.f_dst'), * FROM state('f');
ALTER TABLE d.f ALTER COLUMN a TYPE bigint USING a::bigint;

-- renamed (the same attnum and type, another name): the target has no
-- column of the new name (42703)
ALTER TABLE d.f RENAME COLUMN b TO label;
SELECT pipeline.run('f');
:sqlstate
SELECT * FROM new_changes('f');
SELECT columns_of('d.f_dst'), * FROM state('f');
ALTER TABLE d.f_dst RENAME COLUMN b TO label;
SELECT pipeline.run('f') > 0 AS ran;
SELECT * FROM new_changes('f');

-- The failed runs are recorded with their error, and their changes with
-- them (the run that failed on a change wrote it 'failed', after its
-- rollback). Each change is an audit entry too.
SELECT status, error_sqlstate, error_message FROM pipeline.runs
 WHERE pipeline_name = 'f' ORDER BY run_id;
SELECT object_name, outcome, config_before, config_after, details, run_id IS NOT NULL AS of_a_run
  FROM pipeline.audit_log WHERE action = 'schema_change' AND pipeline_id = (SELECT id FROM pipeline.pipelines WHERE name = 'f')
 ORDER BY seq;

-- ignore ---------------------------------------------------------------------
-- Loads the columns source and target have in common.
CALL make_source('i', 'ignore');
ALTER TABLE d.i ADD COLUMN x int, DROP COLUMN e, ALTER COLUMN a TYPE bigint,
                ALTER COLUMN c TYPE numeric(4,2);
ALTER TABLE d.i RENAME COLUMN b TO label;
INSERT INTO d.i VALUES (2, 2, 2, 'two', 2.5, 20);
SELECT * FROM new_changes('i');
SELECT pipeline.run('i') > 0 AS ran;
SELECT * FROM new_changes('i');
SELECT columns_of('d.i_dst');
SELECT * FROM d.i_dst ORDER BY id;
-- the next run knows them: nothing new to write
INSERT INTO d.i VALUES (3, 3, 3, 'three', 3.5, 30);
SELECT pipeline.run('i') > 0 AS ran;
SELECT * FROM new_changes('i');
-- a type the target cannot take still fails the run (42804)
ALTER TABLE d.i ALTER COLUMN a TYPE text;
SELECT pipeline.run('i');
:sqlstate
SELECT * FROM new_changes('i');
SELECT columns_of('d.i_dst'), * FROM state('i');

-- append_new_columns -----------------------------------------------------------
-- Adds the new columns to the target (as the pipeline's owner); a renamed
-- column is added under its new name; dropped and retyped ones are left.
CALL make_source('a', 'append_new_columns');
ALTER TABLE d.a ADD COLUMN x int, DROP COLUMN e, ALTER COLUMN a TYPE bigint,
                ALTER COLUMN c TYPE numeric(4,2);
ALTER TABLE d.a RENAME COLUMN b TO label;
INSERT INTO d.a VALUES (2, 2, 2, 'two', 2.5, 20);
SELECT pipeline.run('a') > 0 AS ran;
SELECT * FROM new_changes('a');
SELECT columns_of('d.a_dst');
SELECT * FROM d.a_dst ORDER BY id;

-- sync_all_columns -----------------------------------------------------------
-- Adds new columns, drops vanished ones, follows renames and widens types
-- where every value is kept: integer to bigint, varchar(n) to a larger n or
-- text, numeric precision up.
CALL make_source('s', 'sync_all_columns');
ALTER TABLE d.s ADD COLUMN x int, DROP COLUMN e, ALTER COLUMN a TYPE bigint,
                ALTER COLUMN b TYPE varchar(20), ALTER COLUMN c TYPE numeric(8,2);
INSERT INTO d.s VALUES (2, 2, 2, 'a longer label', 2.5, 20);
SELECT pipeline.run('s') > 0 AS ran;
SELECT * FROM new_changes('s');
SELECT columns_of('d.s_dst');
SELECT * FROM d.s_dst ORDER BY id;
-- a renamed column is renamed in the target, its values kept (a column
-- renamed and retyped at once cannot be told from one dropped and one
-- added: it would be dropped and added)
ALTER TABLE d.s RENAME COLUMN b TO label;
SELECT pipeline.run('s') > 0 AS ran;
SELECT * FROM new_changes('s');
SELECT id, label FROM d.s_dst ORDER BY id;
ALTER TABLE d.s ALTER COLUMN label TYPE text;
SELECT pipeline.run('s') > 0 AS ran;
SELECT * FROM new_changes('s');

-- a narrowing is refused and fails the run (42804); nothing changes
ALTER TABLE d.s ALTER COLUMN a TYPE integer;
INSERT INTO d.s VALUES (3, 3, 3, 'three', 3.5, 30);
SELECT pipeline.run('s');
:sqlstate
SELECT * FROM new_changes('s');
SELECT columns_of('d.s_dst'), * FROM state('s');
-- so is a change to another kind of value
ALTER TABLE d.s ALTER COLUMN a TYPE bigint, ALTER COLUMN c TYPE text;
SELECT pipeline.run('s');
:sqlstate
SELECT * FROM new_changes('s');
ALTER TABLE d.s ALTER COLUMN c TYPE numeric(8,2) USING c::numeric;

-- Columns the definition names ------------------------------------------------
-- A dropped or renamed key, incremental, delete or partition column fails
-- every policy (42703): no run can load without it.
ALTER TABLE d.s RENAME COLUMN at TO loaded_at;
SELECT pipeline.run('s');
:sqlstate
SELECT * FROM new_changes('s');
ALTER TABLE d.s RENAME COLUMN loaded_at TO at;
-- back as it was: the history says both renames, the run nothing new
SELECT * FROM new_changes('s');
SELECT pipeline.run('s') > 0 AS ran;
SELECT * FROM new_changes('s');
SELECT columns_of('d.s_dst'), * FROM state('s');

-- A batched run ----------------------------------------------------------------
-- handles drift in its first batch, which commits what it applied.
ALTER TABLE d.a ADD COLUMN y text;
INSERT INTO d.a SELECT g, g, g, 'label', g, g, 'y' FROM generate_series(3, 6) g;
CALL pipeline.run_batched('a', 2);
SELECT * FROM new_changes('a');
SELECT batches, status FROM pipeline.runs WHERE pipeline_name = 'a' ORDER BY run_id DESC LIMIT 1;
SELECT count(y) AS with_y FROM d.a_dst;

-- Pointing a pipeline at another source ------------------------------------------
-- takes a new snapshot; the old source's changes are no longer compared.
CREATE TABLE d.i2 (id int PRIMARY KEY, at int NOT NULL, a int, c numeric(4,2), x int, label varchar(10));
CREATE INDEX ON d.i2 (at);
SELECT pipeline.alter_pipeline('i', source => 'd.i2') > 0 AS altered;
SELECT relation, run_id IS NULL AS registered FROM pipeline.source_snapshot
 WHERE pipeline_id = (SELECT id FROM pipeline.pipelines WHERE name = 'i');
SELECT pipeline.run('i') > 0 AS ran;
SELECT * FROM new_changes('i');

-- Who sees the history ---------------------------------------------------------
-- The rules of pipeline.runs: the owner and those who may read the pipeline.
CREATE ROLE d_owner;
CREATE ROLE d_other;
GRANT USAGE ON SCHEMA d TO d_owner;
GRANT CREATE ON SCHEMA d TO d_owner;
SET ROLE d_owner;
CREATE TABLE d.o (id int PRIMARY KEY, at int NOT NULL);
CREATE INDEX ON d.o (at);
SELECT pipeline.create_pipeline('o', 'd.o', 'd.o_dst', unique_key => '{id}',
                                incremental_column => 'at', on_schema_change => 'append_new_columns') > 0 AS created;
ALTER TABLE d.o ADD COLUMN v text;
SELECT pipeline.run('o') > 0 AS ran;
SELECT pipeline, column_name, change, action FROM pipeline.schema_history ORDER BY change_id;
RESET ROLE;
SET ROLE d_other;
SELECT count(*) AS rows_seen FROM pipeline.schema_history;
RESET ROLE;
GRANT pipeline_viewer TO d_other;
SELECT count(*) AS total FROM pipeline.schema_change \gset
SET ROLE d_other;
SELECT count(*) = :total AS sees_all FROM pipeline.schema_history;
RESET ROLE;
SELECT pipeline.drop_pipeline('o', drop_target => true);
DROP TABLE d.o;

\c :regress_db
DROP DATABASE pipeline_drift WITH (FORCE);
DROP ROLE d_owner, d_other;
