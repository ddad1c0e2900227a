/*-------------------------------------------------------------------------
 *
 * src/engine/queue.c
 *
 * The dependency graph and the run queue. A pipeline depends on the
 * pipelines it declares (depends_on) and on every pipeline whose target its
 * source reads, directly or through views (inferred from
 * pipeline.source_relation). A run that changed data queues its downstream
 * pipelines in the same transaction, and the launcher is woken when that
 * transaction commits. The queue holds at most one pending run per
 * pipeline; the launcher starts a queued run only when none of its upstream
 * pipelines is queued or running, so a diamond's join pipeline runs once
 * per wave. Cycles are refused at registration.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "pipeline/engine.h"

PIPELINE_FUNCTION(pipeline_trigger);
PIPELINE_FUNCTION(pipeline_cancel);

/*
 * EnqueueRun queues a run of a pipeline unless one is pending already, in
 * which case the pending one is brought forward if this one is sooner.
 */
void
EnqueueRun(int64 pipeline_id, const char *reason, int64 parent_run_id,
		   int32 attempt, double delay_seconds)
{
	Oid			types[5] = {INT8OID, TEXTOID, INT8OID, INT4OID, FLOAT8OID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};

	values[0] = Int64GetDatum(pipeline_id);
	values[1] = CStringGetTextDatum(reason);
	values[2] = Int64GetDatum(parent_run_id);
	nulls[2] = parent_run_id > 0 ? ' ' : 'n';
	values[3] = Int32GetDatum(attempt);
	values[4] = Float8GetDatum(delay_seconds);
	ExecCatalog("INSERT INTO pipeline.run_queue (pipeline_id, reason, parent_run_id, attempt, not_before)"
				" VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))"
				" ON CONFLICT (pipeline_id) DO UPDATE"
				" SET not_before = least(run_queue.not_before, excluded.not_before)",
				5, types, values, nulls, false);
	WakeLauncherAtCommit();
}

/*
 * EnqueueDownstream queues every active pipeline that depends directly on
 * the one whose run just changed data, naming that run as their parent.
 */
void
EnqueueDownstream(int64 pipeline_id, int64 run_id)
{
	Oid			types[2] = {INT8OID, INT8OID};
	Datum		values[2];

	values[0] = Int64GetDatum(pipeline_id);
	values[1] = Int64GetDatum(run_id);
	ExecCatalog("INSERT INTO pipeline.run_queue (pipeline_id, reason, parent_run_id)"
				" SELECT DISTINCT d.pipeline_id, 'upstream', $2"
				"   FROM pipeline._downstreams($1) d"
				"   JOIN pipeline.pipeline p ON p.pipeline_id = d.pipeline_id"
				"  WHERE p.active"
				" ON CONFLICT (pipeline_id) DO NOTHING",
				2, types, values, NULL, false);
	if (SPI_processed > 0)
		WakeLauncherAtCommit();
}

/* ForgetQueuedRuns drops the pending run of a paused pipeline */
void
ForgetQueuedRuns(int64 pipeline_id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1];

	values[0] = Int64GetDatum(pipeline_id);
	ExecCatalog("DELETE FROM pipeline.run_queue WHERE pipeline_id = $1",
				1, types, values, NULL, false);
}

/*
 * SetDeclaredDependencies replaces a pipeline's declared upstream pipelines
 * with the named ones; an unknown name raises 42704.
 */
void
SetDeclaredDependencies(PipelineDef *def, List *upstream_names)
{
	Oid			types[2] = {INT8OID, INT8OID};
	Datum		values[2];
	ListCell   *lc;

	values[0] = Int64GetDatum(def->id);
	ExecCatalog("DELETE FROM pipeline.dependency WHERE pipeline_id = $1",
				1, types, values, NULL, false);
	foreach(lc, upstream_names)
	{
		PipelineDef *up = LoadPipelineByName(lfirst(lc), true);

		if (up == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("pipeline \"%s\" does not exist", (char *) lfirst(lc)),
					 errdetail("Pipeline \"%s\" is declared to depend on it.", def->name),
					 errhint("Register the upstream pipeline first.")));
		values[1] = Int64GetDatum(up->id);
		ExecCatalog("INSERT INTO pipeline.dependency (pipeline_id, upstream_id)"
					" VALUES ($1, $2) ON CONFLICT DO NOTHING",
					2, types, values, NULL, false);
	}
}

/*
 * RefreshSourceRelations records the relations a pipeline's source reads,
 * from which its inferred dependencies follow; it writes only on a change.
 */
void
RefreshSourceRelations(int64 pipeline_id, Oid source_relid)
{
	List	   *relids = CollectBaseTables(source_relid);
	Datum	   *elems = palloc(sizeof(Datum) * Max(list_length(relids), 1));
	Oid			types[2] = {INT8OID, OIDARRAYOID};
	Datum		values[2];
	ListCell   *lc;
	int			n = 0;

	foreach(lc, relids)
		elems[n++] = ObjectIdGetDatum(lfirst_oid(lc));
	values[0] = Int64GetDatum(pipeline_id);
	values[1] = PointerGetDatum(construct_array(elems, n, OIDOID, sizeof(Oid), true, TYPALIGN_INT));
	ExecCatalog("WITH wanted AS (SELECT DISTINCT unnest($2::oid[]) AS relid),"
				" gone AS (DELETE FROM pipeline.source_relation s"
				"           WHERE s.pipeline_id = $1"
				"             AND s.relid NOT IN (SELECT relid FROM wanted))"
				" INSERT INTO pipeline.source_relation (pipeline_id, relid)"
				" SELECT $1, relid FROM wanted ON CONFLICT DO NOTHING",
				2, types, values, NULL, false);
}

/*
 * CheckNoDependencyCycle refuses a definition that makes a pipeline depend,
 * through any chain of declared and inferred dependencies, on itself. The
 * error detail spells the cycle.
 */
void
CheckNoDependencyCycle(PipelineDef *def)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1];
	bool		isnull;
	Datum		cycle;

	values[0] = Int64GetDatum(def->id);
	ExecCatalog("WITH RECURSIVE walk(id, path, found) AS ("
				"   SELECT $1::bigint, ARRAY[$1::bigint], false"
				"   UNION ALL"
				"   SELECT d.upstream_id, w.path || d.upstream_id, d.upstream_id = $1"
				"     FROM walk w CROSS JOIN LATERAL pipeline._upstreams(w.id) d"
				"    WHERE NOT w.found"
				"      AND (d.upstream_id = $1 OR d.upstream_id <> ALL (w.path)))"
				" SELECT (SELECT string_agg(quote_literal(p.name), ' depends on '"
				"                           ORDER BY u.ord)"
				"           FROM unnest(w.path) WITH ORDINALITY u(id, ord)"
				"           JOIN pipeline.pipeline p ON p.pipeline_id = u.id)"
				"   FROM walk w WHERE w.found LIMIT 1",
				1, types, values, NULL, false);
	if (SPI_processed == 0)
		return;
	cycle = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
			 errmsg("pipeline \"%s\" would depend on itself", def->name),
			 errdetail("Cycle: %s.", isnull ? "?" : TextDatumGetCString(cycle)),
			 errhint("Remove one of the dependencies, declared with depends_on or inferred from sources and targets.")));
}

/*
 * pipeline.trigger(name) queues a run for the background workers and
 * returns the queue entry's id at once; the launcher is woken at commit.
 */
Datum
pipeline_trigger(PG_FUNCTION_ARGS)
{
	PipelineDef *def;
	int			nestlevel;
	Oid			types[1] = {INT8OID};
	Datum		values[1];
	bool		isnull;
	int64		queue_id;

	RequireArg(fcinfo, 0, "pipeline name");
	SPI_connect();
	nestlevel = PinSearchPath();
	def = LoadPipelineByName(text_to_cstring(PG_GETARG_TEXT_PP(0)), false);
	CheckPipelineOwner(def, "trigger");
	if (!def->active)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pipeline \"%s\" is paused", def->name),
				 errhint("Resume it with SELECT pipeline.resume(%s).", quote_literal_cstr(def->name))));
	if (!LauncherConfiguredFor(MyDatabaseId))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("no pg_pipeline launcher runs for database \"%s\"",
						get_database_name(MyDatabaseId)),
				 errdetail("Triggered runs are executed by background workers."),
				 errhint("Add pg_pipeline to shared_preload_libraries and this database to pipeline.databases, then restart the server.")));
	EnqueueRun(def->id, "trigger", 0, 1, 0);
	values[0] = Int64GetDatum(def->id);
	ExecCatalog("SELECT queue_id FROM pipeline.run_queue WHERE pipeline_id = $1",
				1, types, values, NULL, false);
	queue_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	UnpinSearchPath(nestlevel);
	SPI_finish();
	PG_RETURN_INT64(queue_id);
}

/*
 * SignalRunHolder cancels the current statement of the backend that holds a
 * pipeline's run lock, as pg_cancel_backend would, but on the strength of
 * the caller's right to the pipeline (checked by the caller) rather than a
 * right to signal that backend: a worker connects as the bootstrap
 * superuser, and a superuser's session may be running the pipeline. Only a
 * live backend of this database is signalled; like pg_cancel_backend, a run
 * that ends at this very moment may see the cancel hit the next statement
 * of the same backend. Returns whether the signal was sent.
 */
static bool
SignalRunHolder(int pid)
{
	PGPROC	   *proc = BackendPidGetProc(pid);

	if (proc == NULL || proc->databaseId != MyDatabaseId)
		return false;
#ifdef HAVE_SETSID
	if (kill(-pid, SIGINT) != 0)
#else
	if (kill(pid, SIGINT) != 0)
#endif
	{
		ereport(WARNING,
				(errmsg("could not send signal to process %d: %m", pid)));
		return false;
	}
	return true;
}

/*
 * pipeline.cancel(name) cancels the pipeline's pending run (it leaves the
 * queue) and its run in progress, wherever that runs (a worker or a
 * session): the backend holding the pipeline's run lock, found through
 * pipeline._run_locks, is signalled from here once the caller is known to
 * have the privileges of the pipeline's owner. The run is rolled back and
 * recorded as failed (57014); a cancelled run is not retried. Returns
 * whether anything was cancelled.
 */
Datum
pipeline_cancel(PG_FUNCTION_ARGS)
{
	PipelineDef *def;
	int			nestlevel;
	Oid			types[1] = {INT8OID};
	Datum		values[1];
	bool		cancelled;
	SPITupleTable *holders;
	uint64		n;

	RequireArg(fcinfo, 0, "pipeline name");
	SPI_connect();
	nestlevel = PinSearchPath();
	def = LoadPipelineByName(text_to_cstring(PG_GETARG_TEXT_PP(0)), false);
	CheckPipelineOwner(def, "cancel");
	ForgetQueuedRuns(def->id);
	cancelled = SPI_processed > 0;
	values[0] = Int64GetDatum(def->id);
	ExecCatalog("SELECT l.pid FROM pipeline._run_locks l"
				" WHERE l.pipeline_id = $1 AND l.pid <> pg_backend_pid()",
				1, types, values, NULL, true);
	holders = SPI_tuptable;
	n = SPI_processed;
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;
		Datum		pid = SPI_getbinval(holders->vals[i], holders->tupdesc, 1, &isnull);

		if (!isnull && SignalRunHolder(DatumGetInt32(pid)))
			cancelled = true;
	}
	UnpinSearchPath(nestlevel);
	SPI_finish();
	PG_RETURN_BOOL(cancelled);
}
