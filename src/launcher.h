/*-------------------------------------------------------------------------
 *
 * src/launcher.h
 *
 * Declarations shared by the launcher (launcher.c), the run workers
 * (run_worker.c) and the monitor (monitor.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_LAUNCHER_H
#define PIPELINE_LAUNCHER_H

#include "postgres.h"

/* What the launcher hands a run worker, in bgw_extra */
typedef struct RunWorkerArgs
{
	Oid			database_id;
	int64		queue_id;
	int64		pipeline_id;
} RunWorkerArgs;

/* GUCs */
extern char *pipeline_databases;
extern int	pipeline_check_interval;
extern int	pipeline_history_retention;
extern int	pipeline_prune_batch;

/* monitor.c */
extern void CheckLimits(void);
extern uint64 PruneHistory(int retention_seconds, int batch);
extern void RecoverInterruptedRuns(void);
extern void RefreshAllSourceRelations(void);

/* entry points of the background workers */
PGDLLEXPORT void pipeline_launcher_main(Datum arg);
PGDLLEXPORT void pipeline_run_worker_main(Datum arg);

#endif							/* PIPELINE_LAUNCHER_H */
