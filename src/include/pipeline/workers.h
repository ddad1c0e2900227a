/*-------------------------------------------------------------------------
 *
 * src/include/pipeline/workers.h
 *
 * Layer 5, the workers (src/workers/): the launcher loop, the run worker,
 * the monitor (limits, history pruning, recovery of interrupted runs), the
 * pg_cron schedules and the OpenLineage sender.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_WORKERS_H
#define PIPELINE_WORKERS_H

#include "pipeline/engine.h"

/* What the launcher hands a run worker, in bgw_extra */
typedef struct RunWorkerArgs
{
	Oid			database_id;
	int64		queue_id;
	int64		pipeline_id;
} RunWorkerArgs;

/* workers/launcher.c: GUCs and set-up */
extern int	pipeline_check_interval;
extern int	pipeline_history_retention;
extern int	pipeline_prune_batch;
extern int	pipeline_retention_pause;
extern void LauncherInit(void);

/* workers/monitor.c */
extern void CheckLimits(void);
extern uint64 PruneHistory(int retention_seconds, int batch);
extern void RefreshAllSourceRelations(void);

/* workers/scheduler.c */
extern void ScheduleCronJob(PipelineDef *def, const char *old_name);
extern bool UnscheduleCronJob(const char *pipeline_name);

/* workers/openlineage_sender.c: posting the OpenLineage outbox */
extern void KeepOpenLineageSender(void);

/* entry points of the background workers */
PGDLLEXPORT void pipeline_launcher_main(Datum arg);
PGDLLEXPORT void pipeline_run_worker_main(Datum arg);

/* workers/part_worker.c: one part of a parallel run (engine/parallel_load.c) */
PGDLLEXPORT void pipeline_part_worker_main(Datum arg);
PGDLLEXPORT void pipeline_openlineage_sender_main(Datum arg);

#endif							/* PIPELINE_WORKERS_H */
