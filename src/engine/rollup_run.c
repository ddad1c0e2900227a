/*-------------------------------------------------------------------------
 *
 * src/engine/rollup_run.c
 *
 * The data work of a run in mode rollup (engine.c calls it in place of a
 * load step), in the run's subtransaction, the target locked SHARE ROW
 * EXCLUSIVE as a load locks it:
 *
 *   1. make sure the triggers and the dirty-cells table are there
 *      (rollup_capture.c); if they had to be made again, changes may have
 *      gone unrecorded, so this run recomputes every cell;
 *   2. incremental: the MERGE of rollup.c, as the owner. Each entry it
 *      takes from the dirty-cells table passes pipeline._rollup_change,
 *      here: a dirty cell ('c') is counted (its changed rows), its latest
 *      time noted, and recomputed; a late change ('+' a row that arrived
 *      in a closed bucket, '-' one that left it: the triggers judged it
 *      against the high-water time H, the run's watermark, minus
 *      allowed_lateness, as committed when it was written) is counted and
 *      kept, and dirties no cell;
 *   3. a recomputed cell that has open late rows in the quarantine (after
 *      allowed_lateness grew, or a writer raced a run that closed the
 *      bucket) now holds their changes: they are closed as replayed;
 *   4. full (no H yet: the first run, or after reset; a TRUNCATE of the
 *      source; step 1 made the capture again): every cell, closed or not,
 *      recomputed; the late changes still open in the quarantine are then
 *      applied, and closed as replayed;
 *   5. the late changes written to pipeline.quarantine_row (failed_checks
 *      {late}, the row as it arrived or left, the cell as its key) as the
 *      extension owner, before step 3; the new H returned, never below the
 *      old one.
 *
 * So the target always equals a full recompute of the source in which the
 * late changes (the open late rows of the quarantine) are not applied: a
 * closed cell keeps the value it had when it closed.
 *
 * Counts: rows_read is the changes taken (and, in a full recompute, the
 * source rows aggregated), rows_quarantined the late ones; inserted,
 * updated, deleted and unchanged count cells.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "pipeline/engine.h"
#include "run_internal.h"

PIPELINE_FUNCTION(pipeline_rollup_change);
PIPELINE_FUNCTION(pipeline_rollup_cell);
PIPELINE_FUNCTION(pipeline_rollup_unchanged);

/* What the rollup statement being run saw */
static struct
{
	StatementArm arm;
	int64		changes;		/* changes taken from the dirty-cells table */
	int64		late;			/* of them in closed buckets */
	int64		rows;			/* source rows a full recompute aggregated */
	int64		unchanged;		/* cells recomputed to the values they had */
	bool		truncated;		/* a TRUNCATE of the source was among the changes */
	bool		have_high;		/* the latest time folded in */
	Datum		high;
	Oid			time_typid;
	char	   *lateness;		/* allowed_lateness as text, for the reasons */
	List	   *cells;			/* Jsonb * keys of the cells recomputed, when asked */
	MemoryContext cxt;
	TupleDesc	desc;			/* row jsonb, key jsonb, at text, reason text */
	Tuplestorestate *late_rows;
} rollup;

/* ArmRollup prepares the functions of the next rollup statement of this (sub)transaction */
static void
ArmRollup(RollupPlan *rp, const char *lateness)
{
	MemoryContext old;

	memset(&rollup, 0, sizeof(rollup));
	rollup.cxt = AllocSetContextCreate(CurTransactionContext, "pg_pipeline rollup",
									   ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(rollup.cxt);
	rollup.time_typid = rp->time_typid;
	rollup.lateness = lateness ? pstrdup(lateness) : NULL;
	rollup.desc = CreateTemplateTupleDesc(4);
	TupleDescInitEntry(rollup.desc, 1, "row", JSONBOID, -1, 0);
	TupleDescInitEntry(rollup.desc, 2, "key", JSONBOID, -1, 0);
	TupleDescInitEntry(rollup.desc, 3, "at", TEXTOID, -1, 0);
	TupleDescInitEntry(rollup.desc, 4, "reason", TEXTOID, -1, 0);
	rollup.late_rows = tuplestore_begin_heap(false, false, work_mem);
	MemoryContextSwitchTo(old);
	ArmForStatement(&rollup.arm);
}

/* RequireArmed refuses a call from anything but a rollup's statement */
static void
RequireArmed(const char *function)
{
	if (!ArmedForStatement(&rollup.arm))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s can only be called by the statements of a rollup's run", function)));
}

/* NoteHigh keeps the latest time folded in */
static void
NoteHigh(Datum at)
{
	if (!rollup.have_high || CompareWatermarks(at, rollup.high, rollup.time_typid, InvalidOid) > 0)
	{
		MemoryContext old = MemoryContextSwitchTo(rollup.cxt);

		rollup.high = datumCopy(at, get_typbyval(rollup.time_typid), get_typlen(rollup.time_typid));
		rollup.have_high = true;
		MemoryContextSwitchTo(old);
	}
}

/* KeepLateChange keeps a change in a closed bucket for the quarantine */
static void
KeepLateChange(char change, Datum row, Jsonb *cell, Datum at, bool at_null)
{
	JsonbValue *b = getKeyJsonValueFromContainer(&cell->root, ROLLUP_BUCKET_COLUMN,
												 strlen(ROLLUP_BUCKET_COLUMN), NULL);
	char	   *bucket = b && b->type == jbvString ? pnstrdup(b->val.string.val, b->val.string.len) : "?";
	Datum		values[4];
	bool		nulls[4] = {false, false, at_null, false};

	values[0] = row;
	values[1] = JsonbPGetDatum(cell);
	values[2] = at_null ? (Datum) 0 : CStringGetTextDatum(WatermarkToText(at, rollup.time_typid));
	values[3] = CStringGetTextDatum(psprintf("late: %s bucket %s after it closed (allowed_lateness %s behind the high-water time)",
											 change == '+' ? "arrived in" : "left", bucket,
											 rollup.lateness ? rollup.lateness : "?"));
	tuplestore_putvalues(rollup.late_rows, rollup.desc, values, nulls);
	rollup.late++;
}

/*
 * pipeline._rollup_change(change "char", at anyelement, changed bigint,
 * row jsonb, cell jsonb) takes one entry of the dirty-cells table: notes
 * a TRUNCATE (false: no cell); counts and keeps a late change, false; for
 * a dirty cell counts its changed rows, notes the latest time that
 * arrived and the cell's key when given, and returns true (recompute it).
 */
Datum
pipeline_rollup_change(PG_FUNCTION_ARGS)
{
	char		change;

	RequireArmed("pipeline._rollup_change");
	change = PG_ARGISNULL(0) ? '?' : DatumGetChar(PG_GETARG_DATUM(0));
	if (change == 't')
	{
		rollup.truncated = true;
		PG_RETURN_BOOL(false);
	}
	if (change == '+' || change == '-')
	{
		if (PG_ARGISNULL(3) || PG_ARGISNULL(4))
			elog(ERROR, "pg_pipeline got a late change without its row");
		rollup.changes++;
		KeepLateChange(change, PG_GETARG_DATUM(3), PG_GETARG_JSONB_P(4),
					   PG_GETARG_DATUM(1), PG_ARGISNULL(1));
		PG_RETURN_BOOL(false);
	}
	rollup.changes += PG_ARGISNULL(2) ? 0 : PG_GETARG_INT64(2);
	if (!PG_ARGISNULL(1))
		NoteHigh(PG_GETARG_DATUM(1));
	if (!PG_ARGISNULL(4))
	{
		MemoryContext old = MemoryContextSwitchTo(rollup.cxt);

		rollup.cells = lappend(rollup.cells, PG_GETARG_JSONB_P_COPY(4));
		MemoryContextSwitchTo(old);
	}
	PG_RETURN_BOOL(true);
}

/*
 * pipeline._rollup_cell(rows bigint, at anyelement) notes a cell of a full
 * recompute: the source rows it aggregates and the latest time among them.
 */
Datum
pipeline_rollup_cell(PG_FUNCTION_ARGS)
{
	RequireArmed("pipeline._rollup_cell");
	rollup.rows += PG_ARGISNULL(0) ? 0 : PG_GETARG_INT64(0);
	if (!PG_ARGISNULL(1))
		NoteHigh(PG_GETARG_DATUM(1));
	PG_RETURN_BOOL(true);
}

/* pipeline._rollup_unchanged() counts a cell recomputed to the values it had */
Datum
pipeline_rollup_unchanged(PG_FUNCTION_ARGS)
{
	RequireArmed("pipeline._rollup_unchanged");
	rollup.unchanged++;
	PG_RETURN_BOOL(true);
}

/* RunRollupStatement runs one statement as the owner; returns the rows it processed */
static uint64
RunRollupStatement(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls,
				   int expected)
{
	int			rc = SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);

	if (rc != expected)
		elog(ERROR, "pg_pipeline rollup statement failed: %s", SPI_result_code_string(rc));
	return SPI_processed;
}

/* RunRollupMerge runs a MERGE of cells and adds its cells to counts */
static void
RunRollupMerge(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls,
			   LoadCounts *counts)
{
	int64		ins;
	int64		upd;
	int64		del;

	ResetLoadCounters();
	ArmMergeCapture();
	(void) RunRollupStatement(sql, nargs, types, values, nulls, SPI_OK_MERGE);
	TakeMergeTallies(&ins, &upd, &del);
	counts->inserted += ins;
	counts->updated += upd;
	counts->deleted += del;
}

/*
 * PendingChanges reads, as the owner, whether the dirty-cells table holds
 * changes, and whether one is a TRUNCATE.
 */
static bool
PendingChanges(LoadPlan *plan, bool *truncated)
{
	OwnerContext ctx;
	bool		isnull;
	bool		any;

	EnterOwnerContext(&ctx, plan->def->owner);
	(void) RunRollupStatement(BuildRollupStatements(plan)->pending, 0, NULL, NULL, NULL, SPI_OK_SELECT);
	LeaveOwnerContext(&ctx);
	any = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	*truncated = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	return any;
}

/*
 * RollupHasWork tells whether a run of a rollup has anything to do: a
 * first (or reset) run, a capture to make again, or changes to take.
 */
bool
RollupHasWork(LoadPlan *plan)
{
	bool		truncated;

	if (plan->def->watermark == NULL || !RollupCaptureIntact(plan))
		return true;
	return PendingChanges(plan, &truncated);
}

/* FlushLateChanges writes the late changes kept to the quarantine, as the extension owner */
static void
FlushLateChanges(PipelineDef *def, int64 run_id)
{
	TupleTableSlot *slot = MakeSingleTupleTableSlot(rollup.desc, &TTSOpsMinimalTuple);

	while (tuplestore_gettupleslot(rollup.late_rows, true, false, slot))
	{
		bool		isnull[4];
		Datum		v[4];

		for (int i = 0; i < 4; i++)
			v[i] = slot_getattr(slot, i + 1, &isnull[i]);
		WriteLateRow(def, run_id, v[0], v[1], isnull[2] ? NULL : TextDatumGetCString(v[2]),
					 TextDatumGetCString(v[3]));
	}
	ExecDropSingleTupleTableSlot(slot);
	tuplestore_end(rollup.late_rows);
}

/*
 * RunRollupStatements runs the statements of one rollup run as the owner,
 * without JIT (as a load runs): the incremental MERGE unless full, then,
 * when full or when a TRUNCATE turned up among the changes, the full
 * recompute (want_cells: collect the keys of the cells recomputed).
 * Returns whether it recomputed every cell.
 */
static bool
RunRollupStatements(LoadPlan *plan, RollupStatements *stmts, bool full, bool want_cells,
					LoadCounts *counts)
{
	OwnerContext ctx;
	int			guc_level = NewGUCNestLevel();
	Oid			typid = BOOLOID;
	Datum		want = BoolGetDatum(want_cells);

	(void) set_config_option("jit", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	EnterOwnerContext(&ctx, plan->def->owner);
	if (!full)
	{
		RunRollupMerge(stmts->incremental, 1, &typid, &want, NULL, counts);
		full = rollup.truncated;
	}
	if (full)
	{
		(void) RunRollupStatement(stmts->consume_all, 0, NULL, NULL, NULL, SPI_OK_DELETE);
		counts->deleted += RunRollupStatement(stmts->vanished, 0, NULL, NULL, NULL, SPI_OK_DELETE);
		RunRollupMerge(stmts->full, 0, NULL, NULL, NULL, counts);
	}
	LeaveOwnerContext(&ctx);
	AtEOXact_GUC(true, guc_level);
	return full;
}

/*
 * ExecuteRollupStep runs a rollup's data work (the steps in the header),
 * adds its counts, and returns the new watermark, the high-water time (the
 * old one when nothing later was folded in).
 */
char *
ExecuteRollupStep(LoadPlan *plan, int64 run_id, LoadCounts *counts)
{
	PipelineDef *def = plan->def;
	RollupPlan *rp = plan->rollup;
	RollupStatements *stmts = BuildRollupStatements(plan);
	bool		truncated = false;
	bool		full;
	bool		has_late;

	LockRelationOid(plan->target_relid, ShareRowExclusiveLock);
	full = EnsureRollupCapture(plan) || def->watermark == NULL;
	if (!full)
		(void) PendingChanges(plan, &truncated);
	full |= truncated;
	has_late = !full && PipelineHasOpenLateRows(def->id);
	ArmRollup(rp, def->allowed_lateness ?
			  DatumGetCString(DirectFunctionCall1(interval_out, IntervalPGetDatum(def->allowed_lateness)))
			  : NULL);
	full = RunRollupStatements(plan, stmts, full, has_late, counts);
	counts->read += rollup.changes + rollup.rows;
	counts->quarantined += rollup.late;
	counts->unchanged += rollup.unchanged;
	FlushLateChanges(def, run_id);
	if (full)
		(void) ResolveLateRows(def, NIL);
	else if (rollup.cells != NIL)
		(void) ResolveLateRows(def, rollup.cells);
	rollup.arm.armed = false;
	if (rollup.have_high &&
		(def->watermark == NULL ||
		 CompareWatermarks(rollup.high, WatermarkFromText(def->watermark, rp->time_typid, -1, def->owner),
						   rp->time_typid, InvalidOid) > 0))
		return WatermarkToText(rollup.high, rp->time_typid);
	return def->watermark;
}
