-- 11_audit: the append-only, hash-chained audit log. Every registry change,
-- every run (start and end, with counts), every refused action; UPDATE,
-- DELETE and TRUNCATE refused for every role; tampering detected.
\set SHOW_CONTEXT never
SET client_min_messages = warning;

-- Entries written by earlier suites stay; we look at ours only.
SELECT seq AS start FROM pipeline.audit_head() \gset

CREATE ROLE aud_owner;
CREATE ROLE aud_other;
CREATE SCHEMA aud AUTHORIZATION aud_owner;
GRANT USAGE ON SCHEMA aud TO aud_other;
SET ROLE aud_owner;
CREATE TABLE aud.src (id int PRIMARY KEY, v text, seq bigserial);
CREATE VIEW aud.src_checked AS SELECT id, v, 10 / (CASE WHEN v = 'boom' THEN 0 ELSE 1 END) AS ten, seq FROM aud.src;
INSERT INTO aud.src (id, v) VALUES (1, 'a'), (2, 'b');

-- Registry changes, each with the configuration before and after.
SELECT pipeline.create_pipeline('aud_p', 'aud.src_checked', 'aud.dst',
                                unique_key => ARRAY['id'], incremental_column => 'seq') > 0 AS created;
SELECT pipeline.alter_pipeline('aud_p', description => 'audited') > 0 AS altered;
SELECT pipeline.alter_pipeline('aud_p', description => 'audited') > 0 AS altered_again;
SELECT pipeline.pause('aud_p');
SELECT pipeline.resume('aud_p');
SELECT pipeline.run('aud_p') > 0 AS ran;
SELECT pipeline.reset('aud_p', '1');
CALL pipeline.run_batched('aud_p', 1);
-- a failed run: the load rolls back, its audit entries stay
INSERT INTO aud.src (id, v) VALUES (3, 'boom');
SELECT pipeline.run('aud_p');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- Refused actions are logged too, although the error rolls back the caller.
SET ROLE aud_other;
SELECT pipeline.alter_pipeline('aud_p', description => 'hijacked');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.drop_pipeline('aud_p');
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SELECT pipeline.run('aud_p');
ROLLBACK;
RESET ROLE;

SELECT seq - :start AS n, action, object_type, object_name, outcome, role_name, session_role,
       run_id IS NOT NULL AS has_run
  FROM pipeline.audit_log WHERE seq > :start ORDER BY seq;
-- before and after of the configuration changes
SELECT seq - :start AS n, action, config_before->>'description' AS before,
       config_after->>'description' AS after, details->>'config_version' AS version,
       details->>'new_version' AS new_version
  FROM pipeline.audit_log
 WHERE seq > :start AND action IN ('create', 'alter') AND outcome = 'ok' ORDER BY seq;
SELECT seq - :start AS n, action, config_before, config_after
  FROM pipeline.audit_log
 WHERE seq > :start AND action IN ('pause', 'resume', 'reset') ORDER BY seq;
-- each run's end entry carries its counts; the failed one its SQLSTATE
SELECT seq - :start AS n, action, outcome, details->>'rows_read' AS read,
       details->>'rows_inserted' AS inserted, details->>'batches' AS batches,
       details->>'watermark_to' AS wm_to, details->>'sqlstate' AS sqlstate
  FROM pipeline.audit_log WHERE seq > :start AND action = 'run_end' ORDER BY seq;
SELECT details->>'message' AS refusal FROM pipeline.audit_log
 WHERE seq > :start AND outcome = 'refused' ORDER BY seq;
-- every entry names the session it came from
SELECT count(*) FILTER (WHERE session_id ~ '^[0-9a-f]+\.[0-9a-f]+$') = count(*) AS sessions_named
  FROM pipeline.audit_log WHERE seq > :start;

-- Append-only: UPDATE, DELETE and TRUNCATE are refused, even for a superuser,
-- and the attempt is logged.
UPDATE pipeline.audit_log SET outcome = 'ok' WHERE seq = :start + 1;
\echo :LAST_ERROR_SQLSTATE
DELETE FROM pipeline.audit_log WHERE seq = :start + 1;
\echo :LAST_ERROR_SQLSTATE
TRUNCATE pipeline.audit_log;
\echo :LAST_ERROR_SQLSTATE
SET ROLE aud_other;
DELETE FROM pipeline.audit_log;
\echo :LAST_ERROR_SQLSTATE
INSERT INTO pipeline.audit_log (seq, logged_at, session_id, role_name, session_role, action,
       object_type, outcome, prev_hash, hash)
VALUES (0, now(), 'x', 'x', 'x', 'x', 'x', 'x', '\x', '\x');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT action, object_name, outcome FROM pipeline.audit_log
 WHERE seq > :start AND object_type = 'audit_log' ORDER BY seq;
-- The refused TRUNCATE held a lock that the recorder would have waited for,
-- so its entry waits for the session's next flush (here: by hand; see
-- 13_audit_retention for how refusals are coalesced).
SELECT pipeline.flush_audit_refusals() AS written;
SELECT action, object_name, outcome FROM pipeline.audit_log
 WHERE seq > :start AND object_type = 'audit_log' ORDER BY seq;

-- The chain verifies (from its first entry: nothing was pruned yet).
SELECT valid, entries_checked > 0 AS checked, first_bad_seq, problem, detail, anchor_seq
  FROM pipeline.verify_audit();

-- The hash of an entry, recomputed in plain SQL from the format documented
-- in docs/audit.md, matches every stored hash.
CREATE FUNCTION pg_temp.entry_hash(e pipeline.audit_log, seq bigint, prev bytea)
RETURNS bytea LANGUAGE sql AS $$
SELECT sha256(prev || convert_to(
         'pg_pipeline audit v1|' || seq || '|'
         || ((extract(epoch FROM e.logged_at) - 946684800) * 1000000)::bigint || '|'
         || coalesce(e.pipeline_id, 0) || '|' || coalesce(e.run_id, 0)
         || (SELECT string_agg(CASE WHEN f IS NULL THEN '|N'
                                    ELSE '|' || octet_length(f) || ':' || f END, '' ORDER BY i)
               FROM unnest(ARRAY[e.session_id, e.role_name::text, e.session_role::text,
                                 e.action, e.object_type, e.object_name, e.outcome,
                                 e.config_before::text, e.config_after::text,
                                 e.details::text]) WITH ORDINALITY AS u (f, i)),
         'UTF8'))
$$;
SELECT count(*) = count(*) FILTER (WHERE pg_temp.entry_hash(a, a.seq, a.prev_hash) = a.hash)
       AS every_hash_matches
  FROM pipeline.audit_log a;
SELECT count(*) = count(*) FILTER (WHERE a.prev_hash = coalesce(p.hash, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea)) AS every_entry_links
  FROM pipeline.audit_log a LEFT JOIN pipeline.audit_log p ON p.seq = a.seq - 1;

-- Tampering, as a superuser with the triggers disabled, is caught.
CREATE TEMP TABLE saved AS SELECT * FROM pipeline.audit_log WHERE seq > :start;
ALTER TABLE pipeline.audit_log DISABLE TRIGGER audit_log_append_only;
-- 1. an entry changed
UPDATE pipeline.audit_log SET role_name = 'someone_else' WHERE seq = :start + 2;
SELECT valid, first_bad_seq - :start AS bad, problem FROM pipeline.verify_audit();
UPDATE pipeline.audit_log a SET role_name = s.role_name FROM saved s WHERE a.seq = s.seq;
SELECT valid FROM pipeline.verify_audit();
-- 2. an entry removed
DELETE FROM pipeline.audit_log WHERE seq = :start + 3;
SELECT valid, first_bad_seq - :start AS bad, problem FROM pipeline.verify_audit();
INSERT INTO pipeline.audit_log SELECT * FROM saved WHERE seq = :start + 3;
SELECT valid FROM pipeline.verify_audit();
-- 3. two entries swapped, each re-hashed correctly for its new place: the
-- hashes are right, but the first no longer links to the entry before it
UPDATE pipeline.audit_log a
   SET seq = CASE a.seq WHEN :start + 4 THEN :start + 5 ELSE :start + 4 END + 1000000
 WHERE a.seq IN (:start + 4, :start + 5);
UPDATE pipeline.audit_log a SET seq = a.seq - 1000000, hash = pg_temp.entry_hash(a, a.seq - 1000000, a.prev_hash)
 WHERE a.seq > 1000000;
SELECT valid, first_bad_seq - :start AS bad, problem FROM pipeline.verify_audit();
DELETE FROM pipeline.audit_log WHERE seq IN (:start + 4, :start + 5);
INSERT INTO pipeline.audit_log SELECT * FROM saved WHERE seq IN (:start + 4, :start + 5);
SELECT valid FROM pipeline.verify_audit();
-- 4. an entry removed and the rest renumbered
DELETE FROM pipeline.audit_log WHERE seq = :start + 6;
UPDATE pipeline.audit_log SET seq = seq + 1000000 WHERE seq > :start + 6;
UPDATE pipeline.audit_log SET seq = seq - 1000001 WHERE seq > 1000000;
SELECT valid, first_bad_seq - :start AS bad, problem FROM pipeline.verify_audit();
DELETE FROM pipeline.audit_log WHERE seq > :start;
INSERT INTO pipeline.audit_log SELECT * FROM saved;
ALTER TABLE pipeline.audit_log ENABLE TRIGGER audit_log_append_only;
SELECT valid, entries_checked > 0 AS checked FROM pipeline.verify_audit();
-- the head can be published outside the database to detect removal at the end
SELECT seq = (SELECT max(seq) FROM pipeline.audit_log) AS head_is_last, length(hash) AS hex_digits
  FROM pipeline.audit_head();

-- clean up
SELECT pipeline.drop_pipeline('aud_p');
DROP SCHEMA aud CASCADE;
DROP ROLE aud_owner;
DROP ROLE aud_other;
