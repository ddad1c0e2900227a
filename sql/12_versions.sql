-- 12_versions: config versions (canonical form + SHA-256, a new version
-- only on a real change, each run referencing its version) and
-- pipeline.apply, the declarative spec. Errors with their SQLSTATE.
\set SHOW_CONTEXT never
SET client_min_messages = notice;

CREATE SCHEMA ver;
CREATE TABLE ver.src (id int PRIMARY KEY, v text, at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE TABLE ver.src2 (k int PRIMARY KEY, w text, n bigint);
CREATE INDEX ON ver.src (at);
CREATE INDEX ON ver.src2 (n);
INSERT INTO ver.src (id, v) VALUES (1, 'a'), (2, 'b');

-- The canonical form: every option a user sets, names quoted and qualified,
-- the lookback in ISO 8601, keys in jsonb's order.
SELECT pipeline.create_pipeline('ver_p', 'ver.src', 'ver.dst', unique_key => ARRAY['id'],
                                incremental_column => 'at', lookback => '90 minutes') > 0 AS created;
SELECT pipeline.config_of('ver_p');
SELECT version, config_hash = encode(sha256(convert_to(config::text, 'UTF8')), 'hex') AS hash_is_sha256_of_canonical_text
  FROM pipeline.pipeline_versions v JOIN pipeline.pipeline p USING (pipeline_id)
 WHERE p.name = 'ver_p';
-- the lookback's spelling does not matter: same config, no new version
SET intervalstyle = sql_standard;
SELECT pipeline.alter_pipeline('ver_p', lookback => '1:30:00') > 0 AS altered;
RESET intervalstyle;
-- a real change makes version 2; pause, resume and reset make none
SELECT pipeline.alter_pipeline('ver_p', description => 'first change') > 0 AS altered;
SELECT pipeline.pause('ver_p');
SELECT pipeline.resume('ver_p');
SELECT pipeline.reset('ver_p');
SELECT v.version, v.config->>'description' AS description, v.config->>'lookback' AS lookback,
       v.created_by = current_user AS by_me
  FROM pipeline.pipeline_versions v JOIN pipeline.pipeline p USING (pipeline_id)
 WHERE p.name = 'ver_p' ORDER BY v.version;
SELECT config_version FROM pipeline.pipeline WHERE name = 'ver_p';

-- Each run references the version it ran with.
SELECT pipeline.run('ver_p') AS r1 \gset
SELECT pipeline.alter_pipeline('ver_p', description => 'second change') > 0 AS altered;
SELECT pipeline.run('ver_p') AS r2 \gset
SELECT run_id = :r1 AS first_run, config_version FROM pipeline.run_lineage
 WHERE run_id IN (:r1, :r2) AND direction = 'write' ORDER BY run_id;
-- going back to an earlier config is a change too: a new version, same hash
SELECT pipeline.alter_pipeline('ver_p', description => 'first change') > 0 AS altered;
SELECT a.version AS v2, b.version AS v4, a.config_hash = b.config_hash AS same_hash
  FROM pipeline.pipeline_versions a JOIN pipeline.pipeline_versions b USING (pipeline_id)
  JOIN pipeline.pipeline p USING (pipeline_id)
 WHERE p.name = 'ver_p' AND a.version = 2 AND b.version = 4;
-- scheduling options are part of the configuration too
SELECT pipeline.alter_pipeline('ver_p', max_retries => 2, timeout => '5 minutes') > 0 AS altered;
SELECT v.version, v.config->'max_retries' AS max_retries, v.config->>'timeout' AS timeout
  FROM pipeline.pipeline_versions v JOIN pipeline.pipeline p USING (pipeline_id)
 WHERE p.name = 'ver_p' ORDER BY v.version DESC LIMIT 1;

-- pipeline.apply: create from a spec, apply it again (nothing changes, and
-- it says so), change it, and apply an array.
SELECT * FROM pipeline.apply('{"name": "ver_q", "source": "ver.src2", "target": "ver.dst2",
                               "unique_key": ["k"], "incremental_column": "n",
                               "description": "from a spec", "metadata": {"team": "data"}}');
SELECT * FROM pipeline.apply('{"name": "ver_q", "source": "ver.src2", "target": "ver.dst2",
                               "unique_key": ["k"], "incremental_column": "n",
                               "description": "from a spec", "metadata": {"team": "data"}}');
SELECT count(*) AS versions FROM pipeline.pipeline_versions v JOIN pipeline.pipeline p USING (pipeline_id)
 WHERE p.name = 'ver_q';
-- an option left out of the spec goes back to its default
SELECT * FROM pipeline.apply('[{"name": "ver_q", "source": "ver.src2", "target": "ver.dst2",
                                "unique_key": ["k"], "incremental_column": "n",
                                "lineage_column": "run_id"},
                               {"name": "ver_r", "source": "ver.src", "target": "ver.dst3",
                                "unique_key": ["id"], "mode": "full"}]');
SELECT name, description, metadata, mode FROM pipeline.pipelines WHERE name IN ('ver_q', 'ver_r') ORDER BY name;
SELECT lineage_column FROM pipeline.pipeline WHERE name = 'ver_q';
SELECT * FROM pipeline.apply('[{"name": "ver_q", "source": "ver.src2", "target": "ver.dst2",
                                "unique_key": ["k"], "incremental_column": "n",
                                "lineage_column": "run_id"},
                               {"name": "ver_r", "source": "ver.src", "target": "ver.dst3",
                                "unique_key": ["id"], "mode": "full"}]');
-- applying writes the audit log like the calls it makes; an unchanged apply writes nothing
SELECT seq AS before_apply FROM pipeline.audit_head() \gset
SELECT count(*) FROM pipeline.apply('{"name": "ver_r", "source": "ver.src", "target": "ver.dst3",
                                      "unique_key": ["id"], "mode": "full"}');
SELECT seq = :before_apply AS nothing_written FROM pipeline.audit_head();
-- scheduling options in a spec; applied twice, the second time changes nothing
SELECT * FROM pipeline.apply('{"name": "ver_r", "source": "ver.src", "target": "ver.dst3",
                               "unique_key": ["id"], "mode": "full", "depends_on": ["ver_q"],
                               "max_retries": 3, "retry_delay": "30 seconds", "freshness": "1 hour",
                               "mute_timeliness": true}');
SELECT * FROM pipeline.apply('{"name": "ver_r", "source": "ver.src", "target": "ver.dst3",
                               "unique_key": ["id"], "mode": "full", "depends_on": ["ver_q"],
                               "max_retries": 3, "retry_delay": "30 seconds", "freshness": "1 hour",
                               "mute_timeliness": true}');
SELECT name, depends_on, max_retries, retry_delay, freshness, timeliness_muted
  FROM pipeline.pipelines WHERE name = 'ver_r';

-- Malformed specs: each refused before anything is applied.
SELECT * FROM pipeline.apply('"ver_q"');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pipeline.apply('[]');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pipeline.apply('[1]');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pipeline.apply('{"source": "ver.src", "target": "ver.x"}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pipeline.apply('{"name": "ver_s", "target": "ver.x"}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pipeline.apply('{"name": "ver_s", "source": "ver.src"}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pipeline.apply('{"name": "ver_s", "source": "ver.src", "target": "ver.x", "retries_please": 3}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pipeline.apply('{"name": "ver_s", "source": "ver.src", "target": "ver.x", "depends_on": "ver_q"}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pipeline.apply('{"name": "ver_s", "source": "ver.src", "target": "ver.x", "unique_key": "id"}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pipeline.apply('{"name": "ver_s", "source": "ver.src", "target": "ver.x", "soft_delete": "yes"}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pipeline.apply('{"name": "ver_s", "source": "ver.src", "target": "ver.x", "batch_rows": "10"}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pipeline.apply('{"name": "ver_s", "source": "ver.src", "target": "ver.x", "metadata": [1]}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pipeline.apply('{"name": 7, "source": "ver.src", "target": "ver.x"}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pipeline.apply('[{"name": "ver_s", "source": "ver.src", "target": "ver.x", "unique_key": ["id"]},
                               {"name": "ver_s", "source": "ver.src", "target": "ver.y", "unique_key": ["id"]}]');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pipeline.apply(NULL);
\echo :LAST_ERROR_SQLSTATE
-- errors of the calls it makes keep their SQLSTATE, and nothing is applied
SELECT * FROM pipeline.apply('{"name": "ver_s", "source": "ver.nope", "target": "ver.x"}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pipeline.apply('[{"name": "ver_s", "source": "ver.src", "target": "ver.x", "unique_key": ["id"]},
                               {"name": "ver_t", "source": "ver.src", "target": "ver.y", "unique_key": ["nope"]}]');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pipeline.apply('{"name": "ver_s", "source": "ver.src", "target": "ver.x", "unique_key": ["id"], "mode": "upsert"}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pipeline.apply('{"name": "ver_s", "source": "ver.src", "target": "ver.x", "unique_key": ["id"], "incremental_column": "at", "lookback": "soon"}');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS applied FROM pipeline.pipelines WHERE name IN ('ver_s', 'ver_t');
SELECT pipeline.config_of('ver_nope');
\echo :LAST_ERROR_SQLSTATE

-- clean up
SELECT pipeline.drop_pipeline(name) FROM pipeline.pipelines WHERE name LIKE 'ver\_%';
DROP SCHEMA ver CASCADE;
