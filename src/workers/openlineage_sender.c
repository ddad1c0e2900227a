/*-------------------------------------------------------------------------
 *
 * src/workers/openlineage_sender.c
 *
 * The OpenLineage sender: a dynamic background worker per database, which
 * the launcher keeps running while pipeline.openlineage_url is set. It
 * posts the events of pipeline.openlineage_outbox (written by the runs'
 * transactions, recorders/openlineage_outbox.c) to that URL, the
 * OpenLineage HTTP transport that Marquez, DataHub and OpenMetadata read:
 *
 *   - at least once: an event is marked delivered only after a 2xx answer,
 *     in a transaction of its own, so a crash in between sends it again;
 *   - in order per run: an event waits while an earlier event of its run
 *     is pending, and when an event is declared dead the later events of
 *     its run die with it (pipeline.openlineage_redeliver revives them);
 *   - with retries: a failed attempt waits 1 s, 2 s, 4 s ... up to
 *     pipeline.openlineage_retry_max, with jitter; after
 *     pipeline.openlineage_max_attempts attempts the event is dead. A 4xx
 *     answer other than 408 and 429 (the collector refuses the event) makes
 *     it dead at once;
 *   - gently: when the endpoint is down, slow or answers 5xx, nothing more
 *     is posted until the failed event's next attempt is due.
 *
 * A transaction that writes events wakes the sender when it commits.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "pipeline/workers.h"

/* how many events one pass picks, and the longest sleep between passes */
#define SENDER_BATCH 50
#define SENDER_IDLE_MS 60000

/* the launcher's handle on its database's sender */
static BackgroundWorkerHandle *sender_handle = NULL;
/* the sender's own slot in pipeline_shared */
static int	sender_slot = -1;
/* after a failure of the endpoint: nothing is posted before this time */
static TimestampTz endpoint_retry_at = 0;

/* One event picked from the outbox */
typedef struct OutboxEvent
{
	int64		event_id;
	int64		run_id;
	char	   *json;
} OutboxEvent;

/*
 * KeepOpenLineageSender starts this database's sender when delivery is on
 * and none runs (it never started, it exited, or it crashed). The launcher
 * calls it on every pass.
 */
void
KeepOpenLineageSender(void)
{
	BackgroundWorker worker;
	pid_t		pid;
	MemoryContext old;

	if (!OpenLineageDeliveryOn())
		return;
	if (sender_handle != NULL &&
		GetBackgroundWorkerPid(sender_handle, &pid) != BGWH_STOPPED)
		return;
	InitPipelineWorker(&worker, "pipeline_openlineage_sender_main", "pg_pipeline openlineage sender",
					   "pg_pipeline openlineage sender");
	memcpy(worker.bgw_extra, &MyDatabaseId, sizeof(Oid));
	worker.bgw_notify_pid = MyProcPid;
	old = MemoryContextSwitchTo(TopMemoryContext);
	if (sender_handle != NULL)
		pfree(sender_handle);
	sender_handle = NULL;
	if (!RegisterDynamicBackgroundWorker(&worker, &sender_handle))
		ereport(LOG,
				(errmsg("pg_pipeline launcher could not start the OpenLineage sender: no background worker slot is free"),
				 errhint("Raise max_worker_processes.")));
	MemoryContextSwitchTo(old);
}

/* ReleaseSenderSlot clears the sender's latch from its launcher's slot at exit */
static void
ReleaseSenderSlot(int code, Datum arg)
{
	SpinLockAcquire(&pipeline_shared->mutex);
	if (pipeline_shared->launchers[sender_slot].sender_pid == MyProcPid)
	{
		pipeline_shared->launchers[sender_slot].sender_pid = 0;
		pipeline_shared->launchers[sender_slot].sender_latch = NULL;
	}
	SpinLockRelease(&pipeline_shared->mutex);
}

/* ClaimSenderSlot publishes the sender's latch in its launcher's slot */
static void
ClaimSenderSlot(void)
{
	SpinLockAcquire(&pipeline_shared->mutex);
	for (int i = 0; i < MAX_LAUNCHERS && sender_slot < 0; i++)
		if (pipeline_shared->launchers[i].database_id == MyDatabaseId)
			sender_slot = i;
	if (sender_slot >= 0)
	{
		pipeline_shared->launchers[sender_slot].sender_pid = MyProcPid;
		pipeline_shared->launchers[sender_slot].sender_latch = &MyProc->procLatch;
	}
	SpinLockRelease(&pipeline_shared->mutex);
	if (sender_slot < 0)
		elog(ERROR, "the pg_pipeline launcher of this database has no slot");
	before_shmem_exit(ReleaseSenderSlot, (Datum) 0);
}

/*
 * PickDueEvents returns, in event order, the pending events that are due
 * and have no earlier pending event of their run, copied into context.
 */
static List *
PickDueEvents(MemoryContext context)
{
	List	   *events = NIL;
	MemoryContext old;

	ExecCatalog("SELECT o.event_id, o.run_id, o.event::text FROM pipeline.openlineage_outbox o"
				" WHERE o.state = 'pending' AND o.next_attempt_at <= now()"
				"   AND NOT EXISTS (SELECT 1 FROM pipeline.openlineage_outbox e"
				"                    WHERE e.run_id = o.run_id AND e.event_id < o.event_id"
				"                      AND e.state = 'pending')"
				" ORDER BY o.event_id LIMIT " CppAsString2(SENDER_BATCH),
				0, NULL, NULL, NULL, true);
	old = MemoryContextSwitchTo(context);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		OutboxEvent *e = palloc(sizeof(OutboxEvent));
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	d = SPI_tuptable->tupdesc;

		e->event_id = strtoll(SPI_getvalue(t, d, 1), NULL, 10);
		e->run_id = strtoll(SPI_getvalue(t, d, 2), NULL, 10);
		e->json = SPI_getvalue(t, d, 3);
		events = lappend(events, e);
	}
	MemoryContextSwitchTo(old);
	return events;
}

/* MarkDelivered records a 2xx answer */
static void
MarkDelivered(OutboxEvent *e)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1];

	BeginWorkerTransaction(NULL);
	values[0] = Int64GetDatum(e->event_id);
	ExecCatalog("UPDATE pipeline.openlineage_outbox SET state = 'delivered', attempts = attempts + 1,"
				" delivered_at = now(), last_error = NULL WHERE event_id = $1 AND state = 'pending'",
				1, types, values, NULL, false);
	CommitWorkerTransaction();
}

/*
 * MarkFailed records a failed attempt: the event waits for its next
 * attempt, or is dead (permanent, or out of attempts) and so are the later
 * events of its run. Returns the milliseconds until its next attempt, 0
 * when it died.
 */
static long
MarkFailed(OutboxEvent *e, const char *error, bool permanent)
{
	Oid			types[5] = {INT8OID, TEXTOID, BOOLOID, INT4OID, INT4OID};
	Datum		values[5];
	long		wait_ms = 0;

	BeginWorkerTransaction(NULL);
	values[0] = Int64GetDatum(e->event_id);
	values[1] = CStringGetTextDatum(error);
	values[2] = BoolGetDatum(permanent);
	values[3] = Int32GetDatum(openlineage_max_attempts);
	values[4] = Int32GetDatum(openlineage_retry_max_s);
	ExecCatalog("WITH f AS ("
				"  UPDATE pipeline.openlineage_outbox SET attempts = attempts + 1, last_error = $2,"
				"         state = CASE WHEN $3 OR attempts + 1 >= $4 THEN 'dead' ELSE 'pending' END,"
				"         next_attempt_at = now() + make_interval(secs =>"
				"             least($5::float8, 2 ^ least(attempts, 30)) * (0.75 + random() / 2))"
				"   WHERE event_id = $1 AND state = 'pending'"
				"  RETURNING run_id, event_id, state, next_attempt_at),"
				" later AS ("
				"  UPDATE pipeline.openlineage_outbox o SET state = 'dead',"
				"         last_error = 'event ' || f.event_id || ' of the same run is dead'"
				"    FROM f WHERE f.state = 'dead' AND o.run_id = f.run_id"
				"     AND o.event_id > f.event_id AND o.state = 'pending')"
				" SELECT greatest(0, ceil(extract(epoch FROM f.next_attempt_at - now()) * 1000))::bigint,"
				"        f.state FROM f",
				5, types, values, NULL, false);
	if (SPI_processed > 0 &&
		strcmp(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2), "pending") == 0)
		wait_ms = strtol(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1), NULL, 10);
	CommitWorkerTransaction();
	return wait_ms;
}

/* NextDueMs returns the milliseconds until the next pending event is due */
static long
NextDueMs(void)
{
	long		ms = SENDER_IDLE_MS;

	BeginWorkerTransaction(NULL);
	ExecCatalog("SELECT ceil(extract(epoch FROM min(next_attempt_at) - now()) * 1000)::bigint"
				" FROM pipeline.openlineage_outbox WHERE state = 'pending'",
				0, NULL, NULL, NULL, true);
	if (SPI_processed > 0)
	{
		char	   *v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		if (v)
			ms = Max(0, Min(strtol(v, NULL, 10), SENDER_IDLE_MS));
	}
	CommitWorkerTransaction();
	return ms;
}

/*
 * SendDueEvents posts the events that are due, one at a time, and returns
 * how long to sleep: until the failed event's next attempt after a failure
 * of the endpoint, else until the next pending event is due.
 */
static long
SendDueEvents(MemoryContext context)
{
	List	   *events;
	ListCell   *lc;
	long		wait_ms;

	if (GetCurrentTimestamp() < endpoint_retry_at)
		return Max(1, (long) ((endpoint_retry_at - GetCurrentTimestamp()) / 1000));
	BeginWorkerTransaction("pg_pipeline openlineage sender: picking events");
	if (!OidIsValid(get_extension_oid(PIPELINE_EXTENSION, true)))
	{
		CommitWorkerTransaction();
		return SENDER_IDLE_MS;
	}
	events = PickDueEvents(context);
	CommitWorkerTransaction();

	foreach(lc, events)
	{
		OutboxEvent *e = lfirst(lc);
		long		status = 0;
		char	   *error = NULL;

		CHECK_FOR_INTERRUPTS();
		pgstat_report_activity(STATE_RUNNING, "pg_pipeline openlineage sender: posting an event");
		if (HttpPostJson(openlineage_url, e->json, openlineage_api_key, openlineage_timeout_ms,
						 &status, &error) && status >= 200 && status < 300)
		{
			MarkDelivered(e);
			continue;
		}
		CHECK_FOR_INTERRUPTS();
		if (error == NULL && status >= 400 && status < 500 && status != 408 && status != 429)
		{
			/*
			 * the collector refuses this event: another attempt would fare no
			 * better. (No later event of its run is in this batch: it was
			 * pending behind this one.)
			 */
			(void) MarkFailed(e, psprintf("HTTP %ld: the collector refused the event", status), true);
			continue;
		}
		/* the endpoint is down, slow or failing: wait for this event's next attempt */
		pgstat_report_activity(STATE_IDLE, NULL);
		wait_ms = MarkFailed(e, error ? error : psprintf("HTTP %ld", status), false);
		endpoint_retry_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), wait_ms);
		return Max(1, wait_ms);
	}
	pgstat_report_activity(STATE_IDLE, NULL);
	return events != NIL ? 0 : NextDueMs();
}

/*
 * pipeline_openlineage_sender_main: connect to the launcher's database and
 * post events until delivery is turned off (pipeline.openlineage_url
 * emptied) or the process is told to stop.
 */
void
pipeline_openlineage_sender_main(Datum arg)
{
	Oid			database_id;
	MemoryContext pass_context;

	memcpy(&database_id, MyBgworkerEntry->bgw_extra, sizeof(Oid));
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(database_id, InvalidOid, 0);
	pgstat_report_appname("pg_pipeline openlineage sender");
	SetConfigOption("jit", "off", PGC_SUSET, PGC_S_OVERRIDE);
	ClaimSenderSlot();
	pass_context = AllocSetContextCreate(TopMemoryContext, "pg_pipeline openlineage sender",
										 ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		long		sleep_ms;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (!OpenLineageDeliveryOn())
		{
			ereport(LOG, (errmsg("pg_pipeline openlineage sender stops: pipeline.openlineage_url is empty")));
			proc_exit(0);
		}
		sleep_ms = SendDueEvents(pass_context);
		MemoryContextReset(pass_context);
		if (sleep_ms > 0)
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 sleep_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
