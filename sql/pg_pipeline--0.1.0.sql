/*
 * sql/pg_pipeline--0.1.0.sql
 *
 * Install script: the catalog tables that hold pipeline definitions,
 * watermarks and run history, the views users read, and the declarations of
 * the C functions. Every object is schema-qualified so that a hostile
 * search_path cannot hijack it; the catalog tables are written only by the
 * extension's C code (which does so as the extension owner) and are readable
 * through the views.
 */

\echo Use "CREATE EXTENSION pg_pipeline" to load this file. \quit

GRANT USAGE ON SCHEMA pipeline TO PUBLIC;

CREATE SEQUENCE pipeline.pipeline_id_seq;
CREATE SEQUENCE pipeline.run_id_seq;

-- One row per registered pipeline: its definition, as the user gave it.
CREATE TABLE pipeline.pipeline (
    pipeline_id         bigint PRIMARY KEY
                        DEFAULT pg_catalog.nextval('pipeline.pipeline_id_seq'::pg_catalog.regclass),
    name                text NOT NULL UNIQUE,
    source_schema       name NOT NULL,
    source_table        name NOT NULL,
    target_schema       name NOT NULL,
    target_table        name NOT NULL,
    mode                text NOT NULL CHECK (mode OPERATOR(pg_catalog.=) ANY (ARRAY['merge', 'append', 'full'])),
    unique_key          name[],
    incremental_column  name,
    delete_column       name,
    soft_delete         boolean NOT NULL DEFAULT false,
    partition_column    name,
    lookback            interval,
    batch_rows          bigint,
    description         text,
    metadata            jsonb NOT NULL DEFAULT '{}'::jsonb,
    active              boolean NOT NULL DEFAULT true,
    owner               regrole NOT NULL,
    target_created      boolean NOT NULL DEFAULT false,
    schedule            text,
    max_retries         integer NOT NULL DEFAULT 0 CHECK (max_retries >= 0),
    retry_delay         interval NOT NULL DEFAULT '10 seconds',
    timeout             interval,
    freshness           interval,
    timeliness          interval,
    freshness_muted     boolean NOT NULL DEFAULT false,
    timeliness_muted    boolean NOT NULL DEFAULT false,
    created_at          timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at          timestamptz NOT NULL DEFAULT pg_catalog.now()
);

-- One row per pipeline: how far it has loaded. Updated in the same
-- transaction as the data a run writes.
CREATE TABLE pipeline.watermark (
    pipeline_id         bigint PRIMARY KEY
                        REFERENCES pipeline.pipeline (pipeline_id) ON DELETE CASCADE,
    value               text,
    last_run_id         bigint,
    updated_at          timestamptz NOT NULL DEFAULT pg_catalog.now()
);

-- One row per run, kept after its pipeline is dropped. No foreign key:
-- a failed run is recorded by an autonomous transaction that must not wait
-- on the caller's uncommitted pipeline row.
CREATE TABLE pipeline.run_history (
    run_id              bigint PRIMARY KEY,
    pipeline_id         bigint NOT NULL,
    pipeline_name       text NOT NULL,
    status              text NOT NULL
                        CHECK (status OPERATOR(pg_catalog.=) ANY (ARRAY['running', 'succeeded', 'failed', 'skipped'])),
    started_at          timestamptz NOT NULL,
    finished_at         timestamptz,
    rows_read           bigint NOT NULL DEFAULT 0,
    rows_inserted       bigint NOT NULL DEFAULT 0,
    rows_updated        bigint NOT NULL DEFAULT 0,
    rows_deleted        bigint NOT NULL DEFAULT 0,
    rows_unchanged      bigint NOT NULL DEFAULT 0,
    rows_rejected       bigint NOT NULL DEFAULT 0,
    batches             integer NOT NULL DEFAULT 0,
    watermark_from      text,
    watermark_to        text,
    error_sqlstate      text,
    error_message       text,
    triggered_by        text NOT NULL DEFAULT 'manual',
    parent_run_id       bigint,
    attempt             integer NOT NULL DEFAULT 1
);
CREATE INDEX run_history_parent_idx ON pipeline.run_history (parent_run_id);
CREATE INDEX run_history_started_idx ON pipeline.run_history (started_at);
CREATE INDEX run_history_pipeline_idx
    ON pipeline.run_history (pipeline_id, run_id DESC);
CREATE INDEX run_history_running_idx
    ON pipeline.run_history (pipeline_id) WHERE status OPERATOR(pg_catalog.=) 'running';

-- Declared dependencies (depends_on). Inferred ones come from
-- pipeline.source_relation: a pipeline depends on every pipeline whose target
-- its source reads, directly or through views.
CREATE TABLE pipeline.dependency (
    pipeline_id         bigint NOT NULL REFERENCES pipeline.pipeline (pipeline_id) ON DELETE CASCADE,
    upstream_id         bigint NOT NULL REFERENCES pipeline.pipeline (pipeline_id) ON DELETE CASCADE,
    PRIMARY KEY (pipeline_id, upstream_id)
);
CREATE INDEX dependency_upstream_idx ON pipeline.dependency (upstream_id);

-- The relations a pipeline's source reads (itself, the tables under its
-- views, their partitions). Derived data, refreshed on registration, by
-- runs and by the launcher at start, so it is not dumped.
CREATE TABLE pipeline.source_relation (
    pipeline_id         bigint NOT NULL REFERENCES pipeline.pipeline (pipeline_id) ON DELETE CASCADE,
    relid               oid NOT NULL,
    PRIMARY KEY (pipeline_id, relid)
);
CREATE INDEX source_relation_relid_idx ON pipeline.source_relation (relid);

-- Runs waiting for a background worker: at most one per pipeline.
CREATE TABLE pipeline.run_queue (
    queue_id            bigserial PRIMARY KEY,
    pipeline_id         bigint NOT NULL UNIQUE REFERENCES pipeline.pipeline (pipeline_id) ON DELETE CASCADE,
    reason              text NOT NULL
                        CHECK (reason OPERATOR(pg_catalog.=) ANY (ARRAY['trigger', 'upstream', 'retry', 'recovery', 'busy'])),
    enqueued_at         timestamptz NOT NULL DEFAULT pg_catalog.now(),
    not_before          timestamptz NOT NULL DEFAULT pg_catalog.now(),
    parent_run_id       bigint,
    attempt             integer NOT NULL DEFAULT 1
);

-- Breaches of freshness and timeliness limits, failed runs and exhausted
-- retries. An open breach has no resolved_at.
CREATE TABLE pipeline.alert_log (
    alert_id            bigserial PRIMARY KEY,
    pipeline_id         bigint NOT NULL,
    pipeline_name       text NOT NULL,
    kind                text NOT NULL
                        CHECK (kind OPERATOR(pg_catalog.=) ANY (ARRAY['freshness', 'timeliness', 'run_failed', 'retries_exhausted'])),
    observed            text,
    limit_value         text,
    run_id              bigint,
    message             text,
    raised_at           timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    resolved_at         timestamptz
);
CREATE INDEX alert_log_open_idx ON pipeline.alert_log (pipeline_id, kind) WHERE resolved_at IS NULL;

REVOKE ALL ON pipeline.pipeline, pipeline.watermark, pipeline.run_history,
              pipeline.dependency, pipeline.source_relation, pipeline.run_queue,
              pipeline.alert_log FROM PUBLIC;
REVOKE ALL ON SEQUENCE pipeline.pipeline_id_seq, pipeline.run_id_seq,
              pipeline.run_queue_queue_id_seq, pipeline.alert_log_alert_id_seq FROM PUBLIC;

-- pg_dump keeps every pipeline, its watermark and its history.
SELECT pg_catalog.pg_extension_config_dump('pipeline.pipeline', '');
SELECT pg_catalog.pg_extension_config_dump('pipeline.watermark', '');
SELECT pg_catalog.pg_extension_config_dump('pipeline.run_history', '');
SELECT pg_catalog.pg_extension_config_dump('pipeline.pipeline_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('pipeline.run_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('pipeline.dependency', '');
SELECT pg_catalog.pg_extension_config_dump('pipeline.alert_log', '');
SELECT pg_catalog.pg_extension_config_dump('pipeline.alert_log_alert_id_seq', '');

CREATE VIEW pipeline.pipelines AS
SELECT p.pipeline_id AS id,
       p.name,
       pg_catalog.quote_ident(p.source_schema) OPERATOR(pg_catalog.||) '.'
           OPERATOR(pg_catalog.||) pg_catalog.quote_ident(p.source_table) AS source,
       pg_catalog.quote_ident(p.target_schema) OPERATOR(pg_catalog.||) '.'
           OPERATOR(pg_catalog.||) pg_catalog.quote_ident(p.target_table) AS target,
       p.mode,
       p.unique_key,
       p.incremental_column,
       p.partition_column,
       p.delete_column,
       p.soft_delete,
       p.lookback,
       p.batch_rows,
       p.active,
       p.owner,
       w.value AS watermark,
       r.run_id AS last_run_id,
       r.status AS last_run_status,
       p.description,
       p.metadata,
       p.schedule,
       ARRAY(SELECT u.name FROM pipeline.dependency d
               JOIN pipeline.pipeline u ON u.pipeline_id OPERATOR(pg_catalog.=) d.upstream_id
              WHERE d.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id ORDER BY u.name) AS depends_on,
       p.max_retries,
       p.retry_delay,
       p.timeout,
       p.freshness,
       p.timeliness,
       p.freshness_muted,
       p.timeliness_muted,
       p.created_at,
       p.updated_at
  FROM pipeline.pipeline p
  LEFT JOIN pipeline.watermark w ON w.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
  LEFT JOIN LATERAL (
        SELECT h.run_id, h.status
          FROM pipeline.run_history h
         WHERE h.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
         ORDER BY h.run_id DESC
         LIMIT 1) r ON true;

CREATE VIEW pipeline.runs AS
SELECT h.run_id,
       h.pipeline_id,
       h.pipeline_name,
       h.status,
       h.started_at,
       h.finished_at,
       h.rows_read,
       h.rows_inserted,
       h.rows_updated,
       h.rows_deleted,
       h.rows_unchanged,
       h.rows_rejected,
       h.batches,
       h.watermark_from,
       h.watermark_to,
       h.error_sqlstate,
       h.error_message,
       h.triggered_by,
       h.parent_run_id,
       h.attempt
  FROM pipeline.run_history h;

-- Every edge of the dependency graph: declared (depends_on) or inferred
-- (the downstream pipeline's source reads the upstream's target).
CREATE VIEW pipeline.dependencies AS
SELECT d.pipeline_id, d.upstream_id, 'declared'::text AS kind
  FROM pipeline.dependency d
UNION
SELECT r.pipeline_id, u.pipeline_id AS upstream_id, 'inferred'::text AS kind
  FROM pipeline.source_relation r
  JOIN pipeline.pipeline u
    ON r.relid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(
           pg_catalog.quote_ident(u.target_schema) OPERATOR(pg_catalog.||) '.'
           OPERATOR(pg_catalog.||) pg_catalog.quote_ident(u.target_table))::pg_catalog.oid
 WHERE u.pipeline_id OPERATOR(pg_catalog.<>) r.pipeline_id;

-- The backends holding a pipeline's run lock (an advisory lock whose key is
-- the pipeline id and whose locktag_field4 is 0x5050 = 20560, src/engine.c):
-- the one place that decodes the lock, for pipeline.cancel and the launcher.
CREATE VIEW pipeline._run_locks AS
SELECT ((l.classid::pg_catalog.int8 OPERATOR(pg_catalog.<<) 32)
        OPERATOR(pg_catalog.|) l.objid::pg_catalog.int8) AS pipeline_id,
       l.pid
  FROM pg_catalog.pg_locks l
 WHERE l.locktype OPERATOR(pg_catalog.=) 'advisory' AND l.granted
   AND l.objsubid OPERATOR(pg_catalog.=) 20560
   AND l.database OPERATOR(pg_catalog.=) (SELECT d.oid FROM pg_catalog.pg_database d
                                           WHERE d.datname OPERATOR(pg_catalog.=)
                                                 pg_catalog.current_database());
GRANT SELECT ON pipeline._run_locks TO PUBLIC;   -- no more than pg_locks shows

CREATE VIEW pipeline.alerts AS
SELECT alert_id, pipeline_id, pipeline_name, kind, observed, limit_value, run_id,
       message, raised_at, resolved_at
  FROM pipeline.alert_log;

CREATE VIEW pipeline.queue AS
SELECT q.queue_id, q.pipeline_id, p.name AS pipeline_name, q.reason, q.enqueued_at,
       q.not_before, q.parent_run_id, q.attempt
  FROM pipeline.run_queue q
  JOIN pipeline.pipeline p ON p.pipeline_id OPERATOR(pg_catalog.=) q.pipeline_id;

GRANT SELECT ON pipeline.pipelines, pipeline.runs, pipeline.dependencies,
                pipeline.alerts, pipeline.queue TO PUBLIC;

-- Registry -------------------------------------------------------------------

CREATE FUNCTION pipeline.create_pipeline(
    name                text,
    source              pg_catalog.regclass,
    target              text,
    unique_key          text[]      DEFAULT NULL,
    incremental_column  text        DEFAULT NULL,
    mode                text        DEFAULT 'merge',
    delete_column       text        DEFAULT NULL,
    soft_delete         boolean     DEFAULT false,
    partition_column    text        DEFAULT NULL,
    lookback            interval    DEFAULT NULL,
    batch_rows          bigint      DEFAULT NULL,
    create_target       boolean     DEFAULT true,
    description         text        DEFAULT NULL,
    metadata            jsonb       DEFAULT '{}'::jsonb,
    schedule            text        DEFAULT NULL,
    depends_on          text[]      DEFAULT NULL,
    max_retries         integer     DEFAULT 0,
    retry_delay         interval    DEFAULT '10 seconds',
    timeout             interval    DEFAULT NULL,
    freshness           interval    DEFAULT NULL,
    timeliness          interval    DEFAULT NULL,
    mute_freshness      boolean     DEFAULT false,
    mute_timeliness     boolean     DEFAULT false)
RETURNS bigint
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'pipeline_create_pipeline';

CREATE FUNCTION pipeline.alter_pipeline(
    name                text,
    new_name            text        DEFAULT NULL,
    source              pg_catalog.regclass DEFAULT NULL,
    target              text        DEFAULT NULL,
    unique_key          text[]      DEFAULT NULL,
    incremental_column  text        DEFAULT NULL,
    mode                text        DEFAULT NULL,
    delete_column       text        DEFAULT NULL,
    soft_delete         boolean     DEFAULT NULL,
    partition_column    text        DEFAULT NULL,
    lookback            interval    DEFAULT NULL,
    batch_rows          bigint      DEFAULT NULL,
    create_target       boolean     DEFAULT NULL,
    description         text        DEFAULT NULL,
    metadata            jsonb       DEFAULT NULL,
    schedule            text        DEFAULT NULL,
    depends_on          text[]      DEFAULT NULL,
    max_retries         integer     DEFAULT NULL,
    retry_delay         interval    DEFAULT NULL,
    timeout             interval    DEFAULT NULL,
    freshness           interval    DEFAULT NULL,
    timeliness          interval    DEFAULT NULL,
    mute_freshness      boolean     DEFAULT NULL,
    mute_timeliness     boolean     DEFAULT NULL)
RETURNS bigint
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'pipeline_alter_pipeline';

CREATE FUNCTION pipeline.drop_pipeline(name text, drop_target boolean DEFAULT false)
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'pipeline_drop_pipeline';

CREATE FUNCTION pipeline.pause(name text)
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'pipeline_pause';

CREATE FUNCTION pipeline.resume(name text)
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'pipeline_resume';

CREATE FUNCTION pipeline.reset(name text, watermark text DEFAULT NULL)
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'pipeline_reset';

-- Engine ---------------------------------------------------------------------

CREATE FUNCTION pipeline.run(name text)
RETURNS bigint
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'pipeline_run';

CREATE PROCEDURE pipeline.run_batched(name text, batch_rows bigint DEFAULT NULL)
LANGUAGE c
AS 'MODULE_PATHNAME', 'pipeline_run_batched';

CREATE FUNCTION pipeline.explain(name text)
RETURNS SETOF text
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'pipeline_explain';

-- Scheduling and background workers ------------------------------------------

CREATE FUNCTION pipeline.schedule(name text, schedule text)
RETURNS bigint
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'pipeline_schedule';

CREATE FUNCTION pipeline.unschedule(name text)
RETURNS boolean
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'pipeline_unschedule';

-- What a pg_cron job calls: a paused pipeline is skipped quietly.
CREATE PROCEDURE pipeline.scheduled_run(name text)
LANGUAGE c
AS 'MODULE_PATHNAME', 'pipeline_scheduled_run';

CREATE FUNCTION pipeline.trigger(name text)
RETURNS bigint
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'pipeline_trigger';

CREATE FUNCTION pipeline.cancel(name text)
RETURNS boolean
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'pipeline_cancel';

CREATE FUNCTION pipeline.next_run_time(schedule text, after timestamptz DEFAULT pg_catalog.now())
RETURNS timestamptz
LANGUAGE c STABLE STRICT
AS 'MODULE_PATHNAME', 'pipeline_next_run_time';

CREATE FUNCTION pipeline.source_lag(pipeline_id bigint)
RETURNS text
LANGUAGE c VOLATILE STRICT
AS 'MODULE_PATHNAME', 'pipeline_source_lag';

CREATE FUNCTION pipeline.launcher_status(
    OUT database_id oid, OUT pid integer, OUT started_at timestamptz, OUT passes bigint,
    OUT last_pass_ms float8, OUT avg_pass_ms float8, OUT max_pass_ms float8,
    OUT workers_started bigint)
RETURNS SETOF record
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'pipeline_launcher_status';

CREATE FUNCTION pipeline.run_tree(run_id bigint)
RETURNS TABLE (run_id bigint, parent_run_id bigint, depth integer, pipeline_name text,
               status text, triggered_by text, attempt integer,
               started_at timestamptz, finished_at timestamptz)
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    WITH RECURSIVE tree AS (
        SELECT h.run_id, h.parent_run_id, 0 AS depth
          FROM pipeline.run_history h WHERE h.run_id OPERATOR(pg_catalog.=) $1
        UNION ALL
        SELECT h.run_id, h.parent_run_id, t.depth OPERATOR(pg_catalog.+) 1
          FROM pipeline.run_history h
          JOIN tree t ON h.parent_run_id OPERATOR(pg_catalog.=) t.run_id
    )
    SELECT t.run_id, t.parent_run_id, t.depth, h.pipeline_name, h.status, h.triggered_by,
           h.attempt, h.started_at, h.finished_at
      FROM tree t JOIN pipeline.run_history h ON h.run_id OPERATOR(pg_catalog.=) t.run_id
     ORDER BY t.depth, t.run_id
$$;

-- One row per pipeline: how it is doing.
CREATE VIEW pipeline.status AS
SELECT p.pipeline_id AS id,
       p.name,
       p.active,
       last.run_id AS last_run_id,
       last.status AS last_run_status,
       last.finished_at AS last_run_finished_at,
       ok.finished_at AS last_success_at,
       changed.finished_at AS last_change_at,
       (SELECT pg_catalog.count(*) FROM pipeline.run_history f
         WHERE f.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
           AND f.status OPERATOR(pg_catalog.=) 'failed'
           AND f.run_id OPERATOR(pg_catalog.>) COALESCE(ok.run_id, 0)) AS consecutive_failures,
       pipeline.source_lag(p.pipeline_id) AS source_ahead_by,
       p.schedule,
       CASE WHEN p.schedule IS NOT NULL AND p.active
            THEN pipeline.next_run_time(p.schedule) END AS next_scheduled_at,
       CASE WHEN p.freshness IS NULL THEN NULL
            WHEN p.freshness_muted THEN 'muted'
            WHEN pg_catalog.now() OPERATOR(pg_catalog.-)
                 COALESCE(changed.finished_at, p.created_at)
                 OPERATOR(pg_catalog.>) p.freshness THEN 'breached'
            ELSE 'ok' END AS freshness_state,
       CASE WHEN p.timeliness IS NULL THEN NULL
            WHEN p.timeliness_muted THEN 'muted'
            WHEN COALESCE(last.finished_at, pg_catalog.now())
                 OPERATOR(pg_catalog.-) last.started_at OPERATOR(pg_catalog.>) p.timeliness
            THEN 'breached'
            ELSE 'ok' END AS timeliness_state
  FROM pipeline.pipeline p
  LEFT JOIN LATERAL (
        SELECT h.run_id, h.status, h.started_at, h.finished_at FROM pipeline.run_history h
         WHERE h.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
           AND h.status OPERATOR(pg_catalog.<>) 'skipped'
         ORDER BY h.run_id DESC LIMIT 1) last ON true
  LEFT JOIN LATERAL (
        SELECT h.run_id, h.finished_at FROM pipeline.run_history h
         WHERE h.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
           AND h.status OPERATOR(pg_catalog.=) 'succeeded'
         ORDER BY h.run_id DESC LIMIT 1) ok ON true
  LEFT JOIN LATERAL (
        SELECT h.finished_at FROM pipeline.run_history h
         WHERE h.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
           AND h.status OPERATOR(pg_catalog.=) 'succeeded'
           AND h.rows_inserted OPERATOR(pg_catalog.+) h.rows_updated
               OPERATOR(pg_catalog.+) h.rows_deleted OPERATOR(pg_catalog.>) 0
         ORDER BY h.run_id DESC LIMIT 1) changed ON true;

GRANT SELECT ON pipeline.status TO PUBLIC;

-- Row counters used inside the statements a run executes (see
-- pipeline.explain). Internal: they only bump backend-local counters.
-- COST makes the planner evaluate it after every other filter of the scan
-- (so it counts exactly the rows of the window); the support function tells
-- the planner it keeps every row.
CREATE FUNCTION pipeline._window_row_support(internal)
RETURNS internal
LANGUAGE c STRICT
AS 'MODULE_PATHNAME', 'pipeline_window_row_support';

CREATE FUNCTION pipeline._window_row(rejected boolean)
RETURNS boolean
LANGUAGE c VOLATILE STRICT COST 1000
SUPPORT pipeline._window_row_support
AS 'MODULE_PATHNAME', 'pipeline_window_row';

CREATE FUNCTION pipeline._kept_row()
RETURNS boolean
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'pipeline_kept_row';

CREATE FUNCTION pipeline._soft_delete()
RETURNS boolean
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'pipeline_soft_delete';

COMMENT ON FUNCTION pipeline._window_row(boolean) IS 'internal: counts a source row read by a run; false for a rejected row';
COMMENT ON FUNCTION pipeline._kept_row() IS 'internal: counts a source row kept after de-duplication';
COMMENT ON FUNCTION pipeline._soft_delete() IS 'internal: counts a soft delete';

-- ===========================================================================
-- Lineage, audit and config versions (issue 4)
--
-- Everything below belongs to src/lineage.c, src/audit.c, src/versions.c and
-- src/openlineage.c. The tables are written only by the extension's C code
-- (as the extension owner); users read them through the views and functions.
-- ===========================================================================

-- Two columns on the registry: the optional lineage column (the target
-- column that receives the id of the run that last wrote each row), and the
-- config version the pipeline is at now.
ALTER TABLE pipeline.pipeline ADD COLUMN lineage_column name;
ALTER TABLE pipeline.pipeline ADD COLUMN config_version integer;

-- One row per distinct configuration a pipeline has had. A new version is
-- written only when the canonical form (and so its SHA-256) changes. No
-- foreign key: versions outlive a dropped pipeline, like its runs.
CREATE TABLE pipeline.pipeline_versions (
    pipeline_id         bigint NOT NULL,
    version             integer NOT NULL,
    config              jsonb NOT NULL,
    config_hash         text NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT pg_catalog.now(),
    created_by          name NOT NULL,
    PRIMARY KEY (pipeline_id, version)
);

-- Table lineage: for each pipeline, its source -> target edge and every
-- view -> relation edge below its source (views of views included).
-- Relations are kept by OID and by name, so that an edge to a relation that
-- has since been dropped still says what it was.
CREATE TABLE pipeline.lineage_edge (
    pipeline_id         bigint NOT NULL
                        REFERENCES pipeline.pipeline (pipeline_id) ON DELETE CASCADE,
    edge_kind           text NOT NULL
                        CHECK (edge_kind OPERATOR(pg_catalog.=) ANY (ARRAY['pipeline', 'view'])),
    from_relid          oid NOT NULL,
    from_relation       text NOT NULL,
    from_kind           text NOT NULL,
    to_relid            oid NOT NULL,
    to_relation         text NOT NULL,
    to_kind             text NOT NULL
);
CREATE INDEX lineage_edge_pipeline_idx ON pipeline.lineage_edge (pipeline_id);
CREATE INDEX lineage_edge_from_idx ON pipeline.lineage_edge (from_relid);

-- Column lineage: for each column of a view or target, the columns of the
-- relations it is computed from, copied as they are or transformed.
CREATE TABLE pipeline.lineage_column_edge (
    pipeline_id         bigint NOT NULL
                        REFERENCES pipeline.pipeline (pipeline_id) ON DELETE CASCADE,
    edge_kind           text NOT NULL
                        CHECK (edge_kind OPERATOR(pg_catalog.=) ANY (ARRAY['pipeline', 'view'])),
    from_relid          oid NOT NULL,
    from_relation       text NOT NULL,
    from_column         name NOT NULL,
    to_relid            oid NOT NULL,
    to_relation         text NOT NULL,
    to_column           name NOT NULL,
    transformation      text NOT NULL
                        CHECK (transformation OPERATOR(pg_catalog.=) ANY (ARRAY['copied', 'transformed'])),
    how                 text NOT NULL
);
CREATE INDEX lineage_column_edge_pipeline_idx ON pipeline.lineage_column_edge (pipeline_id);

-- Run lineage: what each run read (relation, window, rows) and wrote
-- (relation, inserted, updated, deleted), and the config version it ran
-- with. Written in the run's own transaction (or, for a failed run, by the
-- autonomous recorder).
CREATE TABLE pipeline.run_io (
    run_id              bigint PRIMARY KEY,
    pipeline_id         bigint NOT NULL,
    config_version      integer,
    source_relation     text NOT NULL,
    target_relation     text NOT NULL,
    watermark_from      text,
    watermark_to        text,
    rows_read           bigint NOT NULL DEFAULT 0,
    rows_inserted       bigint NOT NULL DEFAULT 0,
    rows_updated        bigint NOT NULL DEFAULT 0,
    rows_deleted        bigint NOT NULL DEFAULT 0,
    lineage_column      name
);

-- The audit log: append-only and hash-chained. seq has no gaps: it is
-- assigned under the chain lock as the previous entry's seq + 1.
CREATE TABLE pipeline.audit_log (
    seq                 bigint PRIMARY KEY,
    logged_at           timestamptz NOT NULL,
    session_id          text NOT NULL,
    role_name           name NOT NULL,
    session_role        name NOT NULL,
    action              text NOT NULL,
    object_type         text NOT NULL,
    object_name         text,
    pipeline_id         bigint,
    run_id              bigint,
    outcome             text NOT NULL,
    config_before       jsonb,
    config_after        jsonb,
    details             jsonb,
    prev_hash           bytea NOT NULL,
    hash                bytea NOT NULL
);

REVOKE ALL ON pipeline.pipeline_versions, pipeline.lineage_edge,
    pipeline.lineage_column_edge, pipeline.run_io, pipeline.audit_log FROM PUBLIC;
GRANT SELECT ON pipeline.pipeline_versions, pipeline.audit_log TO PUBLIC;

SELECT pg_catalog.pg_extension_config_dump('pipeline.pipeline_versions', '');
SELECT pg_catalog.pg_extension_config_dump('pipeline.lineage_edge', '');
SELECT pg_catalog.pg_extension_config_dump('pipeline.lineage_column_edge', '');
SELECT pg_catalog.pg_extension_config_dump('pipeline.run_io', '');
SELECT pg_catalog.pg_extension_config_dump('pipeline.audit_log', '');

-- UPDATE, DELETE and TRUNCATE on the audit log are refused for every role,
-- superusers included (the attempt itself is logged).
CREATE FUNCTION pipeline._audit_refuse()
RETURNS trigger
LANGUAGE c
AS 'MODULE_PATHNAME', 'pipeline_audit_refuse';

CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON pipeline.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION pipeline._audit_refuse();

CREATE VIEW pipeline.run_lineage AS
SELECT i.run_id,
       h.pipeline_name AS pipeline,
       d.direction,
       CASE d.direction WHEN 'read' THEN i.source_relation ELSE i.target_relation END AS relation,
       i.watermark_from,
       i.watermark_to,
       CASE d.direction WHEN 'read' THEN i.rows_read END AS rows_read,
       CASE d.direction WHEN 'write' THEN i.rows_inserted END AS rows_inserted,
       CASE d.direction WHEN 'write' THEN i.rows_updated END AS rows_updated,
       CASE d.direction WHEN 'write' THEN i.rows_deleted END AS rows_deleted,
       i.config_version,
       CASE d.direction WHEN 'write' THEN i.lineage_column END AS lineage_column
  FROM pipeline.run_io i
  JOIN pipeline.run_history h ON h.run_id OPERATOR(pg_catalog.=) i.run_id
 CROSS JOIN (VALUES ('read'), ('write')) AS d (direction);

CREATE VIEW pipeline.lineage AS
SELECT DISTINCT e.from_relation, e.from_kind, e.to_relation, e.to_kind, e.edge_kind,
       CASE e.edge_kind WHEN 'pipeline' THEN p.name END AS pipeline
  FROM pipeline.lineage_edge e
  JOIN pipeline.pipeline p ON p.pipeline_id OPERATOR(pg_catalog.=) e.pipeline_id;

CREATE VIEW pipeline.column_lineage AS
SELECT DISTINCT e.from_relation, e.from_column, e.to_relation, e.to_column,
       e.transformation, e.how, e.edge_kind,
       CASE e.edge_kind WHEN 'pipeline' THEN p.name END AS pipeline
  FROM pipeline.lineage_column_edge e
  JOIN pipeline.pipeline p ON p.pipeline_id OPERATOR(pg_catalog.=) e.pipeline_id;

GRANT SELECT ON pipeline.run_lineage, pipeline.lineage, pipeline.column_lineage TO PUBLIC;

-- Lineage ----------------------------------------------------------------------

CREATE FUNCTION pipeline.upstream(relation pg_catalog.regclass)
RETURNS TABLE (depth integer, relation text, kind text, pipeline text, path text[])
LANGUAGE c STABLE STRICT
AS 'MODULE_PATHNAME', 'pipeline_upstream';

CREATE FUNCTION pipeline.downstream(relation pg_catalog.regclass)
RETURNS TABLE (depth integer, relation text, kind text, pipeline text, path text[])
LANGUAGE c STABLE STRICT
AS 'MODULE_PATHNAME', 'pipeline_downstream';

CREATE FUNCTION pipeline.column_upstream(relation pg_catalog.regclass, column_name text)
RETURNS TABLE (depth integer, relation text, column_name text, transformation text,
               how text, pipeline text, path text[])
LANGUAGE c STABLE STRICT
AS 'MODULE_PATHNAME', 'pipeline_column_upstream';

CREATE FUNCTION pipeline.column_downstream(relation pg_catalog.regclass, column_name text)
RETURNS TABLE (depth integer, relation text, column_name text, transformation text,
               how text, pipeline text, path text[])
LANGUAGE c STABLE STRICT
AS 'MODULE_PATHNAME', 'pipeline_column_downstream';

CREATE FUNCTION pipeline.lineage_graph(format text DEFAULT 'dot',
                                       around pg_catalog.regclass DEFAULT NULL)
RETURNS text
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'pipeline_lineage_graph';

CREATE FUNCTION pipeline.refresh_lineage(name text DEFAULT NULL)
RETURNS integer
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'pipeline_refresh_lineage';

CREATE FUNCTION pipeline.set_lineage_column(name text, column_name text)
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'pipeline_set_lineage_column';

CREATE FUNCTION pipeline._current_run_id()
RETURNS bigint
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'pipeline_current_run_id';
COMMENT ON FUNCTION pipeline._current_run_id() IS 'internal: the id of the run now loading in this session';

CREATE FUNCTION pipeline.openlineage_events(run_id bigint, namespace text DEFAULT NULL)
RETURNS SETOF jsonb
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'pipeline_openlineage_events';

-- The event trigger that keeps lineage current when a relation a pipeline
-- reads is created, replaced, altered or dropped.
CREATE FUNCTION pipeline._lineage_ddl()
RETURNS event_trigger
LANGUAGE c
AS 'MODULE_PATHNAME', 'pipeline_lineage_ddl';

CREATE EVENT TRIGGER pipeline_lineage_ddl ON ddl_command_end
    WHEN TAG IN ('CREATE VIEW', 'ALTER VIEW', 'CREATE TABLE', 'ALTER TABLE',
                 'CREATE MATERIALIZED VIEW', 'ALTER MATERIALIZED VIEW',
                 'CREATE TABLE AS', 'SELECT INTO', 'CREATE FOREIGN TABLE',
                 'ALTER FOREIGN TABLE', 'DROP VIEW', 'DROP TABLE',
                 'DROP MATERIALIZED VIEW', 'DROP FOREIGN TABLE', 'DROP SCHEMA')
    EXECUTE FUNCTION pipeline._lineage_ddl();

-- Audit and versions -----------------------------------------------------------

CREATE FUNCTION pipeline.verify_audit()
RETURNS TABLE (valid boolean, entries_checked bigint, first_bad_seq bigint,
               problem text, detail text)
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'pipeline_verify_audit';

CREATE FUNCTION pipeline.audit_head()
RETURNS TABLE (seq bigint, hash text)
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'pipeline_audit_head';

CREATE FUNCTION pipeline.config_of(name text)
RETURNS jsonb
LANGUAGE c STABLE STRICT
AS 'MODULE_PATHNAME', 'pipeline_config_of';

CREATE FUNCTION pipeline.apply(spec jsonb)
RETURNS TABLE (name text, action text, version integer)
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'pipeline_apply';
