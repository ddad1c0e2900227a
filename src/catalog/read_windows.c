/*-------------------------------------------------------------------------
 *
 * src/catalog/read_windows.c
 *
 * What each run of a pipeline read, kept for raw retention
 * (engine/retention.c): pipeline.read_window holds, per run that loaded a
 * window of an incremental column, the window's bounds (lower exclusive,
 * NULL for none; upper inclusive; canonical text of the column's type) and
 * the snapshot captured just before its load statement (a pg_snapshot,
 * common/read_snapshot.c). A source row was read by that run when its value
 * lies in the window and its xmin was visible to the snapshot. A window is
 * written in the transaction that commits its data and watermark, so that
 * it exists exactly when the load does; a batched run writes one per run,
 * its upper bound moved with each committed batch.
 *
 * pipeline.retention_frontier holds, per pipeline with raw_retention, the
 * value below which the rows left in its source can never be purged (every
 * reader's next window starts above it): purges look only above it, and
 * the windows wholly below it are dropped; a reset of the pipeline's
 * watermark drops it. Losing a window or a frontier
 * is always safe: a row no window proves read is kept. Neither table is
 * dumped: the transaction ids of a snapshot mean nothing in another
 * cluster.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "pipeline/catalog.h"

/* BaseTypeName spells the base type of a column's type, for a cast of stored bounds */
static char *
BaseTypeName(Oid typid)
{
	return format_type_be(getBaseType(typid));
}

/*
 * StoreReadWindow records (or, for the next batch of the same run, moves
 * the upper bound of) the window a run loaded and the snapshot it read
 * with.
 */
void
StoreReadWindow(int64 pipeline_id, int64 run_id, const char *column, Oid typid,
				const char *lower, const char *upper, const char *snapshot)
{
	Oid			types[7] = {INT8OID, INT8OID, NAMEOID, OIDOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		values[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};

	values[0] = Int64GetDatum(pipeline_id);
	values[1] = Int64GetDatum(run_id);
	values[2] = DirectFunctionCall1(namein, CStringGetDatum(column));
	values[3] = ObjectIdGetDatum(typid);
	values[4] = TextOrNull(lower, &nulls[4]);
	values[5] = CStringGetTextDatum(upper);
	values[6] = CStringGetTextDatum(snapshot);
	ExecCatalog("INSERT INTO pipeline.read_window (pipeline_id, run_id, column_name, column_type,"
				"  lower_bound, upper_bound, read_snapshot)"
				" VALUES ($1, $2, $3, $4, $5, $6, $7::pg_snapshot)"
				" ON CONFLICT (pipeline_id, run_id) DO UPDATE"
				"   SET upper_bound = excluded.upper_bound, recorded_at = now()",
				7, types, values, nulls, false);
}

/* DeleteOfPipeline runs a catalog DELETE whose one parameter is a pipeline id */
static void
DeleteOfPipeline(const char *sql, int64 pipeline_id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1];

	values[0] = Int64GetDatum(pipeline_id);
	ExecCatalog(sql, 1, types, values, NULL, false);
}

/*
 * ForgetReadWindows drops a pipeline's windows and frontier: its source or
 * incremental column changed, so they no longer say what it read.
 */
void
ForgetReadWindows(int64 pipeline_id)
{
	DeleteOfPipeline("DELETE FROM pipeline.read_window WHERE pipeline_id = $1", pipeline_id);
	ForgetRetentionFrontier(pipeline_id);
}

/*
 * LoadReadWindows returns a pipeline's windows over column (of type typid,
 * as recorded), at most limit of them, the oldest runs first; with below,
 * only those whose lower bound is under it (the others cannot hold a row
 * under it).
 */
List *
LoadReadWindows(int64 pipeline_id, const char *column, Oid typid, const char *below, int limit)
{
	Oid			types[5] = {INT8OID, NAMEOID, OIDOID, TEXTOID, INT4OID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	char	   *base = BaseTypeName(typid);
	List	   *windows = NIL;

	values[0] = Int64GetDatum(pipeline_id);
	values[1] = DirectFunctionCall1(namein, CStringGetDatum(column));
	values[2] = ObjectIdGetDatum(typid);
	values[3] = TextOrNull(below, &nulls[3]);
	values[4] = Int32GetDatum(limit);
	ExecCatalog(psprintf("SELECT run_id, lower_bound, upper_bound, read_snapshot::text"
						 "  FROM pipeline.read_window"
						 " WHERE pipeline_id = $1 AND column_name = $2 AND column_type = $3"
						 "   AND ($4 IS NULL OR lower_bound IS NULL OR lower_bound::%s < $4::%s)"
						 " ORDER BY run_id LIMIT $5", base, base),
				5, types, values, nulls, true);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		ReadWindowText *w = palloc(sizeof(ReadWindowText));
		bool		isnull;

		w->run_id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		w->lower = SPI_getvalue(tup, desc, 2);
		w->upper = SPI_getvalue(tup, desc, 3);
		w->snapshot = SPI_getvalue(tup, desc, 4);
		windows = lappend(windows, w);
	}
	return windows;
}

/*
 * DropReadWindowsBelow drops the windows over column of the given
 * pipelines whose upper bound is under below: no row they could prove read
 * can still be purged.
 */
void
DropReadWindowsBelow(List *pipeline_ids, const char *column, Oid typid, const char *below)
{
	Oid			types[4] = {INT8ARRAYOID, NAMEOID, OIDOID, TEXTOID};
	Datum		values[4];
	Datum	   *ids = palloc(sizeof(Datum) * Max(list_length(pipeline_ids), 1));
	char	   *base = BaseTypeName(typid);
	int			n = 0;
	ListCell   *lc;

	foreach(lc, pipeline_ids)
		ids[n++] = Int64GetDatum(*(int64 *) lfirst(lc));
	values[0] = PointerGetDatum(construct_array(ids, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[1] = DirectFunctionCall1(namein, CStringGetDatum(column));
	values[2] = ObjectIdGetDatum(typid);
	values[3] = CStringGetTextDatum(below);
	ExecCatalog(psprintf("DELETE FROM pipeline.read_window"
						 " WHERE pipeline_id = ANY ($1) AND column_name = $2 AND column_type = $3"
						 "   AND upper_bound::%s < $4::%s", base, base),
				4, types, values, NULL, false);
}

/*
 * ForgetRetentionFrontier drops a pipeline's frontier: its watermark was
 * reset, so its next run may read rows from below it again.
 */
void
ForgetRetentionFrontier(int64 pipeline_id)
{
	DeleteOfPipeline("DELETE FROM pipeline.retention_frontier WHERE pipeline_id = $1", pipeline_id);
}

/* LoadRetentionFrontier returns a pipeline's frontier over column, NULL if none */
char *
LoadRetentionFrontier(int64 pipeline_id, const char *column, Oid typid)
{
	Oid			types[3] = {INT8OID, NAMEOID, OIDOID};
	Datum		values[3];

	values[0] = Int64GetDatum(pipeline_id);
	values[1] = DirectFunctionCall1(namein, CStringGetDatum(column));
	values[2] = ObjectIdGetDatum(typid);
	ExecCatalog("SELECT frontier FROM pipeline.retention_frontier"
				" WHERE pipeline_id = $1 AND column_name = $2 AND column_type = $3",
				3, types, values, NULL, true);
	if (SPI_processed == 0)
		return NULL;
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
}

/* StoreRetentionFrontier sets a pipeline's frontier over column */
void
StoreRetentionFrontier(int64 pipeline_id, const char *column, Oid typid, const char *frontier)
{
	Oid			types[4] = {INT8OID, NAMEOID, OIDOID, TEXTOID};
	Datum		values[4];

	values[0] = Int64GetDatum(pipeline_id);
	values[1] = DirectFunctionCall1(namein, CStringGetDatum(column));
	values[2] = ObjectIdGetDatum(typid);
	values[3] = CStringGetTextDatum(frontier);
	ExecCatalog("INSERT INTO pipeline.retention_frontier AS f"
				"  (pipeline_id, column_name, column_type, frontier)"
				" VALUES ($1, $2, $3, $4)"
				" ON CONFLICT (pipeline_id) DO UPDATE"
				"   SET column_name = excluded.column_name, column_type = excluded.column_type,"
				"       frontier = excluded.frontier, updated_at = now()",
				4, types, values, NULL, false);
}

/*
 * PruneReadWindows deletes at most batch windows recorded longer ago than
 * the run history is kept (a row only such a window proved read is then
 * kept), and returns how many went.
 */
uint64
PruneReadWindows(int retention_seconds, int batch)
{
	Oid			types[2] = {INT4OID, INT4OID};
	Datum		values[2];

	values[0] = Int32GetDatum(retention_seconds);
	values[1] = Int32GetDatum(batch);
	ExecCatalog("DELETE FROM pipeline.read_window WHERE (pipeline_id, run_id) IN ("
				"  SELECT pipeline_id, run_id FROM pipeline.read_window"
				"   WHERE recorded_at < now() - make_interval(secs => $1)"
				"   ORDER BY recorded_at LIMIT $2)",
				2, types, values, NULL, false);
	return SPI_processed;
}
