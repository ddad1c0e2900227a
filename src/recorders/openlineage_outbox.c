/*-------------------------------------------------------------------------
 *
 * src/recorders/openlineage_outbox.c
 *
 * The OpenLineage outbox. When pipeline.openlineage_url is set, a run's
 * events (openlineage.c) are built as it starts and ends and written to
 * pipeline.openlineage_outbox in the transaction that records it
 * (run_outcome.c), so that a rolled-back run sends nothing and a committed
 * one is never lost; the sender worker (workers/openlineage_sender.c)
 * posts them. Stored events are also what pipeline.openlineage_events
 * returns for the run: the catalog as the run saw it. The delivery
 * settings are defined here, where the run's backend reads them; this file
 * also has pipeline.openlineage_redeliver, which gives dead events another
 * round.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"

#include "pipeline/recorders.h"

PIPELINE_FUNCTION(pipeline_openlineage_redeliver);

/* the delivery settings (OpenLineageOutboxInit) */
char	   *openlineage_url = NULL;
char	   *openlineage_api_key = NULL;
int			openlineage_timeout_ms = 10000;
int			openlineage_max_attempts = 10;
int			openlineage_retry_max_s = 300;

static SPIPlanPtr enqueue_plan = NULL;

/* CheckUrl is the check hook of pipeline.openlineage_url */
static bool
CheckUrl(char **newval, void **extra, GucSource source)
{
	if (*newval == NULL || **newval == '\0' || HttpUrlValid(*newval))
		return true;
	GUC_check_errdetail("pipeline.openlineage_url must be an http:// or https:// URL, as \"%s\" is not.",
						*newval);
	GUC_check_errhint("Write the collector's lineage endpoint, like http://marquez.example.com:5000/api/v1/lineage.");
	return false;
}

/* OpenLineageOutboxInit defines the delivery settings; _PG_init calls it */
void
OpenLineageOutboxInit(void)
{
	DefineCustomStringVariable("pipeline.openlineage_url",
							   "The HTTP endpoint the OpenLineage sender posts each run's events to.",
							   "Empty: events are not written to the outbox nor sent.",
							   &openlineage_url, "", PGC_SIGHUP, 0, CheckUrl, NULL, NULL);
	DefineCustomStringVariable("pipeline.openlineage_api_key",
							   "The bearer token sent with each OpenLineage event (Authorization: Bearer).",
							   NULL, &openlineage_api_key, "", PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL, NULL, NULL, NULL);
	DefineCustomIntVariable("pipeline.openlineage_timeout",
							"How long the sender waits for the endpoint to answer one event.",
							NULL, &openlineage_timeout_ms, 10000, 100, 600000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("pipeline.openlineage_max_attempts",
							"How many times the sender tries an event before it declares it dead.",
							NULL, &openlineage_max_attempts, 10, 1, 1000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pipeline.openlineage_retry_max",
							"The longest wait between two attempts at an event (the backoff doubles up to it).",
							NULL, &openlineage_retry_max_s, 300, 1, 86400,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
}

/* OpenLineageDeliveryOn tells whether runs write their events to the outbox */
bool
OpenLineageDeliveryOn(void)
{
	return openlineage_url != NULL && *openlineage_url != '\0';
}

typedef struct EnqueueArgs
{
	RunRecord  *run;
} EnqueueArgs;

/* EnqueueEvents writes the run's events that the outbox does not hold yet */
static void
EnqueueEvents(void *arg)
{
	RunRecord  *run = ((EnqueueArgs *) arg)->run;
	List	   *events;
	ListCell   *lc;

	/* the events are built from the run's records, just written */
	PushSnapshotSeeingOwnWrites();
	events = BuildOpenLineageEvents(run->run_id, NULL, false);
	PopActiveSnapshot();

	foreach(lc, events)
	{
		OpenLineageEvent *e = lfirst(lc);
		Oid			types[4] = {INT8OID, INT8OID, TEXTOID, TEXTOID};
		Datum		values[4];

		values[0] = Int64GetDatum(run->run_id);
		values[1] = Int64GetDatum(run->def->id);
		values[2] = CStringGetTextDatum(e->type);
		values[3] = CStringGetTextDatum(e->json);
		ExecKeptPlan(&enqueue_plan,
					 "INSERT INTO pipeline.openlineage_outbox (run_id, pipeline_id, event_type, event)"
					 " VALUES ($1, $2, $3, $4::jsonb) ON CONFLICT (run_id, event_type) DO NOTHING",
					 4, types, values, NULL);
	}
}

/*
 * EnqueueOpenLineageEvents writes a run's events to the outbox in the
 * current transaction and has the sender woken when it commits; nothing
 * when delivery is off. The events are built in a subtransaction: an event
 * that cannot be built costs its run nothing but a WARNING.
 */
void
EnqueueOpenLineageEvents(RunRecord *run)
{
	EnqueueArgs args = {run};
	int			sqlerrcode;

	if (!OpenLineageDeliveryOn())
		return;
	sqlerrcode = TryInSubtransaction(EnqueueEvents, &args);
	if (sqlerrcode != 0)
		ereport(WARNING,
				(errcode(sqlerrcode),
				 errmsg("the OpenLineage events of run %lld were not written to the outbox",
						(long long) run->run_id),
				 errdetail("Building them failed with SQLSTATE %s.", unpack_sql_state(sqlerrcode)),
				 errhint("Read them with pipeline.openlineage_events(%lld).", (long long) run->run_id)));
	else
		WakeSenderAtCommit();
}

/*
 * LoadStoredOpenLineageEvents returns the events the outbox holds for a
 * run, in the order they were written (START first).
 */
List *
LoadStoredOpenLineageEvents(int64 run_id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1];
	List	   *out = NIL;

	values[0] = Int64GetDatum(run_id);
	ExecCatalog("SELECT event_type, event::text FROM pipeline.openlineage_outbox"
				" WHERE run_id = $1 ORDER BY event_id",
				1, types, values, NULL, true);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		OpenLineageEvent *e = palloc(sizeof(OpenLineageEvent));

		e->type = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		e->json = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
		out = lappend(out, e);
	}
	return out;
}

/*
 * pipeline.openlineage_redeliver(run_id): puts the dead events of a run (of
 * every run the caller sees, when NULL) back in the queue, to be tried
 * again as new, and returns how many: those of the events
 * pipeline.openlineage_deliveries shows the caller whose pipeline it may
 * run (a pipeline_viewer sees them but may not).
 */
Datum
pipeline_openlineage_redeliver(PG_FUNCTION_ARGS)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1];
	char		nulls[1] = {' '};
	bool		isnull;
	uint64		n;

	values[0] = PG_ARGISNULL(0) ? Int64GetDatum(0) : PG_GETARG_DATUM(0);
	nulls[0] = PG_ARGISNULL(0) ? 'n' : ' ';
	SPI_connect();
	if (!PG_ARGISNULL(0))
	{
		if (SPI_execute_with_args("SELECT 1 FROM pipeline.runs WHERE run_id = $1",
								  1, types, values, nulls, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not look up run");
		if (SPI_processed == 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("run %lld does not exist", (long long) PG_GETARG_INT64(0)),
					 errhint("List runs with SELECT run_id, pipeline_name FROM pipeline.runs.")));
	}
	/*
	 * read as the caller: the dead events of the runs it sees, of pipelines
	 * it may run (their owner, members, pipeline_operator, pipeline_admin)
	 */
	if (SPI_execute_with_args("SELECT coalesce(array_agg(d.event_id), '{}')"
							  " FROM pipeline.openlineage_deliveries d"
							  " JOIN pipeline.pipelines p ON p.id = d.pipeline_id"
							  " WHERE d.state = 'dead' AND ($1 IS NULL OR d.run_id = $1)"
							  "   AND pipeline._may('run', p.owner)",
							  1, types, values, nulls, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not list dead events");
	values[0] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	types[0] = INT8ARRAYOID;
	nulls[0] = ' ';
	ExecCatalog("UPDATE pipeline.openlineage_outbox SET state = 'pending', attempts = 0,"
				" next_attempt_at = now(), last_error = NULL"
				" WHERE state = 'dead' AND event_id = ANY ($1)",
				1, types, values, nulls, false);
	n = SPI_processed;
	SPI_finish();
	if (n > 0)
		WakeSenderAtCommit();
	PG_RETURN_INT64((int64) n);
}
