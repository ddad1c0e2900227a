/*-------------------------------------------------------------------------
 *
 * src/api/pg_pipeline.c
 *
 * Module entry point of pg_pipeline: the module magic and _PG_init, which
 * installs the executor hook that reads a load's exact MERGE counts (a
 * no-op for every statement but the engine's own MERGE), has each module
 * define its settings, reserves the pipeline. prefix once all are defined,
 * and, under shared_preload_libraries, registers the launchers.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/guc.h"

#include "pipeline/recorders.h"
#include "pipeline/workers.h"

PG_MODULE_MAGIC;

PGDLLEXPORT void _PG_init(void);

void
_PG_init(void)
{
	InstallCounterHooks();
	OpenLineageInit();
	OpenLineageOutboxInit();
	RetentionInit();
	ParallelLoadInit();
	PartitionRowsInit();
	LauncherInit();

	/*
	 * Last, once every module has defined its settings: a placeholder of a
	 * setting defined after this call would be removed.
	 */
	MarkGUCPrefixReserved("pipeline");
}
