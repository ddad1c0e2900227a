-- 30_checks: data contracts. A pipeline's checks are added with
-- pipeline.add_check (or the "checks" key of apply), dropped with
-- pipeline.drop_check, listed by pipeline.checks; the row-level ones run
-- inside the load statement, the set-level ones after it, and what each
-- came to is in pipeline.check_results. Rows that fail a quarantine check
-- go to pipeline.quarantine, from where they are replayed or discarded.
\set SHOW_CONTEXT never
-- After each refused call, its SQLSTATE.
\set sqlstate '\\echo SQLSTATE :LAST_ERROR_SQLSTATE'
-- It runs in a database of its own, so that its runs and audit entries do
-- not shift the ids and counts the other suites print.
\set regress_db :DBNAME
CREATE DATABASE pipeline_checks;
\c pipeline_checks
SET client_min_messages = notice;
CREATE EXTENSION pg_pipeline;
CREATE SCHEMA q;
CREATE TABLE q.customers (id int PRIMARY KEY);
INSERT INTO q.customers VALUES (1), (2), (3);
CREATE TABLE q.orders (id int PRIMARY KEY, customer_id int, status text, amount numeric,
                       email text, at timestamptz NOT NULL);
CREATE INDEX ON q.orders (at);
SELECT pipeline.create_pipeline('orders', 'q.orders', 'q.orders_dst',
                                unique_key => '{id}', incremental_column => 'at') > 0 AS created;

-- Adding checks ----------------------------------------------------------------
-- add_check returns the check's id; the severity defaults to error.
SELECT pipeline.add_check('orders', 'amount_present', 'not_null', '{"columns": ["amount"]}') > 0 AS added;
SELECT pipeline.add_check('orders', 'known_status', 'accepted_values',
                          '{"column": "status", "values": ["new", "paid"]}', 'quarantine') > 0 AS added;
SELECT pipeline.add_check('orders', 'amount_range', 'range', '{"column": "amount", "min": 0, "max": 1000}',
                          'quarantine') > 0 AS added;
SELECT pipeline.add_check('orders', 'email_shape', 'regex', '{"column": "email", "pattern": "^[^@]+@[^@]+$"}',
                          'warn') > 0 AS added;
SELECT pipeline.add_check('orders', 'customer_exists', 'relationships',
                          '{"column": "customer_id", "to": "q.customers", "field": "id"}', 'quarantine') > 0 AS added;
SELECT pipeline.add_check('orders', 'round_amount', 'expression', '{"sql": "amount = round(amount)"}',
                          'quarantine') > 0 AS added;
SELECT pipeline.add_check('orders', 'some_rows', 'row_count', '{"min": 1}', 'warn') > 0 AS added;
SELECT pipeline, check_name, kind, args, severity, level FROM pipeline.checks ORDER BY check_name;

-- Refused checks change nothing ------------------------------------------------
-- an unknown pipeline: 42704
SELECT pipeline.add_check('nope', 'c', 'not_null', '{"columns": ["id"]}');
:sqlstate
-- a name already taken: 42710
SELECT pipeline.add_check('orders', 'amount_present', 'not_null', '{"columns": ["id"]}');
:sqlstate
-- an unknown kind, an unknown severity, a set check that would quarantine: 22023
SELECT pipeline.add_check('orders', 'c', 'positive', '{}');
:sqlstate
SELECT pipeline.add_check('orders', 'c', 'not_null', '{"columns": ["id"]}', 'fatal');
:sqlstate
SELECT pipeline.add_check('orders', 'c', 'unique', '{"columns": ["email"]}', 'quarantine');
:sqlstate
-- arguments of the wrong shape: 22023, with an example
SELECT pipeline.add_check('orders', 'c', 'not_null', '{"column": "id"}');
:sqlstate
SELECT pipeline.add_check('orders', 'c', 'not_null', '{"columns": []}');
:sqlstate
SELECT pipeline.add_check('orders', 'c', 'range', '{"column": "amount"}');
:sqlstate
SELECT pipeline.add_check('orders', 'c', 'accepted_values', '{"column": "status", "values": [null]}');
:sqlstate
SELECT pipeline.add_check('orders', 'c', 'row_count', '{"min": 5, "max": 1}');
:sqlstate
SELECT pipeline.add_check('orders', 'c', 'not_null', '[1]');
:sqlstate
-- an empty name: 22023; NULL arguments: 22004
SELECT pipeline.add_check('orders', '', 'not_null', '{"columns": ["id"]}');
:sqlstate
SELECT pipeline.add_check('orders', NULL, 'not_null', '{"columns": ["id"]}');
:sqlstate
-- SQL the parser refuses, with the parser's SQLSTATE: a syntax error
-- (42601), an unknown column (42703), not a boolean (42804), a value of the
-- wrong type (22P02), an unknown table (42P01), a bad pattern (2201B)
SELECT pipeline.add_check('orders', 'c', 'expression', '{"sql": "amount >"}');
:sqlstate
SELECT pipeline.add_check('orders', 'c', 'expression', '{"sql": "price > 0"}');
:sqlstate
SELECT pipeline.add_check('orders', 'c', 'expression', '{"sql": "amount + 1"}');
:sqlstate
SELECT pipeline.add_check('orders', 'c', 'range', '{"column": "amount", "min": "zero"}');
:sqlstate
SELECT pipeline.add_check('orders', 'c', 'not_null', '{"columns": ["price"]}');
:sqlstate
SELECT pipeline.add_check('orders', 'c', 'relationships', '{"column": "customer_id", "to": "q.nope", "field": "id"}');
:sqlstate
SELECT pipeline.add_check('orders', 'c', 'regex', '{"column": "email", "pattern": "(("}');
:sqlstate
SELECT pipeline.add_check('orders', 'c', 'query', '{"sql": "SELECT * FROM q.nope"}');
:sqlstate
-- SQL that tries to reach outside its parentheses is not one expression,
-- or not one SELECT: 22023
SELECT pipeline.add_check('orders', 'c', 'expression', '{"sql": "true) OR (true) FROM q.customers WHERE (true"}');
:sqlstate
SELECT pipeline.add_check('orders', 'c', 'expression', E'{"sql": "true --"}') > 0 AS a_comment_ends_at_its_line;
SELECT pipeline.drop_check('orders', 'c');
SELECT pipeline.add_check('orders', 'c', 'query', '{"sql": "SELECT 1; DROP TABLE q.orders"}');
:sqlstate
SELECT pipeline.add_check('orders', 'c', 'query', '{"sql": "DELETE FROM q.orders RETURNING *"}');
:sqlstate
SELECT count(*) AS checks_still FROM pipeline.checks WHERE pipeline = 'orders';

-- A run with checks ------------------------------------------------------------
-- Rows that fail a quarantine check go to quarantine (one row each, with
-- every check it failed); a warn check loads the row and warns; the rest
-- loads, in the same statement.
INSERT INTO q.orders VALUES
    (1, 1, 'new',   10,   'a@x.org', '2026-01-01 10:00+00'),
    (2, 2, 'paid',  20,   'b@x.org', '2026-01-01 11:00+00'),
    (3, 9, 'new',   30,   'c@x.org', '2026-01-01 12:00+00'),   -- unknown customer
    (4, 1, 'lost',  5000, 'd@x.org', '2026-01-01 13:00+00'),   -- status and range
    (5, 3, 'new',   7.5,  'e@x.org', '2026-01-01 14:00+00'),   -- not round
    (6, 2, 'paid',  60,   'no-at',   '2026-01-01 15:00+00');   -- warn only
SELECT pipeline.run('orders') > 0 AS ran;
SELECT id, status, amount FROM q.orders_dst ORDER BY id;
SELECT rows_read, rows_inserted, rows_updated, rows_unchanged, rows_quarantined, rows_rejected,
       watermark_to
  FROM pipeline.runs WHERE pipeline_name = 'orders' ORDER BY run_id DESC LIMIT 1;
SELECT check_name, kind, severity, failed_rows, outcome
  FROM pipeline.check_results
 WHERE run_id = (SELECT max(run_id) FROM pipeline.runs WHERE pipeline_name = 'orders')
 ORDER BY check_name;
SELECT quarantine_id > 0 AS has_id, pipeline, key, incremental_value IS NOT NULL AS has_incremental,
       "row"->>'status' AS status, "row"->>'amount' AS amount, failed_checks, status
  FROM pipeline.quarantine ORDER BY key->>'id';

-- An error check fails the run with 23514 and loads nothing; the failed
-- run's record names the check, and check_results keeps what it came to
-- (a row check stops the run at its first failing row).
INSERT INTO q.orders VALUES (7, 1, 'new', NULL, 'g@x.org', '2026-01-02 10:00+00'),
                            (8, 1, 'new', 80, 'h@x.org', '2026-01-02 11:00+00');
SELECT pipeline.run('orders');
:sqlstate
SELECT count(*) AS rows_loaded FROM q.orders_dst;
SELECT status, error_sqlstate, error_message
  FROM pipeline.runs WHERE pipeline_name = 'orders' ORDER BY run_id DESC LIMIT 1;
SELECT c.check_name, c.kind, c.severity, c.failed_rows, c.outcome
  FROM pipeline.check_results c
 WHERE c.run_id = (SELECT max(run_id) FROM pipeline.runs WHERE pipeline_name = 'orders');

-- Dropping a check --------------------------------------------------------------
SELECT pipeline.drop_check('orders', 'amount_present');
-- a check that does not exist (any more): 42704
SELECT pipeline.drop_check('orders', 'amount_present');
:sqlstate
SELECT pipeline.drop_check('nope', 'amount_present');
:sqlstate
SELECT pipeline.run('orders') > 0 AS ran;
SELECT id, amount FROM q.orders_dst WHERE id >= 7 ORDER BY id;

-- Who sees and edits quarantine -------------------------------------------------
-- pipeline.quarantine shows a pipeline's rows to the roles that see the
-- pipeline; they may edit "row" (before a replay) and nothing else.
CREATE ROLE q_owner;
CREATE ROLE q_other;
GRANT USAGE, CREATE ON SCHEMA q TO q_owner;
GRANT USAGE ON SCHEMA q TO q_other;
CREATE TABLE q.mine (id int PRIMARY KEY, v int, at int NOT NULL);
CREATE INDEX ON q.mine (at);
ALTER TABLE q.mine OWNER TO q_owner;
SET ROLE q_owner;
SELECT pipeline.create_pipeline('mine', 'q.mine', 'q.mine_dst', unique_key => '{id}',
                                incremental_column => 'at') > 0 AS created;
SELECT pipeline.add_check('mine', 'positive', 'expression', '{"sql": "v > 0"}', 'quarantine') > 0 AS added;
INSERT INTO q.mine VALUES (1, 5, 1), (2, -1, 2), (3, -3, 3);
SELECT pipeline.run('mine') > 0 AS ran;
SELECT pipeline, key, "row", failed_checks, status FROM pipeline.quarantine ORDER BY quarantine_id;
-- a check that reads a table the owner may not read: 42501, at add_check
SELECT pipeline.add_check('mine', 'c', 'relationships', '{"column": "v", "to": "q.customers", "field": "id"}');
:sqlstate
UPDATE pipeline.quarantine SET "row" = jsonb_set("row", '{v}', '1') WHERE key = '{"id": 2}';
-- only "row" may be edited: 42501
UPDATE pipeline.quarantine SET status = 'discarded' WHERE key = '{"id": 3}';
:sqlstate
RESET ROLE;
SET ROLE q_other;
SELECT count(*) AS rows_q_other_sees FROM pipeline.quarantine;
UPDATE pipeline.quarantine SET "row" = '{}';
-- q_other may not act on q_owner's pipeline: 42501
SELECT pipeline.add_check('mine', 'c', 'not_null', '{"columns": ["v"]}');
:sqlstate
SELECT pipeline.drop_check('mine', 'positive');
:sqlstate
SELECT pipeline.replay_quarantine('mine');
:sqlstate
SELECT pipeline.discard_quarantine('mine');
:sqlstate
RESET ROLE;

-- Replay and discard ------------------------------------------------------------
-- replay_quarantine re-checks the open rows and loads those that pass now,
-- as a run of its own (its id is returned); a row that still fails stays
-- open. Row 2 was edited; row 3 still fails.
SET ROLE q_owner;
SELECT pipeline.replay_quarantine('mine') > 0 AS replayed;
SELECT id, v FROM q.mine_dst ORDER BY id;
SELECT key, status, resolved_at IS NOT NULL AS resolved FROM pipeline.quarantine ORDER BY quarantine_id;
SELECT triggered_by, rows_read, rows_inserted, rows_quarantined, watermark_from = watermark_to AS watermark_kept
  FROM pipeline.runs WHERE pipeline_name = 'mine' ORDER BY run_id DESC LIMIT 1;
-- replaying again loads nothing twice
SELECT pipeline.replay_quarantine('mine') > 0 AS replayed;
SELECT id, v FROM q.mine_dst ORDER BY id;
-- A replayed old version never overwrites a newer one of its key: row 3
-- is fixed in the rule, but the source has sent a newer version meanwhile.
UPDATE q.mine SET v = 30, at = 4 WHERE id = 3;
SELECT pipeline.run('mine') > 0 AS ran;
SELECT pipeline.drop_check('mine', 'positive');
SELECT pipeline.add_check('mine', 'positive', 'expression', '{"sql": "v > -10"}', 'quarantine') > 0 AS added;
SELECT pipeline.replay_quarantine('mine') > 0 AS replayed;
SELECT id, v FROM q.mine_dst ORDER BY id;
SELECT key, status FROM pipeline.quarantine ORDER BY quarantine_id;
-- discard_quarantine closes open rows without loading them, and returns
-- how many; ids choose some of them.
INSERT INTO q.mine VALUES (4, -50, 5), (5, -60, 6);
SELECT pipeline.run('mine') > 0 AS ran;
SELECT pipeline.discard_quarantine('mine', ARRAY(SELECT quarantine_id FROM pipeline.quarantine
                                                  WHERE key = '{"id": 4}'));
SELECT pipeline.discard_quarantine('mine');
SELECT pipeline.discard_quarantine('mine');
SELECT key, status FROM pipeline.quarantine ORDER BY quarantine_id;
-- A batched run checks every batch; its check results add the batches up.
INSERT INTO q.mine VALUES (6, -70, 7), (7, 7, 8), (8, -80, 9);
CALL pipeline.run_batched('mine', 1);
SELECT batches, rows_read, rows_inserted, rows_quarantined
  FROM pipeline.runs WHERE pipeline_name = 'mine' ORDER BY run_id DESC LIMIT 1;
SELECT check_name, failed_rows, outcome FROM pipeline.check_results
 WHERE run_id = (SELECT max(run_id) FROM pipeline.runs WHERE pipeline_name = 'mine');
SELECT key, status FROM pipeline.quarantine WHERE status = 'open' ORDER BY quarantine_id;
-- a row edited to a NULL key is left open by a replay, untouched
UPDATE pipeline.quarantine SET "row" = '{"id": null, "v": 1, "at": 9}' WHERE key = '{"id": 8}';
SELECT pipeline.replay_quarantine('mine', ARRAY(SELECT quarantine_id FROM pipeline.quarantine
                                                 WHERE key = '{"id": 8}')) > 0 AS replayed;
SELECT key, "row", status FROM pipeline.quarantine WHERE key = '{"id": 8}';
SELECT action, config_before, config_after FROM pipeline.audit_log
 WHERE action IN ('add_check', 'drop_check', 'replay_quarantine', 'discard_quarantine')
   AND object_name = 'mine' ORDER BY seq;
RESET ROLE;

-- Block and acknowledge --------------------------------------------------------
-- A failed block check loads its rows, but the pipelines downstream are not
-- queued until the run is acknowledged.
CREATE TABLE q.events (id int PRIMARY KEY, kind text, at int NOT NULL);
CREATE INDEX ON q.events (at);
SELECT pipeline.create_pipeline('events', 'q.events', 'q.events_dst', unique_key => '{id}',
                                incremental_column => 'at') > 0 AS created;
SELECT pipeline.create_pipeline('events_down', 'q.events_dst', 'q.events_down', unique_key => '{id}',
                                incremental_column => 'at') > 0 AS created;
SELECT pipeline.add_check('events', 'no_test_events', 'expression', '{"sql": "kind <> ''test''"}',
                          'block') > 0 AS added;
INSERT INTO q.events VALUES (1, 'click', 1), (2, 'test', 2);
SELECT pipeline.run('events') AS events_run \gset
SELECT count(*) AS loaded FROM q.events_dst;
SELECT check_name, failed_rows, outcome FROM pipeline.check_results WHERE run_id = :events_run;
SELECT count(*) AS queued_downstream FROM pipeline.queue WHERE pipeline_name = 'events_down';
SELECT pipeline.acknowledge('events', :events_run);
SELECT check_name, failed_rows, outcome FROM pipeline.check_results WHERE run_id = :events_run;
SELECT count(*) AS queued_downstream FROM pipeline.queue WHERE pipeline_name = 'events_down';
-- nothing left to acknowledge: 55000
SELECT pipeline.acknowledge('events', :events_run);
:sqlstate

-- Set-level checks --------------------------------------------------------------
-- unique (in the target, which holds the window's rows after the load),
-- row_count (rows read by the run) and query (the rows it returns fail).
SELECT pipeline.add_check('events', 'one_per_kind', 'unique', '{"columns": ["kind"]}', 'warn') > 0 AS added;
SELECT pipeline.add_check('events', 'few_rows', 'row_count', '{"max": 1}', 'warn') > 0 AS added;
SELECT pipeline.add_check('events', 'no_negative_ids', 'query',
                          '{"sql": "SELECT * FROM q.events_dst WHERE id < 0"}', 'error') > 0 AS added;
INSERT INTO q.events VALUES (3, 'click', 3), (4, 'view', 4);
SELECT pipeline.run('events') AS events_run \gset
SELECT check_name, kind, failed_rows, outcome FROM pipeline.check_results WHERE run_id = :events_run
 ORDER BY check_name;
-- an error-severity set check fails the run, and its load rolls back; its
-- result stays, with the number of rows the query returned
INSERT INTO q.events VALUES (-5, 'view', 5);
SELECT pipeline.run('events');
:sqlstate
SELECT count(*) AS loaded FROM q.events_dst;
SELECT c.check_name, c.failed_rows, c.outcome
  FROM pipeline.check_results c
 WHERE c.run_id = (SELECT max(run_id) FROM pipeline.runs WHERE pipeline_name = 'events');

-- apply() -----------------------------------------------------------------------
-- The "checks" key replaces a pipeline's checks; applying it again changes
-- nothing.
SELECT * FROM pipeline.apply('{"name": "events", "source": "q.events", "target": "q.events_dst",
    "unique_key": ["id"], "incremental_column": "at",
    "checks": [{"check_name": "known_kind", "kind": "accepted_values",
                "args": {"column": "kind", "values": ["click", "view"]}, "severity": "quarantine"},
               {"check_name": "few_rows", "kind": "row_count", "args": {"max": 1}, "severity": "warn"}]}');
SELECT check_name, kind, severity FROM pipeline.checks WHERE pipeline = 'events' ORDER BY check_name;
SELECT * FROM pipeline.apply('{"name": "events", "source": "q.events", "target": "q.events_dst",
    "unique_key": ["id"], "incremental_column": "at",
    "checks": [{"check_name": "known_kind", "kind": "accepted_values",
                "args": {"column": "kind", "values": ["click", "view"]}, "severity": "quarantine"},
               {"check_name": "few_rows", "kind": "row_count", "args": {"max": 1}, "severity": "warn"}]}');
-- a malformed check: 22023, and nothing changes
SELECT * FROM pipeline.apply('{"name": "events", "source": "q.events", "target": "q.events_dst",
    "unique_key": ["id"], "incremental_column": "at", "checks": [{"kind": "not_null"}]}');
:sqlstate
SELECT * FROM pipeline.apply('{"name": "events", "source": "q.events", "target": "q.events_dst",
    "unique_key": ["id"], "incremental_column": "at", "checks": {"check_name": "x"}}');
:sqlstate
SELECT check_name FROM pipeline.checks WHERE pipeline = 'events' ORDER BY check_name;
-- without "checks", the pipeline has none
SELECT * FROM pipeline.apply('{"name": "events", "source": "q.events", "target": "q.events_dst",
    "unique_key": ["id"], "incremental_column": "at"}');
SELECT count(*) AS checks FROM pipeline.checks WHERE pipeline = 'events';

-- explain shows the gate of the row checks inside the load statement.
SELECT strpos(line, 'pipeline._checked_row(CASE WHEN pipeline._window_row(s.id IS NULL) THEN CASE WHEN ((amount >= ''0'' AND amount <= ''1000'')) IS FALSE OR') > 0 AS gated
  FROM pipeline.explain('orders') AS line WHERE line LIKE 'MERGE%';

-- Clean up.
\c :regress_db
DROP DATABASE pipeline_checks WITH (FORCE);
DROP ROLE q_owner, q_other;
