/*-------------------------------------------------------------------------
 *
 * src/workers/launcher.c
 *
 * The launcher background worker: one per database named in
 * pipeline.databases, registered when pg_pipeline is in
 * shared_preload_libraries. Its loop, modelled on pg_cron's:
 *
 *   wait on the latch (a commit that queued runs sets it; so does a run
 *   worker that exits) or for the next due retry or check;
 *   in a transaction: recover runs whose process died; start a
 *   run worker for every queued run that is due, whose pipeline is not
 *   running, and none of whose upstream pipelines is queued or running, up
 *   to pipeline.max_workers at once; every pipeline.check_interval, check
 *   freshness and timeliness limits and prune old run history; every pass,
 *   write the coalesced refusals and prune the audit log (recorders/audit_*.c);
 *   purge the raw rows of sources with raw_retention, a batch per pipeline,
 *   every check_interval or retention_pause while there is more
 *   (engine/retention.c);
 *   purge the captured changes every consumer has loaded
 *   (engine/capture_purge.c);
 *   keep the OpenLineage sender running while pipeline.openlineage_url is
 *   set (openlineage_sender.c).
 *
 * Shared memory holds one slot per launcher (database and latch), so that
 * any backend can wake its database's launcher when it commits.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "portability/instr_time.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/array.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
#include "utils/varlena.h"

#include "pipeline/workers.h"

PIPELINE_FUNCTION(pipeline_launcher_status);

#define MAX_WORKERS_LIMIT 64

/* A run worker the launcher started and has not seen exit yet */
typedef struct ActiveWorker
{
	BackgroundWorkerHandle *handle;
	int64		pipeline_id;
} ActiveWorker;

int			pipeline_check_interval = 10;
int			pipeline_retention_pause = 1000;
int			pipeline_history_retention = 90 * 24 * 3600;
int			pipeline_prune_batch = 1000;

static ActiveWorker active_workers[MAX_WORKERS_LIMIT];
static int	my_slot = -1;
static int	started_this_pass = 0;
static bool version_warned = false;	/* the version LOG was written */
static TimestampTz next_purge = 0;	/* when raw retention purges next */

/* RegisterLaunchers registers one launcher per database of pipeline.databases */
static void
RegisterLaunchers(void)
{
	char	   *names = pstrdup(pipeline_databases);
	List	   *list;
	ListCell   *lc;

	if (!SplitIdentifierString(names, ',', &list))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid list syntax in pipeline.databases")));
	if (list_length(list) > MAX_LAUNCHERS)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("pipeline.databases names more than %d databases", MAX_LAUNCHERS)));
	foreach(lc, list)
	{
		BackgroundWorker worker;

		InitPipelineWorker(&worker, "pipeline_launcher_main", "pg_pipeline launcher",
						   psprintf("pg_pipeline launcher for %s", (char *) lfirst(lc)));
		worker.bgw_restart_time = 1;
		strlcpy(worker.bgw_extra, lfirst(lc), BGW_EXTRALEN);
		RegisterBackgroundWorker(&worker);
	}
}

/*
 * LauncherInit defines the GUCs and, when loaded by shared_preload_libraries,
 * asks for shared memory and registers the launchers.
 */
void
LauncherInit(void)
{
	DefineCustomIntVariable("pipeline.max_workers",
							"Most runs the background workers execute at once, per database.",
							NULL, &pipeline_max_workers, 4, 1, MAX_WORKERS_LIMIT,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pipeline.check_interval",
							"How often the launcher checks freshness and timeliness limits and prunes history.",
							NULL, &pipeline_check_interval, 10, 1, 3600,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("pipeline.history_retention",
							"How long run history is kept.",
							NULL, &pipeline_history_retention, 90 * 24 * 3600, 60, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("pipeline.retention_pause",
							"How long the launcher waits between two purges of raw rows while there is more to purge.",
							NULL, &pipeline_retention_pause, 1000, 0, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("pipeline.prune_batch",
							"Most run records one launcher pass deletes.",
							NULL, &pipeline_prune_batch, 1000, 1, 1000000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	AuditInit();
	if (process_shared_preload_libraries_in_progress)
		DefineCustomStringVariable("pipeline.databases",
								   "Databases in which a pg_pipeline launcher runs pipelines.",
								   "A comma-separated list; the launchers start with the server.",
								   &pipeline_databases, "postgres", PGC_POSTMASTER, 0,
								   NULL, NULL, NULL);

	/* a server-start setting and the launchers exist only when preloaded */
	if (!process_shared_preload_libraries_in_progress)
		return;
	LauncherShmemInit();
	RegisterLaunchers();
}

/* ClaimLauncherSlot publishes this launcher's latch; ReleaseLauncherSlot on exit */
static void
ReleaseLauncherSlot(int code, Datum arg)
{
	int			i = DatumGetInt32(arg);

	SpinLockAcquire(&pipeline_shared->mutex);
	pipeline_shared->launchers[i].pid = 0;
	pipeline_shared->launchers[i].latch = NULL;
	SpinLockRelease(&pipeline_shared->mutex);
}

static void
ClaimLauncherSlot(void)
{
	int			slot = -1;

	SpinLockAcquire(&pipeline_shared->mutex);
	for (int i = 0; i < MAX_LAUNCHERS && slot < 0; i++)
		if (pipeline_shared->launchers[i].database_id == MyDatabaseId)
			slot = i;
	for (int i = 0; i < MAX_LAUNCHERS && slot < 0; i++)
		if (pipeline_shared->launchers[i].database_id == InvalidOid)
			slot = i;
	if (slot >= 0)
	{
		pipeline_shared->launchers[slot].database_id = MyDatabaseId;
		pipeline_shared->launchers[slot].pid = MyProcPid;
		pipeline_shared->launchers[slot].latch = &MyProc->procLatch;
		pipeline_shared->launchers[slot].started_at = GetCurrentTimestamp();
		pipeline_shared->launchers[slot].passes = 0;
		pipeline_shared->launchers[slot].last_pass_ms = 0;
		pipeline_shared->launchers[slot].total_pass_ms = 0;
		pipeline_shared->launchers[slot].max_pass_ms = 0;
		pipeline_shared->launchers[slot].workers_started = 0;
	}
	SpinLockRelease(&pipeline_shared->mutex);
	if (slot < 0)
		elog(ERROR, "no free pg_pipeline launcher slot");
	before_shmem_exit(ReleaseLauncherSlot, Int32GetDatum(slot));
	my_slot = slot;
}

/* RecordPass adds one pass of the given duration to this launcher's statistics */
static void
RecordPass(double ms, int started)
{
	LauncherSlot *slot = &pipeline_shared->launchers[my_slot];

	SpinLockAcquire(&pipeline_shared->mutex);
	slot->passes++;
	slot->last_pass_ms = ms;
	slot->total_pass_ms += ms;
	if (ms > slot->max_pass_ms)
		slot->max_pass_ms = ms;
	slot->workers_started += started;
	SpinLockRelease(&pipeline_shared->mutex);
}

/*
 * pipeline.launcher_status(): one row per running launcher, with how many
 * passes it made, how long they took, and how many workers it started.
 */
Datum
pipeline_launcher_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	LauncherSlot copy[MAX_LAUNCHERS];

	InitMaterializedSRF(fcinfo, 0);
	if (pipeline_shared == NULL)
		return (Datum) 0;
	SpinLockAcquire(&pipeline_shared->mutex);
	memcpy(copy, pipeline_shared->launchers, sizeof(copy));
	SpinLockRelease(&pipeline_shared->mutex);
	for (int i = 0; i < MAX_LAUNCHERS; i++)
	{
		Datum		values[8];
		bool		nulls[8] = {0};

		if (copy[i].database_id == InvalidOid || copy[i].pid == 0)
			continue;
		values[0] = ObjectIdGetDatum(copy[i].database_id);
		values[1] = Int32GetDatum(copy[i].pid);
		values[2] = TimestampTzGetDatum(copy[i].started_at);
		values[3] = Int64GetDatum(copy[i].passes);
		values[4] = Float8GetDatum(copy[i].last_pass_ms);
		values[5] = Float8GetDatum(copy[i].passes ? copy[i].total_pass_ms / copy[i].passes : 0);
		values[6] = Float8GetDatum(copy[i].max_pass_ms);
		values[7] = Int64GetDatum(copy[i].workers_started);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* CountActiveWorkers forgets workers that have exited and counts the rest */
static int
CountActiveWorkers(void)
{
	int			n = 0;

	for (int i = 0; i < MAX_WORKERS_LIMIT; i++)
	{
		pid_t		pid;

		if (active_workers[i].handle == NULL)
			continue;
		if (GetBackgroundWorkerPid(active_workers[i].handle, &pid) == BGWH_STOPPED)
		{
			pfree(active_workers[i].handle);
			active_workers[i].handle = NULL;
			continue;
		}
		n++;
	}
	return n;
}

/* StartRunWorker starts a worker for a queued run; false if no slot is free */
static bool
StartRunWorker(int64 queue_id, int64 pipeline_id)
{
	BackgroundWorker worker;
	RunWorkerArgs args = {MyDatabaseId, queue_id, pipeline_id};
	BackgroundWorkerHandle *handle;
	int			slot = -1;
	MemoryContext old;

	for (int i = 0; i < MAX_WORKERS_LIMIT && slot < 0; i++)
		if (active_workers[i].handle == NULL)
			slot = i;
	if (slot < 0)
		return false;
	InitPipelineWorker(&worker, "pipeline_run_worker_main", "pg_pipeline worker",
					   psprintf("pg_pipeline worker for pipeline %lld", (long long) pipeline_id));
	memcpy(worker.bgw_extra, &args, sizeof(args));
	worker.bgw_notify_pid = MyProcPid;
	old = MemoryContextSwitchTo(TopMemoryContext);
	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		MemoryContextSwitchTo(old);
		ereport(LOG,
				(errmsg("pg_pipeline launcher could not start a worker: no background worker slot is free"),
				 errhint("Raise max_worker_processes.")));
		return false;
	}
	MemoryContextSwitchTo(old);
	active_workers[slot].handle = handle;
	active_workers[slot].pipeline_id = pipeline_id;
	started_this_pass++;
	return true;
}

/* ActivePipelineIds returns the pipelines the launcher's workers are running */
static Datum
ActivePipelineIds(void)
{
	Datum		elems[MAX_WORKERS_LIMIT];
	int			n = 0;

	for (int i = 0; i < MAX_WORKERS_LIMIT; i++)
		if (active_workers[i].handle != NULL)
			elems[n++] = Int64GetDatum(active_workers[i].pipeline_id);
	return PointerGetDatum(construct_array(elems, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/*
 * MsUntilNextDueRun returns the milliseconds until the next queued run of an
 * active pipeline falls due: 0 when one is due now, -1 when none is queued.
 * One small plan kept for the launcher's life, so that a pass over an idle
 * registry costs an index probe rather than StartableRuns' recursive query.
 */
static long
MsUntilNextDueRun(void)
{
	static SPIPlanPtr plan = NULL;
	bool		isnull;
	Datum		wait;

	ExecKeptPlan(&plan,
				 "SELECT ceil(extract(epoch FROM min(not_before) - now()) * 1000)::bigint"
				 "  FROM pipeline.run_queue q JOIN pipeline.pipeline p USING (pipeline_id)"
				 " WHERE p.active",
				 0, NULL, NULL, NULL);
	wait = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	/* (greatest(0, NULL) would be 0: an empty queue must stay NULL here) */
	return isnull ? -1 : (long) Max(DatumGetInt64(wait), 0);
}

/*
 * StartDueRuns starts workers for the queued runs that may run now, and
 * returns the milliseconds until the next queued run falls due (-1: none).
 * The query that finds which due runs may start (no busy upstream) is made
 * only when a run is due and a worker slot is free.
 */
static long
StartDueRuns(void)
{
	static SPIPlanPtr startable_plan = NULL;
	int			free_slots = pipeline_max_workers - CountActiveWorkers();
	Oid			types[2] = {INT8ARRAYOID, INT4OID};
	Datum		values[2];
	bool		isnull;
	long		wait = MsUntilNextDueRun();

	if (wait != 0)
		return wait;
	if (free_slots > 0)
	{
		SPITupleTable *tuptable;
		uint64		n;

		values[0] = ActivePipelineIds();
		values[1] = Int32GetDatum(free_slots);
		ExecKeptPlan(&startable_plan,
					 "WITH RECURSIVE busy AS ("
					 "   SELECT pipeline_id FROM pipeline.run_queue"
					 "   UNION SELECT pipeline_id FROM pipeline.run_history WHERE status = 'running'"
					 "   UNION SELECT unnest($1::bigint[])),"
					 " ups(pipeline_id, upstream_id) AS ("
					 "   SELECT q.pipeline_id, d.upstream_id FROM pipeline.run_queue q"
					 "     CROSS JOIN LATERAL pipeline._upstreams(q.pipeline_id) d"
					 "   UNION"
					 "   SELECT u.pipeline_id, d.upstream_id FROM ups u"
					 "     CROSS JOIN LATERAL pipeline._upstreams(u.upstream_id) d)"
					 " SELECT q.queue_id, q.pipeline_id"
					 "   FROM pipeline.run_queue q JOIN pipeline.pipeline p USING (pipeline_id)"
					 "  WHERE q.not_before <= now() AND p.active"
					 "    AND q.pipeline_id <> ALL ($1::bigint[])"
					 "    AND NOT EXISTS (SELECT 1 FROM pipeline.run_history h"
					 "                     WHERE h.pipeline_id = q.pipeline_id AND h.status = 'running')"
					 "    AND NOT EXISTS (SELECT 1 FROM ups u JOIN busy b ON b.pipeline_id = u.upstream_id"
					 "                     WHERE u.pipeline_id = q.pipeline_id"
					 "                       AND u.upstream_id <> q.pipeline_id)"
					 "  ORDER BY q.not_before, q.queue_id LIMIT $2",
					 2, types, values, NULL);
		tuptable = SPI_tuptable;
		n = SPI_processed;
		for (uint64 i = 0; i < n; i++)
		{
			int64		queue_id = DatumGetInt64(SPI_getbinval(tuptable->vals[i], tuptable->tupdesc, 1, &isnull));
			int64		pipeline_id = DatumGetInt64(SPI_getbinval(tuptable->vals[i], tuptable->tupdesc, 2, &isnull));

			if (!StartRunWorker(queue_id, pipeline_id))
				return 1000;
		}
	}
	wait = MsUntilNextDueRun();
	/*
	 * A due run that could not start waits for a busy upstream or a free
	 * worker: their exits and commits set the latch; poll gently besides.
	 */
	return wait == 0 ? 1000 : wait;
}

/*
 * PurgeRawRows makes one purge of raw rows per pipeline with raw_retention
 * when one is due (engine/retention.c): every pipeline.check_interval, or
 * pipeline.retention_pause after a purge that had more to delete, so that
 * a large backlog goes in small batches with pauses between them. Returns
 * the milliseconds until the next one.
 */
static long
PurgeRawRows(void)
{
	TimestampTz now = GetCurrentTimestamp();
	long		secs;
	int			usecs;

	if (now >= next_purge)
	{
		bool		more = PurgeRawLauncherPass();

		next_purge = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												 more ? pipeline_retention_pause
												 : pipeline_check_interval * 1000L);
	}
	TimestampDifference(now, next_purge, &secs, &usecs);
	return secs * 1000L + usecs / 1000;
}

/*
 * LauncherPass does one pass of the launcher's work in a transaction and
 * returns how long to sleep before the next one, in milliseconds.
 */
static long
LauncherPass(bool *recovered, TimestampTz *last_checks)
{
	long		sleep_ms = pipeline_check_interval * 1000L;
	long		due;
	instr_time	start;
	instr_time	duration;

	INSTR_TIME_SET_CURRENT(start);
	started_this_pass = 0;
	BeginWorkerTransaction("pg_pipeline launcher pass");

	if (!OidIsValid(get_extension_oid(PIPELINE_EXTENSION, true)))
		sleep_ms = 10000;		/* not installed here (yet) */
	else if (!CatalogVersionMatches())
	{
		/* the library was upgraded, the catalog not yet: wait for UPDATE */
		if (!version_warned)
			ereport(LOG,
					(errmsg("pg_pipeline launcher waits: the catalog is not at the library's version %s",
							PIPELINE_VERSION),
					 errhint("Run ALTER EXTENSION pg_pipeline UPDATE in this database.")));
		version_warned = true;
		sleep_ms = 10000;
	}
	else
	{
		if (!*recovered)
		{
			RefreshAllSourceRelations();
			*recovered = true;
		}
		FailInterruptedRuns(0, 0);
		ResolvePreparedParts(0);
		if (TimestampDifferenceExceeds(*last_checks, GetCurrentTimestamp(),
									   pipeline_check_interval * 1000))
		{
			CheckLimits();
			if (PruneHistory(pipeline_history_retention, pipeline_prune_batch) >=
				(uint64) pipeline_prune_batch)
				sleep_ms = 100;	/* more to prune: come back soon */
			*last_checks = GetCurrentTimestamp();
		}
		if (AuditLauncherPass(pipeline_check_interval))
			sleep_ms = 100;		/* more audit entries to prune */
		sleep_ms = Min(sleep_ms, PurgeRawRows());
		if (CapturePurgePass())
			sleep_ms = 100;		/* more captured changes to purge */
		due = StartDueRuns();
		if (due >= 0 && due < sleep_ms)
			sleep_ms = due;
		KeepOpenLineageSender();
	}

	CommitWorkerTransaction();
	INSTR_TIME_SET_CURRENT(duration);
	INSTR_TIME_SUBTRACT(duration, start);
	RecordPass(INSTR_TIME_GET_MILLISEC(duration), started_this_pass);
	return sleep_ms;
}

/*
 * pipeline_launcher_main: connect to the database named in bgw_extra and
 * loop until told to stop. An error ends the process, and the postmaster
 * starts it again a second later.
 */
void
pipeline_launcher_main(Datum arg)
{
	char		dbname[NAMEDATALEN];
	bool		recovered = false;
	TimestampTz last_checks = 0;
	MemoryContext pass_context;

	strlcpy(dbname, MyBgworkerEntry->bgw_extra, NAMEDATALEN);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(dbname, NULL, 0);
	pgstat_report_appname("pg_pipeline launcher");
	/* short catalog statements: compiling them would cost more than running them */
	SetConfigOption("jit", "off", PGC_SUSET, PGC_S_OVERRIDE);
	ClaimLauncherSlot();
	pass_context = AllocSetContextCreate(TopMemoryContext, "pg_pipeline launcher pass",
										 ALLOCSET_DEFAULT_SIZES);
	ereport(LOG, (errmsg("pg_pipeline launcher started for database \"%s\"", dbname)));

	for (;;)
	{
		long		sleep_ms;
		MemoryContext old;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		old = MemoryContextSwitchTo(pass_context);
		sleep_ms = LauncherPass(&recovered, &last_checks);
		MemoryContextSwitchTo(old);
		MemoryContextReset(pass_context);

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 sleep_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
