/*-------------------------------------------------------------------------
 *
 * src/recorders/run_outcome.c
 *
 * The one writer of what a run comes to. Every record of a run is written
 * here from its RunRecord, in the current transaction, so that run_history,
 * run_io, the audit entries and the run_failed alert always say the same:
 *
 *   status       run_history    run_io  audit entries       alert       outbox
 *   running      insert         -       run_start           -           START
 *   (a batch)    update         -       -                   -           -
 *   succeeded    insert/update  write   run_start, run_end  anomaly     START, COMPLETE
 *   failed       insert/update  write   run_start, run_end  run_failed  START, FAIL
 *   skipped      insert         -       run_skipped         -           -
 *   interrupted  update         -       -                   run_failed  START, FAIL
 *   idle         -              -       -                   -           -
 *
 * An idle run, a successful one that found nothing new, is counted on its
 * pipeline's watermark row instead (idle_runs, last_idle_run_id,
 * last_idle_at: RecordIdleRun), unless something about it needs the full
 * record (IdleRunNeedsRecord); it is then recorded as a succeeded run.
 * (run_start with run_end only when it was not written with the 'running'
 * record; the OpenLineage events only when pipeline.openlineage_url is
 * set, each once: openlineage_outbox.c; the anomaly alert only when the
 * pipeline has anomaly_sensitivity and the run is unlike its recent ones:
 * anomaly.c). A failed run's error first loses its row values when the
 * pipeline holds personal data (redaction.c).
 * The run's transaction writes a success, a skip or a start; the
 * run worker writes its failed run in a transaction of its own; a failed
 * run whose caller's transaction rolls back is written by this same code in
 * an autonomous recorder worker (autonomous.c); the recovery (engine/
 * recovery.c) writes interrupted runs. A record is written by one
 * statement, an upsert that never rewrites a finished record: a run that
 * finished while the recovery looked at it stays as it finished.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "pipeline/recorders.h"
#include "pipeline/recorders/schema_history.h"

static SPIPlanPtr run_history_plan = NULL;
static SPIPlanPtr run_io_plan = NULL;
static SPIPlanPtr idle_run_plan = NULL;

/* FailedStatus tells whether a run is recorded with an error */
static bool
FailedStatus(RunStatus status)
{
	return status == RUN_FAILED || status == RUN_INTERRUPTED;
}

/*
 * WriteRunHistory inserts the run's record, or brings its 'running' record
 * up to date; a record that passes no watermark_from keeps the stored one.
 * It returns false when the record had finished already, and is left so.
 */
static bool
WriteRunHistory(RunRecord *run)
{
	Oid			types[24] = {INT8OID, INT8OID, TEXTOID, TEXTOID, TIMESTAMPTZOID, BOOLOID,
		INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT4OID, TEXTOID, TEXTOID,
	TEXTOID, TEXTOID, TEXTOID, INT8OID, INT4OID, TEXTOID, TEXTOID, INT8OID, INT8OID};
	Datum		values[24];
	char		nulls[24];
	int64		counts[6] = {run->counts.read, run->counts.inserted, run->counts.updated,
		run->counts.deleted, run->counts.unchanged, run->counts.rejected};
	bool		failed = FailedStatus(run->status);

	memset(nulls, ' ', sizeof(nulls));
	values[0] = Int64GetDatum(run->run_id);
	values[1] = Int64GetDatum(run->def->id);
	values[2] = CStringGetTextDatum(run->def->name);
	values[3] = CStringGetTextDatum(RunStatusName(run->status));
	values[4] = TimestampTzGetDatum(run->started_at);
	values[5] = BoolGetDatum(run->status != RUN_RUNNING);
	for (int i = 0; i < 6; i++)
		values[6 + i] = Int64GetDatum(counts[i]);
	values[12] = Int32GetDatum(run->batches);
	values[13] = TextOrNull(run->wm_from, &nulls[13]);
	values[14] = TextOrNull(run->wm_to, &nulls[14]);
	values[15] = TextOrNull(failed ? unpack_sql_state(run->sqlerrcode) : NULL, &nulls[15]);
	values[16] = TextOrNull(failed ? (run->message ? run->message : "") : NULL, &nulls[16]);
	values[17] = CStringGetTextDatum(run->triggered_by);
	values[18] = Int64GetDatum(run->parent_run_id);
	nulls[18] = run->parent_run_id > 0 ? ' ' : 'n';
	values[19] = Int32GetDatum(run->attempt > 0 ? run->attempt : 1);
	values[20] = TextOrNull(failed ? run->detail : NULL, &nulls[20]);
	values[21] = TextOrNull(failed ? run->hint : NULL, &nulls[21]);
	values[22] = Int64GetDatum(run->counts.quarantined);
	values[23] = Int64GetDatum(run->counts.forgotten);
	ExecKeptPlan(&run_history_plan,
				 "INSERT INTO pipeline.run_history AS h (run_id, pipeline_id, pipeline_name,"
				 " status, started_at, finished_at, rows_read, rows_inserted, rows_updated,"
				 " rows_deleted, rows_unchanged, rows_rejected, batches, watermark_from,"
				 " watermark_to, error_sqlstate, error_message, triggered_by, parent_run_id, attempt,"
				 " error_detail, error_hint, rows_quarantined, rows_forgotten)"
				 " VALUES ($1, $2, $3, $4, $5, CASE WHEN $6 THEN clock_timestamp() END,"
				 " $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23,"
				 " $24)"
				 " ON CONFLICT (run_id) DO UPDATE SET status = excluded.status,"
				 " finished_at = excluded.finished_at, rows_read = excluded.rows_read,"
				 " rows_inserted = excluded.rows_inserted, rows_updated = excluded.rows_updated,"
				 " rows_deleted = excluded.rows_deleted, rows_unchanged = excluded.rows_unchanged,"
				 " rows_rejected = excluded.rows_rejected, batches = excluded.batches,"
				 " watermark_from = coalesce(excluded.watermark_from, h.watermark_from),"
				 " watermark_to = excluded.watermark_to,"
				 " error_sqlstate = excluded.error_sqlstate, error_message = excluded.error_message,"
				 " error_detail = excluded.error_detail, error_hint = excluded.error_hint,"
				 " rows_quarantined = excluded.rows_quarantined,"
				 " rows_forgotten = excluded.rows_forgotten"
				 " WHERE h.status = 'running'"
				 " RETURNING h.run_id",
				 24, types, values, nulls);
	return SPI_processed > 0;
}

/*
 * WriteRunIo writes the run's lineage row (pipeline.run_io): what it read
 * and wrote, and the config version it ran with.
 */
static void
WriteRunIo(RunRecord *run)
{
	Oid			types[12] = {INT8OID, INT8OID, INT4OID, TEXTOID, TEXTOID, TEXTOID,
	TEXTOID, INT8OID, INT8OID, INT8OID, INT8OID, TEXTOID};
	Datum		values[12];
	char		nulls[12];
	PipelineDef *def = run->def;

	memset(nulls, ' ', sizeof(nulls));
	values[0] = Int64GetDatum(run->run_id);
	values[1] = Int64GetDatum(def->id);
	values[2] = Int32GetDatum(run->config_version);
	nulls[2] = run->config_version > 0 ? ' ' : 'n';
	values[3] = CStringGetTextDatum(quote_qualified_identifier(def->source_schema, def->source_table));
	values[4] = CStringGetTextDatum(quote_qualified_identifier(def->target_schema, def->target_table));
	values[5] = TextOrNull(run->wm_from, &nulls[5]);
	values[6] = TextOrNull(run->wm_to, &nulls[6]);
	values[7] = Int64GetDatum(run->counts.read);
	values[8] = Int64GetDatum(run->counts.inserted);
	values[9] = Int64GetDatum(run->counts.updated);
	values[10] = Int64GetDatum(run->counts.deleted);
	values[11] = TextOrNull(def->lineage_column, &nulls[11]);
	ExecKeptPlan(&run_io_plan,
				 "INSERT INTO pipeline.run_io (run_id, pipeline_id, config_version,"
				 " source_relation, target_relation, watermark_from, watermark_to,"
				 " rows_read, rows_inserted, rows_updated, rows_deleted, lineage_column)"
				 " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
				 " ON CONFLICT (run_id) DO UPDATE SET config_version = excluded.config_version,"
				 " watermark_to = excluded.watermark_to, rows_read = excluded.rows_read,"
				 " rows_inserted = excluded.rows_inserted, rows_updated = excluded.rows_updated,"
				 " rows_deleted = excluded.rows_deleted",
				 12, types, values, nulls);
}

/*
 * RecordRunStart writes the 'running' record of a run that commits it before
 * it loads (a batched run, a worker's run), with its start entry.
 */
void
RecordRunStart(RunRecord *run)
{
	Assert(run->status == RUN_RUNNING);
	(void) WriteRunHistory(run);
	AuditRunStart(run);
	EnqueueOpenLineageEvents(run);
	run->start_recorded = true;
}

/*
 * RecordRunProgress brings a batched run's 'running' record up to date;
 * the first batch writes the source's changes it applied with it.
 */
void
RecordRunProgress(RunRecord *run)
{
	Assert(run->status == RUN_RUNNING);
	(void) WriteRunHistory(run);
	RecordRunSchemaChanges(run);
}

/*
 * IdleRunNeedsRecord tells whether a run that found nothing new must still
 * be recorded in full: its 'running' record is written already (a
 * background worker's run, a batched one), it counted rows (at infinity,
 * which it warned about), it found its source's columns changed (its
 * schema history rows name the run), OpenLineage delivery is on (its
 * events name a recorded run), or it took longer than the pipeline's
 * timeliness limit (the timeliness alert names the run).
 */
static bool
IdleRunNeedsRecord(RunRecord *run)
{
	Interval   *limit = run->def->timeliness;

	if (run->start_recorded || run->counts.read != 0 || run->counts.rejected != 0 ||
		run->schema_changes != NULL || OpenLineageDeliveryOn())
		return true;
	return limit != NULL &&
		DatumGetBool(DirectFunctionCall2(interval_gt,
										 DirectFunctionCall2(timestamp_mi,
															 TimestampTzGetDatum(GetCurrentTimestamp()),
															 TimestampTzGetDatum(run->started_at)),
										 IntervalPGetDatum(limit)));
}

/*
 * RecordIdleRun counts a run that found nothing new on its pipeline's
 * watermark row, which the run holds locked: one more idle run, its id
 * and when it finished. Nothing else is written: no run_history record,
 * no run_io row, no audit entry (docs/exactly-once.md).
 */
static void
RecordIdleRun(RunRecord *run)
{
	Oid			types[2] = {INT8OID, INT8OID};
	Datum		values[2];

	values[0] = Int64GetDatum(run->def->id);
	values[1] = Int64GetDatum(run->run_id);
	ExecKeptPlan(&idle_run_plan,
				 "UPDATE pipeline.watermark SET idle_runs = idle_runs + 1,"
				 " last_idle_run_id = $2, last_idle_at = clock_timestamp()"
				 " WHERE pipeline_id = $1",
				 2, types, values, NULL);
}

/*
 * RecordRunOutcome writes what a run came to (succeeded, failed, skipped or
 * interrupted) in the current transaction: its run_history record, its
 * lineage row, audit entries and the changes of its source it found
 * (succeeded, failed: schema_history.c), the result of the check that
 * failed it (failed: check_results.c), its run_failed alert (failed,
 * interrupted) or its anomaly alert (succeeded), or, for an idle run, only
 * its count (RecordIdleRun). It returns false, having written nothing,
 * when the run's record had finished already, so that no run is alerted
 * twice.
 */
bool
RecordRunOutcome(RunRecord *run)
{
	Assert(run->status != RUN_RUNNING);
	if (run->status == RUN_SUCCEEDED && run->nothing_new)
	{
		if (!IdleRunNeedsRecord(run))
		{
			RecordIdleRun(run);
			return true;
		}
		if (run->config_version == 0)
			run->config_version = CurrentConfigVersion(run->def->id);
	}
	if (FailedStatus(run->status))
		RedactRunError(run);
	if (!WriteRunHistory(run))
		return false;
	if (FailedStatus(run->status))
		RaiseAlert(run->def->id, run->def->name, "run_failed", unpack_sql_state(run->sqlerrcode),
				   NULL, run->run_id, run->message);
	if (run->status == RUN_SUCCEEDED || run->status == RUN_FAILED)
	{
		WriteRunIo(run);
		AuditRunEnd(run);
		RecordRunSchemaChanges(run);
	}
	if (run->status == RUN_FAILED && run->failed_check)
		WriteFailedCheckResult(run->run_id, run->def->id, run->failed_check);
	if (run->status == RUN_SUCCEEDED)
		RaiseAnomalyAlert(run);
	else if (run->status == RUN_SKIPPED)
		AuditSkippedRun(run);
	if (run->status != RUN_SKIPPED)
		EnqueueOpenLineageEvents(run);
	return true;
}
