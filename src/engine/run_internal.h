/*-------------------------------------------------------------------------
 *
 * src/engine/run_internal.h
 *
 * Private to src/engine/: the pieces of a run's data work (load_step.c)
 * that the run's lifecycle (engine.c) drives, and the parts of that
 * lifecycle a backfill (backfill.c) is made of.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_ENGINE_RUN_INTERNAL_H
#define PIPELINE_ENGINE_RUN_INTERNAL_H

#include "pipeline/engine.h"

/* The state of one run, kept outside its subtransactions */
typedef struct RunState
{
	RunRecord	rec;			/* what is recorded of the run */
	bool		record_failure_inline;	/* the caller records a failure itself */
	/* batched runs: the high-water mark fixed by the first batch */
	bool		have_hwm;
	Datum		hwm;
	bool		finished;
	/* what the load steps read: the snapshot before the first, the lower bound */
	char	   *read_snapshot;
	char	   *read_lower;
	struct BackfillRange *range;	/* a backfill's range and batches (backfill.c) */
	bool		may_go_parallel;	/* its caller's transaction wrote nothing
									 * before it (parallel_load.c) */
	bool		ends_transaction;	/* RunRequest's */
	bool		in_transaction_block;	/* its caller's transaction is a block
										 * (read before the run's subtransaction) */
} RunState;

/* One step of a run, in a subtransaction (RunGuarded) */
typedef void (*RunStep) (RunState *rs);

/* engine.c */
extern void StartRunState(RunState *rs, PipelineDef *def, RunRequest *req);
extern void CheckRunnable(PipelineDef *def, const char *action);
extern void RequireReadCommitted(PipelineDef *def);
extern void RequireNonAtomic(FunctionCallInfo fcinfo, const char *procedure, const char *detail,
							 const char *hint);
extern PipelineDef *LockCurrentDefinition(RunState *rs);
extern LoadPlan *PrepareRun(RunState *rs);
extern void RunGuarded(RunState *rs, RunStep step);
extern void StartCommittedRun(RunState *rs);
extern void RunCommittedSteps(RunState *rs, RunStep step, int nestlevel);
extern void FinishBatchChecks(RunState *rs, LoadPlan *plan, LoadCounts *before);
extern Datum NextBatchBound(LoadPlan *plan, bool has_lower, Datum lower, Datum upper,
							int64 batch_rows, bool *last);

/* parallel_load.c */
extern bool RunParallelLoad(RunState *rs, LoadPlan *plan, bool has_lower, Datum lower,
							Datum upper);

/* load_step.c */
extern Datum QueryAsOwner(PipelineDef *def, const char *sql, int nargs, Oid *types,
						  Datum *values, bool *isnull);
extern Datum ReadHighWaterMark(LoadPlan *plan, bool *isnull, LoadCounts *counts);
extern void WaitForSourceWriters(LoadPlan *plan);
extern Datum SubtractLookback(Datum wm, Interval *lookback, Oid typid);
extern void ExecuteStatements(LoadPlan *plan, LoadStatements *stmts, bool has_lower,
							  bool has_upper, int nargs, Oid *types,
							  Datum *values, LoadCounts *counts);
extern void ExecuteLoadStep(LoadPlan *plan, bool has_lower, Datum lower, bool has_upper,
							Datum upper, LoadCounts *counts);

#endif							/* PIPELINE_ENGINE_RUN_INTERNAL_H */
