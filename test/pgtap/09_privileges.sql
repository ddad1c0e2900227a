\ir common/preamble.sql
-- test/pgtap/09_privileges.sql
--
-- The security model: a pipeline belongs to the role that created it; other
-- roles cannot run, alter, reset, pause, resume or drop it (42501); a member
-- of the owner role and a superuser can; a run executes as the owner (a view
-- in the source reports current_user) with search_path pinned; privileges are
-- checked at registration and at every run (42501, recorded as failed).
--
-- Roles are cluster-wide: created here if missing, never dropped.

SELECT plan(35);

DO $$
DECLARE r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['pgtap_pp_alice', 'pgtap_pp_bob', 'pgtap_pp_carol'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
END $$;
GRANT pgtap_pp_alice TO pgtap_pp_carol;

CREATE FUNCTION last_failure(p text, after bigint, OUT status text, OUT error_sqlstate text)
LANGUAGE plpgsql AS $$
DECLARE deadline timestamptz := clock_timestamp() + interval '10 seconds';
BEGIN
    LOOP
        SELECT r.status, r.error_sqlstate INTO status, error_sqlstate
          FROM pipeline.runs r
         WHERE r.pipeline_name = p AND r.run_id > after AND r.status = 'failed'
         ORDER BY r.run_id DESC LIMIT 1;
        EXIT WHEN FOUND OR clock_timestamp() > deadline;
        PERFORM pg_sleep(0.05);
    END LOOP;
END $$;
CREATE FUNCTION max_run() RETURNS bigint LANGUAGE sql AS $$
  SELECT coalesce(max(run_id), 0) FROM pipeline.runs $$;
GRANT EXECUTE ON FUNCTION run_counts(bigint), last_failure(text, bigint), max_run() TO PUBLIC;

CREATE SCHEMA shared;
GRANT USAGE, CREATE ON SCHEMA shared TO pgtap_pp_alice, pgtap_pp_bob;
CREATE TABLE shared.src (id integer, seq integer NOT NULL, v text);
-- the view runs with its owner's (this superuser's) rights on shared.src, but
-- current_user and the GUCs are those of whoever executes the query
CREATE VIEW shared.src_who AS
SELECT id, seq, v, current_user::text AS who, current_setting('search_path') AS path
  FROM shared.src;
GRANT SELECT ON shared.src_who TO pgtap_pp_alice;
CREATE TABLE shared.bobs_table (id integer PRIMARY KEY, seq integer NOT NULL, v text,
                                who text, path text);
ALTER TABLE shared.bobs_table OWNER TO pgtap_pp_bob;

-- registration ------------------------------------------------------------------
SET ROLE pgtap_pp_alice;
SELECT ok(pipeline.create_pipeline('alice pipe', 'shared.src_who', 'shared.alice_target',
          unique_key => '{id}', incremental_column => 'seq') > 0,
          'alice registers a pipeline');
SELECT throws_ok($$SELECT pipeline.create_pipeline('alice into bob', 'shared.src_who', 'shared.bobs_table',
                     unique_key => '{id}', incremental_column => 'seq', create_target => false)$$,
                 '42501', NULL, 'alice cannot register a pipeline into a table she may not write: 42501');
RESET ROLE;
SET ROLE pgtap_pp_bob;
SELECT throws_ok($$SELECT pipeline.create_pipeline('bob pipe', 'shared.src', 'shared.bob_target',
                     unique_key => '{id}', incremental_column => 'seq')$$,
                 '42501', NULL, 'bob cannot register a pipeline from a source he may not read: 42501');
RESET ROLE;
SELECT is((SELECT owner::text FROM pipeline.pipelines WHERE name = 'alice pipe'), 'pgtap_pp_alice',
          'the pipeline belongs to its creator');
SELECT is((SELECT tableowner::text FROM pg_tables WHERE schemaname = 'shared' AND tablename = 'alice_target'),
          'pgtap_pp_alice', 'the created target belongs to the creator');
SELECT is((SELECT count(*)::int FROM pipeline.pipelines WHERE name IN ('alice into bob', 'bob pipe')), 0,
          'refused registrations leave nothing');

-- runs as the owner -------------------------------------------------------------
INSERT INTO shared.src VALUES (1, 1, 'one');
SET ROLE pgtap_pp_alice;
SELECT pipeline.run('alice pipe') AS r1 \gset
RESET ROLE;
SELECT is(run_counts(:r1), 'succeeded read=1 ins=1 upd=0 del=0 unch=0 rej=0', 'alice runs her pipeline');

INSERT INTO shared.src VALUES (2, 2, 'two');
SELECT pipeline.run('alice pipe') AS r2 \gset
SELECT is(run_counts(:r2), 'succeeded read=1 ins=1 upd=0 del=0 unch=0 rej=0', 'a superuser runs it');

INSERT INTO shared.src VALUES (3, 3, 'three');
SET ROLE pgtap_pp_carol;
SELECT pipeline.run('alice pipe') AS r3 \gset
RESET ROLE;
SELECT is(run_counts(:r3), 'succeeded read=1 ins=1 upd=0 del=0 unch=0 rej=0', 'a member of the owner role runs it');

SELECT results_eq('SELECT id, who COLLATE "default" FROM shared.alice_target ORDER BY id',
    $$VALUES (1, 'pgtap_pp_alice'::text), (2, 'pgtap_pp_alice'), (3, 'pgtap_pp_alice')$$,
    'every run executed as the owner, whoever called it (superuser included)');
SELECT is((SELECT DISTINCT path FROM shared.alice_target), 'pg_catalog, pg_temp',
          'with search_path pinned to pg_catalog, pg_temp');

-- other roles -------------------------------------------------------------------
INSERT INTO shared.src VALUES (4, 4, 'four');
SET ROLE pgtap_pp_bob;
SELECT throws_ok($$SELECT pipeline.run('alice pipe')$$, '42501', NULL, 'bob cannot run alice''s pipeline');
SELECT throws_ok($$SELECT pipeline.alter_pipeline('alice pipe', description => 'mine now')$$, '42501', NULL,
                 'bob cannot alter it');
SELECT throws_ok($$SELECT pipeline.reset('alice pipe')$$, '42501', NULL, 'bob cannot reset it');
SELECT throws_ok($$SELECT pipeline.pause('alice pipe')$$, '42501', NULL, 'bob cannot pause it');
SELECT throws_ok($$SELECT pipeline.resume('alice pipe')$$, '42501', NULL, 'bob cannot resume it');
SELECT throws_ok($$SELECT pipeline.drop_pipeline('alice pipe')$$, '42501', NULL, 'bob cannot drop it');
SELECT throws_ok($$SELECT pipeline.drop_pipeline('alice pipe', drop_target => true)$$, '42501', NULL,
                 'bob cannot drop it with its target');
\set ON_ERROR_STOP 0
CALL pipeline.run_batched('alice pipe', 10);
\set bob_batched :SQLSTATE
\set ON_ERROR_STOP 1
SELECT is(:'bob_batched'::text, '42501', 'bob cannot run it batched');
SELECT is((SELECT count(*)::int FROM pipeline.runs WHERE pipeline_name = 'alice pipe'), 0,
          'bob reads the run history, and sees none of alice''s runs');
RESET ROLE;
SELECT results_eq($$SELECT description, watermark, active FROM pipeline.pipelines WHERE name = 'alice pipe'$$,
                  $$VALUES (NULL::text, '3'::text, true)$$,
                  'bob''s attempts changed nothing');
SELECT is((SELECT count(*)::int FROM shared.alice_target), 3, 'bob''s attempts loaded nothing');
SELECT has_table('shared', 'alice_target', 'bob''s attempts dropped nothing');

SET ROLE pgtap_pp_alice;
SELECT lives_ok($$SELECT pipeline.alter_pipeline('alice pipe', description => 'alice''s')$$, 'alice alters her pipeline');
SELECT lives_ok($$SELECT pipeline.pause('alice pipe')$$, 'alice pauses it');
SELECT lives_ok($$SELECT pipeline.resume('alice pipe')$$, 'alice resumes it');
RESET ROLE;

-- privileges re-checked at every run --------------------------------------------
REVOKE SELECT ON shared.src_who FROM pgtap_pp_alice;
SELECT max_run() AS before1 \gset
SELECT throws_ok($$SELECT pipeline.run('alice pipe')$$, '42501', NULL,
                 'after the owner loses SELECT on the source, a superuser''s run fails: 42501');
SELECT results_eq($$SELECT * FROM last_failure('alice pipe', $$ || :before1 || ')',
                  $$VALUES ('failed'::text, '42501'::text)$$, 'recorded as failed with 42501');
GRANT SELECT ON shared.src_who TO pgtap_pp_alice;

REVOKE INSERT ON shared.alice_target FROM pgtap_pp_alice;
SELECT max_run() AS before2 \gset
SELECT throws_ok($$SELECT pipeline.run('alice pipe')$$, '42501', NULL,
                 'after the owner loses INSERT on the target: 42501');
SELECT results_eq($$SELECT * FROM last_failure('alice pipe', $$ || :before2 || ')',
                  $$VALUES ('failed'::text, '42501'::text)$$, 'recorded as failed with 42501');
GRANT INSERT ON shared.alice_target TO pgtap_pp_alice;

SELECT is((SELECT count(*)::int FROM shared.alice_target), 3, 'the failed runs loaded nothing');
SELECT pipeline.run('alice pipe') AS r4 \gset
SELECT is(run_counts(:r4), 'succeeded read=1 ins=1 upd=0 del=0 unch=0 rej=0',
          'with the privileges back the next run loads the row');
SELECT is((SELECT who FROM shared.alice_target WHERE id = 4), 'pgtap_pp_alice', 'as the owner');

-- a superuser may drop anyone's pipeline
SELECT lives_ok($$SELECT pipeline.drop_pipeline('alice pipe')$$, 'a superuser drops alice''s pipeline');
SELECT is((SELECT count(*)::int FROM pipeline.pipelines WHERE name = 'alice pipe'), 0, 'gone');

SELECT * FROM finish();
