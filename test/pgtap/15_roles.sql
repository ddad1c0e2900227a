\ir common/preamble.sql
-- test/pgtap/15_roles.sql
--
-- Each role can do exactly what the table says, and nothing more: the
-- table of docs/security.md ("Who may do what"), tried cell by cell. For
-- every action and every kind of role (the owner, a member of the owner,
-- pipeline_viewer, pipeline_operator, pipeline_admin, a superuser, anyone
-- else), the action is called as that role and then rolled back, so that
-- every cell starts from the same pipeline; it must pass (or stop at a
-- later, documented prerequisite, such as the missing launcher of this
-- server for trigger) or fail with 42501. Then every view's rows, by role;
-- run_batched and backfill, which commit, statement by statement; and a
-- run by an operator, which executes as the owner and gives the operator
-- no access to the data.
--
-- The roles made here are dropped at the end (not the extension's three).

SELECT plan(7 * 24 + 7 * 16 + 7 + 7 + 4 + 7 * 2);

DO $$
DECLARE r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['pgtap_roles_owner', 'pgtap_roles_member', 'pgtap_roles_viewer',
                             'pgtap_roles_operator', 'pgtap_roles_admin', 'pgtap_roles_nobody'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
END $$;
GRANT pgtap_roles_owner TO pgtap_roles_member;
GRANT pipeline_viewer TO pgtap_roles_viewer;
GRANT pipeline_operator TO pgtap_roles_operator;
GRANT pipeline_admin TO pgtap_roles_admin;

-- who: each kind of role and the role that stands for it
CREATE TABLE who (kind text PRIMARY KEY, role name NOT NULL, ord int NOT NULL);
INSERT INTO who VALUES ('owner', 'pgtap_roles_owner', 1), ('member', 'pgtap_roles_member', 2),
                       ('viewer', 'pgtap_roles_viewer', 3), ('operator', 'pgtap_roles_operator', 4),
                       ('admin', 'pgtap_roles_admin', 5), ('superuser', current_user, 6),
                       ('nobody', 'pgtap_roles_nobody', 7);

-- the pipeline: its source view says who reads it
CREATE TABLE r_src (id integer PRIMARY KEY, seq integer NOT NULL, v text);
CREATE VIEW r_src_who AS SELECT id, seq, v, current_user::text AS who FROM r_src;
GRANT SELECT ON r_src_who TO pgtap_roles_owner;
GRANT CREATE ON SCHEMA public TO pgtap_roles_owner;
INSERT INTO r_src VALUES (1, 1, 'a'), (2, 2, NULL);
SET ROLE pgtap_roles_owner;
SELECT pipeline.create_pipeline('rp', 'public.r_src_who', 'public.r_dst',
                                unique_key => '{id}', incremental_column => 'seq') > 0 AS created;
SELECT pipeline.add_check('rp', 'v_present', 'not_null', '{"columns": ["v"]}', 'quarantine') > 0 AS checked;
SELECT pipeline.classify('public.r_dst', 'v', 'pii.email');
SELECT pipeline.run('rp') AS rp_run \gset
-- set_lineage_column adds a missing column as the caller, who must own the
-- target (an admin does not): the column is there already
ALTER TABLE r_dst ADD COLUMN loaded_by bigint;
RESET ROLE;
-- rows of the alerts, the queue, the OpenLineage outbox and the schema
-- history, put there directly (their writers are tested elsewhere), so that
-- every view has one
INSERT INTO pipeline.alert_log (pipeline_id, pipeline_name, kind, run_id, message)
SELECT id, name, 'run_failed', :rp_run, 'a failure' FROM pipeline.pipelines WHERE name = 'rp';
INSERT INTO pipeline.run_queue (pipeline_id, reason)
SELECT id, 'trigger' FROM pipeline.pipelines WHERE name = 'rp';
INSERT INTO pipeline.openlineage_outbox (run_id, pipeline_id, event_type, event)
SELECT :rp_run, id, 'START', '{}' FROM pipeline.pipelines WHERE name = 'rp';
INSERT INTO pipeline.schema_change (pipeline_id, pipeline, relation, column_name, change, new_type, action)
SELECT id, name, source, 'w', 'added', 'text', 'detected' FROM pipeline.pipelines WHERE name = 'rp';

-- Who sees what: every view shows the pipeline's rows to all but nobody ---------
CREATE FUNCTION rows_as(r name, relation text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
    EXECUTE format('SET LOCAL ROLE %I', r);
    EXECUTE format('SELECT count(*) FROM %s', relation) INTO n;
    EXECUTE 'RESET ROLE';
    RETURN n;
END $$;
SELECT is(rows_as(w.role, v.relation) > 0, w.kind <> 'nobody',
          format('%s %s %s', w.kind, CASE WHEN w.kind <> 'nobody' THEN 'sees' ELSE 'does not see' END, v.relation))
  FROM who w
 CROSS JOIN (VALUES ('pipeline.pipelines'), ('pipeline.status'), ('pipeline.runs'), ('pipeline.alerts'),
                    ('pipeline.queue'), ('pipeline.lineage'), ('pipeline.column_lineage'),
                    ('pipeline.run_lineage'), ('pipeline.pipeline_versions'), ('pipeline.audit_log'),
                    ('pipeline.checks'), ('pipeline.check_results'), ('pipeline.quarantine'),
                    ('pipeline.openlineage_deliveries'), ('pipeline.pii_columns'),
                    ('pipeline.schema_history')) v (relation)
 ORDER BY w.ord, v.relation;

-- Who may do what: every action as every role, rolled back ---------------------
-- outcome(role, statement): 'ok', or the SQLSTATE it failed with; whatever
-- it did is undone (the block's subtransaction rolls back, SET LOCAL ROLE too)
CREATE FUNCTION outcome(r name, stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text;
BEGIN
    BEGIN
        EXECUTE format('SET LOCAL ROLE %I', r);
        EXECUTE stmt;
        RAISE EXCEPTION 'undo' USING ERRCODE = 'P0099';
    EXCEPTION WHEN OTHERS THEN
        st := SQLSTATE;
    END;
    RETURN CASE st WHEN 'P0099' THEN 'ok' ELSE st END;
END $$;

-- the table of docs/security.md: the team roles that may do each action
-- (the owner, its member and a superuser may do all; nobody none), and the
-- SQLSTATE, if any, of a prerequisite this server lacks that comes after
-- the privilege check
CREATE TABLE actions (action text PRIMARY KEY, stmt text NOT NULL, teams text[] NOT NULL, later text);
INSERT INTO actions VALUES
  ('config_of',  $$SELECT pipeline.config_of('rp')$$,                          '{viewer,operator,admin}', NULL),
  ('explain',    $$SELECT count(*) FROM pipeline.explain('rp')$$,              '{viewer,operator,admin}', NULL),
  ('run',        $$SELECT pipeline.run('rp')$$,                                '{operator,admin}', NULL),
  ('trigger',    $$SELECT pipeline.trigger('rp')$$,                            '{operator,admin}', '55000'),
  ('cancel',     $$SELECT pipeline.cancel('rp')$$,                             '{operator,admin}', NULL),
  ('pause',      $$SELECT pipeline.pause('rp')$$,                              '{operator,admin}', NULL),
  ('resume',     $$SELECT pipeline.resume('rp')$$,                             '{operator,admin}', NULL),
  ('reset',      $$SELECT pipeline.reset('rp')$$,                              '{admin}', NULL),
  ('alter_pipeline', $$SELECT pipeline.alter_pipeline('rp', description => 'x')$$, '{admin}', NULL),
  ('apply',      $$SELECT count(*) FROM pipeline.apply('{"name": "rp", "source": "public.r_src_who",
                   "target": "public.r_dst", "unique_key": ["id"], "incremental_column": "seq",
                   "description": "applied"}')$$,                              '{admin}', NULL),
  ('drop_pipeline', $$SELECT pipeline.drop_pipeline('rp')$$,                   '{admin}', NULL),
  ('schedule',   $$SELECT pipeline.schedule('rp', '0 * * * *')$$,              '{admin}', '55000'),
  ('unschedule', $$SELECT pipeline.unschedule('rp')$$,                         '{admin}', NULL),
  ('refresh_lineage', $$SELECT pipeline.refresh_lineage('rp')$$,               '{admin}', NULL),
  ('set_lineage_column', $$SELECT pipeline.set_lineage_column('rp', 'loaded_by')$$, '{admin}', NULL),
  ('add_check',  $$SELECT pipeline.add_check('rp', 'id_present', 'not_null', '{"columns": ["id"]}')$$, '{admin}', NULL),
  ('drop_check', $$SELECT pipeline.drop_check('rp', 'v_present')$$,            '{admin}', NULL),
  ('replay_quarantine', $$SELECT pipeline.replay_quarantine('rp')$$,           '{admin}', NULL),
  ('backfill_plan', $$SELECT count(*) FROM pipeline.backfill_plan('rp', '1', '2')$$, '{admin}', NULL),
  ('discard_quarantine', $$SELECT pipeline.discard_quarantine('rp')$$,         '{admin}', NULL),
  ('acknowledge', format($$SELECT pipeline.acknowledge('rp', %s)$$, :rp_run),  '{admin}', '55000'),
  -- the owner here is the relation's, r_dst's, which is rp's owner too
  ('classify',   $$SELECT pipeline.classify('public.r_dst', 'id', 'pii.national_id')$$, '{admin}', NULL),
  ('unclassify', $$SELECT pipeline.unclassify('public.r_dst', 'v')$$,          '{admin}', NULL),
  ('declare_subject', $$SELECT pipeline.declare_subject('public.r_dst', 'id', 'customer')$$, '{admin}', NULL);

SELECT is(CASE WHEN o IN ('ok', a.later) THEN 'may' WHEN o = '42501' THEN 'may not' ELSE o END,
          CASE WHEN w.kind IN ('owner', 'member', 'superuser') OR w.kind = ANY (a.teams)
               THEN 'may' ELSE 'may not' END,
          format('%s: %s', w.kind, a.action))
  FROM actions a CROSS JOIN who w
 CROSS JOIN LATERAL outcome(w.role, a.stmt) o
 ORDER BY a.action, w.ord;

-- Keys have no owner: only superusers and pipeline_admin manage them ------------
SELECT pipeline.create_key('k_roles_existing');
SELECT is(outcome(w.role, k.stmt),
          CASE WHEN w.kind IN ('admin', 'superuser') THEN 'ok' ELSE '42501' END,
          format('%s: %s', w.kind, k.action))
  FROM who w
 CROSS JOIN (VALUES ('create_key', $$SELECT pipeline.create_key('k_roles_new')$$),
                    ('rotate_key', $$SELECT pipeline.rotate_key('k_roles_existing')$$)) k (action, stmt)
 ORDER BY k.action, w.ord;

-- run_batched commits, so it is called statement by statement ------------------
DELETE FROM pipeline.run_queue;
\set ON_ERROR_STOP 0
SET ROLE pgtap_roles_owner;    CALL pipeline.run_batched('rp', 100);
\set rb_owner :SQLSTATE
SET ROLE pgtap_roles_member;   CALL pipeline.run_batched('rp', 100);
\set rb_member :SQLSTATE
SET ROLE pgtap_roles_viewer;   CALL pipeline.run_batched('rp', 100);
\set rb_viewer :SQLSTATE
SET ROLE pgtap_roles_operator; CALL pipeline.run_batched('rp', 100);
\set rb_operator :SQLSTATE
SET ROLE pgtap_roles_admin;    CALL pipeline.run_batched('rp', 100);
\set rb_admin :SQLSTATE
RESET ROLE;                    CALL pipeline.run_batched('rp', 100);
\set rb_superuser :SQLSTATE
SET ROLE pgtap_roles_nobody;   CALL pipeline.run_batched('rp', 100);
\set rb_nobody :SQLSTATE
\set ON_ERROR_STOP 1
RESET ROLE;
SELECT is(:'rb_owner'::text, '00000', 'owner: run_batched');
SELECT is(:'rb_member'::text, '00000', 'member: run_batched');
SELECT is(:'rb_viewer'::text, '42501', 'viewer: run_batched refused');
SELECT is(:'rb_operator'::text, '00000', 'operator: run_batched');
SELECT is(:'rb_admin'::text, '00000', 'admin: run_batched');
SELECT is(:'rb_superuser'::text, '00000', 'superuser: run_batched');
SELECT is(:'rb_nobody'::text, '42501', 'nobody: run_batched refused');

-- backfill commits too: an operator may run the pipeline, not backfill it ------
\set ON_ERROR_STOP 0
SET ROLE pgtap_roles_owner;    CALL pipeline.backfill('rp', '1', '2');
\set bf_owner :SQLSTATE
SET ROLE pgtap_roles_member;   CALL pipeline.backfill('rp', '1', '2');
\set bf_member :SQLSTATE
SET ROLE pgtap_roles_viewer;   CALL pipeline.backfill('rp', '1', '2');
\set bf_viewer :SQLSTATE
SET ROLE pgtap_roles_operator; CALL pipeline.backfill('rp', '1', '2');
\set bf_operator :SQLSTATE
SET ROLE pgtap_roles_admin;    CALL pipeline.backfill('rp', '1', '2');
\set bf_admin :SQLSTATE
RESET ROLE;                    CALL pipeline.backfill('rp', '1', '2');
\set bf_superuser :SQLSTATE
SET ROLE pgtap_roles_nobody;   CALL pipeline.backfill('rp', '1', '2');
\set bf_nobody :SQLSTATE
\set ON_ERROR_STOP 1
RESET ROLE;
SELECT is(:'bf_owner'::text, '00000', 'owner: backfill');
SELECT is(:'bf_member'::text, '00000', 'member: backfill');
SELECT is(:'bf_viewer'::text, '42501', 'viewer: backfill refused');
SELECT is(:'bf_operator'::text, '42501', 'operator: backfill refused');
SELECT is(:'bf_admin'::text, '00000', 'admin: backfill');
SELECT is(:'bf_superuser'::text, '00000', 'superuser: backfill');
SELECT is(:'bf_nobody'::text, '42501', 'nobody: backfill refused');

-- An operator's run executes as the owner; the operator gains no data access -----
INSERT INTO r_src VALUES (3, 3, 'c');
SET ROLE pgtap_roles_operator;
SELECT ok(pipeline.run('rp') > 0, 'the operator runs the pipeline');
SELECT throws_ok('SELECT count(*) FROM public.r_dst', '42501', NULL,
                 'the operator still may not read the target');
SELECT throws_ok('SELECT count(*) FROM public.r_src', '42501', NULL,
                 'nor the source');
RESET ROLE;
SELECT is((SELECT who FROM r_dst WHERE id = 3), 'pgtap_roles_owner',
          'the source was read as the owner, not as the operator');

SELECT * FROM finish();

-- clean up the roles this file made (their objects and grants first)
SET client_min_messages = warning;
SELECT pipeline.drop_pipeline('rp', drop_target => true);
DROP OWNED BY pgtap_roles_owner, pgtap_roles_member, pgtap_roles_viewer,
              pgtap_roles_operator, pgtap_roles_admin, pgtap_roles_nobody;
DROP ROLE pgtap_roles_owner, pgtap_roles_member, pgtap_roles_viewer,
          pgtap_roles_operator, pgtap_roles_admin, pgtap_roles_nobody;
