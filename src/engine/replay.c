/*-------------------------------------------------------------------------
 *
 * src/engine/replay.c
 *
 * pipeline.replay_quarantine: a run that loads open quarantine rows of a
 * pipeline (after a rule was fixed, or a row's jsonb edited) instead of the
 * source's window. Under the pipeline's run lock, in the caller's
 * transaction:
 *
 *   1. lock the open rows asked for (FOR UPDATE) and read their ids and rows;
 *   2. run the pipeline's load statement over them (planner.c: the rows
 *      from $1/$2 through jsonb_populate_record of the source's row type),
 *      every row through the row checks' gate first: a row that still
 *      fails a quarantine or error check is kept, not loaded (a replay never
 *      fails on a row); of the others, the newest version of each key is
 *      loaded. A replayed row never overwrites a newer version of its key:
 *      the MERGE updates or deletes only where the target's incremental
 *      value is not greater;
 *   3. close every row read as 'replayed', then reopen those the gate kept,
 *      with the checks they fail now, and delete those the erasure gate
 *      skipped (a row edited to carry a forgotten subject: erasure_gate.c);
 *   4. record the run (triggered_by 'replay') and its check results, and
 *      queue the downstream pipelines unless a blocking check failed.
 *
 * A row is loaded at most once: its status moves from open in the same
 * transaction as the load, and the run lock and the row locks keep two
 * replays (or a replay and a discard) from taking the same row. The
 * watermark does not move.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "pipeline/engine.h"
#include "run_internal.h"

PIPELINE_FUNCTION(pipeline_replay_quarantine);

/* ReplayJson spells what a replay did, for its audit entry */
static char *
ReplayJson(int64 run_id, int64 read, LoadCounts *counts)
{
	char	   *forgotten = counts->forgotten > 0 ?
		psprintf(",\"rows_forgotten\":%lld", (long long) counts->forgotten) : "";

	return psprintf("{\"run_id\":%lld,\"rows_read\":%lld,\"rows_loaded\":%lld,\"rows_still_open\":%lld%s}",
					(long long) run_id, (long long) read,
					(long long) (counts->inserted + counts->updated + counts->deleted + counts->unchanged),
					(long long) counts->quarantined, forgotten);
}

/*
 * ReplayQuarantine replays the open quarantine rows of a pipeline (those of
 * ids, or all when ids is NULL) and returns the id of the run that did.
 */
int64
ReplayQuarantine(PipelineDef *def, ArrayType *ids)
{
	RunRecord	rec;
	LoadPlan   *plan;
	Oid			types[2] = {INT8ARRAYOID, JSONBARRAYOID};
	Datum		values[2];
	int64		n;
	bool		blocked;

	if (def->mode == LOAD_MODE_ROLLUP)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("pipeline \"%s\" is a rollup: its late changes are not replayed one by one", def->name),
				 errdetail("A late change is kept because its bucket was closed; a full recompute applies every late change and closes them."),
				 errhint("SELECT pipeline.reset(%s); then run it, or discard the late rows with pipeline.discard_quarantine.",
						 quote_literal_cstr(def->name))));
	if (!TryLockPipeline(def->id, false))
		ereport(ERROR,
				(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
				 errmsg("pipeline \"%s\" is running", def->name),
				 errdetail("A replay takes the pipeline's run lock, which another run holds."),
				 errhint("Replay when the run has finished.")));
	memset(&rec, 0, sizeof(rec));
	rec.run_id = NextRunId();
	rec.started_at = GetCurrentTimestamp();
	rec.triggered_by = "replay";
	rec.attempt = 1;
	def = LockPipelineForRun(def);
	rec.def = def;
	rec.wm_from = rec.wm_to = def->watermark;
	SetLineageRunId(rec.run_id);
	plan = BuildLoadPlan(def);
	CheckPipelinePrivileges(def, plan->source_relid, plan->target_relid, def->owner);
	plan->replay = true;
	plan->keep_newer = true;
	plan->needs_dedup = def->unique_key != NIL;

	LockOpenQuarantine(def, ids, &values[0], &values[1], &n);
	if (n > 0)
	{
		ExecuteLoad(plan, false, false, 2, types, values, &rec.counts);
		(void) ResolveQuarantine(def, DatumGetArrayTypeP(values[0]), "replayed");
		if (plan->erasure != NIL)
		{
			(void) EraseForgottenQuarantineRows();
			/* armed in the caller's transaction: it must serve no later statement */
			DisarmErasureGate();
		}
		FlushRowChecks(plan, rec.run_id);
		RunSetChecks(plan, rec.counts.read);
		rec.batches = 1;
	}
	blocked = FinishChecks(plan, rec.run_id);
	if (!blocked && rec.counts.inserted + rec.counts.updated + rec.counts.deleted > 0)
		EnqueueDownstream(def->id, rec.run_id);
	rec.status = RUN_SUCCEEDED;
	rec.config_version = CurrentConfigVersion(def->id);
	RecordRunOutcome(&rec);
	AuditQualityChange("replay_quarantine", def, rec.run_id, NULL,
					   ReplayJson(rec.run_id, n, &rec.counts));
	return rec.run_id;
}

/* pipeline.replay_quarantine(pipeline, ids) */
Datum
pipeline_replay_quarantine(PG_FUNCTION_ARGS)
{
	char	   *name = PipelineNameArg(fcinfo, 0);
	ArrayType  *ids = PG_ARGISNULL(1) ? NULL : PG_GETARG_ARRAYTYPE_P(1);
	PipelineDef *def;
	int			nestlevel;
	int64		run_id;

	SPI_connect();
	nestlevel = PinSearchPath();
	def = LoadPipelineByName(name, false);
	CheckPipelineOwner(def, "replay");
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
				 errmsg("pipeline \"%s\" cannot replay in a %s transaction", def->name,
						IsolationIsSerializable() ? "SERIALIZABLE" : "REPEATABLE READ"),
				 errhint("Replay in a READ COMMITTED transaction.")));
	run_id = ReplayQuarantine(def, ids);
	UnpinSearchPath(nestlevel);
	SPI_finish();
	PG_RETURN_INT64(run_id);
}
