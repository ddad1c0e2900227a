\ir common/preamble.sql
-- test/pgtap/pii_leaks.sql
--
-- Distinctive personal values in source rows that make runs fail (a data
-- error quoting the value, an integrity error listing it, an error check
-- naming the row's key, a conversion into quarantine) never appear in what pg_pipeline records or sends: run records,
-- alerts, the audit log, NOTIFY payloads heard by another session,
-- quarantine reasons and OpenLineage events (as built for a collector). The values stay where the data is (the source, the
-- quarantine's row).

SELECT plan(7);

CREATE EXTENSION IF NOT EXISTS dblink;
SELECT dblink_connect('listener', format('host=%s port=%s dbname=%s user=%s',
                      split_part(current_setting('unix_socket_directories'), ',', 1),
                      current_setting('port'), current_database(), current_user)) AS connected \gset
SELECT dblink_exec('listener', 'LISTEN pipeline_alerts') AS listening \gset

CREATE SCHEMA p;
-- the marker: every personal value holds LEAKCANARY
CREATE TABLE p.people (id text PRIMARY KEY, email text, ssn text, born text, seq bigint NOT NULL);
INSERT INTO p.people VALUES
  ('1', 'ada.LEAKCANARY@example.com', 'SSN-LEAKCANARY-1', '1990-01-01', 1),
  ('2', 'bob.LEAKCANARY@example.com', 'LEAKCANARY-not-a-number', '1991-02-30', 2),
  ('3', 'ada.LEAKCANARY@example.com', 'SSN-LEAKCANARY-3', 'LEAKCANARY-day', 3);
SELECT pipeline.classify('p.people', 'email', 'pii.email');
SELECT pipeline.classify('p.people', 'ssn', 'pii.national_id');
SELECT pipeline.classify('p.people', 'born', 'pii.birth_date');

-- a data error: the cast quotes the value
CREATE VIEW p.people_cast AS SELECT id, email, ssn::int AS ssn_number, seq FROM p.people;
SELECT pipeline.create_pipeline('cast', 'p.people_cast', 'p.cast_dst', '{id}', incremental_column => 'seq');
-- an integrity error: the unique violation lists the e-mail
CREATE TABLE p.unique_dst (id text PRIMARY KEY, email text UNIQUE, ssn text, born text, seq bigint);
SELECT pipeline.create_pipeline('uniq', 'p.people', 'p.unique_dst', '{id}', incremental_column => 'seq');
-- an error check on the e-mail: its detail names the row's key
SELECT pipeline.create_pipeline('checked', 'p.people', 'p.checked_dst', '{email}', mode => 'full');
SELECT pipeline.add_check('checked', 'no_ssn', 'regex', '{"column": "ssn", "pattern": "^[0-9]+$"}', 'error');
-- a conversion into quarantine: the reason names the value
SELECT pipeline.create_pipeline('typed', 'p.people', 'p.typed_dst', '{id}', incremental_column => 'seq',
                                column_types => '{"born": "date"}');

SELECT throws_ok($$SELECT pipeline.run('cast')$$, '22P02', NULL, 'a data error fails the run');
SELECT throws_ok($$SELECT pipeline.run('uniq')$$, '23505', NULL, 'an integrity error fails the run');
SELECT throws_ok($$SELECT pipeline.run('checked')$$, '23514', NULL, 'an error check fails the run');
SELECT pipeline.run('typed');
SELECT is((SELECT count(*) FROM pipeline.quarantine WHERE pipeline = 'typed' AND "row"::text ~ 'LEAKCANARY'),
          2::bigint, 'the quarantine keeps the rows as read, values included');

-- the notifications, as the listening session got them
CREATE TABLE p.heard (extra text);
DO $$
BEGIN
    FOR i IN 1 .. 50 LOOP
        INSERT INTO p.heard SELECT extra FROM dblink_get_notify('listener') WHERE notify_name = 'pipeline_alerts';
        EXIT WHEN (SELECT count(*) FROM p.heard) >= 3;
        PERFORM pg_sleep(0.1);
    END LOOP;
END $$;
SELECT ok((SELECT count(*) FROM p.heard) >= 3, 'the three failures were heard on pipeline_alerts');

SELECT is((SELECT count(*) FROM pipeline.runs
            WHERE concat(error_message, error_detail, error_hint) ~ 'LEAKCANARY')
        + (SELECT count(*) FROM pipeline.alerts WHERE concat(message, observed, limit_value) ~ 'LEAKCANARY')
        + (SELECT count(*) FROM pipeline.audit_log WHERE concat(details::text, config_before::text,
                                                                 config_after::text) ~ 'LEAKCANARY')
        + (SELECT count(*) FROM p.heard WHERE extra ~ 'LEAKCANARY')
        + (SELECT count(*) FROM pipeline.quarantine WHERE reason ~ 'LEAKCANARY'),
          0::bigint, 'no personal value in runs, alerts, audit, NOTIFY payloads or quarantine reasons');
SELECT is((SELECT count(*) FROM pipeline.runs r, pipeline.openlineage_events(r.run_id) AS e
            WHERE e::text ~ 'LEAKCANARY'),
          0::bigint, 'nor in the OpenLineage events of the runs');
SELECT dblink_disconnect('listener') AS disconnected \gset

SELECT * FROM finish();
