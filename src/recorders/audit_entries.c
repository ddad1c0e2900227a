/*-------------------------------------------------------------------------
 *
 * src/recorders/audit_entries.c
 *
 * The audit entries of registry changes and runs: AuditRegistryChange
 * builds the entry of a create, alter, drop, pause, resume, reset or
 * schedule with the configuration (or state) before and after, which
 * RegistryChanged (registry_changes.c) computed; AuditRunStart, AuditRunEnd
 * and AuditSkippedRun queue a run's entries in the transaction that writes
 * its record (run_outcome.c, the one writer of a run's records, in the
 * run's transaction or in the autonomous recorder's: AuditActFor then
 * names the caller's session as the one that acted). The config version is
 * read by the callers, so that the audit log calls neither versions nor
 * lineage. AuditQualityChange builds the entry of a change to the data
 * checks or the quarantine (src/api/checks_api.c), AuditSchemaChange that
 * of a change to a pipeline's source (schema_history.c), AuditRawPurge that
 * of a purge of raw source rows (retention_log.c).
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

/* who the run entries name when not this session (the autonomous recorder) */
static const char *acting_for[3] = {NULL, NULL, NULL};

/*
 * CountsJson spells a run's counts as JSON members (no braces); rows of
 * forgotten subjects only when it skipped some
 */
static void
CountsJson(StringInfo buf, const LoadCounts *c)
{
	appendStringInfo(buf, "\"rows_read\":%lld,\"rows_inserted\":%lld,\"rows_updated\":%lld,"
					 "\"rows_deleted\":%lld,\"rows_unchanged\":%lld,\"rows_rejected\":%lld",
					 (long long) c->read, (long long) c->inserted, (long long) c->updated,
					 (long long) c->deleted, (long long) c->unchanged, (long long) c->rejected);
	if (c->forgotten > 0)
		appendStringInfo(buf, ",\"rows_forgotten\":%lld", (long long) c->forgotten);
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

/*
 * AuditObjectChange writes the entry of a change to something that is not a
 * pipeline (a column's classification): its action, type, name, and its
 * state before and after as JSON (NULL: none).
 */
void
AuditObjectChange(const char *action, const char *object_type, const char *object_name,
				  const char *before, const char *after)
{
	AuditEntry	e;

	memset(&e, 0, sizeof(e));
	e.f[AF_ACTION] = action;
	e.f[AF_OBJECT_TYPE] = object_type;
	e.f[AF_OBJECT_NAME] = object_name;
	e.f[AF_OUTCOME] = "ok";
	e.f[AF_BEFORE] = before;
	e.f[AF_AFTER] = after;
	QueueAuditEntries(&e, 1);
}

/*
 * AuditActFor makes the run entries of this process name another session
 * (its session id, current role and session role): the autonomous recorder
 * writes a failed run's entries for the session whose run failed.
 */
void
AuditActFor(const char *session_id, const char *role_name, const char *session_role)
{
	acting_for[0] = session_id;
	acting_for[1] = role_name;
	acting_for[2] = session_role;
}

/* RunEntry fills what the entries of a run share */
static void
RunEntry(AuditEntry *e, RunRecord *run, const char *action, const char *outcome,
		 const char *details)
{
	memset(e, 0, sizeof(*e));
	e->f[AF_SESSION_ID] = acting_for[0];
	e->f[AF_ROLE_NAME] = acting_for[1];
	e->f[AF_SESSION_ROLE] = acting_for[2];
	e->f[AF_ACTION] = action;
	e->f[AF_OBJECT_TYPE] = "run";
	e->f[AF_OBJECT_NAME] = run->def->name;
	e->f[AF_OUTCOME] = outcome;
	e->f[AF_DETAILS] = details;
	e->pipeline_id = run->def->id;
	e->run_id = run->run_id;
}

/* RunStartEntry and RunEndEntry fill the two entries of one run */
static void
RunStartEntry(AuditEntry *e, RunRecord *run)
{
	StringInfoData d;

	initStringInfo(&d);
	appendStringInfo(&d, "{\"started_at\":\"%s\",", timestamptz_to_str(run->started_at));
	AppendJsonMember(&d, "triggered_by", run->triggered_by, false);
	AppendJsonMember(&d, "watermark_from", run->wm_from, true);
	if (run->parent_run_id > 0)
		appendStringInfo(&d, ",\"parent_run_id\":%lld", (long long) run->parent_run_id);
	appendStringInfoChar(&d, '}');
	RunEntry(e, run, "run_start", "ok", d.data);
}

static void
RunEndEntry(AuditEntry *e, RunRecord *run)
{
	StringInfoData d;

	initStringInfo(&d);
	appendStringInfoChar(&d, '{');
	CountsJson(&d, &run->counts);
	appendStringInfo(&d, ",\"batches\":%d,", run->batches);
	AppendJsonMember(&d, "watermark_from", run->wm_from, false);
	AppendJsonMember(&d, "watermark_to", run->wm_to, true);
	if (run->config_version > 0)
		appendStringInfo(&d, ",\"config_version\":%d", run->config_version);
	if (run->status == RUN_FAILED)
	{
		appendStringInfo(&d, ",\"sqlstate\":\"%s\",", unpack_sql_state(run->sqlerrcode));
		AppendJsonMember(&d, "message", run->message, false);
	}
	appendStringInfoChar(&d, '}');
	RunEntry(e, run, "run_end", RunStatusName(run->status), d.data);
}

/*
 * AuditRunStart queues the start entry of a run whose 'running' record is
 * written before it loads (a batched run, a worker's run).
 */
void
AuditRunStart(RunRecord *run)
{
	AuditEntry	e;

	RunStartEntry(&e, run);
	QueueAuditEntries(&e, 1);
}

/*
 * AuditRunEnd queues the entries of a finished (succeeded or failed) run:
 * both start and end, or the end only when the start entry was written with
 * the run's 'running' record.
 */
void
AuditRunEnd(RunRecord *run)
{
	AuditEntry	e[2];

	RunEndEntry(&e[1], run);
	if (run->start_recorded)
		QueueAuditEntries(&e[1], 1);
	else
	{
		RunStartEntry(&e[0], run);
		QueueAuditEntries(e, 2);
	}
}

/* AuditSkippedRun notes a run that found another one in progress */
void
AuditSkippedRun(RunRecord *run)
{
	AuditEntry	e;

	RunEntry(&e, run, "run_skipped", "skipped",
			 "{\"reason\":\"another run of the pipeline is in progress\"}");
	QueueAuditEntries(&e, 1);
}

/*
 * AuditQualityChange queues the audit entry of a change to a pipeline's
 * data checks or quarantine (add_check, drop_check, replay_quarantine,
 * discard_quarantine, acknowledge) or to its data outside its runs'
 * windows (backfill): the state before and after as JSON, and the run it
 * concerns, if any.
 */
void
AuditQualityChange(const char *action, PipelineDef *def, int64 run_id, const char *before,
				   const char *after)
{
	AuditEntry	e;

	memset(&e, 0, sizeof(e));
	e.f[AF_ACTION] = action;
	e.f[AF_OBJECT_TYPE] = "pipeline";
	e.f[AF_OBJECT_NAME] = def->name;
	e.f[AF_OUTCOME] = "ok";
	e.f[AF_BEFORE] = before;
	e.f[AF_AFTER] = after;
	e.pipeline_id = def->id;
	e.run_id = run_id;
	QueueAuditEntries(&e, 1);
}

/*
 * AuditSchemaChange queues the entry of one change to a pipeline's source
 * (recorders/schema_history.c): the column ("schema"."table"."column"),
 * what was done about it as the outcome (applied, ignored, failed,
 * detected), the column and its type before and after, the kind of change
 * and the policy in details. A failed run's entries name the session whose
 * run failed, as its run entries do.
 */
void
AuditSchemaChange(PipelineDef *def, int64 run_id, const char *column, const char *outcome,
				  const char *before, const char *after, const char *details)
{
	AuditEntry	e;

	memset(&e, 0, sizeof(e));
	e.f[AF_SESSION_ID] = acting_for[0];
	e.f[AF_ROLE_NAME] = acting_for[1];
	e.f[AF_SESSION_ROLE] = acting_for[2];
	e.f[AF_ACTION] = "schema_change";
	e.f[AF_OBJECT_TYPE] = "column";
	e.f[AF_OBJECT_NAME] = column;
	e.f[AF_OUTCOME] = outcome;
	e.f[AF_BEFORE] = before;
	e.f[AF_AFTER] = after;
	e.f[AF_DETAILS] = details;
	e.pipeline_id = def->id;
	e.run_id = run_id;
	QueueAuditEntries(&e, 1);
}

/*
 * AuditRawPurge queues the entry of a purge of raw rows from a pipeline's
 * source (recorders/retention_log.c): the relation, and in details the
 * purge's id, the rows deleted, the bound, the readers and what triggered
 * it.
 */
void
AuditRawPurge(PipelineDef *def, const char *relation, const char *details)
{
	AuditEntry	e;

	memset(&e, 0, sizeof(e));
	e.f[AF_ACTION] = "purge_raw";
	e.f[AF_OBJECT_TYPE] = "relation";
	e.f[AF_OBJECT_NAME] = relation;
	e.f[AF_OUTCOME] = "ok";
	e.f[AF_DETAILS] = details;
	e.pipeline_id = def->id;
	QueueAuditEntries(&e, 1);
}
