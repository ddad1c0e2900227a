/*-------------------------------------------------------------------------
 *
 * src/recorders/runs.c
 *
 * What the records of runs in pipeline.run_history are made of, short of
 * writing them (run_outcome.c does that, and nothing else): run ids, the
 * names of a run's statuses, and the records that a process which went away
 * left 'running', read back as RunRecords for the recovery (engine/
 * recovery.c) to fail. Every statement runs as the extension owner through
 * ExecCatalog, values as parameters.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "pipeline/recorders.h"

static SPIPlanPtr interrupted_runs_plan = NULL;
static SPIPlanPtr interrupted_runs_all_plan = NULL;

/*
 * NextRunId hands out a run id (each call its own, in increasing order)
 * from pipeline.run_id_seq, as the extension owner; nextval is called
 * directly, not through a statement, since every run asks for one.
 */
int64
NextRunId(void)
{
	Oid			seqid;
	RoleSwitch	sw;
	int64		id;

	RequireCatalogVersion();
	seqid = get_relname_relid("run_id_seq", get_namespace_oid(PIPELINE_SCHEMA, false));
	if (!OidIsValid(seqid))
		elog(ERROR, "pg_pipeline's sequence pipeline.run_id_seq is missing");
	BecomeCatalogOwner(&sw);
	id = DatumGetInt64(DirectFunctionCall1(nextval_oid, ObjectIdGetDatum(seqid)));
	RestoreRole(&sw);
	return id;
}

/* RunStatusName is the status run_history stores (an interrupted run failed) */
const char *
RunStatusName(RunStatus status)
{
	switch (status)
	{
		case RUN_RUNNING:
			return "running";
		case RUN_SUCCEEDED:
			return "succeeded";
		case RUN_SKIPPED:
			return "skipped";
		case RUN_FAILED:
		case RUN_INTERRUPTED:
			return "failed";
	}
	return "failed";
}

/* RunStatusFromName reads a stored status back */
RunStatus
RunStatusFromName(const char *name)
{
	if (strcmp(name, "running") == 0)
		return RUN_RUNNING;
	if (strcmp(name, "succeeded") == 0)
		return RUN_SUCCEEDED;
	if (strcmp(name, "skipped") == 0)
		return RUN_SKIPPED;
	return RUN_FAILED;
}

/* Int8Column reads a bigint (or integer) column of an SPI row, 0 for NULL */
static int64
Int8Column(HeapTuple tup, TupleDesc desc, int n)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, n, &isnull);

	if (isnull)
		return 0;
	return SPI_gettypeid(desc, n) == INT4OID ? DatumGetInt32(d) : DatumGetInt64(d);
}

/*
 * LoadInterruptedRuns reads the 'running' records whose process is gone, as
 * RunRecords marked RUN_INTERRUPTED (57P02). A committed 'running' record is
 * written only while its process holds the pipeline's run lock, and the
 * lock is released only after the final record commits, so a 'running'
 * record whose lock nobody holds belongs to a process that crashed, was
 * killed, or went down with the server. With a pipeline_id, the caller
 * holds that pipeline's run lock itself (a run starting): every 'running'
 * record of the pipeline but current_run_id is such a record. With 0, the
 * records of every pipeline whose run lock nobody holds (the launcher).
 */
List *
LoadInterruptedRuns(int64 pipeline_id, int64 current_run_id)
{
	Oid			types[2] = {INT8OID, INT8OID};
	Datum		values[2];
	List	   *runs = NIL;

	values[0] = Int64GetDatum(pipeline_id);
	values[1] = Int64GetDatum(current_run_id);
	/* a run asks as it starts: one statement prepared per backend for each form */
	ExecKeptPlan(pipeline_id > 0 ? &interrupted_runs_plan : &interrupted_runs_all_plan,
				 psprintf("SELECT run_id, pipeline_id, pipeline_name, started_at, rows_read,"
						  " rows_inserted, rows_updated, rows_deleted, rows_unchanged,"
						  " rows_rejected, batches, watermark_from, watermark_to, triggered_by,"
						  " parent_run_id, attempt, rows_quarantined, rows_forgotten"
						  " FROM pipeline.run_history"
						  " WHERE status = 'running' AND %s ORDER BY run_id",
						  pipeline_id > 0 ? "pipeline_id = $1 AND run_id <> $2"
						  : "pipeline_id NOT IN (SELECT pipeline_id FROM pipeline._run_locks)"),
				 pipeline_id > 0 ? 2 : 0, types, values, NULL);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		RunRecord  *run = palloc0(sizeof(RunRecord));
		PipelineDef *def = palloc0(sizeof(PipelineDef));
		bool		isnull;

		run->run_id = Int8Column(tup, desc, 1);
		def->id = Int8Column(tup, desc, 2);
		def->name = SPI_getvalue(tup, desc, 3);
		run->def = def;
		run->status = RUN_INTERRUPTED;
		run->started_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 4, &isnull));
		run->counts.read = Int8Column(tup, desc, 5);
		run->counts.inserted = Int8Column(tup, desc, 6);
		run->counts.updated = Int8Column(tup, desc, 7);
		run->counts.deleted = Int8Column(tup, desc, 8);
		run->counts.unchanged = Int8Column(tup, desc, 9);
		run->counts.rejected = Int8Column(tup, desc, 10);
		run->batches = (int) Int8Column(tup, desc, 11);
		run->wm_from = SPI_getvalue(tup, desc, 12);
		run->wm_to = SPI_getvalue(tup, desc, 13);
		run->triggered_by = SPI_getvalue(tup, desc, 14);
		run->parent_run_id = Int8Column(tup, desc, 15);
		run->attempt = (int32) Int8Column(tup, desc, 16);
		run->counts.quarantined = Int8Column(tup, desc, 17);
		run->counts.forgotten = Int8Column(tup, desc, 18);
		run->start_recorded = true;
		run->sqlerrcode = ERRCODE_CRASH_SHUTDOWN;
		run->message = PIPELINE_INTERRUPTED_MESSAGE;
		runs = lappend(runs, run);
	}
	return runs;
}
