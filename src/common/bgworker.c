/*-------------------------------------------------------------------------
 *
 * src/common/bgworker.c
 *
 * What every pg_pipeline background worker shares: its registration record
 * (InitPipelineWorker), and the transaction a worker does its work in
 * (BeginWorkerTransaction / CommitWorkerTransaction: statement start time,
 * transaction, SPI, snapshot, pinned search_path, pg_stat_activity), so
 * that the launcher, the run workers and the recorders open and close their
 * transactions the same way.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "utils/snapmgr.h"

#include "pipeline/common.h"

/* the GUC nest level of the open worker transaction's pinned search_path */
static int	worker_nestlevel = -1;
/* whether BeginWorkerTransaction reported an activity to clear at commit */
static bool worker_reported = false;

/*
 * InitPipelineWorker fills what every pg_pipeline background worker has in
 * common: a database connection, started once recovery is over, the entry
 * point in this library, and its names in pg_stat_activity. Dynamic workers
 * are never restarted; the caller sets what differs.
 */
void
InitPipelineWorker(BackgroundWorker *worker, const char *function, const char *type,
				   const char *name)
{
	memset(worker, 0, sizeof(BackgroundWorker));
	worker->bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker->bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker->bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker->bgw_library_name, BGW_MAXLEN, "%s", PIPELINE_EXTENSION);
	snprintf(worker->bgw_function_name, BGW_MAXLEN, "%s", function);
	snprintf(worker->bgw_type, BGW_MAXLEN, "%s", type);
	snprintf(worker->bgw_name, BGW_MAXLEN, "%s", name);
}


/*
 * BeginWorkerTransaction starts a worker's unit of work: a transaction with
 * SPI, a snapshot and search_path pinned, reported in pg_stat_activity.
 */
void
BeginWorkerTransaction(const char *activity)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	worker_nestlevel = PinSearchPath();
	worker_reported = activity != NULL;
	if (activity)
		pgstat_report_activity(STATE_RUNNING, activity);
}

/*
 * CommitWorkerTransaction ends the unit of work BeginWorkerTransaction
 * began (and reports the worker idle if it reported an activity).
 */
void
CommitWorkerTransaction(void)
{
	UnpinSearchPath(worker_nestlevel);
	worker_nestlevel = -1;
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	if (worker_reported)
		pgstat_report_activity(STATE_IDLE, NULL);
	worker_reported = false;
}
