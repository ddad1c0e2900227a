-- 04_security: who may do what, and as whom a run executes.
-- A pipeline belongs to the role that created it; only that role, its
-- members and superusers may change or run it. A run reads and writes with
-- the owner's privileges, checked at registration and at every run.
\set SHOW_CONTEXT never
CREATE ROLE alice;
CREATE ROLE bob;
CREATE ROLE carol IN ROLE alice;   -- carol is a member of alice
CREATE SCHEMA sec;
GRANT USAGE, CREATE ON SCHEMA sec TO alice, bob;
CREATE TABLE sec.feed (id int PRIMARY KEY, v text);
ALTER TABLE sec.feed OWNER TO alice;
INSERT INTO sec.feed VALUES (1, 'one'), (2, 'two');
-- a view that reports who reads it: the run must read as alice
CREATE FUNCTION sec.reader() RETURNS text LANGUAGE sql AS 'SELECT current_user::text';
CREATE VIEW sec.feed_with_reader AS SELECT id, v, sec.reader() AS read_by FROM sec.feed;
ALTER VIEW sec.feed_with_reader OWNER TO alice;

SET ROLE alice;
SELECT pipeline.create_pipeline('alice_feed', 'sec.feed_with_reader', 'sec.alice_dst',
                                unique_key => ARRAY['id']) > 0 AS created;
SELECT name, owner FROM pipeline.pipelines WHERE name = 'alice_feed';
RESET ROLE;

-- bob is not alice: every action on her pipeline is refused with 42501,
-- and the refused calls change nothing.
SET ROLE bob;
SELECT pipeline.run('alice_feed');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.alter_pipeline('alice_feed', description => 'mine now');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.pause('alice_feed');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.resume('alice_feed');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.reset('alice_feed');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.drop_pipeline('alice_feed');
\echo :LAST_ERROR_SQLSTATE
CALL pipeline.run_batched('alice_feed', 10);
\echo :LAST_ERROR_SQLSTATE
-- nor can bob register a pipeline over a source he cannot read
SELECT pipeline.create_pipeline('bob_feed', 'sec.feed', 'sec.bob_dst', unique_key => ARRAY['id']);
\echo :LAST_ERROR_SQLSTATE
-- or into a target he cannot write
CREATE TABLE sec.bob_src (id int PRIMARY KEY, v text);
SELECT pipeline.create_pipeline('bob_feed', 'sec.bob_src', 'sec.alice_dst', unique_key => ARRAY['id']);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT name, description, active FROM pipeline.pipelines WHERE name LIKE '%feed%';
SELECT count(*) AS runs FROM pipeline.runs WHERE pipeline_name = 'alice_feed';

-- carol, a member of alice, may run it; so may a superuser. Either way the
-- run reads the source as alice.
SET ROLE carol;
SELECT pipeline.run('alice_feed') > 0 AS ran;
RESET ROLE;
INSERT INTO sec.feed VALUES (3, 'three');
SELECT pipeline.run('alice_feed') > 0 AS ran;
SELECT id, v, read_by FROM sec.alice_dst ORDER BY id;

-- Privileges are checked at every run: when alice loses SELECT on her
-- source, the next run fails with 42501 and is recorded as failed.
CREATE TABLE sec.shared (id int PRIMARY KEY, v text);
GRANT SELECT ON sec.shared TO alice;
SET ROLE alice;
SELECT pipeline.create_pipeline('alice_shared', 'sec.shared', 'sec.alice_shared',
                                unique_key => ARRAY['id']) > 0 AS created;
RESET ROLE;
REVOKE SELECT ON sec.shared FROM alice;
SELECT pipeline.run('alice_shared');
\echo :LAST_ERROR_SQLSTATE
SELECT status, error_sqlstate FROM pipeline.runs WHERE pipeline_name = 'alice_shared';

-- A run cannot be used to escalate: code in the source runs as the owner,
-- inside a security-restricted operation.
CREATE FUNCTION sec.escalate() RETURNS text LANGUAGE plpgsql AS
$$BEGIN EXECUTE 'SET ROLE postgres'; RETURN 'escalated'; END$$;
CREATE VIEW sec.sneaky AS SELECT id, sec.escalate() AS v FROM sec.feed;
ALTER VIEW sec.sneaky OWNER TO alice;
SET ROLE alice;
SELECT pipeline.create_pipeline('sneaky', 'sec.sneaky', 'sec.sneaky_dst',
                                unique_key => ARRAY['id']) > 0 AS created;
RESET ROLE;
-- even when a superuser starts the run
SELECT pipeline.run('sneaky');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS loaded FROM sec.sneaky_dst;

-- The caller's search_path cannot redirect what a run executes: the run
-- pins search_path, and every name it uses is schema-qualified.
CREATE SCHEMA trap;
CREATE FUNCTION trap.max(bigint) RETURNS bigint LANGUAGE plpgsql AS
$$BEGIN RAISE EXCEPTION 'trap.max was called'; END$$;
CREATE FUNCTION trap.upper(text) RETURNS text LANGUAGE plpgsql AS
$$BEGIN RAISE EXCEPTION 'trap.upper was called'; END$$;
CREATE TABLE sec.seq_src (id bigserial PRIMARY KEY, v text);
INSERT INTO sec.seq_src (v) VALUES ('a'), ('b');
SELECT pipeline.create_pipeline('pinned', 'sec.seq_src', 'sec.seq_dst',
                                unique_key => ARRAY['id'], incremental_column => 'id') > 0 AS created;
SET search_path = trap, public;
SELECT pipeline.run('pinned') > 0 AS ran;
SHOW search_path;
RESET search_path;
SELECT count(*) FROM sec.seq_dst;

-- Names with capitals, spaces and quotes work everywhere.
CREATE SCHEMA "Sales Data";
CREATE TABLE "Sales Data"."Order ""Lines""" ("Order Id" int, "Amount €" numeric,
                                            "Updated At" timestamptz, "Gone?" boolean);
INSERT INTO "Sales Data"."Order ""Lines""" VALUES
    (1, 10, '2024-01-01 00:00+00', false), (2, 20, '2024-01-01 00:00+00', false),
    (1, 11, '2024-01-02 00:00+00', false);
SELECT pipeline.create_pipeline('it''s "quoted"', '"Sales Data"."Order ""Lines"""',
                                '"Sales Data"."Clean ""Lines"""',
                                unique_key => ARRAY['Order Id'], incremental_column => 'Updated At',
                                delete_column => 'Gone?', lookback => '1 hour') > 0 AS created;
SELECT pipeline.run('it''s "quoted"') > 0 AS ran;
SELECT * FROM "Sales Data"."Clean ""Lines""" ORDER BY "Order Id";
SELECT name, source, target, unique_key FROM pipeline.pipelines WHERE name = 'it''s "quoted"';
\pset format unaligned
\pset tuples_only on
SELECT * FROM pipeline.explain('it''s "quoted"');
\pset format aligned
\pset tuples_only off

-- clean up the roles (their pipelines first)
SELECT pipeline.drop_pipeline(name) FROM pipeline.pipelines
 WHERE owner IN ('alice'::regrole, 'bob'::regrole);
DROP SCHEMA sec CASCADE;
DROP ROLE carol;
DROP ROLE alice;
DROP ROLE bob;
