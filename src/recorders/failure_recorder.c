/*-------------------------------------------------------------------------
 *
 * src/recorders/failure_recorder.c
 *
 * Records a failed run in its own transaction. A run executes inside the
 * caller's transaction, and the caller gets the error, so whatever the run
 * writes is rolled back with the caller's transaction. The record of the
 * failure must survive that: the engine hands it to a short-lived dynamic
 * background worker, which connects to the same database as the extension
 * owner, upserts the run record (and the run_failed alert), commits, and
 * exits. The engine waits for
 * the worker before it re-throws the error, so the record exists by the time
 * the caller sees the error.
 *
 * Dynamic workers need no shared_preload_libraries; they need a free slot
 * under max_worker_processes. Without one the failure is logged as a
 * WARNING and the original error is still raised.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "utils/builtins.h"
#include "utils/elog.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "pipeline/recorders.h"

#define FAILED_RUN_TEXT_LEN 4096
#define FAILED_RUN_NAME_LEN 512

/* What the worker writes, copied into a dynamic shared memory segment */
typedef struct FailedRunMessage
{
	Oid			database_id;
	Oid			role_id;
	int64		run_id;
	int64		pipeline_id;
	int64		parent_run_id;
	TimestampTz started_at;
	int64		counts[6];
	int32		batches;
	int32		attempt;
	bool		has_wm_from;
	bool		has_wm_to;
	bool		recorded;
	char		sqlstate[6];
	char		pipeline_name[FAILED_RUN_NAME_LEN];
	char		triggered_by[64];
	char		wm_from[FAILED_RUN_NAME_LEN];
	char		wm_to[FAILED_RUN_NAME_LEN];
	char		message[FAILED_RUN_TEXT_LEN];
} FailedRunMessage;

PGDLLEXPORT void pipeline_failure_recorder_main(Datum arg);

/* CopyBounded copies a string into a fixed buffer, cut at a character boundary */
static void
CopyBounded(char *dst, const char *src, int size)
{
	int			len = strlen(src);

	if (len >= size)
		len = pg_mbcliplen(src, len, size - 1);
	memcpy(dst, src, len);
	dst[len] = '\0';
}

/*
 * RecordFailedRun writes (or, for a batched run whose record already
 * exists, updates) the failed run's record in an autonomous transaction.
 */
void
RecordFailedRun(FailedRun *run)
{
	dsm_segment *seg;
	FailedRunMessage *msg;
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	BgwHandleStatus status;
	pid_t		pid;

	seg = dsm_create(sizeof(FailedRunMessage), 0);
	msg = dsm_segment_address(seg);
	memset(msg, 0, sizeof(FailedRunMessage));
	msg->database_id = MyDatabaseId;
	msg->role_id = ExtensionOwner();
	msg->run_id = run->run_id;
	msg->pipeline_id = run->def->id;
	msg->parent_run_id = run->parent_run_id;
	msg->started_at = run->started_at;
	msg->counts[0] = run->counts.read;
	msg->counts[1] = run->counts.inserted;
	msg->counts[2] = run->counts.updated;
	msg->counts[3] = run->counts.deleted;
	msg->counts[4] = run->counts.unchanged;
	msg->counts[5] = run->counts.rejected;
	msg->batches = run->batches;
	msg->attempt = run->attempt > 0 ? run->attempt : 1;
	CopyBounded(msg->pipeline_name, run->def->name, FAILED_RUN_NAME_LEN);
	CopyBounded(msg->triggered_by, run->triggered_by, sizeof(msg->triggered_by));
	if (run->wm_from)
	{
		msg->has_wm_from = true;
		CopyBounded(msg->wm_from, run->wm_from, FAILED_RUN_NAME_LEN);
	}
	if (run->wm_to)
	{
		msg->has_wm_to = true;
		CopyBounded(msg->wm_to, run->wm_to, FAILED_RUN_NAME_LEN);
	}
	CopyBounded(msg->sqlstate, unpack_sql_state(run->sqlerrcode), sizeof(msg->sqlstate));
	CopyBounded(msg->message, run->message ? run->message : "", FAILED_RUN_TEXT_LEN);

	InitPipelineWorker(&worker, "pipeline_failure_recorder_main", "pg_pipeline failure recorder", "pg_pipeline failure recorder");
	worker.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(seg));
	worker.bgw_notify_pid = MyProcPid;

	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not record failed run %lld of pipeline \"%s\"",
						(long long) run->run_id, run->def->name),
				 errdetail("No background worker slot was free to write the record."),
				 errhint("Raise max_worker_processes.")));
		dsm_detach(seg);
		return;
	}
	status = WaitForBackgroundWorkerStartup(handle, &pid);
	if (status == BGWH_STARTED)
		status = WaitForBackgroundWorkerShutdown(handle);
	if (!msg->recorded)
		ereport(WARNING,
				(errmsg("could not record failed run %lld of pipeline \"%s\"",
						(long long) run->run_id, run->def->name),
				 errdetail("The failure recorder did not finish; see the server log.")));
	dsm_detach(seg);
}

/*
 * StoreFailedRun writes a failed run record in the current transaction
 * (inserting it, or updating the 'running' record of a batched or worker
 * run), and raises the run_failed alert.
 */
void
StoreFailedRun(FailedRun *run)
{
	Oid			types[18];
	Datum		values[18];
	char		nulls[18];
	int64		counts[6] = {run->counts.read, run->counts.inserted, run->counts.updated,
		run->counts.deleted, run->counts.unchanged, run->counts.rejected};

	memset(nulls, ' ', sizeof(nulls));
	types[0] = INT8OID;
	values[0] = Int64GetDatum(run->run_id);
	types[1] = INT8OID;
	values[1] = Int64GetDatum(run->def->id);
	types[2] = TEXTOID;
	values[2] = CStringGetTextDatum(run->def->name);
	types[3] = TIMESTAMPTZOID;
	values[3] = TimestampTzGetDatum(run->started_at);
	for (int i = 0; i < 6; i++)
	{
		types[4 + i] = INT8OID;
		values[4 + i] = Int64GetDatum(counts[i]);
	}
	types[10] = INT4OID;
	values[10] = Int32GetDatum(run->batches);
	types[11] = TEXTOID;
	values[11] = TextOrNull(run->wm_from, &nulls[11]);
	types[12] = TEXTOID;
	values[12] = TextOrNull(run->wm_to, &nulls[12]);
	types[13] = TEXTOID;
	values[13] = CStringGetTextDatum(unpack_sql_state(run->sqlerrcode));
	types[14] = TEXTOID;
	values[14] = CStringGetTextDatum(run->message ? run->message : "");
	types[15] = TEXTOID;
	values[15] = CStringGetTextDatum(run->triggered_by);
	types[16] = INT8OID;
	values[16] = Int64GetDatum(run->parent_run_id);
	nulls[16] = run->parent_run_id > 0 ? ' ' : 'n';
	types[17] = INT4OID;
	values[17] = Int32GetDatum(run->attempt > 0 ? run->attempt : 1);
	ExecCatalog("INSERT INTO pipeline.run_history AS h (run_id, pipeline_id, pipeline_name,"
				" status, started_at, finished_at, rows_read, rows_inserted, rows_updated,"
				" rows_deleted, rows_unchanged, rows_rejected, batches, watermark_from,"
				" watermark_to, error_sqlstate, error_message, triggered_by, parent_run_id, attempt)"
				" VALUES ($1, $2, $3, 'failed', $4, clock_timestamp(), $5, $6, $7,"
				" $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
				" ON CONFLICT (run_id) DO UPDATE SET status = 'failed',"
				" finished_at = excluded.finished_at, rows_read = excluded.rows_read,"
				" rows_inserted = excluded.rows_inserted, rows_updated = excluded.rows_updated,"
				" rows_deleted = excluded.rows_deleted, rows_unchanged = excluded.rows_unchanged,"
				" rows_rejected = excluded.rows_rejected, batches = excluded.batches,"
				" watermark_to = excluded.watermark_to,"
				" error_sqlstate = excluded.error_sqlstate, error_message = excluded.error_message",
				18, types, values, nulls, false);
	RaiseAlert(run->def->id, run->def->name, "run_failed", unpack_sql_state(run->sqlerrcode),
			   NULL, run->run_id, run->message);
}

/*
 * IsTransientError tells whether a failure may go away by itself, so that a
 * retry makes sense: serialization failures, deadlocks, lock and statement
 * timeouts, too many connections, and shutdowns. Data, integrity, syntax
 * and privilege errors are permanent.
 */
bool
IsTransientError(int sqlerrcode)
{
	switch (sqlerrcode)
	{
		case ERRCODE_T_R_SERIALIZATION_FAILURE:
		case ERRCODE_T_R_DEADLOCK_DETECTED:
		case ERRCODE_LOCK_NOT_AVAILABLE:
		case ERRCODE_QUERY_CANCELED:
		case ERRCODE_TOO_MANY_CONNECTIONS:
		case ERRCODE_ADMIN_SHUTDOWN:
		case ERRCODE_CRASH_SHUTDOWN:
		case ERRCODE_CANNOT_CONNECT_NOW:
			return true;
		default:
			return false;
	}
}

/*
 * pipeline_failure_recorder_main is the worker: attach the message, connect,
 * store the failed run record, commit, report success through the segment.
 */
void
pipeline_failure_recorder_main(Datum arg)
{
	dsm_segment *seg;
	FailedRunMessage *msg;
	FailedRun	run;
	PipelineDef def;

	BackgroundWorkerUnblockSignals();
	seg = dsm_attach(DatumGetUInt32(arg));
	if (seg == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_pipeline failure recorder could not attach its message")));
	msg = dsm_segment_address(seg);
	BackgroundWorkerInitializeConnectionByOid(msg->database_id, msg->role_id, 0);

	memset(&def, 0, sizeof(def));
	def.id = msg->pipeline_id;
	def.name = msg->pipeline_name;
	memset(&run, 0, sizeof(run));
	run.run_id = msg->run_id;
	run.def = &def;
	run.started_at = msg->started_at;
	run.counts.read = msg->counts[0];
	run.counts.inserted = msg->counts[1];
	run.counts.updated = msg->counts[2];
	run.counts.deleted = msg->counts[3];
	run.counts.unchanged = msg->counts[4];
	run.counts.rejected = msg->counts[5];
	run.batches = msg->batches;
	run.attempt = msg->attempt;
	run.wm_from = msg->has_wm_from ? msg->wm_from : NULL;
	run.wm_to = msg->has_wm_to ? msg->wm_to : NULL;
	run.triggered_by = msg->triggered_by;
	run.parent_run_id = msg->parent_run_id;
	run.sqlerrcode = MAKE_SQLSTATE(msg->sqlstate[0], msg->sqlstate[1], msg->sqlstate[2],
								   msg->sqlstate[3], msg->sqlstate[4]);
	run.message = msg->message;

	BeginWorkerTransaction("recording a failed pipeline run");
	StoreFailedRun(&run);
	CommitWorkerTransaction();
	msg->recorded = true;
	dsm_detach(seg);
	proc_exit(0);
}
