/*-------------------------------------------------------------------------
 *
 * src/recorders/openlineage_inputs.c
 *
 * The inputs of a pipeline's OpenLineage events: per target column, the
 * columns it comes from through the pipeline's column edges (DIRECT, and
 * the CASE conditions as INDIRECT), and the pipeline's INDIRECT lineage
 * (what its source views filter, join, group, sort and partition on, and
 * its incremental column, delete column and unique key).
 *
 * Both are recorded with every refresh of the pipeline's lineage that
 * changes them (pipeline.lineage_snapshot, written by
 * RecordLineageSnapshot from lineage_store.c), so that the events of a run
 * describe the lineage the run had, also after its views were replaced or
 * dropped: LoadColumnInputs and LoadIndirectInputs read the latest record
 * made before the run ended (a run's first run creates its target, which
 * refreshes the lineage), and compute the lineage now only for a run older
 * than every record.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/snapmgr.h"

#include "pipeline/recorders.h"

/*
 * ReadColumnInputs turns the rows of the last SPI query (target column,
 * relation, column, transformed, how) into ColumnInputs; a row without a
 * target column (a lineage record without column inputs) is none.
 */
static List *
ReadColumnInputs(void)
{
	List	   *out = NIL;

	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	d = SPI_tuptable->tupdesc;
		ColumnInput *c;

		if (SPI_getvalue(t, d, 1) == NULL)
			continue;
		c = palloc(sizeof(ColumnInput));
		c->target_column = SPI_getvalue(t, d, 1);
		c->relation = SPI_getvalue(t, d, 2);
		c->column = SPI_getvalue(t, d, 3);
		c->transformed = strcmp(SPI_getvalue(t, d, 4), "t") == 0;
		c->how = SPI_getvalue(t, d, 5);
		out = lappend(out, c);
	}
	return out;
}

/*
 * LiveColumnInputs traces each column of the target up through the
 * pipeline's column edges to the columns it ultimately comes from (columns
 * of relations that are not views of this pipeline's lineage).
 */
static List *
LiveColumnInputs(int64 pipeline_id, const char *target)
{
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2];

	values[0] = Int64GetDatum(pipeline_id);
	values[1] = CStringGetTextDatum(target);
	ExecCatalog("WITH RECURSIVE e AS ("
				"  SELECT DISTINCT from_relation, from_column, to_relation, to_column,"
				"         transformation, how"
				"    FROM pipeline.lineage_column_edge WHERE pipeline_id = $1),"
				" walk (target_column, relation, column_name, transformed, how, depth) AS ("
				"  SELECT to_column, from_relation, from_column, transformation = 'transformed',"
				"         CASE WHEN transformation = 'transformed' THEN how END, 1"
				"    FROM e WHERE to_relation = $2"
				"  UNION"
				"  SELECT w.target_column, e.from_relation, e.from_column,"
				"         w.transformed OR e.transformation = 'transformed',"
				"         CASE WHEN 'condition' IN (w.how, e.how) THEN 'condition' WHEN e.how = 'aggregate'"
				"              THEN e.how ELSE coalesce(w.how, CASE WHEN e.transformation = 'transformed'"
				"              THEN e.how END) END,"
				"         w.depth + 1"
				"    FROM walk w JOIN e ON e.to_relation = w.relation AND e.to_column = w.column_name"
				"   WHERE w.depth < 64)"
				" SELECT target_column::text, relation, column_name::text, bool_or(transformed),"
				"        coalesce(min(how), 'copy')"
				"   FROM walk w"
				"  WHERE NOT EXISTS (SELECT 1 FROM e WHERE e.to_relation = w.relation"
				"                    AND e.to_column = w.column_name)"
				/* a column of a view in the lineage without an input is a constant */
				"    AND NOT (w.relation <> $2 AND EXISTS (SELECT 1 FROM e WHERE e.to_relation = w.relation))"
				"  GROUP BY 1, 2, 3, how IS NOT DISTINCT FROM 'condition' ORDER BY 1, 2, 3, 5",
				2, types, values, NULL, true);
	return ReadColumnInputs();
}

/*
 * LiveIndirectInputs returns a pipeline's INDIRECT lineage now: the columns the source
 * (a view, and the views below it) filters, joins, groups, sorts or
 * partitions on, and the pipeline's own: the incremental column (FILTER:
 * the run's window), the delete column (CONDITIONAL: deletes a row or
 * upserts it) and the unique key (JOIN: the MERGE matches on it), as
 * columns of the source.
 */
static List *
LiveIndirectInputs(int64 pipeline_id, const char *source)
{
	Oid			types[2] = {TEXTOID, INT8OID};
	Datum		values[2];
	Oid			relid;
	List	   *out = NIL;

	values[0] = CStringGetTextDatum(source);
	values[1] = Int64GetDatum(pipeline_id);
	ExecCatalog("SELECT coalesce(to_regclass($1)::oid, 0), c.column_name, c.subtype, c.description"
				"  FROM (SELECT 1) AS one LEFT JOIN ("
				"    SELECT incremental_column AS column_name, 'FILTER' AS subtype, 1 AS o,"
				"           'incremental column: the run reads the rows of its window' AS description"
				"      FROM pipeline.pipeline WHERE pipeline_id = $2 AND incremental_column IS NOT NULL"
				"    UNION ALL SELECT delete_column, 'CONDITIONAL', 2,"
				"           'delete column: the row is deleted from the target, or upserted'"
				"      FROM pipeline.pipeline WHERE pipeline_id = $2 AND delete_column IS NOT NULL"
				"    UNION ALL SELECT k, 'JOIN', 3, 'unique key: the load matches target rows on it'"
				"      FROM pipeline.pipeline, unnest(unique_key) AS k WHERE pipeline_id = $2"
				"  ) AS c ON true ORDER BY c.o, c.column_name",
				2, types, values, NULL, true);
	relid = SPI_processed ? (Oid) strtoul(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1), NULL, 10) : InvalidOid;
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		char	   *column = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
		IndirectInput *in;

		if (column == NULL)
			continue;
		in = palloc(sizeof(IndirectInput));
		in->relation = pstrdup(source);
		in->column = column;
		in->subtype = pstrdup(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3));
		in->description = pstrdup(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 4));
		out = lappend(out, in);
	}
	if (OidIsValid(relid))
		out = list_concat(out, IndirectLineage(relid));
	return out;
}

/* ColumnInputsJson writes column inputs as a jsonb array's text */
static char *
ColumnInputsJson(List *columns)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '[');
	foreach(lc, columns)
	{
		ColumnInput *c = lfirst(lc);

		appendStringInfoString(&buf, foreach_current_index(lc) ? ",{" : "{");
		AppendJsonMember(&buf, "target_column", c->target_column, false);
		AppendJsonMember(&buf, "relation", c->relation, true);
		AppendJsonMember(&buf, "column", c->column, true);
		appendStringInfo(&buf, ",\"transformed\":%s", c->transformed ? "true" : "false");
		AppendJsonMember(&buf, "how", c->how, true);
		appendStringInfoChar(&buf, '}');
	}
	appendStringInfoChar(&buf, ']');
	return buf.data;
}

/* IndirectInputsJson writes INDIRECT inputs as a jsonb array's text */
static char *
IndirectInputsJson(List *indirect)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '[');
	foreach(lc, indirect)
	{
		IndirectInput *in = lfirst(lc);

		appendStringInfoString(&buf, foreach_current_index(lc) ? ",{" : "{");
		AppendJsonMember(&buf, "relation", in->relation, false);
		AppendJsonMember(&buf, "column", in->column, true);
		AppendJsonMember(&buf, "subtype", in->subtype, true);
		AppendJsonMember(&buf, "description", in->description, true);
		appendStringInfoChar(&buf, '}');
	}
	appendStringInfoChar(&buf, ']');
	return buf.data;
}

/*
 * RecordLineageSnapshot records a pipeline's column inputs and INDIRECT
 * lineage as they are now, unless they equal its latest record; the
 * lineage refresh calls it after writing the pipeline's edges.
 */
void
RecordLineageSnapshot(PipelineDef *def)
{
	char	   *source = quote_qualified_identifier(def->source_schema, def->source_table);
	char	   *target = quote_qualified_identifier(def->target_schema, def->target_table);
	Oid			types[3] = {INT8OID, TEXTOID, TEXTOID};
	Datum		values[3];

	/* the edges were just written */
	PushSnapshotSeeingOwnWrites();
	values[0] = Int64GetDatum(def->id);
	values[1] = CStringGetTextDatum(ColumnInputsJson(LiveColumnInputs(def->id, target)));
	values[2] = CStringGetTextDatum(IndirectInputsJson(LiveIndirectInputs(def->id, source)));
	PopActiveSnapshot();
	ExecCatalog("INSERT INTO pipeline.lineage_snapshot (pipeline_id, recorded_at, columns, indirect)"
				" SELECT $1, clock_timestamp(), $2::jsonb, $3::jsonb"
				"  WHERE NOT EXISTS (SELECT 1 FROM (SELECT l.columns, l.indirect FROM pipeline.lineage_snapshot l"
				"                     WHERE l.pipeline_id = $1 ORDER BY l.recorded_at DESC, l.snapshot_id DESC"
				"                     LIMIT 1) last"
				"                    WHERE last.columns = $2::jsonb AND last.indirect = $3::jsonb)",
				3, types, values, NULL, false);
}

/*
 * LoadSnapshot runs the query (prepared once in *plan) of one part of the
 * latest lineage record of a pipeline made at or before `at` (NULL: the
 * latest): one row with NULL entries for an empty part, none when there is
 * no record; false then.
 */
static bool
LoadSnapshot(SPIPlanPtr *plan, int64 pipeline_id, const char *at, const char *sql)
{
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2];
	char		nulls[2] = {' ', at ? ' ' : 'n'};

	values[0] = Int64GetDatum(pipeline_id);
	values[1] = at ? CStringGetTextDatum(at) : (Datum) 0;
	ExecKeptPlan(plan, sql, 2, types, values, nulls);
	return SPI_processed > 0;
}

/* the latest record's part, one row per entry (LEFT JOIN: a row for none) */
#define LATEST_SNAPSHOT(part) \
	"SELECT x.* FROM (SELECT " part " AS a FROM pipeline.lineage_snapshot" \
	" WHERE pipeline_id = $1 AND recorded_at <= coalesce($2::timestamptz, 'infinity')" \
	" ORDER BY recorded_at DESC, snapshot_id DESC LIMIT 1) s LEFT JOIN"

static SPIPlanPtr columns_plan = NULL;
static SPIPlanPtr indirect_plan = NULL;

/*
 * LoadColumnInputs returns the column inputs of the pipeline's target as a
 * run that ended at `at` (NULL: still running) had them: the latest record
 * made before, or the lineage now when there is none.
 */
List *
LoadColumnInputs(int64 pipeline_id, const char *target, const char *at)
{
	if (target == NULL)
		return NIL;
	if (!LoadSnapshot(&columns_plan, pipeline_id, at,
					  LATEST_SNAPSHOT("columns")
					  " jsonb_to_recordset(s.a) AS x(target_column text, relation text,"
					  " \"column\" text, transformed boolean, how text) ON true"))
		return LiveColumnInputs(pipeline_id, target);
	return ReadColumnInputs();
}

/*
 * LoadIndirectInputs returns the pipeline's INDIRECT lineage as a run that
 * ended at `at` (NULL: still running) had it: the latest record made
 * before, or the lineage now when there is none.
 */
List *
LoadIndirectInputs(int64 pipeline_id, const char *source, const char *at)
{
	List	   *out = NIL;

	if (source == NULL)
		return NIL;
	if (!LoadSnapshot(&indirect_plan, pipeline_id, at,
					  LATEST_SNAPSHOT("indirect")
					  " jsonb_to_recordset(s.a) AS x(relation text, \"column\" text,"
					  " subtype text, description text) ON true"))
		return LiveIndirectInputs(pipeline_id, source);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	d = SPI_tuptable->tupdesc;
		IndirectInput *in;

		if (SPI_getvalue(t, d, 1) == NULL)
			continue;			/* a record without INDIRECT inputs */
		in = palloc(sizeof(IndirectInput));

		in->relation = SPI_getvalue(t, d, 1);
		in->column = SPI_getvalue(t, d, 2);
		in->subtype = SPI_getvalue(t, d, 3);
		in->description = SPI_getvalue(t, d, 4);
		out = lappend(out, in);
	}
	return out;
}
