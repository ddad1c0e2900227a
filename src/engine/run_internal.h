/*-------------------------------------------------------------------------
 *
 * src/engine/run_internal.h
 *
 * Private to src/engine/: the pieces of a run's data work (load_step.c)
 * that the run's lifecycle (engine.c) drives.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_ENGINE_RUN_INTERNAL_H
#define PIPELINE_ENGINE_RUN_INTERNAL_H

#include "pipeline/engine.h"

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
