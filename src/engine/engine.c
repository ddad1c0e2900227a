/*-------------------------------------------------------------------------
 *
 * src/engine/engine.c
 *
 * One run of a pipeline, in the caller's transaction (pipeline.run) or in
 * committed batches (pipeline.run_batched):
 *
 *   1. take the pipeline's run lock without waiting; if another run holds
 *      it, record a skipped run and return;
 *   2. lock and read the watermark (READ COMMITTED only, so that every
 *      statement sees what committed before it); compare the source's
 *      columns with its last successful run's and the target's, and do
 *      what on_schema_change says (engine/schema_drift.c);
 *   3. read the high-water mark, then wait for every transaction that holds
 *      a write lock on a base table of the source, so that no row committed
 *      later with a value at or below the mark is skipped;
 *   4. lock the target SHARE ROW EXCLUSIVE and load the window (watermark -
 *      lookback, high-water mark] with one set-based statement, which
 *      evaluates the row checks and keeps the rows they quarantine; write
 *      those rows, evaluate the set checks, record what the checks came to
 *      (engine/row_checks.c, engine/set_checks.c); with parallel_workers,
 *      into a target partitioned by partition_column, the load is split
 *      into parts that part workers load and prepare, committed after this
 *      transaction (engine/parallel_load.c);
 *   5. store the new watermark and the run record in the same transaction;
 *      queue the downstream pipelines unless a blocking check failed.
 *
 * Steps 2-5 run in a subtransaction. On error it is rolled back (load and
 * watermark together), the failed run is recorded by an autonomous worker
 * (recorders/autonomous.c), and the error is re-thrown to the caller. Every
 * record of the run (started, each batch, succeeded, failed, skipped) is
 * written from the one RunRecord the run keeps, by the recorders' one
 * writer (recorders/run_outcome.c). Before it starts, a run fails the
 * records its pipeline's dead runs left 'running' (engine/recovery.c).
 *
 * The run lock is an advisory lock (locktag_field4 = PIPELINE_RUN_LOCK_CLASS)
 * held to the end of the caller's transaction, or for the whole of a
 * batched run at session level.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/guc.h"
#include "utils/syscache.h"
#include "catalog/pg_class.h"
#include "access/htup_details.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "pipeline/engine.h"
#include "run_internal.h"
#include "schema_drift.h"

PIPELINE_FUNCTION(pipeline_run);
PIPELINE_FUNCTION(pipeline_run_batched);

/* RequireReadCommitted refuses isolation levels that would hide new rows */
void
RequireReadCommitted(PipelineDef *def)
{
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
				 errmsg("pipeline \"%s\" cannot run in a %s transaction", def->name,
						IsolationIsSerializable() ? "SERIALIZABLE" : "REPEATABLE READ"),
				 errdetail("A run must see rows committed after its transaction began, or it would skip them for good."),
				 errhint("Run it in a READ COMMITTED transaction.")));
}

/* SetRunLockTag names the advisory lock that serialises runs of a pipeline */
static void
SetRunLockTag(LOCKTAG *tag, int64 pipeline_id)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, (uint32) (pipeline_id >> 32),
						 (uint32) pipeline_id, PIPELINE_RUN_LOCK_CLASS);
}

/* TryLockPipeline takes the run lock if it is free; it never waits */
bool
TryLockPipeline(int64 pipeline_id, bool session)
{
	LOCKTAG		tag;

	SetRunLockTag(&tag, pipeline_id);
	return LockAcquire(&tag, ExclusiveLock, session, true) != LOCKACQUIRE_NOT_AVAIL;
}

/*
 * WaitForPipelineLock takes the run lock for the transaction, waiting for
 * a run that holds it to end: pipeline.forget keeps runs off the relations
 * it erases, so that none loads a row it has just read of the subject.
 */
void
WaitForPipelineLock(int64 pipeline_id)
{
	LOCKTAG		tag;

	SetRunLockTag(&tag, pipeline_id);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);
}

void
UnlockPipeline(int64 pipeline_id)
{
	LOCKTAG		tag;

	SetRunLockTag(&tag, pipeline_id);
	LockRelease(&tag, ExclusiveLock, true);
}

/*
 * LockCurrentDefinition locks the pipeline's watermark row and makes the run
 * use the definition current from then on. A pipeline paused while the run
 * waited is refused; a batched run stops when its source, incremental
 * column or target changed between batches, since its window was cut for
 * the old ones.
 */
PipelineDef *
LockCurrentDefinition(RunState *rs)
{
	PipelineDef *def = LockPipelineForRun(rs->rec.def);

	if (!def->active)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pipeline \"%s\" was paused before it could run", def->name),
				 errhint("Resume it with SELECT pipeline.resume(%s).", quote_literal_cstr(def->name))));
	if (rs->rec.batches > 0 &&
		(strcmp(def->source_schema, rs->rec.def->source_schema) != 0 ||
		 strcmp(def->source_table, rs->rec.def->source_table) != 0 ||
		 strcmp(def->target_schema, rs->rec.def->target_schema) != 0 ||
		 strcmp(def->target_table, rs->rec.def->target_table) != 0 ||
		 def->incremental_column == NULL ||
		 strcmp(def->incremental_column, rs->rec.def->incremental_column) != 0))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pipeline \"%s\" was altered during its batched run", def->name),
				 errdetail("Its source, target or incremental column changed after batch %d.", rs->rec.batches),
				 errhint("Run it again.")));
	def->batch_rows = rs->rec.def->batch_rows;	/* the size this call asked for */
	rs->rec.def = def;
	SetLineageRunId(rs->rec.run_id);
	return def;
}

/*
 * KeepReadWindow records, in the transaction of the load step, the window
 * (read_lower, upper] the run has loaded so far and the snapshot captured
 * after the wait for writers, before the step's load statement (which sees
 * at least what it saw): a source row lying in the window whose xmin that
 * snapshot saw was read by the run. Raw retention purges only rows such a
 * window proves read (engine/retention.c, docs/exactly-once.md).
 */
static void
KeepReadWindow(RunState *rs, LoadPlan *plan, Datum upper)
{
	LoadColumn *inc = plan->incremental;

	StoreReadWindow(rs->rec.def->id, rs->rec.run_id, inc->name, inc->source_typid, rs->read_lower,
					WatermarkToText(upper, inc->typid), rs->read_snapshot);
}

/*
 * PrepareRun handles the source's schema drift (first batch only), then
 * resolves the plan and checks, as of now, that the owner may still read
 * the source and write the target.
 */
LoadPlan *
PrepareRun(RunState *rs)
{
	LoadPlan   *plan;

	/* a rollup checks the columns it names itself (rollup_plan.c) */
	if (rs->rec.batches == 0 && rs->rec.def->mode != LOAD_MODE_ROLLUP)
		HandleSchemaDrift(&rs->rec);
	plan = BuildLoadPlan(rs->rec.def);

	CheckPipelinePrivileges(rs->rec.def, plan->source_relid, plan->target_relid, rs->rec.def->owner);
	return plan;
}

/*
 * RunOnce performs a whole run in the current (sub)transaction: window,
 * wait, load, watermark, run record.
 */
static void
RunOnce(RunState *rs)
{
	PipelineDef *def = LockCurrentDefinition(rs);
	LoadPlan   *plan = PrepareRun(rs);
	bool		has_lower = false;
	bool		has_upper = false;
	bool		nothing_new = false;
	bool		index_built = false;
	Datum		lower = (Datum) 0;
	Datum		upper = (Datum) 0;

	rs->rec.wm_from = def->watermark;
	rs->rec.wm_to = rs->rec.wm_from;
	if (plan->rollup)
		nothing_new = !RollupHasWork(plan);
	else if (plan->incremental)
	{
		Oid			typid = plan->incremental->typid;
		bool		has_wm = rs->rec.wm_from != NULL;
		Datum		wm = has_wm ? WatermarkFromText(rs->rec.wm_from, typid, plan->incremental->typmod, def->owner) : (Datum) 0;
		bool		hwm_null;
		Datum		hwm = ReadHighWaterMark(plan, &hwm_null, &rs->rec.counts);

		if (hwm_null)
			nothing_new = true;
		else if (has_wm && def->lookback == NULL &&
				 CompareWatermarks(hwm, wm, typid, plan->incremental->collid) <= 0)
			nothing_new = true;
		else
		{
			WaitForSourceWriters(plan);
			rs->read_snapshot = CaptureReadSnapshot();
			has_upper = true;
			upper = hwm;
			if (has_wm)
			{
				has_lower = true;
				lower = def->lookback ? SubtractLookback(wm, def->lookback, typid) : wm;
				rs->read_lower = WatermarkToText(lower, typid);
				if (CompareWatermarks(hwm, wm, typid, plan->incremental->collid) < 0)
					hwm = wm;	/* rows were removed: never move backwards */
			}
			rs->rec.wm_to = WatermarkToText(hwm, typid);
		}
	}
	if (!nothing_new)
	{
		int64		read_before = rs->rec.counts.read;

		/* parts a crash left prepared hold their partitions: finish them first */
		ResolvePreparedParts(def->id);
		if (plan->rollup)
			rs->rec.wm_to = ExecuteRollupStep(plan, rs->rec.run_id, &rs->rec.counts);
		else if (!has_upper || !RunParallelLoad(rs, plan, has_lower, lower, upper))
			ExecuteLoadStep(plan, has_lower, lower, has_upper, upper, &rs->rec.counts);
		index_built = BuildOwedTargetIndex(plan);
		if (plan->incremental)
			KeepReadWindow(rs, plan, upper);
		FlushRowChecks(plan, rs->rec.run_id);
		RunSetChecks(plan, rs->rec.counts.read - read_before);
		rs->rec.batches = 1;
		RefreshSourceRelations(def->id, plan->source_relid);
		if (!FinishChecks(plan, rs->rec.run_id) &&
			rs->rec.counts.inserted + rs->rec.counts.updated + rs->rec.counts.deleted > 0)
			EnqueueDownstream(def->id, rs->rec.run_id);
	}
	if (rs->rec.wm_to && (rs->rec.wm_from == NULL || strcmp(rs->rec.wm_to, rs->rec.wm_from) != 0))
		StoreRunWatermark(def, rs->rec.wm_to, rs->rec.run_id);
	else if (index_built)
		StoreTargetIndexPending(def->id, false);
	rs->rec.status = RUN_SUCCEEDED;
	rs->rec.nothing_new = nothing_new;
	/* an idle run reads it only if it is recorded in full (run_outcome.c) */
	if (!nothing_new)
		rs->rec.config_version = CurrentConfigVersion(def->id);
	RecordRunOutcome(&rs->rec);
}

/* The failure of the last run whose caller records failures itself */
static RunRecord *inline_failure = NULL;

/*
 * TakeInlineFailure hands over (once) the failure of the last run made with
 * record_failure_inline; it lives in TopMemoryContext so that it survives
 * the abort of the run's transaction.
 */
RunRecord *
TakeInlineFailure(void)
{
	RunRecord  *f = inline_failure;

	inline_failure = NULL;
	return f;
}

/* KeepInlineFailure copies a failure into TopMemoryContext for the caller */
static void
KeepInlineFailure(RunRecord *failed)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
	RunRecord  *copy = palloc(sizeof(RunRecord));

	*copy = *failed;
	copy->def = CopyDefIdentity(failed->def);
	copy->wm_from = failed->wm_from ? pstrdup(failed->wm_from) : NULL;
	copy->wm_to = failed->wm_to ? pstrdup(failed->wm_to) : NULL;
	copy->message = failed->message ? pstrdup(failed->message) : NULL;
	copy->detail = failed->detail ? pstrdup(failed->detail) : NULL;
	copy->hint = failed->hint ? pstrdup(failed->hint) : NULL;
	copy->schema_changes = failed->schema_changes ? pstrdup(failed->schema_changes) : NULL;
	copy->failed_check = failed->failed_check ? pstrdup(failed->failed_check) : NULL;
	copy->triggered_by = pstrdup(failed->triggered_by);
	MemoryContextSwitchTo(old);
	inline_failure = copy;
}

/*
 * RunGuarded runs step(rs) in a subtransaction. On error it rolls the
 * subtransaction back, records the failed run autonomously (or keeps it for
 * a caller that records it itself) and re-throws. The failed record has
 * the counts and batches committed before the step.
 */
void
RunGuarded(RunState *rs, RunStep step)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	LoadCounts	before = rs->rec.counts;
	int			batches_before = rs->rec.batches;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		step(rs);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;
		RunRecord	failed;

		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;

		failed = rs->rec;
		failed.status = RUN_FAILED;
		failed.counts = before;
		failed.batches = batches_before;
		failed.wm_to = rs->rec.batches > 0 ? rs->rec.wm_to : rs->rec.wm_from;
		failed.sqlerrcode = edata->sqlerrcode;
		failed.message = edata->message;
		failed.detail = edata->detail;
		failed.hint = edata->hint;
		/* the error-severity check that stopped it, if one did (row_checks.c) */
		failed.failed_check = TakeFailedCheck();
		if (edata->sqlerrcode != ERRCODE_CHECK_VIOLATION)
			failed.failed_check = NULL;
		if (rs->record_failure_inline)
			KeepInlineFailure(&failed);	/* the caller records and audits it */
		else
		{
			failed.config_version = CurrentConfigVersion(failed.def->id);
			RecordFailedRunAutonomously(&failed);
		}
		ReThrowError(edata);
	}
	PG_END_TRY();
}

/* StartRunState fills the parts of a run's state known before it starts */
void
StartRunState(RunState *rs, PipelineDef *def, RunRequest *req)
{
	memset(rs, 0, sizeof(RunState));
	rs->rec.def = def;
	rs->rec.status = RUN_RUNNING;
	rs->rec.wm_from = def->watermark;
	rs->rec.triggered_by = req->triggered_by;
	rs->rec.parent_run_id = req->parent_run_id;
	rs->rec.attempt = req->attempt;
	rs->record_failure_inline = req->record_failure_inline;
	rs->ends_transaction = req->ends_transaction;
	(void) TakeFailedCheck();	/* nothing of an earlier statement's */
}

/*
 * CheckRunnable refuses runs that the caller may not start (action: run, or
 * backfill) or that the pipeline's state forbids.
 */
void
CheckRunnable(PipelineDef *def, const char *action)
{
	CheckPipelineOwner(def, action);
	if (!def->active)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pipeline \"%s\" is paused", def->name),
				 errhint("Resume it with SELECT pipeline.resume(%s).", quote_literal_cstr(def->name))));
	RequireReadCommitted(def);
}

/* RecordSkippedRun records that a run found another one in progress */
static int64
RecordSkippedRun(RunState *rs)
{
	rs->rec.run_id = NextRunId();
	rs->rec.status = RUN_SKIPPED;
	rs->rec.started_at = GetCurrentTimestamp();
	rs->rec.wm_from = NULL;
	rs->rec.wm_to = NULL;
	RecordRunOutcome(&rs->rec);
	ereport(NOTICE,
			(errmsg("pipeline \"%s\" is already running; run %lld skipped",
					rs->rec.def->name, (long long) rs->rec.run_id)));
	return rs->rec.run_id;
}

/*
 * RunPipeline runs a pipeline now in the caller's transaction and returns
 * the run id. Callers must be connected to SPI with search_path pinned. A
 * background worker passes the id of the 'running' record it committed
 * before, and holds the run lock already.
 */
int64
RunPipeline(PipelineDef *def, RunRequest *req)
{
	RunState	rs;

	StartRunState(&rs, def, req);
	/* part workers see what committed: nothing the caller wrote before */
	rs.may_go_parallel = !TransactionIdIsValid(GetTopTransactionIdIfAny());
	rs.in_transaction_block = IsTransactionBlock();
	CheckRunnable(def, "run");
	if (!TryLockPipeline(def->id, false))
		return RecordSkippedRun(&rs);

	rs.rec.start_recorded = req->run_id > 0;
	rs.rec.run_id = rs.rec.start_recorded ? req->run_id : NextRunId();
	rs.rec.started_at = GetCurrentTimestamp();
	FailInterruptedRuns(def->id, rs.rec.run_id);
	RunGuarded(&rs, RunOnce);
	return rs.rec.run_id;
}

/* pipeline.run(name) */
Datum
pipeline_run(PG_FUNCTION_ARGS)
{
	int			nestlevel;
	int64		run_id;
	RunRequest	req = {"manual", 0, 1, 0, false};

	RequireArg(fcinfo, 0, "pipeline name");
	req.ends_transaction = CalledAlone(fcinfo);
	SPI_connect();
	nestlevel = PinSearchPath();
	run_id = RunPipeline(LoadPipelineByName(text_to_cstring(PG_GETARG_TEXT_PP(0)), false), &req);
	UnpinSearchPath(nestlevel);
	SPI_finish();
	PG_RETURN_INT64(run_id);
}

/*
 * FinishBatchChecks writes what the row checks of a batch (counts before it:
 * before) kept for quarantine, evaluates its set checks, and queues the
 * downstream pipelines when it changed data and no blocking check failed.
 */
void
FinishBatchChecks(RunState *rs, LoadPlan *plan, LoadCounts *before)
{
	LoadCounts *now = &rs->rec.counts;

	FlushRowChecks(plan, rs->rec.run_id);
	RunSetChecks(plan, now->read - before->read);
	if (!FinishChecks(plan, rs->rec.run_id) &&
		now->inserted + now->updated + now->deleted > before->inserted + before->updated + before->deleted)
		EnqueueDownstream(plan->def->id, rs->rec.run_id);
}

/*
 * NextBatchBound returns where the batch from lower (exclusive, or
 * inclusive with plan->lower_inclusive; from the start without has_lower)
 * ends: at most batch_rows source rows (more only when a single
 * incremental value has more rows), never past upper, never before lower.
 * *last is set when the batch reaches upper.
 */
Datum
NextBatchBound(LoadPlan *plan, bool has_lower, Datum lower, Datum upper, int64 batch_rows,
			   bool *last)
{
	LoadColumn *inc = plan->incremental;
	Oid			types[3] = {inc->typid, inc->typid, INT8OID};
	Datum		values[3] = {lower, upper, Int64GetDatum(batch_rows)};
	bool		isnull;
	Datum		bound;

	bound = QueryAsOwner(plan->def, BuildBatchBoundQuery(plan, has_lower), 3, types, values, &isnull);
	*last = isnull;
	if (isnull)
		bound = upper;
	else
	{
		Datum		below;

		values[1] = bound;
		below = QueryAsOwner(plan->def, BuildBatchFallbackQuery(plan, has_lower), 2, types, values,
							 &isnull);
		if (!isnull)
			bound = below;
	}
	if (has_lower && CompareWatermarks(bound, lower, inc->typid, inc->collid) < 0)
		bound = lower;
	if (CompareWatermarks(bound, upper, inc->typid, inc->collid) >= 0)
		*last = true;
	return bound;
}

/*
 * RunBatch loads the next batch of a batched run: at most batch_rows source
 * rows past the watermark (more only when a single incremental value has
 * more rows), up to the high-water mark the first batch fixed.
 */
static void
RunBatch(RunState *rs)
{
	PipelineDef *def = LockCurrentDefinition(rs);
	LoadPlan   *plan = PrepareRun(rs);
	LoadColumn *inc = plan->incremental;
	char	   *wm_text = def->watermark;
	bool		has_wm = wm_text != NULL;
	Datum		wm = has_wm ? WatermarkFromText(wm_text, inc->typid, inc->typmod, def->owner) : (Datum) 0;
	bool		first = rs->rec.batches == 0;
	bool		isnull;
	Datum		bound;

	if (first)
	{
		rs->rec.wm_from = wm_text;
		rs->rec.wm_to = wm_text;
		rs->hwm = ReadHighWaterMark(plan, &isnull, &rs->rec.counts);
		rs->have_hwm = !isnull;
		if (!rs->have_hwm ||
			(has_wm && def->lookback == NULL &&
			 CompareWatermarks(rs->hwm, wm, inc->typid, inc->collid) <= 0))
		{
			rs->finished = true;
			return;
		}
		WaitForSourceWriters(plan);
		rs->read_snapshot = CaptureReadSnapshot();
		ResolvePreparedParts(def->id);
		if (has_wm)
			rs->read_lower = WatermarkToText(def->lookback ? SubtractLookback(wm, def->lookback, inc->typid) : wm,
											 inc->typid);
	}

	bound = NextBatchBound(plan, has_wm, wm, rs->hwm, def->batch_rows, &rs->finished);
	{
		LoadCounts	before = rs->rec.counts;

		ExecuteLoadStep(plan, has_wm,
						(first && has_wm && def->lookback) ? SubtractLookback(wm, def->lookback, inc->typid) : wm,
						true, bound, &rs->rec.counts);
		KeepReadWindow(rs, plan, bound);
		FinishBatchChecks(rs, plan, &before);
	}
	if (first)
		RefreshSourceRelations(def->id, plan->source_relid);
	if (rs->finished && BuildOwedTargetIndex(plan) && wm_text != NULL &&
		strcmp(WatermarkToText(bound, inc->typid), wm_text) == 0)
		StoreTargetIndexPending(def->id, false);
	rs->rec.batches++;
	rs->rec.wm_to = WatermarkToText(bound, inc->typid);
	if (wm_text == NULL || strcmp(rs->rec.wm_to, wm_text) != 0)
		StoreRunWatermark(def, rs->rec.wm_to, rs->rec.run_id);
	RecordRunProgress(&rs->rec);
}

/* RequireNonAtomic refuses a procedure that commits where it cannot */
void
RequireNonAtomic(FunctionCallInfo fcinfo, const char *procedure, const char *detail,
				 const char *hint)
{
	if (fcinfo->context == NULL || !IsA(fcinfo->context, CallContext) ||
		castNode(CallContext, fcinfo->context)->atomic)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_TERMINATION),
				 errmsg("%s cannot run inside a transaction block", procedure),
				 errdetail("%s", detail),
				 errhint("%s", hint)));
}

/*
 * StartCommittedRun writes the 'running' record of a run made in committed
 * steps (its start audit entry with it), in the caller's transaction, which
 * the caller commits. The caller holds the run lock at session level.
 */
void
StartCommittedRun(RunState *rs)
{
	rs->rec.run_id = NextRunId();
	rs->rec.started_at = GetCurrentTimestamp();
	FailInterruptedRuns(rs->rec.def->id, rs->rec.run_id);
	rs->rec.wm_from = rs->rec.def->watermark;
	rs->rec.wm_to = rs->rec.def->watermark;
	RecordRunStart(&rs->rec);
}

/*
 * RunCommittedSteps commits the caller's transaction (the run's start),
 * then runs step in a subtransaction of a transaction of its own, each
 * committed, until a step finishes the run; the last one records its
 * outcome. The caller connected to SPI non-atomically and pinned
 * search_path (nestlevel); a failed step is recorded by RunGuarded and
 * re-thrown.
 */
void
RunCommittedSteps(RunState *rs, RunStep step, int nestlevel)
{
	UnpinSearchPath(nestlevel);
	SPI_commit();
	while (!rs->finished)
	{
		nestlevel = PinSearchPath();
		RequireReadCommitted(rs->rec.def);
		RunGuarded(rs, step);
		if (rs->finished)
		{
			rs->rec.status = RUN_SUCCEEDED;
			rs->rec.config_version = CurrentConfigVersion(rs->rec.def->id);
			RecordRunOutcome(&rs->rec);
		}
		UnpinSearchPath(nestlevel);
		SPI_commit();
	}
}

/*
 * RunBatchedCall performs a run in committed batches for a CALL (of
 * pipeline.run_batched or pipeline.scheduled_run). The run lock is held at
 * session level across the commits and released on every way out.
 */
void
RunBatchedCall(FunctionCallInfo fcinfo, const char *name, int64 batch_rows,
			   const char *triggered_by)
{
	PipelineDef *def;
	RunState	rs;
	RunRequest	req = {triggered_by, 0, 1, 0, false};
	int			nestlevel;

	RequireNonAtomic(fcinfo, "pipeline.run_batched", "A batched run commits after every batch.",
					 "CALL it outside BEGIN ... COMMIT, or use pipeline.run.");
	SPI_connect_ext(SPI_OPT_NONATOMIC);
	nestlevel = PinSearchPath();
	def = LoadPipelineByName(name, false);
	if (batch_rows != 0)
		def->batch_rows = batch_rows;
	StartRunState(&rs, def, &req);
	CheckRunnable(def, "run");
	if (def->incremental_column == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pipeline \"%s\" has no incremental column to batch by", def->name),
				 errhint("Use pipeline.run, or give the pipeline an incremental column.")));
	if (def->batch_rows <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch size of pipeline \"%s\" must be positive", def->name),
				 errdetail("The batch size is %lld.", (long long) def->batch_rows),
				 errhint("Pass batch_rows, or set it with pipeline.alter_pipeline.")));
	if (!TryLockPipeline(def->id, true))
	{
		RecordSkippedRun(&rs);
		UnpinSearchPath(nestlevel);
		SPI_finish();
		return;
	}

	PG_TRY();
	{
		StartCommittedRun(&rs);
		RunCommittedSteps(&rs, RunBatch, nestlevel);
	}
	PG_FINALLY();
	{
		UnlockPipeline(def->id);
	}
	PG_END_TRY();
	SPI_finish();
}

/* pipeline.run_batched(name, batch_rows) */
Datum
pipeline_run_batched(PG_FUNCTION_ARGS)
{
	RequireArg(fcinfo, 0, "pipeline name");
	if (!PG_ARGISNULL(1) && PG_GETARG_INT64(1) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch size of pipeline \"%s\" must be positive",
						text_to_cstring(PG_GETARG_TEXT_PP(0))),
				 errdetail("The batch size is %lld.", (long long) PG_GETARG_INT64(1)),
				 errhint("Pass batch_rows, or set it with pipeline.alter_pipeline.")));
	RunBatchedCall(fcinfo, text_to_cstring(PG_GETARG_TEXT_PP(0)),
				   PG_ARGISNULL(1) ? 0 : PG_GETARG_INT64(1), "manual");
	PG_RETURN_VOID();
}
