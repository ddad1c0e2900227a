\ir common/preamble.sql
-- test/pgtap/11_owner_tripwire.sql
--
-- Owner code runs only as the owner, restricted, whoever calls. Owner
-- functions sit at every hook a pipeline reaches (test/sql/tripwire.sql:
-- a source view, a domain CHECK on the incremental column, a target
-- DEFAULT, trigger, index expression and rule, a user-defined cast, the SQL
-- of an expression check and of a query check); every
-- API that can reach them is driven as a superuser, as a member of the
-- owner role and as an unrelated role, and each hook must have fired only
-- as the owner, in a security-restricted operation, with search_path
-- pinned. The worker path is test/t/012_owner_tripwire.pl.
--
-- Roles are cluster-wide: created here if missing, never dropped.

SELECT plan(30);

DO $$
DECLARE r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['pgtap_tw_owner', 'pgtap_tw_member', 'pgtap_tw_other'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
END $$;
GRANT pgtap_tw_owner TO pgtap_tw_member;
GRANT CREATE ON DATABASE :"DBNAME" TO pgtap_tw_owner;

\set owner pgtap_tw_owner
\set QUIET 1
\o /dev/null
\ir ../sql/tripwire.sql
\o

GRANT USAGE ON SCHEMA tw TO pgtap_tw_member, pgtap_tw_other;

-- is_owner_only(label): no hook ran as anyone but the owner, or unrestricted,
-- or with another search_path
CREATE FUNCTION escaped() RETURNS bigint LANGUAGE sql AS $$
  SELECT count(*) FROM tw.log
   WHERE who <> 'pgtap_tw_owner' OR NOT restricted OR path <> 'pg_catalog, pg_temp' $$;
CREATE FUNCTION fired(h text) RETURNS bigint LANGUAGE sql AS $$
  SELECT count(*) FROM tw.log WHERE hook = h $$;
-- feed(sql) writes source rows; the domain CHECK fires for the writer
-- itself, which is not an API path, so those log rows are dropped
CREATE FUNCTION feed(sql text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE t timestamptz := clock_timestamp();
BEGIN
    EXECUTE sql;
    DELETE FROM tw.log WHERE at >= t;
END $$;
GRANT EXECUTE ON FUNCTION escaped(), fired(text) TO PUBLIC;
GRANT EXECUTE ON FUNCTION feed(text) TO pgtap_tw_member;
GRANT ALL ON tw.log TO pgtap_tw_member;

SELECT feed($$INSERT INTO tw.src VALUES (1, 10, 'red'), (2, 20, 'green'), (3, 30, 'red')$$);

-- as a superuser -------------------------------------------------------------
SELECT ok(pipeline.run('tw merge') > 0, 'a superuser runs the merge pipeline');
SELECT ok(pipeline.run('tw append') > 0, 'a superuser runs the append pipeline');
SELECT is((SELECT count(*)::int FROM tw.tgt), 3, 'the merge pipeline loaded through every hook');
SELECT is((SELECT count(*)::int FROM tw.rule_log), 3, 'the rule on the append target fired');
SELECT feed($$UPDATE tw.src SET color = 'green', seq = 40 WHERE id = 1$$);
SELECT ok(pipeline.run('tw merge') > 0, 'a superuser runs it again: the domain converts the watermark, an update fires the trigger');
SELECT is((SELECT count(*)::int FROM pipeline.explain('tw merge')) > 0, true, 'a superuser explains it');
SELECT ok((SELECT source_ahead_by FROM pipeline.status WHERE name = 'tw merge') IS NOT NULL,
          'a superuser reads its status, the lag included');
SELECT ok((pipeline.source_lag_detail((SELECT id FROM pipeline.pipelines WHERE name = 'tw merge'))).lag IS NOT NULL,
          'a superuser reads its lag in detail');
SELECT lives_ok($$SELECT pipeline.reset('tw merge', '40')$$, 'a superuser resets it to a value (domain input)');
SELECT lives_ok($$SELECT pipeline.refresh_lineage('tw merge')$$, 'a superuser refreshes its lineage');
SELECT lives_ok($$SELECT count(*) FROM pipeline.openlineage_events(
                    (SELECT max(run_id) FROM pipeline.runs WHERE pipeline_name = 'tw merge'))$$,
                'a superuser exports its OpenLineage events');
SELECT ok(pipeline.replay_quarantine('tw merge') > 0, 'a superuser replays its quarantine');
SELECT is(escaped(), 0::bigint, 'as a superuser, every hook ran as the owner, restricted, search_path pinned');

-- as a member of the owner role ------------------------------------------------
SET ROLE pgtap_tw_member;
SELECT feed($$INSERT INTO tw.src VALUES (4, 50, 'red')$$);
SELECT ok(pipeline.run('tw merge') > 0, 'a member of the owner runs it');
SELECT is((SELECT count(*)::int FROM pipeline.quarantine WHERE pipeline = 'tw merge' AND status = 'open'), 1,
          'the expression check quarantined row 4');
SELECT ok(pipeline.replay_quarantine('tw merge') > 0, 'a member replays the quarantine: row 4 is checked again');
SELECT lives_ok($$SELECT pipeline.add_check('tw merge', 'tw member', 'expression',
                    '{"sql": "tw.tripwire(''check_expression'')"}', 'warn')$$,
                'a member adds an expression check, parsed as the owner');
CALL pipeline.run_batched('tw append', 1);
SELECT lives_ok($$SELECT pipeline.reset('tw append', '10')$$, 'a member resets the append pipeline');
SELECT lives_ok($$SELECT * FROM pipeline.status$$, 'a member reads the status');
SELECT lives_ok($$SELECT pipeline.source_lag(id) FROM pipeline.pipelines$$, 'a member reads the lag');
RESET ROLE;
SELECT is(escaped(), 0::bigint, 'as a member, every hook ran as the owner, restricted');

-- as an unrelated role: refused, and nothing of the owner's runs ----------------
SET ROLE pgtap_tw_other;
SELECT throws_ok($$SELECT pipeline.run('tw merge')$$, '42501', NULL, 'another role cannot run it');
SELECT throws_ok($$SELECT pipeline.reset('tw merge', '1')$$, '42501', NULL, 'nor reset it');
SELECT throws_ok($$SELECT pipeline.add_check('tw merge', 'x', 'expression', '{"sql": "tw.tripwire(''check_expression'')"}')$$,
                 '42501', NULL, 'nor add a check to it');
SELECT throws_ok($$SELECT pipeline.replay_quarantine('tw merge')$$, '42501', NULL, 'nor replay its quarantine');
SELECT lives_ok($$SELECT pipeline.source_lag(p.pipeline_id), pipeline.source_lag_detail(p.pipeline_id)
                    FROM generate_series(1, 5) AS p (pipeline_id)$$,
                'its lag functions answer without reading the source');
SELECT lives_ok($$SELECT * FROM pipeline.status$$, 'it reads the status');
RESET ROLE;
SELECT is(escaped(), 0::bigint, 'as another role, no hook ran outside the owner');

-- every hook was reached at least once (the test can fail) -----------------------
SELECT is((SELECT array_agg(h ORDER BY h) FROM unnest(ARRAY['view', 'domain', 'default', 'trigger',
                                                                'index', 'cast', 'rule', 'check_expression',
                                                                'check_query']) h
            WHERE fired(h) = 0), NULL,
          'every hook fired: view, domain, default, trigger, index, cast, rule, check expression and query');
SELECT is((SELECT count(*)::int FROM tw.appended), 5, 'the batched append loaded the two new versions');

SELECT * FROM finish();
