\ir common/preamble.sql
-- test/pgtap/property_anomaly.sql
--
-- Property test of anomaly alerts (src/recorders/anomaly.c). For each of
-- ten fixed seeds, a pipeline with anomaly_sensitivity 8 and
-- anomaly_min_runs 5 runs 20 times on a steady random series around a
-- random level L of 200 to 1000 rows: each run lands L - 2 to L + 2 new
-- rows and updates 0 to 3 of the rows loaded before, so that rows read
-- stay between L - 2 and L + 5, rows inserted between L - 2 and L + 2,
-- rows updated between 0 and 3. One run at a random place after the first
-- ten is a spike instead: 3 to 10 times L new rows, or a drop to L / 10.
-- Then:
--
--   - no run of the steady series raises an alert, whatever the seed: the
--     spread of a metric is never taken below one row, and the median of
--     runs in a band (with one spike among them) is in the band, so a run
--     in the band scores at most the band's width, 7 rows, below 8
--     (durations vary by milliseconds here, and their spread is never
--     taken below one second);
--   - the spike raises exactly one alert, of kind anomaly, naming rows
--     read or rows inserted with a score beyond the sensitivity: it is at
--     least 0.9 * 200 - 2 rows away from the median, and the spread of a
--     band 7 rows wide is at most 1.4826 * 7 rows;
--   - the normal runs after it raise none (the spike is one run of the
--     baseline: the median and the MAD stay in the band).
--
-- Last, one more spike is heard on NOTIFY pipeline_alerts by a second
-- session (dblink), with the payload the docs describe.

\set nseeds 10
SELECT set_config('prop.nseeds', :'nseeds', false) AS nseeds_set \gset
SELECT plan(:nseeds * 3 + 4);

CREATE SCHEMA prop;
CREATE SEQUENCE prop.seq;
CREATE TABLE prop.result (seed integer, what text, ok boolean, detail text);

CREATE FUNCTION prop.record(seed integer, what text, bad bigint, detail text DEFAULT NULL)
RETURNS void LANGUAGE sql AS $$
  INSERT INTO prop.result VALUES (seed, what, bad = 0, CASE WHEN bad <> 0 THEN bad || ' bad: ' || coalesce(detail, '') END) $$;

-- land lands n new rows into a seed's source, updates u of its rows, runs
-- its pipeline and returns the run id
CREATE FUNCTION prop.land(src text, p text, n int, u int) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('INSERT INTO prop.%I (v, seq) SELECT 0, nextval(''prop.seq'') FROM generate_series(1, $1)', src)
      USING n;
    EXECUTE format('UPDATE prop.%1$I SET v = v + 1, seq = nextval(''prop.seq'')
                     WHERE id IN (SELECT id FROM prop.%1$I WHERE id <= (SELECT max(id) FROM prop.%2$I)
                                   ORDER BY random() LIMIT $1)', src, src || '_dst')
      USING u;
    RETURN pipeline.run(p);
END $$;

SET client_min_messages = error;
DO $$
DECLARE
    nseeds int := current_setting('prop.nseeds')::int;
    p text; src text;
    level int; spike_at int; spike_rows int;
    run bigint; spike_run bigint;
    before_spike bigint; after_spike bigint;
    a record;
BEGIN
    FOR sd IN 1 .. nseeds LOOP
        PERFORM setseed(sd / 100.0);
        p := 'anomaly_' || sd; src := 'src_' || sd;
        EXECUTE format('CREATE TABLE prop.%I (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                                              v int NOT NULL, seq bigint NOT NULL)', src);
        PERFORM pipeline.create_pipeline(p, ('prop.' || src)::regclass, 'prop.' || src || '_dst',
                                         unique_key => '{id}', incremental_column => 'seq',
                                         anomaly_sensitivity => 8, anomaly_min_runs => 5);
        level := 200 + floor(random() * 801)::int;
        spike_at := 11 + floor(random() * 8)::int;
        spike_rows := CASE WHEN random() < 0.3 THEN level / 10
                           ELSE level * (3 + floor(random() * 8)::int) END;
        before_spike := 0; after_spike := 0;
        FOR i IN 1 .. 20 LOOP
            run := prop.land(src, p,
                             CASE WHEN i = spike_at THEN spike_rows ELSE level - 2 + floor(random() * 5)::int END,
                             CASE WHEN i = 1 THEN 0 ELSE floor(random() * 4)::int END);
            IF i = spike_at THEN
                spike_run := run;
            ELSIF i < spike_at THEN
                before_spike := before_spike + (SELECT count(*) FROM pipeline.alerts WHERE run_id = run);
            ELSE
                after_spike := after_spike + (SELECT count(*) FROM pipeline.alerts WHERE run_id = run);
            END IF;
        END LOOP;
        PERFORM prop.record(sd, 'a steady random series raises no alert', before_spike,
                            format('level %s', level));
        SELECT count(*) AS n, min(kind) AS kind, min(observed) AS observed, min(limit_value) AS limit_value
          INTO a FROM pipeline.alerts WHERE run_id = spike_run;
        PERFORM prop.record(sd, 'a spike raises exactly one anomaly alert naming rows read or inserted',
                            (a.n <> 1 OR a.kind <> 'anomaly' OR a.observed !~ '^rows_(read|inserted)='
                             OR abs(substring(a.limit_value FROM 'score=(\S+)')::numeric) <= 8)::int,
                            format('level %s, spike %s rows: %s alerts, %s %s', level, spike_rows, a.n,
                                   a.observed, a.limit_value));
        PERFORM prop.record(sd, 'the normal runs after the spike raise none', after_spike,
                            format('level %s, spike %s rows', level, spike_rows));
    END LOOP;
END $$;
SET client_min_messages = warning;

SELECT ok(r.ok, format('seed %s: %s', r.seed, r.what) || coalesce(' (' || r.detail || ')', ''))
  FROM prop.result r ORDER BY r.seed, r.what;

-- NOTIFY: a second session listens on pipeline_alerts; a spike on the
-- first seed's pipeline, committed, is heard there with the payload of
-- docs/workers.md (ids, kind, observed, limit; never the message).
CREATE EXTENSION IF NOT EXISTS dblink;
SELECT dblink_connect('listener', format('host=%s port=%s dbname=%s user=%s',
                      split_part(current_setting('unix_socket_directories'), ',', 1),
                      current_setting('port'), current_database(), current_user)) AS connected \gset
SELECT dblink_exec('listener', 'LISTEN pipeline_alerts') AS listening \gset
SELECT prop.land('src_1', 'anomaly_1', 20000, 0) AS heard_run \gset
CREATE FUNCTION prop.heard() RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. 50 LOOP
        RETURN QUERY SELECT extra FROM dblink_get_notify('listener') WHERE notify_name = 'pipeline_alerts';
        IF FOUND THEN
            RETURN;
        END IF;
        PERFORM pg_sleep(0.1);
    END LOOP;
END $$;
CREATE TABLE prop.heard AS SELECT payload::json AS payload FROM prop.heard() payload;
SELECT is((SELECT count(*) FROM prop.heard), 1::bigint, 'one notification on pipeline_alerts');
SELECT is((SELECT payload->>'kind' || ' ' || (payload->>'run_id') || ' ' || (payload->>'pipeline')
             FROM prop.heard),
          'anomaly ' || :heard_run || ' anomaly_1', 'it names the kind, the run and the pipeline');
SELECT is((SELECT (payload->>'observed', payload->>'limit', payload->>'alert_id')::text FROM prop.heard),
          (SELECT (observed, limit_value, alert_id)::text FROM pipeline.alerts WHERE run_id = :heard_run),
          'observed (metric=value) and limit (baseline and score) as in pipeline.alerts');
SELECT ok((SELECT NOT (payload::jsonb ? 'message') FROM prop.heard), 'never the message');
SELECT dblink_disconnect('listener') AS disconnected \gset

SELECT * FROM finish();
