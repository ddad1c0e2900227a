-- 14_options: the option table (src/catalog/options.c) agrees with the SQL.
-- create_pipeline's and alter_pipeline's arguments are read by their place
-- in the table, pipeline.pipeline's columns are read and written as the
-- table names them, and the canonical config holds the table's keys; each
-- check below prints the disagreements, so every one of them must print no
-- rows. (apply.md's list of keys is checked by test/options/check_apply_doc.sh.)
\set SHOW_CONTEXT never

-- The table as pipeline._options() shows it, in create_pipeline's order
-- (lineage_column and owner have no argument).
SELECT * FROM pipeline._options();

-- A default is compared by value: '10 seconds'::interval is '00:00:10'.
CREATE FUNCTION pg_temp.same_default(a text, b text, type text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    same boolean;
BEGIN
    IF a IS NULL OR b IS NULL THEN
        RETURN a IS NULL AND b IS NULL;
    END IF;
    EXECUTE format('SELECT (%s)::%s IS NOT DISTINCT FROM (%s)::%s', a, type, b, type) INTO same;
    RETURN same;
END $$;

-- The table's arguments, numbered as C numbers them (PipelineOptionArgno).
CREATE TEMP VIEW table_args AS
SELECT (row_number() OVER (ORDER BY o.ord) - 1)::int AS argno, o.name, o.sql_type, o.sql_default
  FROM pipeline._options() WITH ORDINALITY
       AS o(name, sql_type, sql_default, catalog_column, alterable, in_config, in_spec, ord)
 WHERE o.sql_type IS NOT NULL;

-- A function's arguments as declared in the install script.
CREATE TEMP VIEW sql_args AS
SELECT f.proname::text AS function, (a.n - 1)::int AS argno, a.name,
       format_type(a.type, NULL) AS sql_type,
       pg_get_function_arg_default(f.oid, a.n::int) AS sql_default
  FROM pg_proc f
  CROSS JOIN LATERAL unnest(f.proargnames, f.proargtypes::oid[]) WITH ORDINALITY AS a(name, type, n)
 WHERE f.pronamespace = 'pipeline'::regnamespace
   AND f.proname IN ('create_pipeline', 'alter_pipeline');

-- create_pipeline: the same names, types and defaults, in the same order.
SELECT coalesce(t.argno, s.argno) AS argno,
       t.name AS table_name, s.name AS sql_name, t.sql_type AS table_type, s.sql_type,
       t.sql_default AS table_default, s.sql_default
  FROM table_args t
  FULL JOIN (SELECT * FROM sql_args WHERE function = 'create_pipeline') s USING (argno)
 WHERE t.name IS DISTINCT FROM s.name
    OR t.sql_type IS DISTINCT FROM s.sql_type
    OR NOT pg_temp.same_default(t.sql_default, s.sql_default, coalesce(s.sql_type, t.sql_type))
 ORDER BY 1;

-- alter_pipeline: name, new_name, then every other argument of
-- create_pipeline in the same order, each DEFAULT NULL (NULL: unchanged).
SELECT coalesce(e.argno, s.argno) AS argno,
       e.name AS expected_name, s.name AS sql_name, e.sql_type AS expected_type, s.sql_type,
       e.sql_default AS expected_default, s.sql_default
  FROM (SELECT 0 AS argno, 'name' AS name, 'text' AS sql_type, NULL AS sql_default
        UNION ALL
        SELECT 1, 'new_name', 'text', 'NULL'
        UNION ALL
        SELECT argno + 1, name, sql_type, 'NULL' FROM table_args WHERE argno > 0) e
  FULL JOIN (SELECT * FROM sql_args WHERE function = 'alter_pipeline') s USING (argno)
 WHERE e.name IS DISTINCT FROM s.name
    OR e.sql_type IS DISTINCT FROM s.sql_type
    OR NOT pg_temp.same_default(e.sql_default, s.sql_default, coalesce(s.sql_type, e.sql_type))
 ORDER BY 1;

-- alterable: alter_pipeline takes every argument of create_pipeline, and
-- only those (lineage_column has set_lineage_column, the owner never changes).
SELECT name, sql_type, alterable
  FROM pipeline._options()
 WHERE alterable IS DISTINCT FROM (sql_type IS NOT NULL);

-- Every column the table names exists in pipeline.pipeline, with a type
-- that holds the argument's; every column of pipeline.pipeline is an
-- option's, or state that is not an option.
CREATE TEMP VIEW option_columns AS
SELECT o.name, o.sql_type, c.column_name
  FROM pipeline._options() o
  CROSS JOIN LATERAL unnest(string_to_array(o.catalog_column, ',')) AS c(column_name);
CREATE TEMP VIEW catalog_columns AS
SELECT a.attname::text AS column_name, format_type(a.atttypid, a.atttypmod) AS column_type
  FROM pg_attribute a
 WHERE a.attrelid = 'pipeline.pipeline'::regclass AND a.attnum > 0 AND NOT a.attisdropped;

SELECT o.name AS option, coalesce(o.column_name, c.column_name) AS column_name,
       o.sql_type, c.column_type
  FROM option_columns o
  FULL JOIN catalog_columns c USING (column_name)
 WHERE o.name IS NULL
       AND c.column_name NOT IN ('pipeline_id', 'active', 'target_created', 'created_at',
                                 'updated_at', 'config_version')
    OR c.column_name IS NULL
    OR o.name IS NOT NULL
       AND (coalesce(o.sql_type, '-'), c.column_type) NOT IN
           (('text', 'text'), ('text', 'name'), ('regclass', 'name'), ('text[]', 'name[]'),
            ('boolean', 'boolean'), ('integer', 'integer'), ('bigint', 'bigint'),
            ('interval', 'interval'), ('jsonb', 'jsonb'), ('-', 'name'), ('-', 'regrole'),
            ('double precision', 'double precision'))
 ORDER BY 2;

-- The canonical config holds "format" and exactly the options in_config
-- (the options added after 0.1.0 only once they are not their default: a
-- pipeline without them keeps the config it had, and its hash).
CREATE SCHEMA opt;
CREATE TABLE opt.src (id int PRIMARY KEY, v text, at timestamptz);
CREATE INDEX ON opt.src (at);
SELECT pipeline.create_pipeline('opt_p', 'opt.src', 'opt.dst', ARRAY['id'], incremental_column => 'at',
                                masks => '{"v": "null"}', column_types => '{"id": "bigint"}',
                                on_conversion_error => 'error', on_schema_change => 'ignore',
                                anomaly_sensitivity => 3.5, anomaly_min_runs => 5,
                                raw_retention => '30 days') > 0 AS created;
SELECT pipeline.config_of('opt_p') - ARRAY['source', 'target', 'owner', 'masks', 'unique_key', 'name'] AS config;
-- the options of mode snapshot, on a pipeline of that mode (its target is
-- a history of its own; without its constraints, which need btree_gist, it
-- would be warned about)
CREATE TABLE opt.history (id int, v text, at timestamptz, since timestamptz NOT NULL, until timestamptz,
                          live boolean NOT NULL, PRIMARY KEY (id, since));
SET client_min_messages = error;
SELECT pipeline.create_pipeline('opt_snap', 'opt.src', 'opt.history', ARRAY['id'], mode => 'snapshot',
                                snapshot_columns => '{"valid_from": "since", "valid_to": "until", "is_current": "live"}',
                                snapshot_check_columns => '{v}', snapshot_keep_deleted => true) > 0 AS created;
RESET client_min_messages;
SELECT pipeline.config_of('opt_snap') - ARRAY['source', 'target', 'owner', 'unique_key', 'name'] AS config;

-- (capture and capture_retention, which a pipeline over a captured table
-- takes, from a second one)
CREATE TABLE opt.csrc (id int PRIMARY KEY, v text);
SELECT pipeline.create_pipeline('opt_c', 'opt.csrc', 'opt.cdst', capture => true,
                                capture_retention => '7 days') > 0 AS created;
SELECT config_of->'capture' AS capture, config_of->'capture_retention' AS capture_retention
  FROM pipeline.config_of('opt_c');

-- (rollup and allowed_lateness go with mode rollup: 37_rollup shows them
-- in a rollup's config; distribution_column goes with Citus:
-- test/t/020_citus.pl, its refusal without Citus is below; parallel_workers goes with a partitioned target:
-- 39_parallel shows it.)
SELECT coalesce(k.key, o.name) AS key, k.key IS NOT NULL AS in_config_of, o.name IS NOT NULL AS in_table
  FROM (SELECT jsonb_object_keys(pipeline.config_of('opt_p') || pipeline.config_of('opt_c'))
        UNION SELECT jsonb_object_keys(pipeline.config_of('opt_snap'))) AS k(key)
  FULL JOIN (SELECT name FROM pipeline._options() WHERE in_config
               AND name NOT IN ('rollup', 'allowed_lateness', 'distribution_column', 'parallel_workers')
             UNION ALL SELECT 'format') o ON o.name = k.key
 WHERE k.key IS NULL OR o.name IS NULL;
SELECT pipeline.drop_pipeline('opt_c', drop_target => true);
SELECT pipeline.uncapture('opt.csrc');

-- Each new option's bad values: 22023 naming the option, with the choices.
\set VERBOSITY default
\set sqlstate '\\echo SQLSTATE :LAST_ERROR_SQLSTATE'
SELECT pipeline.alter_pipeline('opt_p', on_schema_change => 'sometimes');
:sqlstate
SELECT pipeline.alter_pipeline('opt_p', on_conversion_error => '');
:sqlstate
SELECT pipeline.alter_pipeline('opt_p', anomaly_sensitivity => 'NaN');
:sqlstate
SELECT pipeline.alter_pipeline('opt_p', anomaly_sensitivity => -1);
:sqlstate
SELECT pipeline.alter_pipeline('opt_p', anomaly_min_runs => 2);
:sqlstate
SELECT pipeline.alter_pipeline('opt_p', column_types => '["id"]');
:sqlstate
SELECT pipeline.alter_pipeline('opt_p', column_types => '{"v": 3}');
:sqlstate
SELECT pipeline.alter_pipeline('opt_p', column_types => '{"v": "no_such_type"}');
:sqlstate
SELECT pipeline.alter_pipeline('opt_p', column_types => '{"v": "numeric(("}');
:sqlstate
SELECT pipeline.alter_pipeline('opt_p', column_types => '{"v": "anyelement"}');
:sqlstate
SELECT pipeline.alter_pipeline('opt_p', raw_retention => '-1 day');
:sqlstate
SELECT pipeline.create_pipeline('opt_bad', 'opt.src', 'opt.bad', ARRAY['id'], on_schema_change => NULL);
:sqlstate

-- distribution_column says how to distribute the target create_target
-- makes over a Citus source; without Citus it is refused (0A000), and
-- neither the pipeline nor its target is left behind.
SELECT pipeline.create_pipeline('opt_dist', 'opt.src', 'opt.dist', ARRAY['id'], distribution_column => 'id');
:sqlstate
SELECT count(*) AS registered FROM pipeline.pipeline WHERE name = 'opt_dist';
SELECT to_regclass('opt.dist') AS target;

SELECT pipeline.alter_pipeline('opt_snap', snapshot_columns => '{"valid_to": 1}');
:sqlstate
SELECT pipeline.alter_pipeline('opt_snap', snapshot_check_columns => ARRAY[NULL]);
:sqlstate
SELECT pipeline.alter_pipeline('opt_p', snapshot_keep_deleted => true);
:sqlstate
-- nothing changed, and 0 turns anomaly alerts and raw retention off again
SELECT config_of->'on_schema_change', config_of->'anomaly_sensitivity', config_of->'raw_retention'
  FROM pipeline.config_of('opt_p');
SELECT pipeline.alter_pipeline('opt_p', anomaly_sensitivity => 0, raw_retention => '0') > 0 AS altered;
SELECT pipeline.config_of('opt_p') ? 'anomaly_sensitivity' AS still_there,
       pipeline.config_of('opt_p') ? 'raw_retention' AS retention_there;
-- '{}' clears snapshot_check_columns (every column tells a change again)
SELECT pipeline.alter_pipeline('opt_snap', snapshot_check_columns => '{}') > 0 AS altered;
SELECT pipeline.config_of('opt_snap') ? 'snapshot_check_columns' AS check_columns_there;

-- apply() takes every argument of create_pipeline as a key.
SELECT name FROM pipeline._options() WHERE sql_type IS NOT NULL AND NOT in_spec;

-- A spec with an unknown key is told the keys: the table's in_spec options.
SELECT * FROM pipeline.apply('{"name": "opt_q", "source": "opt.src", "target": "opt.q", "owner": "me"}');

-- The canonical config of a definition that sets every option but the
-- schedule (this server has no pg_cron), and its hash: the same text as
-- before the option table drove it. Another text would make every
-- pipeline's configuration look changed at its next change.
CREATE TABLE opt.src2 (id int, line int, at timestamptz, gone boolean, PRIMARY KEY (id, line));
CREATE INDEX ON opt.src2 (at);
SELECT pipeline.create_pipeline('opt_all', 'opt.src2', 'opt."All Of It"', ARRAY['id', 'line'],
                                incremental_column => 'at', mode => 'merge', delete_column => 'gone',
                                soft_delete => true, partition_column => 'at',
                                lookback => '1 day 2 hours', batch_rows => 500,
                                description => E'every "option"\n', metadata => '{"team": "data", "tags": ["a", 1.50]}',
                                depends_on => ARRAY['opt_p'], max_retries => 3, retry_delay => '1 minute',
                                timeout => '2 hours', freshness => '1 day', timeliness => '30 minutes',
                                mute_freshness => true) > 0 AS created;
SELECT pipeline.set_lineage_column('opt_all', 'run_id');
SELECT pipeline.config_of('opt_all');
SELECT v.version, v.config_hash
  FROM pipeline.pipeline_versions v JOIN pipeline.pipeline p USING (pipeline_id)
 WHERE p.name = 'opt_all' ORDER BY v.version;

SELECT pipeline.drop_pipeline('opt_all', drop_target => true);
SELECT pipeline.drop_pipeline('opt_p', drop_target => true);
SELECT pipeline.drop_pipeline('opt_snap', drop_target => true);
DROP SCHEMA opt CASCADE;
