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
    parent_run_id       bigint
);
CREATE INDEX run_history_pipeline_idx
    ON pipeline.run_history (pipeline_id, run_id DESC);
CREATE INDEX run_history_running_idx
    ON pipeline.run_history (pipeline_id) WHERE status OPERATOR(pg_catalog.=) 'running';

REVOKE ALL ON pipeline.pipeline, pipeline.watermark, pipeline.run_history FROM PUBLIC;
REVOKE ALL ON SEQUENCE pipeline.pipeline_id_seq, pipeline.run_id_seq FROM PUBLIC;

-- pg_dump keeps every pipeline, its watermark and its history.
SELECT pg_catalog.pg_extension_config_dump('pipeline.pipeline', '');
SELECT pg_catalog.pg_extension_config_dump('pipeline.watermark', '');
SELECT pg_catalog.pg_extension_config_dump('pipeline.run_history', '');
SELECT pg_catalog.pg_extension_config_dump('pipeline.pipeline_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('pipeline.run_id_seq', '');

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
       h.parent_run_id
  FROM pipeline.run_history h;

GRANT SELECT ON pipeline.pipelines, pipeline.runs TO PUBLIC;

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
    metadata            jsonb       DEFAULT '{}'::jsonb)
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
    metadata            jsonb       DEFAULT NULL)
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

-- Row counters used inside the statements a run executes (see
-- pipeline.explain). Internal: they only bump backend-local counters.
-- COST makes the planner evaluate it after every other filter of the scan.
CREATE FUNCTION pipeline._window_row(rejected boolean)
RETURNS boolean
LANGUAGE c VOLATILE STRICT COST 1000
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
