/*-------------------------------------------------------------------------
 *
 * src/recorders/retention_log.c
 *
 * What is written down of raw retention (engine/retention.c): one row of
 * pipeline.retention_purge (shown by the pipeline.retention_log view, under
 * the rules of pipeline.runs) per purge that deleted rows, with its audit
 * entry, in the transaction of the DELETE, so that the count and the rows
 * gone commit together; and one row per reason a pipeline's purges could
 * not run (a reader through a view, a missing privilege...), written again
 * only when the reason changes, so that a launcher retrying every few
 * seconds does not fill the log.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "pipeline/recorders.h"

/* ReaderArray makes a text[] of the readers' names */
static Datum
ReaderArray(List *readers)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(list_length(readers), 1));
	int			n = 0;
	ListCell   *lc;

	foreach(lc, readers)
		elems[n++] = CStringGetTextDatum((char *) lfirst(lc));
	return PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/* PurgeDetails spells a purge for its audit entry */
static char *
PurgeDetails(int64 purge_id, int64 rows_deleted, const char *bound, List *readers,
			 const char *triggered_by)
{
	StringInfoData d;
	ListCell   *lc;

	initStringInfo(&d);
	appendStringInfo(&d, "{\"purge_id\":%lld,\"rows_deleted\":%lld,",
					 (long long) purge_id, (long long) rows_deleted);
	AppendJsonMember(&d, "bound", bound, false);
	AppendJsonMember(&d, "triggered_by", triggered_by, true);
	appendStringInfoString(&d, ",\"readers\":[");
	foreach(lc, readers)
		AppendJsonMember(&d, NULL, lfirst(lc), foreach_current_index(lc) > 0);
	appendStringInfoString(&d, "]}");
	return d.data;
}

/*
 * RecordRawPurge writes what one purge deleted from a pipeline's source
 * (relation, "schema"."table"): the rows, the bound they were older than
 * (canonical text of the incremental column's type), the pipelines that had
 * all read them; and its audit entry. It returns the purge's id.
 */
int64
RecordRawPurge(PipelineDef *def, const char *relation, List *readers, int64 rows_deleted,
			   const char *bound, const char *triggered_by)
{
	Oid			types[7] = {INT8OID, TEXTOID, TEXTOID, INT8OID, TEXTOID, TEXTARRAYOID, TEXTOID};
	Datum		values[7];
	bool		isnull;
	int64		purge_id;

	values[0] = Int64GetDatum(def->id);
	values[1] = CStringGetTextDatum(def->name);
	values[2] = CStringGetTextDatum(relation);
	values[3] = Int64GetDatum(rows_deleted);
	values[4] = CStringGetTextDatum(bound);
	values[5] = ReaderArray(readers);
	values[6] = CStringGetTextDatum(triggered_by);
	ExecCatalog("INSERT INTO pipeline.retention_purge (pipeline_id, pipeline, relation,"
				"  rows_deleted, bound, readers, triggered_by)"
				" VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING purge_id",
				7, types, values, NULL, false);
	purge_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	AuditRawPurge(def, relation, PurgeDetails(purge_id, rows_deleted, bound, readers, triggered_by));
	return purge_id;
}

/*
 * RecordRawPurgeSkipped writes why a pipeline's raw rows could not be
 * purged, unless its last row already says so; true when it wrote one.
 */
bool
RecordRawPurgeSkipped(PipelineDef *def, const char *relation, const char *reason,
					  const char *triggered_by)
{
	Oid			types[5] = {INT8OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		values[5];

	values[0] = Int64GetDatum(def->id);
	values[1] = CStringGetTextDatum(def->name);
	values[2] = CStringGetTextDatum(relation);
	values[3] = CStringGetTextDatum(reason);
	values[4] = CStringGetTextDatum(triggered_by);
	ExecCatalog("INSERT INTO pipeline.retention_purge (pipeline_id, pipeline, relation,"
				"  rows_deleted, readers, skipped, triggered_by)"
				" SELECT $1, $2, $3, 0, '{}', $4, $5"
				"  WHERE (SELECT l.skipped FROM pipeline.retention_purge l"
				"          WHERE l.pipeline_id = $1 ORDER BY l.purge_id DESC LIMIT 1)"
				"        IS DISTINCT FROM $4",
				5, types, values, NULL, false);
	return SPI_processed > 0;
}
