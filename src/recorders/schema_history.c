/*-------------------------------------------------------------------------
 *
 * src/recorders/schema_history.c
 *
 * What is written down of schema drift, as the extension owner:
 *
 * - pipeline.source_snapshot, one row per pipeline: its source's columns
 *   (name, type with typmod, attnum, as pipeline._source_columns spells
 *   them; read by catalog/source_columns.c) at the last
 *   successful run, which the next run compares the source with
 *   (engine/schema_drift.c), and as last seen, which the DDL trigger
 *   compares it with. A run writes it in its own transaction, so that it
 *   moves only with a run that commits; registering a pipeline, or
 *   pointing it at another source, writes the first one.
 * - pipeline.schema_change (the pipeline.schema_history view): one row per
 *   change and what was done about it, each with its audit entry. A run's
 *   changes travel in its RunRecord (schema_changes, JSON) to the one
 *   writer of its records (run_outcome.c), so that a failed run's are
 *   written by the autonomous recorder with its record, after the rollback
 *   that undid what the run had applied: those say 'failed'.
 * - the DDL trigger's changes (lineage_ddl.c), with action 'detected' and
 *   no run, in the transaction of the command that made them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"

#include "pipeline/recorders.h"
#include "pipeline/recorders/schema_history.h"
#include "pipeline/catalog/source_columns.h"

/* LoadSourceSnapshot reads a pipeline's snapshot, NULL when it has none */
SourceSnapshot *
LoadSourceSnapshot(int64 pipeline_id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(pipeline_id)};
	SourceSnapshot *snap;
	HeapTuple	tuple;
	TupleDesc	desc;
	bool		isnull;

	ExecCatalog("SELECT relation, columns, seen_columns FROM pipeline.source_snapshot"
				" WHERE pipeline_id = $1", 1, types, values, NULL, true);
	if (SPI_processed == 0)
		return NULL;
	tuple = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	snap = palloc0(sizeof(SourceSnapshot));
	snap->relation = TextDatumGetCString(SPI_getbinval(tuple, desc, 1, &isnull));
	snap->columns = ColumnsFromJson(DatumGetJsonbP(SPI_getbinval(tuple, desc, 2, &isnull)));
	snap->seen = ColumnsFromJson(DatumGetJsonbP(SPI_getbinval(tuple, desc, 3, &isnull)));
	return snap;
}

/*
 * StoreSourceSnapshot makes the columns of a pipeline's source (relation,
 * relid), as they are now, its snapshot both as of its last successful run
 * (run_id; 0 at registration) and as last seen.
 */
void
StoreSourceSnapshot(int64 pipeline_id, const char *relation, Oid relid, int64 run_id)
{
	Oid			types[4] = {INT8OID, TEXTOID, OIDOID, INT8OID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', run_id > 0 ? ' ' : 'n'};

	values[0] = Int64GetDatum(pipeline_id);
	values[1] = CStringGetTextDatum(relation);
	values[2] = ObjectIdGetDatum(relid);
	values[3] = Int64GetDatum(run_id);
	ExecCatalog("INSERT INTO pipeline.source_snapshot AS s (pipeline_id, relation, columns, run_id,"
				" seen_columns, recorded_at)"
				" SELECT $1, $2, c.columns, $4, c.columns, now()"
				"   FROM pipeline._source_columns($3::regclass) AS c(columns)"
				" ON CONFLICT (pipeline_id) DO UPDATE SET relation = excluded.relation,"
				" columns = excluded.columns, run_id = excluded.run_id,"
				" seen_columns = excluded.seen_columns, recorded_at = excluded.recorded_at",
				4, types, values, nulls, false);
}

/* StoreSeenColumns records how the DDL trigger last saw a pipeline's source */
static void
StoreSeenColumns(int64 pipeline_id, Oid relid)
{
	Oid			types[2] = {INT8OID, OIDOID};
	Datum		values[2];

	values[0] = Int64GetDatum(pipeline_id);
	values[1] = ObjectIdGetDatum(relid);
	ExecCatalog("UPDATE pipeline.source_snapshot SET seen_columns = pipeline._source_columns($2::regclass)"
				" WHERE pipeline_id = $1", 2, types, values, NULL, false);
}

/* SourceRelid returns the relation a pipeline reads, InvalidOid if gone */
static Oid
SourceRelid(PipelineDef *def)
{
	Oid			nspid = get_namespace_oid(def->source_schema, true);

	return OidIsValid(nspid) ? get_relname_relid(def->source_table, nspid) : InvalidOid;
}

/*
 * SnapshotRegisteredSource writes the first snapshot of a pipeline's source,
 * when it is registered or pointed at another source: what its first run
 * compares the source with. A pipeline whose source stays keeps the
 * snapshot of its last successful run.
 */
void
SnapshotRegisteredSource(PipelineDef *def)
{
	char	   *relation = QualifiedRelationName(def->source_schema, def->source_table);
	SourceSnapshot *snap = LoadSourceSnapshot(def->id);
	Oid			relid = SourceRelid(def);

	if (!OidIsValid(relid) || (snap && strcmp(snap->relation, relation) == 0))
		return;
	StoreSourceSnapshot(def->id, relation, relid, 0);
}

/* JsonPair spells {k1: v1, k2: v2} (values as JSON strings) for an audit entry */
static char *
JsonPair(const char *k1, const char *v1, const char *k2, const char *v2)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	AppendJsonMember(&buf, k1, v1, false);
	AppendJsonMember(&buf, k2, v2, true);
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

/* CopyText copies column attno of an SPI row, NULL if null */
static char *
CopyText(HeapTuple tuple, TupleDesc desc, int attno)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tuple, desc, attno, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/*
 * AuditWrittenChanges queues the audit entry of each change just written
 * (the rows SPI returned): before and after, the column and its type.
 */
static void
AuditWrittenChanges(PipelineDef *def, int64 run_id, const char *relation)
{
	uint64		n = SPI_processed;
	SPITupleTable *tab = SPI_tuptable;

	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	t = tab->vals[i];
		char	   *column = CopyText(t, tab->tupdesc, 1);
		char	   *old_column = CopyText(t, tab->tupdesc, 2);
		char	   *change = CopyText(t, tab->tupdesc, 3);
		char	   *old_type = CopyText(t, tab->tupdesc, 4);
		char	   *new_type = CopyText(t, tab->tupdesc, 5);
		char	   *action = CopyText(t, tab->tupdesc, 6);
		char	   *policy = CopyText(t, tab->tupdesc, 7);

		AuditSchemaChange(def, run_id, psprintf("%s.%s", relation, quote_identifier(column)), action,
						  old_type ? JsonPair("column", old_column ? old_column : column,
											  "type", old_type) : NULL,
						  new_type ? JsonPair("column", column, "type", new_type) : NULL,
						  JsonPair("change", change, "on_schema_change", policy));
	}
}

/*
 * WriteSchemaChanges writes the changes of a pipeline's source (JSON, as
 * ColumnChangesJson spells them) to pipeline.schema_change, each with its
 * audit entry. run_id 0: found by the DDL trigger, no run. In a failed run,
 * what it had applied was rolled back with it: 'applied' is written
 * 'failed'.
 */
void
WriteSchemaChanges(PipelineDef *def, int64 run_id, const char *changes, bool run_failed)
{
	Oid			types[6] = {INT8OID, TEXTOID, TEXTOID, INT8OID, BOOLOID, JSONBOID};
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', run_id > 0 ? ' ' : 'n', ' ', ' '};
	char	   *relation = QualifiedRelationName(def->source_schema, def->source_table);

	values[0] = Int64GetDatum(def->id);
	values[1] = CStringGetTextDatum(def->name);
	values[2] = CStringGetTextDatum(relation);
	values[3] = Int64GetDatum(run_id);
	values[4] = BoolGetDatum(run_failed);
	values[5] = DirectFunctionCall1(jsonb_in, CStringGetDatum(changes));
	ExecCatalog("INSERT INTO pipeline.schema_change (pipeline_id, pipeline, relation, column_name,"
				" old_column_name, change, old_type, new_type, action, run_id)"
				" SELECT $1, $2, $3, c.column_name, c.old_column_name, c.change, c.old_type,"
				"        c.new_type, CASE WHEN $5 AND c.action = 'applied' THEN 'failed'"
				"                    ELSE c.action END, $4"
				"   FROM ROWS FROM (jsonb_to_recordset($6 -> 'changes') AS (column_name text,"
				"        old_column_name text, change text, old_type text, new_type text,"
				"        action text)) WITH ORDINALITY AS c"
				"  ORDER BY c.ordinality"
				" RETURNING column_name, old_column_name, change, old_type, new_type, action,"
				"           $6 ->> 'policy'",
				6, types, values, nulls, false);
	AuditWrittenChanges(def, run_id, relation);
}

/*
 * RecordRunSchemaChanges writes the changes a run carries, once: with the
 * outcome of a run (run_outcome.c), or with the first batch of a batched
 * run, which committed what it applied.
 */
void
RecordRunSchemaChanges(RunRecord *run)
{
	if (run->schema_changes == NULL)
		return;
	WriteSchemaChanges(run->def, run->run_id, run->schema_changes, run->status == RUN_FAILED);
	run->schema_changes = NULL;
}

/*
 * RecordSourceDdl is the DDL trigger's part (lineage_ddl.c): for each
 * pipeline whose source is one of relids (an oid[]), the changes since the source was
 * last seen are written as 'detected', with no run; the next run compares
 * the source with its last successful run and writes what it did.
 */
void
RecordSourceDdl(Datum relids)
{
	Oid			types[1] = {OIDARRAYOID};
	Datum		values[1] = {relids};
	int64	   *ids;
	uint64		n;

	ExecCatalog("SELECT p.pipeline_id FROM pipeline.pipeline p"
				"  JOIN pipeline.source_snapshot s ON s.pipeline_id = p.pipeline_id"
				" WHERE s.relation = quote_ident(p.source_schema) || '.' || quote_ident(p.source_table)"
				"   AND to_regclass(s.relation) = ANY ($1)"
				" ORDER BY p.pipeline_id", 1, types, values, NULL, true);
	n = SPI_processed;
	ids = palloc(sizeof(int64) * (n + 1));
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;

		ids[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
	}
	for (uint64 i = 0; i < n; i++)
	{
		PipelineDef *def = LoadPipelineById(ids[i]);
		SourceSnapshot *snap = def ? LoadSourceSnapshot(def->id) : NULL;
		Oid			relid = def ? SourceRelid(def) : InvalidOid;
		List	   *changes;
		ListCell   *cc;

		if (snap == NULL || !OidIsValid(relid))
			continue;
		changes = DiffColumns(snap->seen, RelationColumns(relid));
		if (changes == NIL)
			continue;
		foreach(cc, changes)
			((ColumnChange *) lfirst(cc))->action = "detected";
		WriteSchemaChanges(def, 0, ColumnChangesJson(changes, def->on_schema_change), false);
		StoreSeenColumns(def->id, relid);
	}
}
