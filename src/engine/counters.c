/*-------------------------------------------------------------------------
 *
 * src/engine/counters.c
 *
 * Exact row counts of a load, taken from the load statement itself rather
 * than from extra scans. Two sources:
 *
 *  - the row counters pipeline._window_row, pipeline._kept_row and
 *    pipeline._soft_delete, which the generated statement calls once per
 *    window row (as its last filter), per row kept after de-duplication,
 *    and per soft delete; and pipeline._snapshot_row, per version a
 *    snapshot pipeline's MERGE writes (snapshot_load.c);
 *  - the gate of the row checks (row_checks.c), which counts the rows it
 *    sends to quarantine; a quarantined row is neither kept nor loaded;
 *    and the erasure gate (erasure_gate.c), which counts the rows of
 *    forgotten subjects it skips, before de-duplication;
 *  - the MERGE executor's own tallies of inserted, updated and deleted rows
 *    (ModifyTableState.mt_merge_*), read by an ExecutorEnd hook that is
 *    armed only around the engine's own MERGE.
 *
 * The counters are backend-local; the engine resets them before each
 * statement. A run holds SHARE ROW EXCLUSIVE on its target, so no
 * concurrent writer can make the executor re-evaluate an action (which
 * would count a soft delete twice).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/executor.h"
#include "fmgr.h"
#include "nodes/execnodes.h"
#include "nodes/supportnodes.h"

#include "pipeline/engine.h"

static int64 rows_read;
static int64 rows_rejected;
static int64 rows_kept;
static int64 rows_soft_deleted;
static int64 snapshot_applied;
static int64 snapshot_closed;

static bool merge_capture_armed = false;
static bool merge_captured = false;
static double merge_inserted;
static double merge_updated;
static double merge_deleted;

static ExecutorEnd_hook_type prev_ExecutorEnd = NULL;

PIPELINE_FUNCTION(pipeline_window_row);
PIPELINE_FUNCTION(pipeline_kept_row);
PIPELINE_FUNCTION(pipeline_soft_delete);
PIPELINE_FUNCTION(pipeline_snapshot_row);
PIPELINE_FUNCTION(pipeline_window_row_support);

/*
 * pipeline._window_row_support tells the planner that the window-row
 * counter keeps (practically) every row: it drops only rows with a NULL key.
 * Without it the planner would assume a third of the rows survive the
 * filter and could pick a worse join for the load.
 */
Datum
pipeline_window_row_support(PG_FUNCTION_ARGS)
{
	Node	   *rawreq = (Node *) PG_GETARG_POINTER(0);

	if (IsA(rawreq, SupportRequestSelectivity))
	{
		SupportRequestSelectivity *req = (SupportRequestSelectivity *) rawreq;

		req->selectivity = 1.0;
		PG_RETURN_POINTER(req);
	}
	PG_RETURN_POINTER(NULL);
}

/*
 * pipeline._window_row(rejected) counts a window row, and a rejected one;
 * returns whether the row is loaded.
 */
Datum
pipeline_window_row(PG_FUNCTION_ARGS)
{
	bool		rejected = PG_GETARG_BOOL(0);

	rows_read++;
	if (rejected)
		rows_rejected++;
	PG_RETURN_BOOL(!rejected);
}

/* pipeline._kept_row() counts a row that reaches the load; returns true */
Datum
pipeline_kept_row(PG_FUNCTION_ARGS)
{
	rows_kept++;
	PG_RETURN_BOOL(true);
}

/* pipeline._soft_delete() counts a soft delete; returns the new flag, true */
Datum
pipeline_soft_delete(PG_FUNCTION_ARGS)
{
	rows_soft_deleted++;
	PG_RETURN_BOOL(true);
}

/*
 * pipeline._snapshot_row(applied, closed, is_current) counts, for a version
 * a snapshot pipeline's MERGE writes (snapshot_load.c), the kept source rows
 * it applies (its own, and the delete that closed it) and whether a delete
 * closed it; returns is_current, which the MERGE writes.
 */
Datum
pipeline_snapshot_row(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("pipeline._snapshot_row takes no NULL"),
				 errdetail("It counts the versions a snapshot pipeline's load writes."),
				 errhint("It is called by the load statement of a run; do not call it.")));
	snapshot_applied += PG_GETARG_INT32(0);
	if (PG_GETARG_BOOL(1))
		snapshot_closed++;
	PG_RETURN_BOOL(PG_GETARG_BOOL(2));
}

/*
 * PipelineExecutorEnd reads the MERGE tallies of the statement the engine
 * armed the capture for. Nested statements (triggers on the target) end
 * before the engine's own MERGE does, so the last MERGE to end is ours.
 */
static void
PipelineExecutorEnd(QueryDesc *queryDesc)
{
	if (merge_capture_armed && queryDesc->operation == CMD_MERGE &&
		queryDesc->planstate != NULL && IsA(queryDesc->planstate, ModifyTableState))
	{
		ModifyTableState *mt = (ModifyTableState *) queryDesc->planstate;

		merge_inserted = mt->mt_merge_inserted;
		merge_updated = mt->mt_merge_updated;
		merge_deleted = mt->mt_merge_deleted;
		merge_captured = true;
	}
	if (prev_ExecutorEnd)
		prev_ExecutorEnd(queryDesc);
	else
		standard_ExecutorEnd(queryDesc);
}

void
InstallCounterHooks(void)
{
	prev_ExecutorEnd = ExecutorEnd_hook;
	ExecutorEnd_hook = PipelineExecutorEnd;
}

/* ResetLoadCounters zeroes every counter before a load statement runs */
void
ResetLoadCounters(void)
{
	rows_read = rows_rejected = rows_kept = rows_soft_deleted = 0;
	snapshot_applied = snapshot_closed = 0;
	merge_capture_armed = false;
	merge_captured = false;
	merge_inserted = merge_updated = merge_deleted = 0;
}

/* ArmMergeCapture makes the next MERGE to end report its tallies */
void
ArmMergeCapture(void)
{
	merge_capture_armed = true;
	merge_captured = false;
}

/*
 * TakeMergeTallies hands over the tallies of the MERGE armed with
 * ArmMergeCapture (a rollup's, engine/rollup_run.c), and disarms it.
 */
void
TakeMergeTallies(int64 *inserted, int64 *updated, int64 *deleted)
{
	if (!merge_captured)
		elog(ERROR, "pg_pipeline did not observe the tallies of its MERGE");
	*inserted = (int64) merge_inserted;
	*updated = (int64) merge_updated;
	*deleted = (int64) merge_deleted;
	merge_capture_armed = false;
}

/*
 * CollectLoadCounters adds the counts of the statement that just ran to
 * counts: from the MERGE tallies for a MERGE, else from processed (the rows
 * a plain INSERT wrote; for an initial load's INSERT, the kept rows it did
 * not write, flagged deleted, are unchanged, as the MERGE counts them).
 * Rows that reached the load and needed no change are counted as
 * unchanged; without de-duplication every row read and neither rejected,
 * nor sent to quarantine by the row checks' gate (row_checks.c, which
 * counts those), nor skipped by the erasure gate (erasure_gate.c,
 * likewise) reached it.
 */
void
CollectLoadCounters(LoadStatements *stmts, uint64 processed, LoadCounts *counts)
{
	int64		quarantined = stmts->has_row_checks ? RowChecksQuarantined() : 0;
	int64		forgotten = stmts->has_erasure_gate ? ErasureGateForgotten() : 0;

	counts->read += rows_read;
	counts->rejected += rows_rejected;
	counts->quarantined += quarantined;
	counts->forgotten += forgotten;
	if (!stmts->counts_kept)
		rows_kept = rows_read - rows_rejected - quarantined - forgotten;
	if (stmts->load_is_merge)
	{
		int64		ins = (int64) merge_inserted;
		int64		upd = (int64) merge_updated;
		int64		del = (int64) merge_deleted;

		if (!merge_captured)
			elog(ERROR, "pg_pipeline did not observe the tallies of its MERGE");
		if (stmts->snapshot)
		{
			/* versions closed by a delete are deleted; kept rows that applied nothing, unchanged */
			counts->inserted += ins;
			counts->updated += upd - snapshot_closed;
			counts->deleted += del + snapshot_closed;
			counts->unchanged += rows_kept - snapshot_applied;
			merge_capture_armed = false;
			return;
		}
		counts->inserted += ins;
		counts->updated += upd - rows_soft_deleted;
		counts->deleted += del + rows_soft_deleted;
		counts->unchanged += rows_kept - ins - upd - del;
	}
	else if (stmts->initial_load)
	{
		/* into an empty target every kept row is inserted, but those flagged deleted */
		counts->inserted += (int64) processed;
		counts->unchanged += rows_kept - (int64) processed;
	}
	else
		counts->inserted += (int64) processed;
	merge_capture_armed = false;
}
