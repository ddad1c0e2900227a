/*-------------------------------------------------------------------------
 *
 * src/recorders/runs.c
 *
 * The record of each run in pipeline.run_history: its id, the record a run
 * writes (or a batched run updates after every batch) in its own
 * transaction, and the failing of records left 'running' by a process that
 * went away. Every statement runs as the extension owner through
 * ExecCatalog, values as parameters.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "pipeline/recorders.h"

int64
NextRunId(void)
{
	bool		isnull;

	ExecCatalog("SELECT nextval('pipeline.run_id_seq')", 0, NULL, NULL, NULL, false);
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/* CountParams fills the six row-count parameters starting at values[first] */
static void
CountParams(const LoadCounts *c, Oid *types, Datum *values, int first)
{
	int64		v[6] = {c->read, c->inserted, c->updated, c->deleted, c->unchanged, c->rejected};

	for (int i = 0; i < 6; i++)
	{
		types[first + i] = INT8OID;
		values[first + i] = Int64GetDatum(v[i]);
	}
}

/* InsertRunRecord writes a run record in the current transaction */
void
InsertRunRecord(int64 run_id, PipelineDef *def, const char *status,
				TimestampTz started_at, bool finished, const LoadCounts *counts,
				int batches, const char *wm_from, const char *wm_to,
				const RunRequest *req)
{
	Oid			types[18];
	Datum		values[18];
	char		nulls[18];

	memset(nulls, ' ', sizeof(nulls));
	types[0] = INT8OID;
	values[0] = Int64GetDatum(run_id);
	types[1] = INT8OID;
	values[1] = Int64GetDatum(def->id);
	types[2] = TEXTOID;
	values[2] = CStringGetTextDatum(def->name);
	types[3] = TEXTOID;
	values[3] = CStringGetTextDatum(status);
	types[4] = TIMESTAMPTZOID;
	values[4] = TimestampTzGetDatum(started_at);
	types[5] = BOOLOID;
	values[5] = BoolGetDatum(finished);
	CountParams(counts, types, values, 6);
	types[12] = INT4OID;
	values[12] = Int32GetDatum(batches);
	types[13] = TEXTOID;
	values[13] = TextOrNull(wm_from, &nulls[13]);
	types[14] = TEXTOID;
	values[14] = TextOrNull(wm_to, &nulls[14]);
	types[15] = TEXTOID;
	values[15] = CStringGetTextDatum(req->triggered_by);
	types[16] = INT8OID;
	values[16] = Int64GetDatum(req->parent_run_id);
	nulls[16] = req->parent_run_id > 0 ? ' ' : 'n';
	types[17] = INT4OID;
	values[17] = Int32GetDatum(req->attempt > 0 ? req->attempt : 1);
	ExecCatalog("INSERT INTO pipeline.run_history (run_id, pipeline_id, pipeline_name,"
				" status, started_at, finished_at, rows_read, rows_inserted, rows_updated,"
				" rows_deleted, rows_unchanged, rows_rejected, batches, watermark_from,"
				" watermark_to, triggered_by, parent_run_id, attempt)"
				" VALUES ($1, $2, $3, $4, $5, CASE WHEN $6 THEN clock_timestamp() END,"
				" $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
				18, types, values, nulls, false);
}

/* UpdateRunRecord brings a running record up to date (counts, status) */
void
UpdateRunRecord(int64 run_id, const char *status, bool finished,
				const LoadCounts *counts, int batches, const char *wm_from,
				const char *wm_to)
{
	Oid			types[12];
	Datum		values[12];
	char		nulls[12];

	memset(nulls, ' ', sizeof(nulls));
	types[0] = INT8OID;
	values[0] = Int64GetDatum(run_id);
	types[1] = TEXTOID;
	values[1] = CStringGetTextDatum(status);
	types[2] = BOOLOID;
	values[2] = BoolGetDatum(finished);
	CountParams(counts, types, values, 3);
	types[9] = INT4OID;
	values[9] = Int32GetDatum(batches);
	types[10] = TEXTOID;
	values[10] = TextOrNull(wm_to, &nulls[10]);
	types[11] = TEXTOID;
	values[11] = TextOrNull(wm_from, &nulls[11]);
	ExecCatalog("UPDATE pipeline.run_history SET status = $2,"
				" finished_at = CASE WHEN $3 THEN clock_timestamp() END,"
				" rows_read = $4, rows_inserted = $5, rows_updated = $6,"
				" rows_deleted = $7, rows_unchanged = $8, rows_rejected = $9,"
				" batches = $10, watermark_to = coalesce($11, watermark_to),"
				" watermark_from = coalesce($12, watermark_from)"
				" WHERE run_id = $1",
				12, types, values, nulls, false);
}

/*
 * FailStaleRuns marks as failed the committed 'running' records of a
 * pipeline whose run lock we now hold: their session is gone (a crash, a
 * restart, a terminated backend), so they can never finish.
 */
void
FailStaleRuns(int64 pipeline_id, int64 current_run_id)
{
	Oid			types[2] = {INT8OID, INT8OID};
	Datum		values[2];

	values[0] = Int64GetDatum(pipeline_id);
	values[1] = Int64GetDatum(current_run_id);
	ExecCatalog("UPDATE pipeline.run_history SET status = 'failed',"
				" finished_at = clock_timestamp(), error_sqlstate = '57P02',"
				" error_message = '" PIPELINE_INTERRUPTED_MESSAGE "'"
				" WHERE pipeline_id = $1 AND status = 'running' AND run_id <> $2",
				2, types, values, NULL, false);
}
