-- 13_audit_retention: the audit log is bounded and still verifiable.
-- Refusals are coalesced (a role with no privileges calling in a loop adds
-- a bounded number of entries); old entries are pruned in batches, and the
-- chain stays verifiable from the anchor kept at the cut. This server has
-- no launcher: refusals are counted in the session and written by a
-- recorder worker (see test/t/011_audit_bounded.pl for the launcher).
\set SHOW_CONTEXT never
SET client_min_messages = warning;

CREATE ROLE ret_owner;
CREATE ROLE ret_other;
CREATE SCHEMA ret AUTHORIZATION ret_owner;
GRANT USAGE ON SCHEMA ret TO ret_other;
SET ROLE ret_owner;
CREATE TABLE ret.src (id int PRIMARY KEY, v text);
INSERT INTO ret.src VALUES (1, 'a');
SELECT pipeline.create_pipeline('ret_p', 'ret.src', 'ret.dst', unique_key => ARRAY['id']) > 0 AS created;
RESET ROLE;
SELECT seq AS start FROM pipeline.audit_head() \gset

-- 1. Refusals are bounded. A role with no privileges runs somebody else's
-- pipeline 10,000 times, inside a transaction it then rolls back. Every
-- call is refused with 42501, as before.
SET pipeline.audit_refusal_window = '1h';
SET ROLE ret_other;
SELECT pipeline.run('ret_p');
\echo :LAST_ERROR_SQLSTATE
BEGIN;
DO $$
DECLARE
    refused int := 0;
BEGIN
    FOR i IN 1 .. 10000 LOOP
        BEGIN
            PERFORM pipeline.run('ret_p');
        EXCEPTION WHEN insufficient_privilege THEN
            refused := refused + 1;
        END;
    END LOOP;
    RAISE WARNING 'refused % of 10000 calls', refused;
END
$$;
ROLLBACK;
RESET ROLE;
-- The first refusal of the window has its entry, written although the
-- caller rolled back; the 10,000 of the loop are only counted so far.
SELECT action, object_name, outcome, role_name, details->>'count' AS count,
       details->>'message' AS message
  FROM pipeline.audit_log WHERE seq > :start ORDER BY seq;
-- The counts are written when the window closes (here: now, by hand). One
-- entry stands for all the refusals of the window after the first.
SELECT pipeline.flush_audit_refusals() AS written;
SELECT count(*) AS entries, sum((details->>'count')::int) AS refusals,
       bool_and((details->>'first_at')::timestamptz <= (details->>'last_at')::timestamptz) AS ordered
  FROM pipeline.audit_log WHERE seq > :start AND role_name = 'ret_other';
SELECT pipeline.flush_audit_refusals() AS nothing_left;
-- Another action or object is another key: its first refusal is logged too.
SET ROLE ret_other;
SELECT pipeline.drop_pipeline('ret_p');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT action, details->>'count' AS count FROM pipeline.audit_log
 WHERE seq > :start ORDER BY seq DESC LIMIT 1;
RESET pipeline.audit_refusal_window;

-- 2. prune_audit is for the extension owner and superusers only.
SET ROLE ret_other;
SELECT pipeline.prune_audit('0');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.flush_audit_refusals();
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- Its arguments are checked.
SELECT pipeline.prune_audit();
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.prune_audit('-1 day');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.prune_audit('0', 0);
\echo :LAST_ERROR_SQLSTATE
-- An age older than any entry prunes nothing and writes nothing.
SELECT seq AS before_head FROM pipeline.audit_head() \gset
SELECT pipeline.prune_audit('1000000 years') AS removed;
SELECT seq = :before_head AS nothing_written FROM pipeline.audit_head();

-- 3. Pruning: the oldest entries go in batches; an anchor keeps the cut.
SELECT min(seq) AS first_seq FROM pipeline.audit_log \gset
SELECT pipeline.prune_audit('0', 5) AS removed;
SELECT seq - :first_seq AS anchor_after_first, entries_removed, removed_from = :first_seq AS from_first,
       older_than, length(hash) AS hash_bytes
  FROM pipeline.audit_anchor ORDER BY seq DESC LIMIT 1;
-- The prune is itself an entry, which records the anchor.
SELECT l.action, l.outcome, (l.details->>'cut_seq')::bigint = a.seq AS records_cut,
       l.details->>'cut_hash' = encode(a.hash, 'hex') AS records_hash,
       l.details->>'entries_removed' AS removed, l.details->>'triggered_by' AS triggered_by
  FROM pipeline.audit_log l, (SELECT * FROM pipeline.audit_anchor ORDER BY seq DESC LIMIT 1) a
 WHERE l.seq = (SELECT max(seq) FROM pipeline.audit_log);
-- The chain verifies from the anchor.
SELECT valid, problem, anchor_seq = (SELECT max(seq) FROM pipeline.audit_anchor) AS from_latest_anchor
  FROM pipeline.verify_audit();
-- Everything logged before now goes; only the last prune's entry is left.
SELECT pipeline.prune_audit('0', 1000000) > 0 AS removed_the_rest;
SELECT count(*) AS entries_left, min(action) AS action FROM pipeline.audit_log;
SELECT valid, entries_checked, anchor_seq = seq - 1 AS anchor_right_before
  FROM pipeline.verify_audit(), pipeline.audit_head();
-- Anchors older than the age but the latest are dropped with the entries.
SELECT count(*) AS anchors FROM pipeline.audit_anchor;
-- The log goes on from the anchor, and verifies.
SET ROLE ret_owner;
SELECT pipeline.alter_pipeline('ret_p', description => 'after the cut') > 0 AS altered;
SELECT pipeline.run('ret_p') > 0 AS ran;
RESET ROLE;
SELECT valid, entries_checked FROM pipeline.verify_audit();

-- 4. DELETE is still refused for every role, superusers included; so are
-- UPDATE and TRUNCATE of the anchors.
DELETE FROM pipeline.audit_log WHERE seq = (SELECT min(seq) FROM pipeline.audit_log);
\echo :LAST_ERROR_SQLSTATE
DELETE FROM pipeline.audit_anchor;
\echo :LAST_ERROR_SQLSTATE
UPDATE pipeline.audit_anchor SET entries_removed = 0;
\echo :LAST_ERROR_SQLSTATE
TRUNCATE pipeline.audit_anchor;
\echo :LAST_ERROR_SQLSTATE
SET ROLE ret_other;
DELETE FROM pipeline.audit_anchor;
\echo :LAST_ERROR_SQLSTATE
INSERT INTO pipeline.audit_anchor VALUES (1, '\x00', now(), 1, 1, '0', now());
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT action, object_name, outcome FROM pipeline.audit_log
 WHERE object_type IN ('audit_log', 'audit_anchor') AND outcome = 'refused' ORDER BY seq;
SELECT valid FROM pipeline.verify_audit();

-- 5. Tampering after the anchor is still caught (a superuser with the
-- triggers disabled).
CREATE TEMP TABLE saved AS SELECT * FROM pipeline.audit_log;
CREATE TEMP TABLE saved_anchor AS SELECT * FROM pipeline.audit_anchor;
SELECT max(seq) AS anchor FROM pipeline.audit_anchor \gset
ALTER TABLE pipeline.audit_log DISABLE TRIGGER audit_log_append_only;
ALTER TABLE pipeline.audit_anchor DISABLE TRIGGER audit_anchor_append_only;
-- an entry after the anchor changed
UPDATE pipeline.audit_log SET role_name = 'someone_else' WHERE seq = :anchor + 2;
SELECT valid, first_bad_seq - :anchor AS bad, problem FROM pipeline.verify_audit();
-- a broken chain is never cut: the prune refuses (data corrupted), and
-- removes nothing
\set VERBOSITY sqlstate
SELECT pipeline.prune_audit('0');
\set VERBOSITY default
SELECT count(*) = (SELECT count(*) FROM saved) AS nothing_removed FROM pipeline.audit_log;
UPDATE pipeline.audit_log a SET role_name = s.role_name FROM saved s WHERE a.seq = s.seq;
SELECT valid FROM pipeline.verify_audit();
-- the first entry after the anchor removed
DELETE FROM pipeline.audit_log WHERE seq = :anchor + 1;
SELECT valid, first_bad_seq - :anchor AS bad, problem FROM pipeline.verify_audit();
INSERT INTO pipeline.audit_log SELECT * FROM saved WHERE seq = :anchor + 1;
-- the anchor's hash replaced
UPDATE pipeline.audit_anchor SET hash = sha256('forged');
SELECT valid, first_bad_seq - :anchor AS bad, problem FROM pipeline.verify_audit();
UPDATE pipeline.audit_anchor a SET hash = s.hash FROM saved_anchor s WHERE a.seq = s.seq;
-- the anchor removed: the chain no longer starts where it should
DELETE FROM pipeline.audit_anchor;
SELECT valid, problem FROM pipeline.verify_audit();
INSERT INTO pipeline.audit_anchor SELECT * FROM saved_anchor;
-- entries removed with a forged anchor that claims a prune: no audit_prune
-- entry of the chain records that anchor
INSERT INTO pipeline.audit_anchor
SELECT seq, hash, logged_at, seq, 1, '0', now() FROM pipeline.audit_log WHERE seq = :anchor + 2;
DELETE FROM pipeline.audit_log WHERE seq <= :anchor + 2;
SELECT valid, first_bad_seq - :anchor AS bad, problem FROM pipeline.verify_audit();
DELETE FROM pipeline.audit_anchor WHERE seq = :anchor + 2;
INSERT INTO pipeline.audit_log SELECT * FROM saved WHERE seq <= :anchor + 2;
ALTER TABLE pipeline.audit_log ENABLE TRIGGER audit_log_append_only;
ALTER TABLE pipeline.audit_anchor ENABLE TRIGGER audit_anchor_append_only;
SELECT valid, anchor_seq = :anchor AS same_anchor FROM pipeline.verify_audit();

-- clean up
SELECT pipeline.drop_pipeline('ret_p');
DROP SCHEMA ret CASCADE;
DROP ROLE ret_owner;
DROP ROLE ret_other;
