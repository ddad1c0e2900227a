/*-------------------------------------------------------------------------
 *
 * src/workers/run_worker.c
 *
 * A dynamic background worker that executes one queued run. In a first
 * short transaction it claims the queue entry, takes the pipeline's run
 * lock (held until it exits) and commits a 'running' run record, so that a
 * crash leaves a trace the launcher recovers from. In a second transaction
 * it runs the pipeline with the engine, under the pipeline's timeout. When
 * the run fails it records the failure in a third transaction, through the
 * recorders' one writer (its record, lineage row, audit entries and
 * run_failed alert; no autonomous worker is needed) and, for a transient
 * failure, queues the next attempt with exponential backoff and jitter, up
 * to the pipeline's max_retries; the last failed attempt of a transient
 * failure also raises retries_exhausted.
 *
 * SIGTERM (pg_terminate_backend, a server shutdown) cancels the run, which
 * is then recorded as failed with 57P01 like any other failure.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/xact.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

#include "pipeline/workers.h"

static volatile sig_atomic_t termination_requested = false;

/* RunWorkerSigterm turns SIGTERM into a cancel of the run, recorded as such */
static void
RunWorkerSigterm(SIGNAL_ARGS)
{
	int			save_errno = errno;

	termination_requested = true;
	InterruptPending = true;
	QueryCancelPending = true;
	SetLatch(MyLatch);
	errno = save_errno;
}

/* CopyInterval copies an interval into the current memory context */
static Interval *
CopyInterval(Interval *i)
{
	Interval   *copy = palloc(sizeof(Interval));

	memcpy(copy, i, sizeof(Interval));
	return copy;
}

/* IntervalMilliseconds converts an interval to milliseconds (months as 30 days) */
static double
IntervalMilliseconds(Interval *i)
{
	return (double) i->time / 1000.0 +
		((double) i->day + (double) i->month * 30.0) * 86400000.0;
}

/*
 * RetryDelaySeconds is retry_delay * 2^(attempt - 1), plus up to 50%
 * jitter so that retries of many pipelines do not arrive together, capped
 * at an hour.
 */
static double
RetryDelaySeconds(PipelineDef *def, int32 attempt)
{
	double		base = def->retry_delay ? IntervalMilliseconds(def->retry_delay) / 1000.0 : 10.0;
	double		delay = base * pow(2.0, (double) (attempt - 1));

	delay *= 1.0 + 0.5 * pg_prng_double(&pg_global_prng_state);
	return Min(delay, 3600.0);
}

/*
 * IsTransientError tells whether a failure may go away by itself, so that a
 * retry makes sense: serialization failures, deadlocks, lock and statement
 * timeouts, too many connections, and shutdowns. Data, integrity, syntax
 * and privilege errors are permanent.
 */
static bool
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
 * HandleFailure records the failed attempt and decides what follows: the
 * next attempt of a transient failure, or an alert when none is left.
 */
static void
HandleFailure(PipelineDef *def, RunRecord *failed, bool timed_out)
{
	bool		transient;

	if (termination_requested)
	{
		failed->sqlerrcode = ERRCODE_ADMIN_SHUTDOWN;
		failed->message = "run terminated: its worker received SIGTERM (pg_terminate_backend or a server shutdown)";
		failed->detail = failed->hint = NULL;
	}
	else if (timed_out)
	{
		failed->message = psprintf("run exceeded its timeout of %s",
								   DatumGetCString(DirectFunctionCall1(interval_out,
																	   IntervalPGetDatum(def->timeout))));
		failed->detail = NULL;
		failed->hint = "Raise the pipeline's timeout with pipeline.alter_pipeline, or load less per run with batch_rows.";
	}
	/* a cancel that is not the timeout is somebody's decision: no retry */
	transient = IsTransientError(failed->sqlerrcode) &&
		(failed->sqlerrcode != ERRCODE_QUERY_CANCELED || timed_out || termination_requested);

	/* a second cancel (or SIGTERM) must not lose the record of the first */
	HOLD_CANCEL_INTERRUPTS();
	BeginWorkerTransaction(NULL);
	failed->config_version = CurrentConfigVersion(failed->def->id);
	RecordRunOutcome(failed);
	if (transient && failed->attempt <= def->max_retries)
		EnqueueRun(def->id, "retry", failed->parent_run_id, failed->attempt + 1,
				   RetryDelaySeconds(def, failed->attempt));
	else if (transient && def->max_retries > 0)
		RaiseAlert(def->id, def->name, "retries_exhausted", unpack_sql_state(failed->sqlerrcode),
				   psprintf("%d retries", def->max_retries), failed->run_id,
				   psprintf("pipeline \"%s\" failed %d times: %s", def->name,
							failed->attempt, failed->message));
	CommitWorkerTransaction();
	RESUME_CANCEL_INTERRUPTS();
}

/*
 * pipeline_run_worker_main executes the queued run named in bgw_extra. It
 * connects as the bootstrap superuser; the engine does the data work as the
 * pipeline's owner.
 */
void
pipeline_run_worker_main(Datum arg)
{
	RunWorkerArgs args;
	PipelineDef *def;
	RunRequest	req = {0};
	RunRecord	start;
	bool		isnull;
	Oid			types[1] = {INT8OID};
	Datum		values[1];
	volatile double timeout_ms = 0;
	volatile TimestampTz started;

	memcpy(&args, MyBgworkerEntry->bgw_extra, sizeof(args));
	pqsignal(SIGTERM, RunWorkerSigterm);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(args.database_id, InvalidOid, 0);
	pgstat_report_appname("pg_pipeline worker");
	/* short catalog statements: compiling them would cost more than running them */
	SetConfigOption("jit", "off", PGC_SUSET, PGC_S_OVERRIDE);

	/* 1. claim the queue entry, take the run lock, commit a 'running' record */
	BeginWorkerTransaction(NULL);
	values[0] = Int64GetDatum(args.queue_id);
	ExecCatalog("DELETE FROM pipeline.run_queue WHERE queue_id = $1"
				" RETURNING reason, coalesce(parent_run_id, 0), attempt",
				1, types, values, NULL, false);
	if (SPI_processed == 0)
	{
		CommitWorkerTransaction();				/* claimed by another worker, or the pipeline went */
		proc_exit(0);
	}
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
		HeapTuple	tup = SPI_tuptable->vals[0];

		req.triggered_by = pstrdup(SPI_getvalue(tup, SPI_tuptable->tupdesc, 1));
		req.parent_run_id = DatumGetInt64(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull));
		req.attempt = DatumGetInt32(SPI_getbinval(tup, SPI_tuptable->tupdesc, 3, &isnull));
		MemoryContextSwitchTo(old);
	}
	def = LoadPipelineById(args.pipeline_id);
	if (def == NULL || !def->active)
	{
		CommitWorkerTransaction();
		proc_exit(0);
	}
	if (!TryLockPipeline(def->id, true))
	{
		/* a run is in progress elsewhere: come back when it may be over */
		EnqueueRun(def->id, "busy", req.parent_run_id, req.attempt,
				   RetryDelaySeconds(def, 1));
		CommitWorkerTransaction();
		proc_exit(0);
	}
	req.run_id = NextRunId();
	req.record_failure_inline = true;
	req.ends_transaction = true;	/* its transaction commits right after it */
	memset(&start, 0, sizeof(start));
	start.run_id = req.run_id;
	start.def = def;
	start.status = RUN_RUNNING;
	start.started_at = GetCurrentTimestamp();
	start.wm_from = def->watermark;
	start.wm_to = def->watermark;
	start.triggered_by = req.triggered_by;
	start.parent_run_id = req.parent_run_id;
	start.attempt = req.attempt;
	RecordRunStart(&start);
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
		PipelineDef *copy = CopyDefIdentity(def);

		copy->max_retries = def->max_retries;
		if (def->retry_delay)
			copy->retry_delay = CopyInterval(def->retry_delay);
		if (def->timeout)
			copy->timeout = CopyInterval(def->timeout);
		MemoryContextSwitchTo(old);
		CommitWorkerTransaction();
		def = copy;
	}

	/* 2. the run, under the pipeline's timeout */
	pgstat_report_activity(STATE_RUNNING, psprintf("running pipeline %s", def->name));
	if (def->timeout)
		timeout_ms = IntervalMilliseconds(def->timeout);
	started = GetCurrentTimestamp();
	PG_TRY();
	{
		BeginWorkerTransaction(NULL);
		if (termination_requested)
			ereport(ERROR,
					(errcode(ERRCODE_ADMIN_SHUTDOWN),
					 errmsg("terminating before the run started")));
		if (timeout_ms > 0)
			enable_timeout_after(STATEMENT_TIMEOUT, (int) Min(timeout_ms, (double) INT_MAX));
		(void) RunPipeline(LoadPipelineById(def->id), &req);
		disable_timeout(STATEMENT_TIMEOUT, false);
		CommitWorkerTransaction();
	}
	PG_CATCH();
	{
		MemoryContext old;
		ErrorData  *edata;
		RunRecord  *failed;
		bool		timed_out;

		disable_timeout(STATEMENT_TIMEOUT, false);
		old = MemoryContextSwitchTo(TopMemoryContext);
		edata = CopyErrorData();
		MemoryContextSwitchTo(old);
		FlushErrorState();
		AbortCurrentTransaction();
		QueryCancelPending = false;
		timed_out = timeout_ms > 0 && edata->sqlerrcode == ERRCODE_QUERY_CANCELED &&
			TimestampDifferenceExceeds(started, GetCurrentTimestamp(), (int) (timeout_ms * 0.99));

		failed = TakeInlineFailure();
		if (failed == NULL)
		{
			/* the error came before the load started (checks, locks) */
			failed = MemoryContextAllocZero(TopMemoryContext, sizeof(RunRecord));
			failed->def = def;
			failed->started_at = started;
			failed->triggered_by = req.triggered_by;
			failed->parent_run_id = req.parent_run_id;
			failed->attempt = req.attempt;
			failed->start_recorded = true;	/* with the 'running' record, in step 1 */
		}
		failed->run_id = req.run_id;
		failed->status = RUN_FAILED;
		failed->sqlerrcode = edata->sqlerrcode;
		failed->message = edata->message;
		failed->detail = edata->detail;
		failed->hint = edata->hint;
		HandleFailure(def, failed, timed_out);
	}
	PG_END_TRY();

	UnlockPipeline(def->id);
	pgstat_report_activity(STATE_IDLE, NULL);
	proc_exit(0);
}
