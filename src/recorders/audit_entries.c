/*-------------------------------------------------------------------------
 *
 * src/recorders/audit_entries.c
 *
 * The audit entries of registry changes and runs: AuditRegistryChange
 * builds the entry of a create, alter, drop, pause, resume, reset or
 * schedule with the configuration (or state) before and after, which
 * RegistryChanged (registry_changes.c) computed; RecordRunStart,
 * RecordRunEnd and RecordSkippedRunAudit queue a run's entries in its
 * transaction, RecordRunEnd also writes the run's lineage row
 * (pipeline.run_io: what it read and wrote, with the config version it ran
 * with); AuditFailedRun hands a failed run's entries and run_io row to the
 * recorder worker (audit_autonomous.c), since the run's own transaction
 * rolls back. The config version is read by the callers, so that the audit
 * log calls neither versions nor lineage.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/elog.h"
#include "utils/timestamp.h"

#include "pipeline/recorders/audit.h"
#include "audit_internal.h"

static SPIPlanPtr run_io_insert_plan = NULL;

/* the batched run whose start entry is already written (committed apart) */
static int64 started_run_id = 0;

/* CountsJson spells a run's counts as JSON members (no braces) */
static void
CountsJson(StringInfo buf, const LoadCounts *c)
{
	appendStringInfo(buf, "\"rows_read\":%lld,\"rows_inserted\":%lld,\"rows_updated\":%lld,"
					 "\"rows_deleted\":%lld,\"rows_unchanged\":%lld,\"rows_rejected\":%lld",
					 (long long) c->read, (long long) c->inserted, (long long) c->updated,
					 (long long) c->deleted, (long long) c->unchanged, (long long) c->rejected);
}

/*
 * AuditRegistryChange queues the audit entry of a registry change, with the
 * configuration (or state) before and after. For create and alter,
 * config_before and config_after are the previous and the new canonical
 * configuration and config_version the version recorded; for drop,
 * config_before is the dropped configuration. value is the new watermark of
 * reset, the value of any other action (e.g. the cron expression of
 * schedule, from issue 3), or NULL.
 */
void
AuditRegistryChange(const char *action, PipelineDef *def, const char *value,
					int config_version, const char *config_before, const char *config_after)
{
	AuditEntry	e;
	StringInfoData before;
	StringInfoData after;

	memset(&e, 0, sizeof(e));
	e.f[AF_ACTION] = action;
	e.f[AF_OBJECT_TYPE] = "pipeline";
	e.f[AF_OBJECT_NAME] = def->name;
	e.f[AF_OUTCOME] = "ok";
	e.pipeline_id = def->id;
	initStringInfo(&before);
	initStringInfo(&after);

	if (strcmp(action, "create") == 0 || strcmp(action, "alter") == 0)
	{
		e.f[AF_BEFORE] = config_before;
		e.f[AF_AFTER] = config_after;
		e.f[AF_DETAILS] = psprintf("{\"config_version\":%d,\"new_version\":%s}", config_version,
								   (config_before && strcmp(config_before, config_after) == 0) ? "false" : "true");
	}
	else if (strcmp(action, "drop") == 0)
	{
		e.f[AF_BEFORE] = config_before;
	}
	else if (strcmp(action, "pause") == 0 || strcmp(action, "resume") == 0)
	{
		e.f[AF_BEFORE] = def->active ? "{\"active\":true}" : "{\"active\":false}";
		e.f[AF_AFTER] = strcmp(action, "resume") == 0 ? "{\"active\":true}" : "{\"active\":false}";
	}
	else if (strcmp(action, "reset") == 0)
	{
		appendStringInfoChar(&before, '{');
		AppendJsonMember(&before, "watermark", def->watermark, false);
		appendStringInfoChar(&before, '}');
		appendStringInfoChar(&after, '{');
		AppendJsonMember(&after, "watermark", value, false);
		appendStringInfoChar(&after, '}');
		e.f[AF_BEFORE] = before.data;
		e.f[AF_AFTER] = after.data;
	}
	else
	{
		/* any other action (schedule, unschedule, ...): its value, if any */
		appendStringInfoChar(&after, '{');
		AppendJsonMember(&after, "value", value, false);
		appendStringInfoChar(&after, '}');
		e.f[AF_AFTER] = value ? after.data : NULL;
	}
	QueueAuditEntries(&e, 1);
}

/* RunStartEntry and RunEndEntry fill the two entries of one run */
static void
RunStartEntry(AuditEntry *e, RunSummary *run)
{
	StringInfoData d;

	initStringInfo(&d);
	appendStringInfo(&d, "{\"started_at\":\"%s\",", timestamptz_to_str(run->started_at));
	AppendJsonMember(&d, "triggered_by", run->triggered_by, false);
	AppendJsonMember(&d, "watermark_from", run->wm_from, true);
	if (run->parent_run_id > 0)
		appendStringInfo(&d, ",\"parent_run_id\":%lld", (long long) run->parent_run_id);
	appendStringInfoChar(&d, '}');
	memset(e, 0, sizeof(*e));
	e->f[AF_ACTION] = "run_start";
	e->f[AF_OBJECT_TYPE] = "run";
	e->f[AF_OBJECT_NAME] = run->def->name;
	e->f[AF_OUTCOME] = "ok";
	e->f[AF_DETAILS] = d.data;
	e->pipeline_id = run->def->id;
	e->run_id = run->run_id;
}

static void
RunEndEntry(AuditEntry *e, RunSummary *run, int version, int sqlerrcode, const char *message)
{
	StringInfoData d;

	initStringInfo(&d);
	appendStringInfoChar(&d, '{');
	CountsJson(&d, run->counts);
	appendStringInfo(&d, ",\"batches\":%d,", run->batches);
	AppendJsonMember(&d, "watermark_from", run->wm_from, false);
	AppendJsonMember(&d, "watermark_to", run->wm_to, true);
	if (version > 0)
		appendStringInfo(&d, ",\"config_version\":%d", version);
	if (sqlerrcode)
	{
		appendStringInfo(&d, ",\"sqlstate\":\"%s\",", unpack_sql_state(sqlerrcode));
		AppendJsonMember(&d, "message", message, false);
	}
	appendStringInfoChar(&d, '}');
	memset(e, 0, sizeof(*e));
	e->f[AF_ACTION] = "run_end";
	e->f[AF_OBJECT_TYPE] = "run";
	e->f[AF_OBJECT_NAME] = run->def->name;
	e->f[AF_OUTCOME] = run->status;
	e->f[AF_DETAILS] = d.data;
	e->pipeline_id = run->def->id;
	e->run_id = run->run_id;
}

/*
 * RecordRunStart writes the start entry of a batched run, which commits
 * with the run's 'running' record before its first batch.
 */
void
RecordRunStart(RunSummary *run)
{
	AuditEntry	e;

	RunStartEntry(&e, run);
	QueueAuditEntries(&e, 1);
	started_run_id = run->run_id;
}

/*
 * RecordRunEnd writes, in the run's transaction, the run's lineage row
 * (what it read and wrote, and the config version it ran with) and its
 * audit entries (queued for commit): both start and end for a plain run,
 * the end for a batched one. config_version is the version the pipeline is
 * at (0: none), which the caller reads.
 */
void
RecordRunEnd(RunSummary *run, int config_version)
{
	AuditEntry	e[2];
	Oid			types[12] = {INT8OID, INT8OID, INT4OID, TEXTOID, TEXTOID, TEXTOID,
	TEXTOID, INT8OID, INT8OID, INT8OID, INT8OID, TEXTOID};
	Datum		values[12];
	char		nulls[12];

	memset(nulls, ' ', sizeof(nulls));
	values[0] = Int64GetDatum(run->run_id);
	values[1] = Int64GetDatum(run->def->id);
	values[2] = Int32GetDatum(config_version);
	nulls[2] = config_version > 0 ? ' ' : 'n';
	values[3] = CStringGetTextDatum(quote_qualified_identifier(run->def->source_schema, run->def->source_table));
	values[4] = CStringGetTextDatum(quote_qualified_identifier(run->def->target_schema, run->def->target_table));
	values[5] = run->wm_from ? CStringGetTextDatum(run->wm_from) : (Datum) 0;
	nulls[5] = run->wm_from ? ' ' : 'n';
	values[6] = run->wm_to ? CStringGetTextDatum(run->wm_to) : (Datum) 0;
	nulls[6] = run->wm_to ? ' ' : 'n';
	values[7] = Int64GetDatum(run->counts->read);
	values[8] = Int64GetDatum(run->counts->inserted);
	values[9] = Int64GetDatum(run->counts->updated);
	values[10] = Int64GetDatum(run->counts->deleted);
	values[11] = run->def->lineage_column ? CStringGetTextDatum(run->def->lineage_column) : (Datum) 0;
	nulls[11] = run->def->lineage_column ? ' ' : 'n';
	ExecKeptPlan(&run_io_insert_plan,
				 "INSERT INTO pipeline.run_io (run_id, pipeline_id, config_version,"
				 " source_relation, target_relation, watermark_from, watermark_to,"
				 " rows_read, rows_inserted, rows_updated, rows_deleted, lineage_column)"
				 " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
				 " ON CONFLICT (run_id) DO UPDATE SET config_version = excluded.config_version,"
				 " watermark_to = excluded.watermark_to, rows_read = excluded.rows_read,"
				 " rows_inserted = excluded.rows_inserted, rows_updated = excluded.rows_updated,"
				 " rows_deleted = excluded.rows_deleted",
				 12, types, values, nulls);

	RunEndEntry(&e[1], run, config_version, 0, NULL);
	if (started_run_id == run->run_id)
		QueueAuditEntries(&e[1], 1);
	else
	{
		RunStartEntry(&e[0], run);
		QueueAuditEntries(e, 2);
	}
}

/* RecordSkippedRunAudit notes a run that found another one in progress */
void
RecordSkippedRunAudit(RunSummary *run)
{
	AuditEntry	e;

	RunEndEntry(&e, run, 0, 0, NULL);
	e.f[AF_ACTION] = "run_skipped";
	e.f[AF_OUTCOME] = "skipped";
	e.f[AF_DETAILS] = "{\"reason\":\"another run of the pipeline is in progress\"}";
	QueueAuditEntries(&e, 1);
}

/*
 * AuditFailedRun records a failed run's start and end entries and its
 * lineage row autonomously, next to the failed run record that
 * failure_recorder.c writes. config_version is the version the pipeline is
 * at, which the caller reads (the run's subtransaction is gone; the
 * caller's transaction can still read).
 */
void
AuditFailedRun(FailedRun *run, int config_version)
{
	RunSummary	s;
	AuditEntry	e[2];
	StringInfoData io;

	memset(&s, 0, sizeof(s));
	s.run_id = run->run_id;
	s.def = run->def;
	s.status = "failed";
	s.started_at = run->started_at;
	s.counts = &run->counts;
	s.batches = run->batches;
	s.wm_from = run->wm_from;
	s.wm_to = run->wm_to;
	s.triggered_by = run->triggered_by;
	s.parent_run_id = run->parent_run_id;

	RunStartEntry(&e[0], &s);
	RunEndEntry(&e[1], &s, config_version, run->sqlerrcode, run->message);
	initStringInfo(&io);
	appendStringInfo(&io, "{\"run_id\":%lld,\"pipeline_id\":%lld,", (long long) run->run_id,
					 (long long) run->def->id);
	if (config_version > 0)
		appendStringInfo(&io, "\"config_version\":%d,", config_version);
	AppendJsonMember(&io, "source_relation", quote_qualified_identifier(run->def->source_schema, run->def->source_table), false);
	AppendJsonMember(&io, "target_relation", quote_qualified_identifier(run->def->target_schema, run->def->target_table), true);
	AppendJsonMember(&io, "watermark_from", run->wm_from, true);
	AppendJsonMember(&io, "watermark_to", run->wm_to, true);
	appendStringInfo(&io, ",\"rows_read\":%lld,\"rows_inserted\":%lld,\"rows_updated\":%lld,\"rows_deleted\":%lld,",
					 (long long) run->counts.read, (long long) run->counts.inserted,
					 (long long) run->counts.updated, (long long) run->counts.deleted);
	AppendJsonMember(&io, "lineage_column", run->def->lineage_column, false);
	appendStringInfoChar(&io, '}');
	if (started_run_id == run->run_id)
		WriteAutonomously(&e[1], 1, io.data);
	else
		WriteAutonomously(e, 2, io.data);
}
