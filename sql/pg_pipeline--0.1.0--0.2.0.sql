/*
 * sql/pg_pipeline--0.1.0--0.2.0.sql
 *
 * Upgrade script from 0.1.0 (frozen: what landed with the core, scheduling,
 * workers, lineage and audit) to 0.2.0. A fresh CREATE EXTENSION of 0.2.0
 * runs the 0.1.0 install script and then this one, so a fresh install and an
 * upgraded one are the same catalog by construction; test/t/010_upgrade.pl
 * checks that they stay so. Every object is schema-qualified, as in the
 * install script.
 *
 * Sections, one per concern, in the order they were added.
 */

\echo Use "ALTER EXTENSION pg_pipeline UPDATE TO '0.2.0'" to load this file. \quit

-- Hardening (issue 7) --------------------------------------------------------

-- item 4: the lag of each pipeline's source, or why there is none; one
-- pipeline never fails pipeline.status for the others (src/source_lag.c).
CREATE FUNCTION pipeline.source_lag_detail(pipeline_id bigint, OUT lag text, OUT reason text)
RETURNS record
LANGUAGE c VOLATILE STRICT
AS 'MODULE_PATHNAME', 'pipeline_source_lag_detail';

-- item 5: row-level visibility
--
-- A role sees a pipeline, and everything about it (definition, runs, run
-- errors, alerts, queue entries, lineage, versions, audit entries), when it
-- may 'read' it: pipeline._may('read', owner), true for the owner, the roles
-- with its privileges (pg_has_role(owner, 'USAGE'): members with INHERIT),
-- superusers, and the members of pipeline_viewer, pipeline_operator and
-- pipeline_admin (created in "Roles for teams" below; the table of who may
-- do what is src/policy/actions.c). Nothing of the others. The views run as
-- their owner (the extension owner), but the functions in their WHERE
-- clause run as the caller, so pipeline._may answers for the caller; they
-- are security_barrier views, so that a caller's leaky
-- function in an outer WHERE sees no row the view filters out. The two
-- tables PUBLIC reads directly (pipeline_versions, audit_log) get row-level
-- security; the extension owner writes them as their owner, which bypasses
-- it. Runs, alerts, versions and audit entries outlive their pipeline: the
-- owner of a dropped pipeline is kept in pipeline.dropped_pipeline (written
-- by drop_pipeline), so its owner still sees them. Rows of a pipeline
-- dropped before 0.2.0, whose owner is not known, are visible to those who
-- may read every pipeline: pipeline._may('read', NULL).
--
-- Whoever redefines one of these views later must keep its WHERE clause.

-- pipeline._may(action, owner, role): whether role (NULL: the caller) may do
-- action on a pipeline of owner (NULL: whose owner is not known); the one
-- rule of who may do what, for the views here and for the C functions'
-- checks alike (src/policy/actions.c).
CREATE FUNCTION pipeline._may(action text, owner oid, role oid DEFAULT NULL)
RETURNS boolean
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'pipeline_may';
COMMENT ON FUNCTION pipeline._may(text, oid, oid) IS 'internal: whether a role may do an action on a pipeline of an owner (the table of docs/security.md)';

CREATE TABLE pipeline.dropped_pipeline (
    pipeline_id         bigint PRIMARY KEY,
    name                text NOT NULL,
    owner               regrole NOT NULL,
    dropped_at          timestamptz NOT NULL DEFAULT pg_catalog.now()
);
REVOKE ALL ON pipeline.dropped_pipeline FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('pipeline.dropped_pipeline', '');

-- The pipelines, live or dropped, that the caller may read: the one
-- definition of visibility for the views and policies below.
CREATE VIEW pipeline._visible_pipelines WITH (security_barrier) AS
SELECT o.pipeline_id
  FROM (SELECT p.pipeline_id, p.owner FROM pipeline.pipeline p
        UNION ALL
        SELECT d.pipeline_id, d.owner FROM pipeline.dropped_pipeline d) o
 WHERE (SELECT pipeline._may('read', NULL))   -- anyone's: asked once, not per row
    OR pipeline._may('read', o.owner::pg_catalog.oid);
GRANT SELECT ON pipeline._visible_pipelines TO PUBLIC;

CREATE OR REPLACE VIEW pipeline.pipelines WITH (security_barrier) AS
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
         LIMIT 1) r ON true
 WHERE pipeline._may('read', p.owner::pg_catalog.oid);

-- Runs (and the alerts and lineage of runs) whose pipeline is gone without
-- a trace in pipeline.dropped_pipeline are shown to superusers only: the
-- second branch of their WHERE clauses.
CREATE OR REPLACE VIEW pipeline.runs WITH (security_barrier) AS
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
  FROM pipeline.run_history h
 WHERE h.pipeline_id IN (SELECT v.pipeline_id FROM pipeline._visible_pipelines v)
    OR (SELECT pipeline._may('read', NULL));

-- The dependency graph, spelled once. Every edge is declared (depends_on,
-- pipeline.dependency) or inferred, as pipeline._edge: the downstream's
-- source reads the upstream's target, found by its names in pg_class. A
-- plain view, so that a filter on either end is pushed into its joins:
-- _upstreams(id) and _downstreams(id) read one pipeline's edges by index
-- (queueing a run's downstream pipelines, create_pipeline's cycle check,
-- the launcher), and the dependencies view reads all of them by hash
-- joins. Before, each of those read the whole graph, with to_regclass per
-- registered pipeline: 50 ms with 10,000 pipelines. Internal: called by the
-- catalog statements as the extension owner, and read by the view.
CREATE VIEW pipeline._edge AS
SELECT r.pipeline_id, u.pipeline_id AS upstream_id, 'inferred'::text AS kind
  FROM pipeline.source_relation r
  JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) r.relid
  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
  JOIN pipeline.pipeline u
    ON u.target_table OPERATOR(pg_catalog.=) c.relname
   AND u.target_schema OPERATOR(pg_catalog.=) n.nspname
 WHERE u.pipeline_id OPERATOR(pg_catalog.<>) r.pipeline_id
UNION ALL
SELECT d.pipeline_id, d.upstream_id, 'declared'::text
  FROM pipeline.dependency d;
REVOKE ALL ON pipeline._edge FROM PUBLIC;

-- the upstream's target is found by its names
CREATE INDEX pipeline_target_idx ON pipeline.pipeline (target_table, target_schema);

CREATE FUNCTION pipeline._upstreams(downstream bigint)
RETURNS TABLE (upstream_id bigint, kind text)
LANGUAGE sql STABLE
AS $$
SELECT DISTINCT e.upstream_id, e.kind FROM pipeline._edge e
 WHERE e.pipeline_id OPERATOR(pg_catalog.=) downstream
$$;
COMMENT ON FUNCTION pipeline._upstreams(bigint) IS 'internal: the pipelines a pipeline depends on, declared or inferred';
REVOKE ALL ON FUNCTION pipeline._upstreams(bigint) FROM PUBLIC;

CREATE FUNCTION pipeline._downstreams(upstream bigint)
RETURNS TABLE (pipeline_id bigint, kind text)
LANGUAGE sql STABLE
AS $$
SELECT DISTINCT e.pipeline_id, e.kind FROM pipeline._edge e
 WHERE e.upstream_id OPERATOR(pg_catalog.=) upstream
$$;
COMMENT ON FUNCTION pipeline._downstreams(bigint) IS 'internal: the pipelines that depend on a pipeline, declared or inferred';
REVOKE ALL ON FUNCTION pipeline._downstreams(bigint) FROM PUBLIC;

CREATE OR REPLACE VIEW pipeline.dependencies WITH (security_barrier) AS
SELECT DISTINCT e.pipeline_id, e.upstream_id, e.kind
  FROM pipeline._edge e
 WHERE e.pipeline_id IN (SELECT v.pipeline_id FROM pipeline._visible_pipelines v);

CREATE OR REPLACE VIEW pipeline.alerts WITH (security_barrier) AS
SELECT a.alert_id, a.pipeline_id, a.pipeline_name, a.kind, a.observed, a.limit_value,
       a.run_id, a.message, a.raised_at, a.resolved_at
  FROM pipeline.alert_log a
 WHERE a.pipeline_id IN (SELECT v.pipeline_id FROM pipeline._visible_pipelines v)
    OR (SELECT pipeline._may('read', NULL));

CREATE OR REPLACE VIEW pipeline.queue WITH (security_barrier) AS
SELECT q.queue_id, q.pipeline_id, p.name AS pipeline_name, q.reason, q.enqueued_at,
       q.not_before, q.parent_run_id, q.attempt
  FROM pipeline.run_queue q
  JOIN pipeline.pipeline p ON p.pipeline_id OPERATOR(pg_catalog.=) q.pipeline_id
 WHERE pipeline._may('read', p.owner::pg_catalog.oid);

CREATE OR REPLACE VIEW pipeline.run_lineage WITH (security_barrier) AS
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
 CROSS JOIN (VALUES ('read'), ('write')) AS d (direction)
 WHERE h.pipeline_id IN (SELECT v.pipeline_id FROM pipeline._visible_pipelines v)
    OR (SELECT pipeline._may('read', NULL));

CREATE OR REPLACE VIEW pipeline.lineage WITH (security_barrier) AS
SELECT DISTINCT e.from_relation, e.from_kind, e.to_relation, e.to_kind, e.edge_kind,
       CASE e.edge_kind WHEN 'pipeline' THEN p.name END AS pipeline
  FROM pipeline.lineage_edge e
  JOIN pipeline.pipeline p ON p.pipeline_id OPERATOR(pg_catalog.=) e.pipeline_id
 WHERE pipeline._may('read', p.owner::pg_catalog.oid);

CREATE OR REPLACE VIEW pipeline.column_lineage WITH (security_barrier) AS
SELECT DISTINCT e.from_relation, e.from_column, e.to_relation, e.to_column,
       e.transformation, e.how, e.edge_kind,
       CASE e.edge_kind WHEN 'pipeline' THEN p.name END AS pipeline
  FROM pipeline.lineage_column_edge e
  JOIN pipeline.pipeline p ON p.pipeline_id OPERATOR(pg_catalog.=) e.pipeline_id
 WHERE pipeline._may('read', p.owner::pg_catalog.oid);

-- run_tree read pipeline.run_history as the caller, which only superusers
-- may; it reads the filtered pipeline.runs now, so a role gets the runs of
-- the tree it may see.
CREATE OR REPLACE FUNCTION pipeline.run_tree(run_id bigint)
RETURNS TABLE (run_id bigint, parent_run_id bigint, depth integer, pipeline_name text,
               status text, triggered_by text, attempt integer,
               started_at timestamptz, finished_at timestamptz)
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    WITH RECURSIVE tree AS (
        SELECT h.run_id, h.parent_run_id, 0 AS depth
          FROM pipeline.runs h WHERE h.run_id OPERATOR(pg_catalog.=) $1
        UNION ALL
        SELECT h.run_id, h.parent_run_id, t.depth OPERATOR(pg_catalog.+) 1
          FROM pipeline.runs h
          JOIN tree t ON h.parent_run_id OPERATOR(pg_catalog.=) t.run_id
    )
    SELECT t.run_id, t.parent_run_id, t.depth, h.pipeline_name, h.status, h.triggered_by,
           h.attempt, h.started_at, h.finished_at
      FROM tree t JOIN pipeline.runs h ON h.run_id OPERATOR(pg_catalog.=) t.run_id
     ORDER BY t.depth, t.run_id
$$;

-- The tables PUBLIC reads directly. A policy's subquery runs as the caller,
-- who may read pipeline._visible_pipelines (and only their own ids in it).
ALTER TABLE pipeline.pipeline_versions ENABLE ROW LEVEL SECURITY;
CREATE POLICY pipeline_versions_visible ON pipeline.pipeline_versions
    FOR SELECT TO PUBLIC
    USING (pipeline_id IN (SELECT v.pipeline_id FROM pipeline._visible_pipelines v)
           OR (SELECT pipeline._may('read', NULL)));

-- An audit entry is visible with its pipeline, to the role that made it
-- (a refused call on somebody else's pipeline, an entry without pipeline),
-- and to those who may read every pipeline (all entries).
ALTER TABLE pipeline.audit_log ENABLE ROW LEVEL SECURITY;
CREATE POLICY audit_log_visible ON pipeline.audit_log
    FOR SELECT TO PUBLIC
    USING (pipeline_id IN (SELECT v.pipeline_id FROM pipeline._visible_pipelines v)
           OR EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
                       WHERE r.rolname OPERATOR(pg_catalog.=) role_name
                         AND pg_catalog.pg_has_role(r.oid, 'USAGE'))
           OR (SELECT pipeline._may('read', NULL)));

CREATE OR REPLACE VIEW pipeline.status WITH (security_barrier) AS
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
       lag.lag AS source_ahead_by,
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
            ELSE 'ok' END AS timeliness_state,
       lag.reason AS source_lag_reason
  FROM pipeline.pipeline p
  CROSS JOIN LATERAL pipeline.source_lag_detail(p.pipeline_id) lag
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
         ORDER BY h.run_id DESC LIMIT 1) changed ON true
 WHERE pipeline._may('read', p.owner::pg_catalog.oid);

-- item 6: cancel
--
-- No schema change: pipeline.cancel (src/queue.c) checks ownership, finds
-- the backend through pipeline._run_locks and signals it from C.

-- Audit: bounded log (issue 7, item 8) ----------------------------------------
--
-- Retention cuts the oldest entries off the chain and keeps an anchor: the
-- last removed entry's seq and hash, from which pipeline.verify_audit()
-- goes on (src/audit.c). Anchors are append-only like the log: the trigger
-- lets DELETE through only for pipeline.prune_audit's own statements (which
-- drop anchors older than the retention but the latest one). Refusals are
-- coalesced per role, action, object and pipeline.audit_refusal_window (no
-- schema change); pipeline.flush_audit_refusals() writes the counts now.
CREATE TABLE pipeline.audit_anchor (
    seq                 bigint PRIMARY KEY,
    hash                bytea NOT NULL,
    logged_at           timestamptz NOT NULL,
    removed_from        bigint NOT NULL,
    entries_removed     bigint NOT NULL,
    older_than          interval NOT NULL,
    cut_at              timestamptz NOT NULL
);

REVOKE ALL ON pipeline.audit_anchor FROM PUBLIC;
GRANT SELECT ON pipeline.audit_anchor TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('pipeline.audit_anchor', '');

CREATE TRIGGER audit_anchor_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON pipeline.audit_anchor
    FOR EACH STATEMENT EXECUTE FUNCTION pipeline._audit_refuse();

-- verify_audit() says which anchor it verified from.
DROP FUNCTION pipeline.verify_audit();
CREATE FUNCTION pipeline.verify_audit()
RETURNS TABLE (valid boolean, entries_checked bigint, first_bad_seq bigint,
               problem text, detail text, anchor_seq bigint)
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'pipeline_verify_audit';

CREATE FUNCTION pipeline.prune_audit(older_than interval DEFAULT NULL,
                                     batch_size integer DEFAULT 10000)
RETURNS bigint
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'pipeline_prune_audit';

CREATE FUNCTION pipeline.flush_audit_refusals()
RETURNS bigint
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'pipeline_flush_audit_refusals';

REVOKE ALL ON FUNCTION pipeline.prune_audit(interval, integer),
    pipeline.flush_audit_refusals() FROM PUBLIC;

-- Architecture (issue 8) -----------------------------------------------------

-- deliverable 2: one option table. pipeline._options() shows the C table of
-- a pipeline's options (src/catalog/options.c), from which create_pipeline's
-- and alter_pipeline's arguments are read, pipeline.pipeline is read and
-- written, the canonical config is built and apply() takes its keys;
-- sql/14_options.sql compares it with those functions' signatures and with
-- pipeline.pipeline's columns. sql_default is NULL for an argument without
-- a default; catalog_column lists a relation's two columns as schema,table.
CREATE FUNCTION pipeline._options()
RETURNS TABLE (name text, sql_type text, sql_default text, catalog_column text,
               alterable boolean, in_config boolean, in_spec boolean)
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'pipeline_options';
COMMENT ON FUNCTION pipeline._options() IS 'internal: the option table of create_pipeline, alter_pipeline and apply, checked against their signatures by the regression tests';

-- Roles for teams (issue 11) -------------------------------------------------

-- Three NOLOGIN roles to grant: pipeline_viewer reads every pipeline's rows
-- in the catalog views, pipeline_operator also runs, triggers, cancels,
-- pauses and resumes anyone's pipelines, pipeline_admin may do everything
-- the owner may (and read the keys: later sections grant it what it needs).
-- Who may do what is one table, src/policy/actions.c, asked by the C
-- functions and, through pipeline._may, by the views and policies above;
-- docs/security.md shows it. A run by an operator still executes as the
-- pipeline's owner: the roles give no privilege on the data.
--
-- Roles are cluster-wide and cannot belong to an extension: they are
-- created here only if missing (a second database's CREATE EXTENSION finds
-- them; CREATE EXTENSION needs a superuser, who may create roles), never
-- altered if they exist, and DROP EXTENSION leaves them (drop them by hand
-- when no database uses pg_pipeline). Nothing is granted to them here: what
-- they may do is decided by name, so that they work on tables added later.
DO $$
DECLARE
    r text;
    what text;
BEGIN
    FOR r, what IN SELECT v.r, v.what FROM (VALUES
        ('pipeline_viewer', 'pg_pipeline: reads every pipeline in the catalog views'),
        ('pipeline_operator', 'pg_pipeline: reads, runs, triggers, cancels, pauses and resumes every pipeline'),
        ('pipeline_admin', 'pg_pipeline: may do everything on every pipeline, keys included')) v (r, what)
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles o WHERE o.rolname OPERATOR(pg_catalog.=) r) THEN
            BEGIN
                EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
                EXECUTE pg_catalog.format('COMMENT ON ROLE %I IS %L', r, what);
            EXCEPTION WHEN duplicate_object THEN
                NULL;           -- created meanwhile by another database's CREATE EXTENSION
            END;
        END IF;
    END LOOP;
END
$$;

-- Ecosystem (issue 13) -------------------------------------------------------

-- A failed run keeps its error's DETAIL and HINT (shown in pipeline.runs,
-- and in the errorMessage of its OpenLineage FAIL event).
ALTER TABLE pipeline.run_history ADD COLUMN error_detail text, ADD COLUMN error_hint text;

CREATE OR REPLACE VIEW pipeline.runs WITH (security_barrier) AS
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
       h.attempt,
       h.error_detail,
       h.error_hint
  FROM pipeline.run_history h
 WHERE h.pipeline_id IN (SELECT v.pipeline_id FROM pipeline._visible_pipelines v)
    OR (SELECT pipeline._may('read', NULL));

-- The OpenLineage outbox (src/recorders/openlineage_outbox.c): with
-- pipeline.openlineage_url set, a run's events are written here by the
-- transaction that records the run, and the sender worker
-- (src/workers/openlineage_sender.c) posts them, in order per run, at
-- least once, with retries; 'dead' after pipeline.openlineage_max_attempts
-- or a refusal. Events go with their run's history.
CREATE TABLE pipeline.openlineage_outbox (
    event_id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id              bigint NOT NULL
                        REFERENCES pipeline.run_history (run_id) ON DELETE CASCADE,
    pipeline_id         bigint NOT NULL,
    event_type          text NOT NULL
                        CHECK (event_type OPERATOR(pg_catalog.=) ANY (ARRAY['START', 'COMPLETE', 'FAIL'])),
    event               jsonb NOT NULL,
    state               text NOT NULL DEFAULT 'pending'
                        CHECK (state OPERATOR(pg_catalog.=) ANY (ARRAY['pending', 'delivered', 'dead'])),
    attempts            integer NOT NULL DEFAULT 0,
    next_attempt_at     timestamptz NOT NULL DEFAULT pg_catalog.now(),
    last_error          text,
    created_at          timestamptz NOT NULL DEFAULT pg_catalog.now(),
    delivered_at        timestamptz,
    UNIQUE (run_id, event_type)
);
CREATE INDEX openlineage_outbox_pending_idx
    ON pipeline.openlineage_outbox (event_id) WHERE state OPERATOR(pg_catalog.=) 'pending';
REVOKE ALL ON pipeline.openlineage_outbox FROM PUBLIC;

-- The outbox as a role may see it: the events of the runs it sees.
CREATE VIEW pipeline.openlineage_deliveries WITH (security_barrier) AS
SELECT o.event_id,
       o.run_id,
       o.pipeline_id,
       h.pipeline_name,
       o.event_type,
       o.state,
       o.attempts,
       o.next_attempt_at,
       o.last_error,
       o.created_at,
       o.delivered_at,
       o.event
  FROM pipeline.openlineage_outbox o
  JOIN pipeline.run_history h ON h.run_id OPERATOR(pg_catalog.=) o.run_id
 WHERE o.pipeline_id IN (SELECT v.pipeline_id FROM pipeline._visible_pipelines v)
    OR (SELECT pipeline._may('read', NULL));
GRANT SELECT ON pipeline.openlineage_deliveries TO PUBLIC;

CREATE FUNCTION pipeline.openlineage_redeliver(run_id bigint DEFAULT NULL)
RETURNS bigint
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'pipeline_openlineage_redeliver';
COMMENT ON FUNCTION pipeline.openlineage_redeliver(bigint) IS 'puts the dead OpenLineage events of a run (of every run you see, when NULL) back in the queue';

-- What a run saw: the columns (name, type, comment) and the comment of
-- every relation in a pipeline's lineage, recorded whenever its lineage is
-- refreshed (create_pipeline, alter_pipeline, refresh_lineage, and the DDL
-- trigger, now on COMMENT too) and only when they changed. OpenLineage
-- events built after the fact describe a relation as the latest record
-- made before the run started (src/recorders/openlineage.c).
CREATE TABLE pipeline.relation_schema (
    schema_id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    relation            text NOT NULL,
    recorded_at         timestamptz NOT NULL,
    fields              jsonb NOT NULL,
    description         text
);
CREATE INDEX relation_schema_relation_idx ON pipeline.relation_schema (relation, recorded_at);
REVOKE ALL ON pipeline.relation_schema FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('pipeline.relation_schema', '');

-- _record_relation_schemas(relations) records the relations (stored names,
-- "schema"."table") that exist and differ from their latest record; it
-- returns how many it recorded.
CREATE FUNCTION pipeline._record_relation_schemas(relations text[])
RETURNS integer
LANGUAGE sql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    WITH cur AS (
        SELECT r.relation,
               (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                           'name', a.attname,
                           'type', pg_catalog.format_type(a.atttypid, a.atttypmod),
                           'description', pg_catalog.col_description(a.attrelid, a.attnum))
                        ORDER BY a.attnum), '[]'::jsonb)
                  FROM pg_catalog.pg_attribute a
                 WHERE a.attrelid OPERATOR(pg_catalog.=) c.oid
                   AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped) AS fields,
               pg_catalog.obj_description(c.oid, 'pg_class') AS description
          FROM (SELECT DISTINCT u.relation FROM pg_catalog.unnest(relations) AS u(relation)
                 WHERE u.relation IS NOT NULL) r
          JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(r.relation)
    ), recorded AS (
        INSERT INTO pipeline.relation_schema (relation, recorded_at, fields, description)
        SELECT cur.relation, pg_catalog.clock_timestamp(), cur.fields, cur.description
          FROM cur
         WHERE NOT EXISTS (
                SELECT 1
                  FROM (SELECT l.fields, l.description FROM pipeline.relation_schema l
                         WHERE l.relation OPERATOR(pg_catalog.=) cur.relation
                         ORDER BY l.recorded_at DESC, l.schema_id DESC LIMIT 1) last
                 WHERE last.fields OPERATOR(pg_catalog.=) cur.fields
                   AND last.description IS NOT DISTINCT FROM cur.description)
        RETURNING 1)
    SELECT pg_catalog.count(*)::integer FROM recorded
$$;
REVOKE ALL ON FUNCTION pipeline._record_relation_schemas(text[]) FROM PUBLIC;
COMMENT ON FUNCTION pipeline._record_relation_schemas(text[]) IS 'internal: records what the relations of a lineage look like, when it changed';

-- The DDL trigger also fires on COMMENT, so that a comment's change is
-- recorded with the columns (event triggers cannot be altered to take
-- another tag: it is created again).
DROP EVENT TRIGGER pipeline_lineage_ddl;
CREATE EVENT TRIGGER pipeline_lineage_ddl ON ddl_command_end
    WHEN TAG IN ('CREATE VIEW', 'ALTER VIEW', 'CREATE TABLE', 'ALTER TABLE',
                 'CREATE MATERIALIZED VIEW', 'ALTER MATERIALIZED VIEW',
                 'CREATE TABLE AS', 'SELECT INTO', 'CREATE FOREIGN TABLE',
                 'ALTER FOREIGN TABLE', 'DROP VIEW', 'DROP TABLE',
                 'DROP MATERIALIZED VIEW', 'DROP FOREIGN TABLE', 'DROP SCHEMA',
                 'COMMENT')
    EXECUTE FUNCTION pipeline._lineage_ddl();

-- what the relations of existing pipelines look like at the upgrade
SELECT pipeline._record_relation_schemas(ARRAY(
    SELECT e.from_relation FROM pipeline.lineage_edge e
    UNION SELECT e.to_relation FROM pipeline.lineage_edge e));

-- And the lineage a run had: per pipeline, its column inputs (target column
-- <- input column, DIRECT or a CASE condition) and INDIRECT inputs, as its
-- OpenLineage events give them, recorded by every lineage refresh that
-- changed them (src/recorders/openlineage_inputs.c).
CREATE TABLE pipeline.lineage_snapshot (
    snapshot_id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pipeline_id         bigint NOT NULL,
    recorded_at         timestamptz NOT NULL,
    columns             jsonb NOT NULL,
    indirect            jsonb NOT NULL
);
CREATE INDEX lineage_snapshot_pipeline_idx ON pipeline.lineage_snapshot (pipeline_id, recorded_at);
REVOKE ALL ON pipeline.lineage_snapshot FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('pipeline.lineage_snapshot', '');

-- Data quality (issue 9) -----------------------------------------------------

-- Contracts: a pipeline's checks (src/catalog/check_store.c), added and
-- dropped by pipeline.add_check / pipeline.drop_check and by the "checks"
-- key of pipeline.apply (src/api/checks_api.c). Row-level kinds are
-- evaluated inside the load statement (src/engine/planner.c,
-- src/engine/row_checks.c); set-level kinds after it, in the run's
-- transaction (src/engine/set_checks.c). docs/quality.md explains them.
CREATE SEQUENCE pipeline.check_id_seq;
CREATE TABLE pipeline.data_check (
    check_id            bigint NOT NULL DEFAULT pg_catalog.nextval('pipeline.check_id_seq') UNIQUE,
    pipeline_id         bigint NOT NULL REFERENCES pipeline.pipeline (pipeline_id) ON DELETE CASCADE,
    check_name          text NOT NULL,
    kind                text NOT NULL
                        CHECK (kind OPERATOR(pg_catalog.=) ANY (ARRAY['not_null', 'accepted_values',
                               'range', 'regex', 'relationships', 'expression', 'unique',
                               'row_count', 'query'])),
    args                jsonb NOT NULL DEFAULT '{}',
    severity            text NOT NULL
                        CHECK (severity OPERATOR(pg_catalog.=) ANY (ARRAY['warn', 'quarantine', 'error', 'block'])),
    created_at          timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (pipeline_id, check_name)
);
REVOKE ALL ON pipeline.data_check FROM PUBLIC;
REVOKE ALL ON SEQUENCE pipeline.check_id_seq FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('pipeline.data_check', '');
SELECT pg_catalog.pg_extension_config_dump('pipeline.check_id_seq', '');

CREATE VIEW pipeline.checks WITH (security_barrier) AS
SELECT c.check_id,
       c.pipeline_id,
       p.name AS pipeline,
       c.check_name,
       c.kind,
       c.args,
       c.severity,
       CASE WHEN c.kind OPERATOR(pg_catalog.=) ANY (ARRAY['unique', 'row_count', 'query'])
            THEN 'set' ELSE 'row' END AS level,
       c.created_at
  FROM pipeline.data_check c
  JOIN pipeline.pipeline p ON p.pipeline_id OPERATOR(pg_catalog.=) c.pipeline_id
 WHERE pipeline._may('read', p.owner::pg_catalog.oid);
GRANT SELECT ON pipeline.checks TO PUBLIC;

CREATE FUNCTION pipeline.add_check(pipeline text, check_name text, kind text,
                                   args jsonb DEFAULT '{}', severity text DEFAULT 'error')
RETURNS bigint
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'pipeline_add_check';

CREATE FUNCTION pipeline.drop_check(pipeline text, check_name text)
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'pipeline_drop_check';

-- What each check came to in each run (src/recorders/check_results.c). A
-- run that fails on an error-severity check rolls back with its load; the
-- failed run's recorder then writes that check's result ('failed'), and
-- its record in pipeline.runs names the check. 'blocked' becomes
-- 'acknowledged' through pipeline.acknowledge.
CREATE TABLE pipeline.check_result (
    run_id              bigint NOT NULL,
    pipeline_id         bigint NOT NULL,
    check_name          text NOT NULL,
    kind                text NOT NULL,
    severity            text NOT NULL,
    failed_rows         bigint NOT NULL,
    outcome             text NOT NULL
                        CHECK (outcome OPERATOR(pg_catalog.=) ANY (ARRAY['passed', 'warned',
                               'quarantined', 'blocked', 'acknowledged', 'failed'])),
    acknowledged_at     timestamptz,
    acknowledged_by     text,
    PRIMARY KEY (run_id, check_name)
);
CREATE INDEX check_result_blocked_idx
    ON pipeline.check_result (pipeline_id) WHERE outcome OPERATOR(pg_catalog.=) 'blocked';
REVOKE ALL ON pipeline.check_result FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('pipeline.check_result', '');

CREATE VIEW pipeline.check_results WITH (security_barrier) AS
SELECT r.run_id,
       r.check_name,
       r.kind,
       r.severity,
       r.failed_rows,
       r.outcome
  FROM pipeline.check_result r
 WHERE r.pipeline_id IN (SELECT v.pipeline_id FROM pipeline._visible_pipelines v)
    OR (SELECT pipeline._may('read', NULL));
GRANT SELECT ON pipeline.check_results TO PUBLIC;

-- Quarantine: one row per source row that failed a quarantine-severity
-- check, written in the run's transaction right after its load statement
-- (src/recorders/check_results.c). Visible with the pipeline's runs; a role
-- that sees the pipeline may edit "row" before a replay, and nothing else.
CREATE SEQUENCE pipeline.quarantine_id_seq;
CREATE TABLE pipeline.quarantine_row (
    quarantine_id       bigint PRIMARY KEY DEFAULT pg_catalog.nextval('pipeline.quarantine_id_seq'),
    pipeline_id         bigint NOT NULL,
    pipeline            text NOT NULL,
    run_id              bigint NOT NULL,
    key                 jsonb,
    incremental_value   text,
    "row"               jsonb NOT NULL,
    failed_checks       text[] NOT NULL,
    reason              text,
    status              text NOT NULL DEFAULT 'open'
                        CHECK (status OPERATOR(pg_catalog.=) ANY (ARRAY['open', 'replayed', 'discarded'])),
    quarantined_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    resolved_at         timestamptz
);
CREATE INDEX quarantine_row_open_idx
    ON pipeline.quarantine_row (pipeline_id, key) WHERE status OPERATOR(pg_catalog.=) 'open';
REVOKE ALL ON pipeline.quarantine_row FROM PUBLIC;
REVOKE ALL ON SEQUENCE pipeline.quarantine_id_seq FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('pipeline.quarantine_row', '');
SELECT pg_catalog.pg_extension_config_dump('pipeline.quarantine_id_seq', '');

CREATE VIEW pipeline.quarantine WITH (security_barrier) AS
SELECT q.quarantine_id,
       q.pipeline_id,
       q.pipeline,
       q.run_id,
       q.key,
       q.incremental_value,
       q."row",
       q.failed_checks,
       q.reason,
       q.status,
       q.quarantined_at,
       q.resolved_at
  FROM pipeline.quarantine_row q
 WHERE q.pipeline_id IN (SELECT v.pipeline_id FROM pipeline._visible_pipelines v)
    OR (SELECT pipeline._may('read', NULL));
GRANT SELECT, UPDATE ("row") ON pipeline.quarantine TO PUBLIC;

-- The row gate of the load statement (src/engine/row_checks.c): called only
-- for a row that failed a row-level check, with which of the checks it
-- failed (in the order of the run's row checks); counts them, raises for an error-severity check, keeps the row
-- for quarantine and returns false for a quarantine-severity one.
-- pipeline._checked_row(passed) wraps the gate (and, without
-- de-duplication, the row counter it follows: CASE WHEN
-- pipeline._window_row(...) THEN <gate> ELSE false END), so that the
-- planner takes it for a filter that keeps every row (selectivity 1) and
-- its estimates and plan do not change with the checks.
CREATE FUNCTION pipeline._check_row(failed boolean[], "row" jsonb, key jsonb, incremental_value text,
                                    quarantine_id bigint)
RETURNS boolean
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'pipeline_check_row';

CREATE FUNCTION pipeline._checked_row(passed boolean)
RETURNS boolean
LANGUAGE c VOLATILE STRICT COST 1
SUPPORT pipeline._window_row_support
AS 'MODULE_PATHNAME', 'pipeline_checked_row';
COMMENT ON FUNCTION pipeline._check_row(boolean[], jsonb, jsonb, text, bigint) IS 'internal: routes a source row that failed row checks';
COMMENT ON FUNCTION pipeline._checked_row(boolean) IS 'internal: the row gate of a load with row checks';

-- Runs count the rows they sent to quarantine. rows_read = rows_inserted +
-- rows_updated + rows_deleted + rows_unchanged + rows_quarantined +
-- rows_rejected (+ the older versions of a key that de-duplication drops).
ALTER TABLE pipeline.run_history ADD COLUMN rows_quarantined bigint NOT NULL DEFAULT 0;

CREATE OR REPLACE VIEW pipeline.runs WITH (security_barrier) AS
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
       h.attempt,
       h.error_detail,
       h.error_hint,
       h.rows_quarantined
  FROM pipeline.run_history h
 WHERE h.pipeline_id IN (SELECT v.pipeline_id FROM pipeline._visible_pipelines v)
    OR (SELECT pipeline._may('read', NULL));

-- Replay and discard of quarantined rows, and the acknowledgement of a
-- blocking check (src/api/checks_api.c, src/engine/replay.c).
CREATE FUNCTION pipeline.replay_quarantine(pipeline text, ids bigint[] DEFAULT NULL)
RETURNS bigint
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'pipeline_replay_quarantine';

CREATE FUNCTION pipeline.discard_quarantine(pipeline text, ids bigint[] DEFAULT NULL)
RETURNS bigint
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'pipeline_discard_quarantine';

CREATE FUNCTION pipeline.acknowledge(pipeline text, run_id bigint)
RETURNS bigint
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'pipeline_acknowledge';

-- Privacy (issue 11) ---------------------------------------------------------

-- Where personal data is (src/api/privacy.c): the class of a column, as its
-- owner declared it with pipeline.classify. A relation is named as lineage
-- names it, so that a declaration survives a dump and restore; relid lets
-- the DDL trigger follow a rename.
CREATE TABLE pipeline.classification (
    relation            text NOT NULL,
    relid               oid NOT NULL,
    column_name         name NOT NULL,
    class               text NOT NULL,
    classified_by       name NOT NULL,
    classified_at       timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (relation, column_name)
);
CREATE INDEX classification_relid_idx ON pipeline.classification (relid);
REVOKE ALL ON pipeline.classification FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('pipeline.classification', '');

CREATE FUNCTION pipeline.pii_classes()
RETURNS TABLE (class text, description text)
LANGUAGE c IMMUTABLE
AS 'MODULE_PATHNAME', 'pipeline_pii_classes';

CREATE FUNCTION pipeline.classify(relation regclass, column_name text, class text)
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'pipeline_classify';

CREATE FUNCTION pipeline.unclassify(relation regclass, column_name text)
RETURNS boolean
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'pipeline_unclassify';

CREATE FUNCTION pipeline.suggest_pii(relation regclass, sample_rows integer DEFAULT 1000)
RETURNS TABLE (column_name text, suggested_class text, match_rate numeric)
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'pipeline_suggest_pii';

-- Masks at load (src/catalog/masks.c): the masks option maps source columns
-- to what the load writes instead of their values. {} is none; the
-- canonical config leaves it out while empty, so that the config of a
-- pipeline without masks, and its hash, are what they were in 0.1.0.
ALTER TABLE pipeline.pipeline ADD COLUMN masks jsonb NOT NULL DEFAULT '{}'::jsonb;

-- Every relation and column holding personal data: the declared ones, and
-- every column derived from one through column lineage (pipelines and
-- views; a column that only decides a CASE branch is not derived from it),
-- with the declared column it comes from. masked tells whether a pipeline
-- on the way masks it (a token, a hash or a partial value is still
-- personal data, pseudonymous, so the column stays listed). A role sees the rows of the relations
-- it may read; those who may read every pipeline (pipeline_viewer and up)
-- see all of them.
CREATE VIEW pipeline.pii_columns WITH (security_barrier) AS
WITH RECURSIVE declared AS (
    SELECT c.relation, c.column_name::text AS column_name, c.class
      FROM pipeline.classification c
     WHERE pg_catalog.to_regclass(c.relation) IS NOT NULL
), masked AS (
    -- the columns a pipeline writes masked
    SELECT pg_catalog.quote_ident(p.target_schema) OPERATOR(pg_catalog.||) '.'
               OPERATOR(pg_catalog.||) pg_catalog.quote_ident(p.target_table) AS relation,
           m.key AS column_name
      FROM pipeline.pipeline p, pg_catalog.jsonb_object_keys(p.masks) AS m(key)
), edge AS (
    SELECT DISTINCT e.from_relation, e.from_column::text AS from_column,
           e.to_relation, e.to_column::text AS to_column,
           EXISTS (SELECT 1 FROM masked k
                    WHERE k.relation OPERATOR(pg_catalog.=) e.to_relation
                      AND k.column_name OPERATOR(pg_catalog.=) e.to_column::text) AS masks
      FROM pipeline.lineage_column_edge e
     WHERE e.how IS DISTINCT FROM 'condition'
), reach (relation, column_name, class, source_relation, source_column, masked, depth) AS (
    SELECT d.relation, d.column_name, d.class, d.relation, d.column_name, false, 0 FROM declared d
    UNION
    SELECT e.to_relation, e.to_column, r.class, r.source_relation, r.source_column,
           r.masked OR e.masks, r.depth OPERATOR(pg_catalog.+) 1
      FROM reach r
      JOIN edge e ON e.from_relation OPERATOR(pg_catalog.=) r.relation
                 AND e.from_column OPERATOR(pg_catalog.=) r.column_name
     WHERE r.depth OPERATOR(pg_catalog.<) 64
)
SELECT DISTINCT pg_catalog.to_regclass(r.relation) AS relation,
       r.column_name::name AS column_name,
       r.class,
       CASE WHEN r.depth OPERATOR(pg_catalog.=) 0 THEN 'declared' ELSE 'lineage' END AS origin,
       pg_catalog.to_regclass(r.source_relation) AS source_relation,
       r.source_column::name AS source_column,
       r.masked
  FROM reach r
 WHERE pg_catalog.to_regclass(r.relation) IS NOT NULL
   AND (r.depth OPERATOR(pg_catalog.=) 0
        OR NOT EXISTS (SELECT 1 FROM declared d
                        WHERE d.relation OPERATOR(pg_catalog.=) r.relation
                          AND d.column_name OPERATOR(pg_catalog.=) r.column_name
                          AND d.class OPERATOR(pg_catalog.=) r.class))
   AND (pg_catalog.has_table_privilege(pg_catalog.to_regclass(r.relation), 'SELECT')
        OR (SELECT pipeline._may('read', NULL)));
GRANT SELECT ON pipeline.pii_columns TO PUBLIC;

-- Masks at load (src/catalog/masks.c): the keys, and the functions the
-- load statement calls (the masks column is in the Privacy section above).

-- The keys of the tokenize and hash masks: 32 random bytes per version,
-- never changed once written. Only the extension's owner and
-- pipeline_admin read them (the mask functions read them as the owner,
-- inside a run's load only); they are
-- dumped with the extension, so that tokens stay the same after a restore.
CREATE TABLE pipeline.mask_key (
    name                text NOT NULL,
    version             integer NOT NULL,
    secret              bytea NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT pg_catalog.now(),
    created_by          name NOT NULL,
    PRIMARY KEY (name, version)
);
REVOKE ALL ON pipeline.mask_key FROM PUBLIC;
GRANT SELECT ON pipeline.mask_key TO pipeline_admin;
SELECT pg_catalog.pg_extension_config_dump('pipeline.mask_key', '');

-- The keys without their secrets.
CREATE VIEW pipeline.mask_keys AS
SELECT k.name, k.version, k.created_at, k.created_by,
       k.version OPERATOR(pg_catalog.=) (SELECT pg_catalog.max(l.version) FROM pipeline.mask_key l
                                          WHERE l.name OPERATOR(pg_catalog.=) k.name) AS current
  FROM pipeline.mask_key k;
GRANT SELECT ON pipeline.mask_keys TO PUBLIC;

CREATE FUNCTION pipeline.create_key(name text)
RETURNS integer
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'pipeline_create_key';

CREATE FUNCTION pipeline.rotate_key(name text)
RETURNS integer
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'pipeline_rotate_key';

-- What the load statement calls for a masked column.
CREATE FUNCTION pipeline._mask_token(value text, key text, version integer)
RETURNS text
LANGUAGE c STABLE STRICT PARALLEL RESTRICTED
AS 'MODULE_PATHNAME', 'pipeline_mask_token';
CREATE FUNCTION pipeline._mask_hash(value text, key text, version integer)
RETURNS text
LANGUAGE c STABLE STRICT PARALLEL RESTRICTED
AS 'MODULE_PATHNAME', 'pipeline_mask_hash';
CREATE FUNCTION pipeline._mask_partial(value text, keep_start integer, keep_end integer)
RETURNS text
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'pipeline_mask_partial';
COMMENT ON FUNCTION pipeline._mask_token(text, text, integer) IS 'internal: the tokenize mask, inside a run''s load only';
COMMENT ON FUNCTION pipeline._mask_hash(text, text, integer) IS 'internal: the hash mask, inside a run''s load only';
COMMENT ON FUNCTION pipeline._mask_partial(text, integer, integer) IS 'internal: the partial mask';
-- the month and year masks of a date (of a timestamp: date_trunc)
CREATE FUNCTION pipeline._mask_month(value date)
RETURNS date
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'pipeline_mask_month';
CREATE FUNCTION pipeline._mask_year(value date)
RETURNS date
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'pipeline_mask_year';
COMMENT ON FUNCTION pipeline._mask_month(date) IS 'internal: the month mask of a date';
COMMENT ON FUNCTION pipeline._mask_year(date) IS 'internal: the year mask of a date';

-- create_pipeline and alter_pipeline take masks, the options of the Data
-- quality section below (typed loads, schema drift, anomalies),
-- raw_retention (Privacy: raw retention), those of change capture, of
-- snapshot mode and of rollup mode (Modeling), distribution_column (Citus,
-- at the end) and parallel_workers (Scale, at the end), in the option
-- table's order: after mute_timeliness. A function's arguments cannot be
-- added in place.
DROP FUNCTION pipeline.create_pipeline(text, pg_catalog.regclass, text, text[], text, text, text,
    boolean, text, interval, bigint, boolean, text, jsonb, text, text[], integer, interval,
    interval, interval, interval, boolean, boolean);
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
    mute_timeliness     boolean     DEFAULT false,
    masks               jsonb       DEFAULT '{}'::jsonb,
    column_types        jsonb       DEFAULT '{}'::jsonb,
    on_conversion_error text        DEFAULT 'quarantine',
    on_schema_change    text        DEFAULT 'fail',
    anomaly_sensitivity double precision DEFAULT NULL,
    anomaly_min_runs    integer     DEFAULT 10,
    raw_retention       interval    DEFAULT NULL,
    capture             boolean     DEFAULT false,
    capture_retention   interval    DEFAULT NULL,
    snapshot_columns    jsonb       DEFAULT '{}'::jsonb,
    snapshot_check_columns text[]   DEFAULT NULL,
    snapshot_keep_deleted boolean   DEFAULT false,
    rollup              jsonb       DEFAULT NULL,
    allowed_lateness    interval    DEFAULT NULL,
    distribution_column text        DEFAULT NULL,
    parallel_workers    integer     DEFAULT 1)
RETURNS bigint
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'pipeline_create_pipeline';

DROP FUNCTION pipeline.alter_pipeline(text, text, pg_catalog.regclass, text, text[], text, text,
    text, boolean, text, interval, bigint, boolean, text, jsonb, text, text[], integer, interval,
    interval, interval, interval, boolean, boolean);
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
    mute_timeliness     boolean     DEFAULT NULL,
    masks               jsonb       DEFAULT NULL,
    column_types        jsonb       DEFAULT NULL,
    on_conversion_error text        DEFAULT NULL,
    on_schema_change    text        DEFAULT NULL,
    anomaly_sensitivity double precision DEFAULT NULL,
    anomaly_min_runs    integer     DEFAULT NULL,
    raw_retention       interval    DEFAULT NULL,
    capture             boolean     DEFAULT NULL,
    capture_retention   interval    DEFAULT NULL,
    snapshot_columns    jsonb       DEFAULT NULL,
    snapshot_check_columns text[]   DEFAULT NULL,
    snapshot_keep_deleted boolean   DEFAULT NULL,
    rollup              jsonb       DEFAULT NULL,
    allowed_lateness    interval    DEFAULT NULL,
    distribution_column text        DEFAULT NULL,
    parallel_workers    integer     DEFAULT NULL)
RETURNS bigint
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'pipeline_alter_pipeline';

-- Data quality: typed loads, schema drift, anomalies (issue 9) ---------------

-- The options of typed loads (src/catalog/column_types.c,
-- src/engine/typed_load.c), schema drift (src/engine/schema_drift.c) and
-- anomaly alerts (src/recorders/anomaly.c); create_pipeline and
-- alter_pipeline take them (Masks section). Each is left out of a
-- pipeline's config while it holds its default, so that a pipeline of
-- 0.1.0 keeps its config and hash.
ALTER TABLE pipeline.pipeline
    ADD COLUMN column_types jsonb NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN on_conversion_error text NOT NULL DEFAULT 'quarantine'
        CHECK (on_conversion_error OPERATOR(pg_catalog.=) ANY (ARRAY['quarantine', 'error'])),
    ADD COLUMN on_schema_change text NOT NULL DEFAULT 'fail'
        CHECK (on_schema_change OPERATOR(pg_catalog.=) ANY (ARRAY['fail', 'ignore',
               'append_new_columns', 'sync_all_columns'])),
    ADD COLUMN anomaly_sensitivity double precision
        CHECK (anomaly_sensitivity OPERATOR(pg_catalog.>) 0::double precision),
    ADD COLUMN anomaly_min_runs integer NOT NULL DEFAULT 10
        CHECK (anomaly_min_runs OPERATOR(pg_catalog.>=) 3 AND anomaly_min_runs OPERATOR(pg_catalog.<=) 1000);

-- Typed loads (src/engine/typed_load.c): the conversion gate of a load
-- that converts text staging row by row, after its first try with plain
-- casts met a value that does not convert. Called only by that load
-- statement; it keeps the rows whose values do not convert for quarantine
-- (with the row checks' rows) and returns false for them. PARALLEL UNSAFE:
-- it opens subtransactions.
CREATE FUNCTION pipeline._convert_row("row" jsonb, key jsonb, incremental_value text,
                                      quarantine_id bigint, "values" text[])
RETURNS boolean
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'pipeline_convert_row';
COMMENT ON FUNCTION pipeline._convert_row(jsonb, jsonb, text, bigint, text[]) IS 'internal: the conversion gate of a typed load from text staging';

-- Anomaly alerts --------------------------------------------------------------

-- A successful run unlike its pipeline's recent successful runs raises one
-- alert of kind 'anomaly' (src/recorders/anomaly.c, docs/quality.md), in
-- the run's transaction: observed names the most extreme metric and its
-- value, limit_value the baseline (median) and the score. One per run,
-- also here: a second one for the same run is a unique violation.
ALTER TABLE pipeline.alert_log
    DROP CONSTRAINT alert_log_kind_check,
    ADD CONSTRAINT alert_log_kind_check
        CHECK (kind OPERATOR(pg_catalog.=) ANY (ARRAY['freshness', 'timeliness', 'run_failed',
               'retries_exhausted', 'anomaly']));
CREATE UNIQUE INDEX alert_log_anomaly_run_idx ON pipeline.alert_log (run_id)
    WHERE kind OPERATOR(pg_catalog.=) 'anomaly';

-- Schema drift ----------------------------------------------------------------

-- Each pipeline's snapshot of its source's columns (name, type with typmod,
-- attnum; src/recorders/schema_history.c): "columns" as of its last
-- successful run (run_id; NULL: as registered, before any run), which each
-- run compares the source with before its load is planned
-- (src/engine/schema_drift.c) and rewrites in its own transaction when they
-- changed; "seen_columns" as last seen by a run or by the DDL trigger, which
-- compares the source with it when a command changes it. It is not
-- pipeline.relation_schema: that one is kept per relation rather than per
-- pipeline, the DDL trigger rewrites it (so it no longer says what the last
-- run loaded), and it has no attnum (a rename could not be told from a drop
-- and an add).
CREATE TABLE pipeline.source_snapshot (
    pipeline_id         bigint PRIMARY KEY
                        REFERENCES pipeline.pipeline (pipeline_id) ON DELETE CASCADE,
    relation            text NOT NULL,
    columns             jsonb NOT NULL,
    run_id              bigint,
    seen_columns        jsonb NOT NULL,
    recorded_at         timestamptz NOT NULL
);
REVOKE ALL ON pipeline.source_snapshot FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('pipeline.source_snapshot', '');

-- _source_columns(relation): a relation's columns as a snapshot keeps
-- them, [{"name", "type", "attnum"}] in attnum order (the type as
-- format_type spells it with its typmod); src/catalog/source_columns.c
-- reads them back.
CREATE FUNCTION pipeline._source_columns(relation pg_catalog.regclass)
RETURNS jsonb
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                        'name', a.attname,
                        'type', pg_catalog.format_type(a.atttypid, a.atttypmod),
                        'attnum', a.attnum) ORDER BY a.attnum), '[]'::jsonb)
      FROM pg_catalog.pg_attribute a
     WHERE a.attrelid OPERATOR(pg_catalog.=) relation
       AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
$$;
REVOKE ALL ON FUNCTION pipeline._source_columns(pg_catalog.regclass) FROM PUBLIC;
COMMENT ON FUNCTION pipeline._source_columns(pg_catalog.regclass) IS 'internal: the columns of a pipeline''s source, as schema drift keeps them';

-- the sources of existing pipelines as they are at the upgrade
INSERT INTO pipeline.source_snapshot (pipeline_id, relation, columns, seen_columns, recorded_at)
SELECT p.pipeline_id, r.relation, pipeline._source_columns(pg_catalog.to_regclass(r.relation)),
       pipeline._source_columns(pg_catalog.to_regclass(r.relation)), pg_catalog.now()
  FROM pipeline.pipeline p,
       LATERAL (SELECT pg_catalog.quote_ident(p.source_schema) OPERATOR(pg_catalog.||) '.'
                       OPERATOR(pg_catalog.||) pg_catalog.quote_ident(p.source_table)) AS r(relation)
 WHERE pg_catalog.to_regclass(r.relation) IS NOT NULL;

-- Every change of a pipeline's source that a run or the DDL trigger found,
-- and what was done about it: 'applied' (the target follows it), 'ignored'
-- (the run went on without following it), 'failed' (the run failed, and
-- whatever it had applied rolled back with it; written by the failed run's
-- recorder), or 'detected' (by the DDL trigger, as the command ran; no
-- run). old_column_name is the name a renamed column had. Kept after the
-- pipeline is dropped, as its runs are.
CREATE TABLE pipeline.schema_change (
    change_id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pipeline_id         bigint NOT NULL,
    pipeline            text NOT NULL,
    relation            text NOT NULL,
    column_name         text NOT NULL,
    old_column_name     text,
    change              text NOT NULL
                        CHECK (change OPERATOR(pg_catalog.=) ANY (ARRAY['added', 'dropped',
                               'retyped', 'renamed'])),
    old_type            text,
    new_type            text,
    action              text NOT NULL
                        CHECK (action OPERATOR(pg_catalog.=) ANY (ARRAY['applied', 'ignored',
                               'failed', 'detected'])),
    run_id              bigint,
    detected_at         timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE INDEX schema_change_pipeline_idx ON pipeline.schema_change (pipeline_id, change_id);
REVOKE ALL ON pipeline.schema_change FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('pipeline.schema_change', '');

CREATE VIEW pipeline.schema_history WITH (security_barrier) AS
SELECT s.change_id,
       s.pipeline_id,
       s.pipeline,
       s.relation,
       s.column_name,
       s.old_column_name,
       s.change,
       s.old_type,
       s.new_type,
       s.action,
       s.run_id,
       s.detected_at
  FROM pipeline.schema_change s
 WHERE s.pipeline_id IN (SELECT v.pipeline_id FROM pipeline._visible_pipelines v)
    OR (SELECT pipeline._may('read', NULL));
GRANT SELECT ON pipeline.schema_history TO PUBLIC;

-- Privacy: erasure (issue 11) ---------------------------------------------------

-- Which column identifies a data subject in a relation (src/api/privacy.c:
-- pipeline.declare_subject, undeclare_subject; audited), named as lineage
-- names relations, relid for the DDL trigger to follow a rename, as
-- pipeline.classification.
CREATE TABLE pipeline.subject_declaration (
    relation            text NOT NULL,
    relid               oid NOT NULL,
    column_name         name NOT NULL,
    subject             text NOT NULL,
    declared_by         name NOT NULL,
    declared_at         timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (relation, column_name)
);
CREATE INDEX subject_declaration_relid_idx ON pipeline.subject_declaration (relid);
REVOKE ALL ON pipeline.subject_declaration FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('pipeline.subject_declaration', '');

CREATE FUNCTION pipeline.declare_subject(relation regclass, column_name text, subject text)
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'pipeline_declare_subject';

CREATE FUNCTION pipeline.undeclare_subject(relation regclass, column_name text)
RETURNS boolean
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'pipeline_undeclare_subject';

-- Every column that identifies a subject: the declared ones, and every
-- column that receives their values through column lineage unchanged (a
-- copy or a cast, in a view or a pipeline's load; not a function of them,
-- not an aggregate). held_as says what the column holds of the value: the
-- value itself, its token or its hash (a pipeline on the way tokenizes or
-- hashes it with key "key"); another mask (partial, null, ...) leaves no
-- value to match and is not followed, nor is a second mask. Unfiltered, for
-- pipeline.forget and the runs (src/catalog/tombstones.c); users read
-- pipeline.subject_columns.
CREATE VIEW pipeline._subject_columns AS
WITH RECURSIVE declared AS (
    SELECT d.relation, d.column_name::text AS column_name, d.subject
      FROM pipeline.subject_declaration d
     WHERE pg_catalog.to_regclass(d.relation) IS NOT NULL
), mask AS (
    SELECT p.pipeline_id, m.key AS column_name,
           CASE pg_catalog.jsonb_typeof(m.value) WHEN 'string' THEN m.value OPERATOR(pg_catalog.#>>) '{}'
                ELSE m.value OPERATOR(pg_catalog.->>) 'method' END AS method,
           COALESCE(m.value OPERATOR(pg_catalog.->>) 'key', 'default') AS key
      FROM pipeline.pipeline p, pg_catalog.jsonb_each(p.masks) AS m
), edge AS (
    SELECT DISTINCT e.from_relation, e.from_column::text AS from_column,
           e.to_relation, e.to_column::text AS to_column, k.method, k.key
      FROM pipeline.lineage_column_edge e
      LEFT JOIN mask k ON e.edge_kind OPERATOR(pg_catalog.=) 'pipeline'
                      AND k.pipeline_id OPERATOR(pg_catalog.=) e.pipeline_id
                      AND k.column_name OPERATOR(pg_catalog.=) e.from_column::text
     WHERE e.transformation OPERATOR(pg_catalog.=) 'copied' OR e.how OPERATOR(pg_catalog.=) 'cast'
), reach (relation, column_name, subject, source_relation, source_column, held_as, key, depth) AS (
    SELECT d.relation, d.column_name, d.subject, d.relation, d.column_name, 'value'::text, NULL::text, 0
      FROM declared d
    UNION
    SELECT e.to_relation, e.to_column, r.subject, r.source_relation, r.source_column,
           CASE WHEN e.method IS NULL THEN r.held_as
                WHEN e.method OPERATOR(pg_catalog.=) 'tokenize' THEN 'token' ELSE 'hash' END,
           CASE WHEN e.method IS NULL THEN r.key ELSE e.key END,
           r.depth OPERATOR(pg_catalog.+) 1
      FROM reach r
      JOIN edge e ON e.from_relation OPERATOR(pg_catalog.=) r.relation
                 AND e.from_column OPERATOR(pg_catalog.=) r.column_name
     WHERE r.depth OPERATOR(pg_catalog.<) 64
       AND (e.method IS NULL
            OR (r.held_as OPERATOR(pg_catalog.=) 'value'
                AND e.method OPERATOR(pg_catalog.=) ANY (ARRAY['tokenize', 'hash'])))
)
SELECT DISTINCT pg_catalog.to_regclass(r.relation) AS relation,
       r.column_name::name AS column_name,
       r.subject,
       CASE WHEN r.depth OPERATOR(pg_catalog.=) 0 THEN 'declared' ELSE 'lineage' END AS origin,
       pg_catalog.to_regclass(r.source_relation) AS source_relation,
       r.source_column::name AS source_column,
       r.held_as,
       r.key
  FROM reach r
 WHERE pg_catalog.to_regclass(r.relation) IS NOT NULL
   AND (r.depth OPERATOR(pg_catalog.=) 0
        OR NOT EXISTS (SELECT 1 FROM declared d
                        WHERE d.relation OPERATOR(pg_catalog.=) r.relation
                          AND d.column_name OPERATOR(pg_catalog.=) r.column_name
                          AND d.subject OPERATOR(pg_catalog.=) r.subject));
REVOKE ALL ON pipeline._subject_columns FROM PUBLIC;

-- The same, as a role may see it: as pipeline.pii_columns, the rows of the
-- relations it may read, and all of them for those who may read every
-- pipeline (pipeline_viewer and up).
CREATE VIEW pipeline.subject_columns WITH (security_barrier) AS
SELECT s.relation, s.column_name, s.subject, s.origin, s.source_relation, s.source_column,
       s.held_as, s.key
  FROM pipeline._subject_columns s
 WHERE pg_catalog.has_table_privilege(s.relation, 'SELECT')
    OR (SELECT pipeline._may('read', NULL));
GRANT SELECT ON pipeline.subject_columns TO PUBLIC;

-- The key of the erasure tombstones and of the value hashes that requests
-- and audit entries show instead of a value: 32 random bytes, made by the
-- first pipeline.forget (src/catalog/tombstones.c), never changed (a
-- tombstone could not be recomputed: the values are gone). Read by the
-- extension's owner only; dumped with the extension, so that tombstones
-- still match after a restore.
CREATE TABLE pipeline.erasure_key (
    key_id              integer PRIMARY KEY CHECK (key_id OPERATOR(pg_catalog.=) 1),
    secret              bytea NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT pg_catalog.now()
);
REVOKE ALL ON pipeline.erasure_key FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('pipeline.erasure_key', '');

-- Erasure requests: one per call of pipeline.forget, dry runs included,
-- with the keyed hash of the value (never the value) and what was erased
-- (or, in a dry run, would be) per relation.
CREATE TABLE pipeline.erasure_request (
    request_id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subject             text NOT NULL,
    value_hash          text NOT NULL,
    status              text NOT NULL
                        CHECK (status OPERATOR(pg_catalog.=) ANY (ARRAY['erased', 'dry_run'])),
    relations           jsonb NOT NULL,
    rows_erased         bigint NOT NULL,
    requested_by        name NOT NULL,
    requested_at        timestamptz NOT NULL DEFAULT pg_catalog.now()
);
REVOKE ALL ON pipeline.erasure_request FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('pipeline.erasure_request', '');

-- The requests, to those who may read every pipeline (pipeline_viewer and
-- up, superusers): a request names relations of any owner.
CREATE VIEW pipeline.erasure_requests WITH (security_barrier) AS
SELECT r.request_id, r.subject, r.value_hash, r.status, r.relations, r.rows_erased,
       r.requested_by, r.requested_at
  FROM pipeline.erasure_request r
 WHERE (SELECT pipeline._may('read', NULL));
GRANT SELECT ON pipeline.erasure_requests TO PUBLIC;

-- Erasure tombstones: for each forgotten (subject, value), the keyed hashes
-- (HMAC-SHA-256 with the erasure key) of the subject and each form the value
-- takes in a column (the value, its tokens and hashes under every version
-- of the keys on the way). A run, a replay or a batch whose source holds a
-- subject's column checks each row against them inside its load statement
-- (pipeline._unforgotten, src/engine/erasure_gate.c): a match is skipped
-- and counted in rows_forgotten.
CREATE TABLE pipeline.erasure_tombstone (
    subject             text NOT NULL,
    digest              bytea NOT NULL,
    request_id          bigint NOT NULL,
    PRIMARY KEY (subject, digest)
);
REVOKE ALL ON pipeline.erasure_tombstone FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('pipeline.erasure_tombstone', '');

CREATE FUNCTION pipeline.forget(subject text, value text, dry_run boolean DEFAULT false)
RETURNS TABLE (relation text, rows_erased bigint)
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'pipeline_forget';

-- The erasure gate of the load statement: false (the row is skipped, and
-- counted) when one of the row's subject values is tombstoned; only while
-- the engine runs a load statement (55000 otherwise).
CREATE FUNCTION pipeline._unforgotten("values" text[], quarantine_id bigint)
RETURNS boolean
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'pipeline_unforgotten';
COMMENT ON FUNCTION pipeline._unforgotten(text[], bigint) IS 'internal: the erasure gate of a load whose source holds a forgotten subject';

-- Runs count the rows they skipped because they carry a forgotten subject:
-- rows_read = rows_inserted + rows_updated + rows_deleted + rows_unchanged +
-- rows_quarantined + rows_rejected + rows_forgotten (+ the older versions of
-- a key that de-duplication drops).
ALTER TABLE pipeline.run_history ADD COLUMN rows_forgotten bigint NOT NULL DEFAULT 0;

CREATE OR REPLACE VIEW pipeline.runs WITH (security_barrier) AS
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
       h.attempt,
       h.error_detail,
       h.error_hint,
       h.rows_quarantined,
       h.rows_forgotten
  FROM pipeline.run_history h
 WHERE h.pipeline_id IN (SELECT v.pipeline_id FROM pipeline._visible_pipelines v)
    OR (SELECT pipeline._may('read', NULL));

-- Scale: idle runs and initial loads (issue 12) ---

-- A run that finds nothing new (the high-water mark is not past the
-- watermark) writes no run record and no audit entry: it counts itself on
-- its pipeline's watermark row, which the run has locked anyway
-- (src/recorders/run_outcome.c, RecordIdleRun; docs/exactly-once.md):
-- idle_runs counts such runs since the pipeline was created, and
-- last_idle_run_id and last_idle_at are the id pipeline.run returned for
-- the latest one and when it finished. A run whose start was already
-- recorded (a background worker's, a batched run), one that took longer
-- than the pipeline's timeliness limit, one that found rows at infinity,
-- and every run while OpenLineage delivery is on are recorded in full as
-- before.
ALTER TABLE pipeline.watermark
    ADD COLUMN idle_runs bigint NOT NULL DEFAULT 0,
    ADD COLUMN last_idle_run_id bigint,
    ADD COLUMN last_idle_at timestamptz;

-- The latest run of a pipeline is its latest record or its latest idle
-- run, whichever has the greater id (run ids come from one sequence).
CREATE OR REPLACE VIEW pipeline.pipelines WITH (security_barrier) AS
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
       CASE WHEN w.last_idle_run_id OPERATOR(pg_catalog.>) COALESCE(r.run_id, 0)
            THEN w.last_idle_run_id ELSE r.run_id END AS last_run_id,
       CASE WHEN w.last_idle_run_id OPERATOR(pg_catalog.>) COALESCE(r.run_id, 0)
            THEN 'succeeded' ELSE r.status END AS last_run_status,
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
         LIMIT 1) r ON true
 WHERE pipeline._may('read', p.owner::pg_catalog.oid);

-- An idle run is a successful run that took no longer than the timeliness
-- limit (a longer one is recorded in full), so when it is the latest run
-- it is the last success, ends a series of failures and is timely.
CREATE OR REPLACE VIEW pipeline.status WITH (security_barrier) AS
SELECT p.pipeline_id AS id,
       p.name,
       p.active,
       CASE WHEN idle.latest THEN w.last_idle_run_id ELSE last.run_id END AS last_run_id,
       CASE WHEN idle.latest THEN 'succeeded' ELSE last.status END AS last_run_status,
       CASE WHEN idle.latest THEN w.last_idle_at ELSE last.finished_at END AS last_run_finished_at,
       GREATEST(ok.finished_at, w.last_idle_at) AS last_success_at,
       changed.finished_at AS last_change_at,
       (SELECT pg_catalog.count(*) FROM pipeline.run_history f
         WHERE f.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
           AND f.status OPERATOR(pg_catalog.=) 'failed'
           AND f.run_id OPERATOR(pg_catalog.>) GREATEST(ok.run_id, w.last_idle_run_id, 0)) AS consecutive_failures,
       lag.lag AS source_ahead_by,
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
            WHEN idle.latest THEN 'ok'
            WHEN COALESCE(last.finished_at, pg_catalog.now())
                 OPERATOR(pg_catalog.-) last.started_at OPERATOR(pg_catalog.>) p.timeliness
            THEN 'breached'
            ELSE 'ok' END AS timeliness_state,
       lag.reason AS source_lag_reason,
       COALESCE(w.idle_runs, 0) AS idle_runs,
       w.last_idle_at
  FROM pipeline.pipeline p
  LEFT JOIN pipeline.watermark w ON w.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
  CROSS JOIN LATERAL pipeline.source_lag_detail(p.pipeline_id) lag
  LEFT JOIN LATERAL (
        SELECT h.run_id, h.status, h.started_at, h.finished_at FROM pipeline.run_history h
         WHERE h.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
           AND h.status OPERATOR(pg_catalog.<>) 'skipped'
         ORDER BY h.run_id DESC LIMIT 1) last ON true
  CROSS JOIN LATERAL (
        SELECT COALESCE(w.last_idle_run_id OPERATOR(pg_catalog.>) COALESCE(last.run_id, 0), false)
               AS latest) idle
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
         ORDER BY h.run_id DESC LIMIT 1) changed ON true
 WHERE pipeline._may('read', p.owner::pg_catalog.oid);

-- The initial load (src/engine/initial_load.c, docs/exactly-once.md): a
-- target the pipeline creates gets its primary key at once, but the index
-- on the incremental column only after the first run that loads rows has
-- written them, which builds it in one sort. target_index_pending: the
-- pipeline still owes its target that index. Targets created before 0.2.0
-- have it already.
ALTER TABLE pipeline.watermark
    ADD COLUMN target_index_pending boolean NOT NULL DEFAULT false;

-- Privacy: raw retention (issue 11) -------------------------------------------

-- raw_retention: source rows older than it, and read by every pipeline that
-- reads the source, are purged by the launcher in small batches
-- (src/engine/retention.c). create_pipeline and alter_pipeline take it
-- (Masks section); left out of a pipeline's config while NULL.
ALTER TABLE pipeline.pipeline
    ADD COLUMN raw_retention interval
        CHECK (raw_retention OPERATOR(pg_catalog.>) '0'::interval);

-- What each run read, for raw retention (src/catalog/read_windows.c): the
-- window of the incremental column a run loaded (lower exclusive, NULL:
-- none; upper inclusive; canonical text of the column's type) and the snapshot
-- captured before its load statement, with subtransactions and the run's
-- own transaction in progress (src/common/read_snapshot.c). Written in the
-- transaction that commits the window's data; a batched run's upper bound
-- moves with each batch. A source row lying in a window whose snapshot saw
-- its xmin was read by the run. Dropped with the pipeline (by
-- drop_pipeline: no foreign key, so that a run never waits on a concurrent
-- change of its pipeline's row), when its source or incremental column
-- changes, with the run history it is as old as, and below a frontier
-- (below). Not dumped: transaction ids mean nothing in another cluster, so
-- after a restore nothing counts as read until runs read it again.
CREATE TABLE pipeline.read_window (
    pipeline_id         bigint NOT NULL,
    run_id              bigint NOT NULL,
    column_name         name NOT NULL,
    column_type         oid NOT NULL,
    lower_bound         text,
    upper_bound         text NOT NULL,
    read_snapshot       pg_catalog.pg_snapshot NOT NULL,
    recorded_at         timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (pipeline_id, run_id)
);
CREATE INDEX read_window_recorded_idx ON pipeline.read_window (recorded_at);
REVOKE ALL ON pipeline.read_window FROM PUBLIC;

-- Per pipeline with raw_retention: the value of its incremental column
-- below which the rows left in its source can never be purged (some reader
-- did not read them, and no reader's next run starts below it). Purges
-- look only above it. Derived, not dumped.
CREATE TABLE pipeline.retention_frontier (
    pipeline_id         bigint PRIMARY KEY,
    column_name         name NOT NULL,
    column_type         oid NOT NULL,
    frontier            text NOT NULL,
    updated_at          timestamptz NOT NULL DEFAULT pg_catalog.now()
);
REVOKE ALL ON pipeline.retention_frontier FROM PUBLIC;

-- One row per purge that deleted rows (rows_deleted, the bound they were
-- older than, the pipelines that had all read them, what triggered it),
-- and one per reason a pipeline's purges could not run (skipped; written
-- again only when the reason changes). Kept after the pipeline is dropped,
-- as its runs are, and dumped with its sequence (src/recorders/retention_log.c).
CREATE SEQUENCE pipeline.retention_purge_id_seq;
CREATE TABLE pipeline.retention_purge (
    purge_id            bigint PRIMARY KEY
                        DEFAULT pg_catalog.nextval('pipeline.retention_purge_id_seq'::pg_catalog.regclass),
    pipeline_id         bigint NOT NULL,
    pipeline            text NOT NULL,
    relation            text NOT NULL,
    rows_deleted        bigint NOT NULL,
    bound               text,
    readers             text[] NOT NULL,
    skipped             text,
    triggered_by        text NOT NULL
                        CHECK (triggered_by OPERATOR(pg_catalog.=) ANY (ARRAY['launcher', 'manual'])),
    purged_at           timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp()
);
CREATE INDEX retention_purge_pipeline_idx ON pipeline.retention_purge (pipeline_id, purge_id);
REVOKE ALL ON pipeline.retention_purge FROM PUBLIC;
REVOKE ALL ON SEQUENCE pipeline.retention_purge_id_seq FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('pipeline.retention_purge', '');
SELECT pg_catalog.pg_extension_config_dump('pipeline.retention_purge_id_seq', '');

CREATE VIEW pipeline.retention_log WITH (security_barrier) AS
SELECT r.purge_id,
       r.pipeline_id,
       r.pipeline,
       r.relation,
       r.rows_deleted,
       r.bound,
       r.readers,
       r.skipped,
       r.triggered_by,
       r.purged_at
  FROM pipeline.retention_purge r
 WHERE r.pipeline_id IN (SELECT v.pipeline_id FROM pipeline._visible_pipelines v)
    OR (SELECT pipeline._may('read', NULL));
GRANT SELECT ON pipeline.retention_log TO PUBLIC;

-- _purge_raw(pipeline): one purge now, as the launcher makes them (at most
-- pipeline.retention_batch_rows rows); the rows deleted. Who may run the
-- pipeline may call it.
CREATE FUNCTION pipeline._purge_raw(pipeline text)
RETURNS bigint
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'pipeline_purge_raw';
COMMENT ON FUNCTION pipeline._purge_raw(text) IS 'one purge of a pipeline''s raw source rows, as the launcher makes them';

-- What a purge's DELETE asks of each row: its xmin and the value of each
-- reader's incremental column; answers only inside a purge (55000 otherwise).
CREATE FUNCTION pipeline._raw_loaded(xmin xid, VARIADIC reader_values "any")
RETURNS boolean
LANGUAGE c VOLATILE PARALLEL RESTRICTED
AS 'MODULE_PATHNAME', 'pipeline_raw_loaded';
COMMENT ON FUNCTION pipeline._raw_loaded(xid, "any") IS 'internal: whether every reader read a source row, inside a purge only';

-- Modeling: change capture (issue 10) -----------------------------------------

-- The options of a pipeline over a captured table (src/api/capture_api.c):
-- capture (its source is the capture's feed, its incremental column the
-- change id, its delete column the feed's _deleted) and capture_retention
-- (how long captured changes are kept after every consumer loaded them);
-- create_pipeline and alter_pipeline take them (Masks section). Left out of
-- a pipeline's config while at their default.
ALTER TABLE pipeline.pipeline
    ADD COLUMN capture boolean NOT NULL DEFAULT false,
    ADD COLUMN capture_retention interval
        CHECK (capture_retention OPERATOR(pg_catalog.>) '0'::interval);

-- One row per captured table (docs/capture.md). relation is the table whose
-- INSERT, UPDATE, DELETE and TRUNCATE its triggers write to capture_table
-- (same schema, <table>__changes: the change id, the operation, when, the
-- old key of a key-changing update, the row's values); feed is the view
-- over it that pipelines read (<table>__changes_feed: one row per change,
-- plus a deletion of the old key for a key-changing update). key_columns is
-- the table's primary key when capture started. The purge counters say what
-- the launcher (or pipeline.purge_capture) deleted of the changes every
-- consumer had loaded. regclass columns follow renames and dump/restore.
CREATE TABLE pipeline.change_capture (
    relation            pg_catalog.regclass PRIMARY KEY,
    capture_table       pg_catalog.regclass NOT NULL UNIQUE,
    feed                pg_catalog.regclass NOT NULL UNIQUE,
    key_columns         name[] NOT NULL,
    started_at          timestamptz NOT NULL DEFAULT pg_catalog.now(),
    started_by          name NOT NULL,
    purged_changes      bigint NOT NULL DEFAULT 0,
    purged_through      bigint NOT NULL DEFAULT 0,
    purges              bigint NOT NULL DEFAULT 0,
    last_purge_at       timestamptz
);
REVOKE ALL ON pipeline.change_capture FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('pipeline.change_capture', '');

-- What is captured, seen by the roles that may read the table (or its
-- changes) and by the team roles; consumers are the pipelines that read
-- the capture table, whose watermarks bound the purge.
CREATE VIEW pipeline.captures WITH (security_barrier) AS
SELECT c.relation,
       c.capture_table,
       c.feed,
       c.key_columns,
       c.started_at,
       c.started_by,
       (SELECT pg_catalog.array_agg(p.name ORDER BY p.name)
          FROM pipeline.source_relation r
          JOIN pipeline.pipeline p ON p.pipeline_id OPERATOR(pg_catalog.=) r.pipeline_id
         WHERE r.relid OPERATOR(pg_catalog.=) c.capture_table::pg_catalog.oid) AS consumers,
       c.purged_changes,
       c.purged_through,
       c.purges,
       c.last_purge_at
  FROM pipeline.change_capture c
 WHERE pg_catalog.has_table_privilege(c.relation::pg_catalog.oid, 'SELECT')
    OR pg_catalog.has_table_privilege(c.capture_table::pg_catalog.oid, 'SELECT')
    OR (SELECT pipeline._may('read', NULL));
GRANT SELECT ON pipeline.captures TO PUBLIC;

-- capture(relation) starts capturing a table and returns its capture table;
-- uncapture(relation) stops it and drops what capture created;
-- purge_capture(relation) deletes now what the launcher would purge, and
-- returns how many changes. The table's owner (a member of it) or
-- pipeline_admin; each is audited.
CREATE FUNCTION pipeline.capture(relation pg_catalog.regclass)
RETURNS pg_catalog.regclass
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'pipeline_capture';
CREATE FUNCTION pipeline.uncapture(relation pg_catalog.regclass)
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'pipeline_uncapture';
CREATE FUNCTION pipeline.purge_capture(relation pg_catalog.regclass)
RETURNS bigint
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'pipeline_purge_capture';
COMMENT ON FUNCTION pipeline.capture(pg_catalog.regclass) IS 'start capturing every change of a table into its capture table';
COMMENT ON FUNCTION pipeline.uncapture(pg_catalog.regclass) IS 'stop capturing a table; drops its capture table and feed';
COMMENT ON FUNCTION pipeline.purge_capture(pg_catalog.regclass) IS 'delete the captured changes every consumer has loaded (past their retention)';

-- The row trigger (and the TRUNCATE trigger) that writes a change, in C
-- (src/engine/capture_trigger.c); created by capture() only.
CREATE FUNCTION pipeline._capture_change()
RETURNS trigger
LANGUAGE c
AS 'MODULE_PATHNAME', 'pipeline_capture_change';
REVOKE ALL ON FUNCTION pipeline._capture_change() FROM PUBLIC;
COMMENT ON FUNCTION pipeline._capture_change() IS 'internal: writes a captured table''s changes to its capture table';

-- A captured table's capture table and feed follow its columns (added,
-- retyped, renamed, dropped), and a capture whose table or capture table
-- was dropped is forgotten (src/engine/capture_ddl.c). Named so that it
-- fires before pipeline_lineage_ddl, which then sees the new feed.
CREATE FUNCTION pipeline._capture_ddl()
RETURNS event_trigger
LANGUAGE c
AS 'MODULE_PATHNAME', 'pipeline_capture_ddl';
REVOKE ALL ON FUNCTION pipeline._capture_ddl() FROM PUBLIC;
CREATE EVENT TRIGGER pipeline_capture_ddl ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE', 'DROP TABLE', 'DROP VIEW', 'DROP SCHEMA', 'DROP OWNED')
    EXECUTE FUNCTION pipeline._capture_ddl();

-- Lineage shows a captured table upstream of its capture table: an edge of
-- kind 'capture' (src/recorders/lineage_analysis.c), and a copied column
-- edge ("how" capture) for each column the capture table keeps.
ALTER TABLE pipeline.lineage_edge DROP CONSTRAINT lineage_edge_edge_kind_check,
    ADD CONSTRAINT lineage_edge_edge_kind_check
        CHECK (edge_kind OPERATOR(pg_catalog.=) ANY (ARRAY['pipeline', 'view', 'capture']));
ALTER TABLE pipeline.lineage_column_edge DROP CONSTRAINT lineage_column_edge_edge_kind_check,
    ADD CONSTRAINT lineage_column_edge_edge_kind_check
        CHECK (edge_kind OPERATOR(pg_catalog.=) ANY (ARRAY['pipeline', 'view', 'capture']));

-- Modeling: snapshot mode (issue 10) ---

-- mode => 'snapshot' keeps every version of each key in the target, with
-- valid_from, valid_to and is_current (docs/modeling.md). Its options:
-- the names of those columns (snapshot_columns), the columns whose change
-- makes a new version (snapshot_check_columns; NULL: every one) and whether
-- a deleted key keeps its version open (snapshot_keep_deleted);
-- create_pipeline and alter_pipeline take them (Masks section). Each is
-- left out of a pipeline's config while it holds its default.
ALTER TABLE pipeline.pipeline
    DROP CONSTRAINT pipeline_mode_check,
    ADD CONSTRAINT pipeline_mode_check
        CHECK (mode OPERATOR(pg_catalog.=) ANY (ARRAY['merge', 'append', 'full', 'snapshot'])),
    ADD COLUMN snapshot_columns jsonb NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN snapshot_check_columns name[],
    ADD COLUMN snapshot_keep_deleted boolean NOT NULL DEFAULT false;

-- The counter of a snapshot pipeline's MERGE (src/engine/counters.c): per
-- version it writes, the kept source rows it applies and whether a delete
-- closed it; returns is_current. Called only by that statement.
CREATE FUNCTION pipeline._snapshot_row(applied integer, closed boolean, is_current boolean)
RETURNS boolean
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'pipeline_snapshot_row';
COMMENT ON FUNCTION pipeline._snapshot_row(integer, boolean, boolean) IS 'internal: counts the versions a snapshot pipeline''s load writes';

-- pipeline.as_of(target, at): the versions of a history valid at a point
-- in time, read as the caller; the caller names the columns it wants in a
-- column definition list: SELECT * FROM pipeline.as_of('core.customer_history',
-- '2024-05-01') AS h(customer_id integer, name text)
-- (src/catalog/snapshot_columns.c).
CREATE FUNCTION pipeline.as_of(target pg_catalog.regclass, at timestamptz)
RETURNS SETOF record
LANGUAGE c STABLE STRICT
AS 'MODULE_PATHNAME', 'pipeline_as_of';
COMMENT ON FUNCTION pipeline.as_of(pg_catalog.regclass, timestamptz) IS 'the versions of a snapshot pipeline''s history valid at a point in time';

-- Modeling: rollup mode (issue 10) -------------------------------------------

-- mode => 'rollup': the aggregated stage, recomputed cell by cell
-- (src/engine/rollup*.c, docs/modeling.md#rollup). rollup says what it
-- aggregates (src/catalog/rollup_spec.c), allowed_lateness when a bucket
-- closes; create_pipeline and alter_pipeline take them (Masks section);
-- both are left out of a pipeline's config while NULL.
ALTER TABLE pipeline.pipeline DROP CONSTRAINT pipeline_mode_check;
ALTER TABLE pipeline.pipeline ADD CONSTRAINT pipeline_mode_check
    CHECK (mode OPERATOR(pg_catalog.=) ANY (ARRAY['merge', 'append', 'full', 'snapshot', 'rollup']));
ALTER TABLE pipeline.pipeline
    ADD COLUMN rollup jsonb,
    ADD COLUMN allowed_lateness interval
        CHECK (allowed_lateness OPERATOR(pg_catalog.>) '0'::interval);

-- The statement triggers a rollup puts on its source (insert, update,
-- delete, truncate; the pipeline's id as argument): each writes the cells
-- its statement's rows left and arrived in to the rollup's dirty-cells
-- table, as the pipeline owner, in the writer's transaction.
CREATE FUNCTION pipeline._rollup_capture()
RETURNS trigger
LANGUAGE c
AS 'MODULE_PATHNAME', 'pipeline_rollup_capture';
COMMENT ON FUNCTION pipeline._rollup_capture() IS 'internal: records the dirty cells of a rollup''s source';

-- What a rollup's statements hand over while they run (refused, 55000,
-- anywhere else): each entry taken from the dirty-cells table (a dirty
-- cell, counted and recomputed; a late change, counted and kept for the
-- quarantine; a TRUNCATE), each cell of a full recompute
-- (its rows and latest time), each cell recomputed to what it was.
CREATE FUNCTION pipeline._rollup_change(change "char", at anyelement, changed bigint,
                                        "row" jsonb, cell jsonb)
RETURNS boolean
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'pipeline_rollup_change';
CREATE FUNCTION pipeline._rollup_cell(rows bigint, at anyelement)
RETURNS boolean
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'pipeline_rollup_cell';
CREATE FUNCTION pipeline._rollup_unchanged()
RETURNS boolean
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'pipeline_rollup_unchanged';
COMMENT ON FUNCTION pipeline._rollup_change("char", anyelement, bigint, jsonb, jsonb) IS 'internal: takes one change of a rollup''s dirty cells, inside its run only';
COMMENT ON FUNCTION pipeline._rollup_cell(bigint, anyelement) IS 'internal: notes a cell of a rollup''s full recompute, inside its run only';
COMMENT ON FUNCTION pipeline._rollup_unchanged() IS 'internal: counts a rollup cell recomputed unchanged, inside its run only';

-- Modeling: backfill (issue 10) ---

-- backfill(name, from_value, to_value, batch_rows): re-applies the source
-- rows whose incremental value lies in [from_value, to_value] (as text of
-- the column's type, both included), of each key its newest version in the
-- source, never over a newer version in the target, in committed batches
-- (batch_rows, else the pipeline's, else one; one per value of the
-- partition_column when it has one), recorded as one run triggered by
-- 'backfill'; the watermark stays where it is (src/engine/backfill.c).
-- Who may run the pipeline may not backfill it: the action is 'backfill'
-- (src/policy/actions.c).
CREATE PROCEDURE pipeline.backfill(name text, from_value text, to_value text,
                                   batch_rows bigint DEFAULT NULL)
LANGUAGE c
AS 'MODULE_PATHNAME', 'pipeline_backfill';
COMMENT ON PROCEDURE pipeline.backfill(text, text, text, bigint) IS 're-applies the source rows of a range of the incremental column, in committed batches';

-- backfill_plan(name, from_value, to_value): the dry run: how many rows of
-- each kind a backfill of the range would read, insert, update, delete,
-- leave unchanged and reject now, without writing (row checks not
-- evaluated).
CREATE FUNCTION pipeline.backfill_plan(name text, from_value text, to_value text)
RETURNS TABLE (kind text, rows bigint)
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'pipeline_backfill_plan';
COMMENT ON FUNCTION pipeline.backfill_plan(text, text, text) IS 'what pipeline.backfill would do to a range, counted without writing';

-- Scale: the launcher's pass over a large registry (issue 12) ---

-- Each pass asks which pipelines have a freshness or timeliness limit or a
-- raw retention; few do, so these partial indexes make that an index probe
-- instead of a scan of every registered pipeline (a pass over 10,000 idle
-- pipelines went from 11.7 ms to 1.8).
CREATE INDEX pipeline_freshness_idx ON pipeline.pipeline (pipeline_id)
    WHERE freshness IS NOT NULL;
CREATE INDEX pipeline_timeliness_idx ON pipeline.pipeline (pipeline_id)
    WHERE timeliness IS NOT NULL;
CREATE INDEX pipeline_raw_retention_idx ON pipeline.pipeline (pipeline_id)
    WHERE raw_retention IS NOT NULL;

-- Citus (issue 12) -----------------------------------------------------------

-- distribution_column: the column a target that create_target creates over
-- a Citus table is distributed on (src/engine/distributed_load.c,
-- docs/citus.md); NULL: the source's distribution column. create_pipeline
-- and alter_pipeline take it (Masks section); left out of a pipeline's
-- config while NULL.
ALTER TABLE pipeline.pipeline ADD COLUMN distribution_column name;

-- Scale: parallel loads (issue 12) -------------------------------------------

-- parallel_workers: a run into a target partitioned by its partition_column
-- loads its window in that many part workers, each a set of the target's
-- partitions, each in a prepared transaction ('pg_pipeline:<pipeline
-- id>:<run id>:<part>') that commits after the run's own transaction, or
-- rolls back (src/engine/parallel_load.c, docs/parallel.md). 1 loads
-- serially; left out of a pipeline's config while 1. create_pipeline and
-- alter_pipeline take it after distribution_column (Masks section).
ALTER TABLE pipeline.pipeline
    ADD COLUMN parallel_workers integer NOT NULL DEFAULT 1
        CHECK (parallel_workers OPERATOR(pg_catalog.>=) 1 AND parallel_workers OPERATOR(pg_catalog.<=) 32);

-- Scale: lineage after DDL (issue 12) ----------------------------------------

-- A dropped relation's pipelines are refreshed by an sql_drop trigger, from
-- the objects the command dropped (whatever its tag: DROP OWNED, DROP
-- EXTENSION ... CASCADE too), instead of pipeline._lineage_ddl probing
-- pg_class for every lineage edge at the end of every DDL
-- (src/recorders/lineage_ddl.c); the edges of a relation are found by its
-- oid from either end.
CREATE INDEX lineage_edge_to_idx ON pipeline.lineage_edge (to_relid);

CREATE FUNCTION pipeline._lineage_drop()
RETURNS event_trigger
LANGUAGE c
AS 'MODULE_PATHNAME', 'pipeline_lineage_drop';
COMMENT ON FUNCTION pipeline._lineage_drop() IS 'internal: refreshes the lineage of the pipelines whose edges name a relation just dropped';

CREATE EVENT TRIGGER pipeline_lineage_drop ON sql_drop
    EXECUTE FUNCTION pipeline._lineage_drop();

-- Scale: one scan for two partitions of a parallel run's part (issue 12) -----

-- The marker of a part's window scan: pipeline._partition_rows(these, next)
-- is these (the row is the partition's), the partition's constraint; where
-- a part loads a next partition, next is that one's, and a planner hook
-- keeps the rows it takes, sorted, for the next statement to read instead
-- of the source (src/engine/partition_rows.c, docs/parallel.md).
CREATE FUNCTION pipeline._partition_rows(these boolean, next boolean)
RETURNS boolean
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'pipeline_partition_rows';
COMMENT ON FUNCTION pipeline._partition_rows(boolean, boolean) IS 'internal: the partition constraint of a parallel run''s scan, and the next partition''s, whose rows the scan keeps';
