/*-------------------------------------------------------------------------
 *
 * src/engine/recovery.c
 *
 * The one way a run whose process went away (a crash, kill -9, a terminated
 * backend, a server restart) is recorded: its 'running' record is failed
 * with 57P02 and PIPELINE_INTERRUPTED_MESSAGE and a run_failed alert is
 * raised (recorders/run_outcome.c), and the run is queued again when a
 * background worker was making it, so that nothing is lost; the interrupted
 * run rolled back, so running it again applies nothing twice. A run calls
 * it as it starts, for its own pipeline, whose run lock it holds; the
 * launcher calls it on every pass (workers/monitor.c), for every pipeline
 * whose run lock nobody holds. Whichever of them sees a crash first reports
 * it the same way. It lives in the engine because it queues runs.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "pipeline/engine.h"

/*
 * FailInterruptedRuns fails the runs whose process is gone: those of
 * pipeline_id but current_run_id when the caller holds that pipeline's run
 * lock (a run starting), or, with pipeline_id 0, those of every pipeline
 * whose run lock nobody holds. A run that finished meanwhile is left as it
 * finished. Only the runs a background worker was making are queued
 * again, not manual, scheduled or backfill ones.
 */
void
FailInterruptedRuns(int64 pipeline_id, int64 current_run_id)
{
	ListCell   *lc;

	foreach(lc, LoadInterruptedRuns(pipeline_id, current_run_id))
	{
		RunRecord  *run = lfirst(lc);
		PipelineDef *def;

		if (!RecordRunOutcome(run))
			continue;
		if (strcmp(run->triggered_by, "manual") == 0 || strcmp(run->triggered_by, "schedule") == 0 ||
			strcmp(run->triggered_by, "backfill") == 0)
			continue;
		def = LoadPipelineById(run->def->id);
		if (def && def->active)
			EnqueueRun(def->id, "recovery", run->parent_run_id, run->attempt + 1, 0);
	}
}
