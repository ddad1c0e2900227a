/*-------------------------------------------------------------------------
 *
 * src/recorders/lineage_store.c
 *
 * A pipeline's lineage in the catalog. For each pipeline the catalog holds
 * its source -> target edge (and an edge per column the two share) and,
 * below its source, the view edges lineage_analysis.c finds; the relations
 * are stored by OID and by name, so that an edge survives its relation
 * being dropped, with kind "missing". RefreshPipelineLineage recomputes
 * and replaces them when a pipeline is created or altered (api/registry.c
 * calls RegistryChanged, which calls RefreshPipelineLineage), dropped (by
 * the foreign key's cascade), and when DDL creates, replaces, alters or
 * drops a relation the lineage of some pipeline mentions (lineage_ddl.c);
 * RefreshPipelinesWhere refreshes the pipelines a query names. Also here:
 * the run id a load stamps into a pipeline's lineage column
 * (SetLineageRunId, pipeline._current_run_id()).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "lineage_internal.h"

PIPELINE_FUNCTION(pipeline_current_run_id);

/* ---- the run id a load stamps into the lineage column ----------------- */

static int64 lineage_run_id = 0;

/* SetLineageRunId tells pipeline._current_run_id() which run is loading */
void
SetLineageRunId(int64 run_id)
{
	lineage_run_id = run_id;
}

/* pipeline._current_run_id(): the run now loading in this session, or NULL */
Datum
pipeline_current_run_id(PG_FUNCTION_ARGS)
{
	if (lineage_run_id <= 0)
		PG_RETURN_NULL();
	PG_RETURN_INT64(lineage_run_id);
}

/* ---- how lineage names relations --------------------------------------- */

/* LineageRelationKind spells a relkind for users */
const char *
LineageRelationKind(Oid relid)
{
	switch (OidIsValid(relid) ? get_rel_relkind(relid) : '\0')
	{
		case RELKIND_RELATION:
			return "table";
		case RELKIND_PARTITIONED_TABLE:
			return "partitioned table";
		case RELKIND_VIEW:
			return "view";
		case RELKIND_MATVIEW:
			return "materialized view";
		case RELKIND_FOREIGN_TABLE:
			return "foreign table";
		default:
			return "missing";
	}
}

/*
 * LineageRelationName returns "schema"."name" of a relation, as lineage
 * stores it
 */
char *
LineageRelationName(Oid relid)
{
	if (get_rel_name(relid) == NULL)
		return psprintf("(dropped relation %u)", relid);
	return RelationNameOf(relid);
}

/* ---- storing a pipeline's edges --------------------------------------- */

/* LookupRelation finds a relation by schema and name, InvalidOid if missing */
static Oid
LookupRelation(const char *schema, const char *relname)
{
	Oid			nsp = get_namespace_oid(schema, true);

	return OidIsValid(nsp) ? get_relname_relid(relname, nsp) : InvalidOid;
}

/* OidListArray, TextListArray: a list as an array Datum */
Datum
OidListArray(List *l)
{
	Datum	   *d = palloc(sizeof(Datum) * (list_length(l) + 1));
	int			n = 0;
	ListCell   *lc;

	foreach(lc, l)
		d[n++] = ObjectIdGetDatum(lfirst_oid(lc));
	return PointerGetDatum(construct_array(d, n, OIDOID, sizeof(Oid), true, TYPALIGN_INT));
}

Datum
TextListArray(List *l)
{
	Datum	   *d = palloc(sizeof(Datum) * (list_length(l) + 1));
	int			n = 0;
	ListCell   *lc;

	foreach(lc, l)
		d[n++] = CStringGetTextDatum((char *) lfirst(lc));
	return PointerGetDatum(construct_array(d, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/*
 * EdgeNames names the relations of edges: each by its current name if it
 * exists, else by the name stored with the edge
 */
static List *
EdgeNames(List *relids, List *names)
{
	List	   *out = NIL;
	ListCell   *a;
	ListCell   *b;

	forboth(a, relids, b, names)
	{
		Oid			relid = lfirst_oid(a);

		out = lappend(out, OidIsValid(relid) ? LineageRelationName(relid) : (char *) lfirst(b));
	}
	return out;
}

/* EdgeKinds spells the kind of each relation of edges */
static List *
EdgeKinds(List *relids)
{
	List	   *out = NIL;
	ListCell   *lc;

	foreach(lc, relids)
		out = lappend(out, (void *) LineageRelationKind(lfirst_oid(lc)));
	return out;
}

/*
 * RefreshPipelineLineage recomputes every table and column edge of one
 * pipeline from the current catalogs, and records the columns and comments
 * of the relations they name when these changed (pipeline.relation_schema,
 * what later runs are described with). A source or target that does not
 * exist keeps its edge, by name, with kind "missing".
 */
void
RefreshPipelineLineage(PipelineDef *def)
{
	EdgeSet		es;
	Oid			source = LookupRelation(def->source_schema, def->source_table);
	Oid			target = LookupRelation(def->target_schema, def->target_table);
	Oid			types[11];
	Datum		values[11];
	List	   *bools = NIL;
	ListCell   *lc;

	memset(&es, 0, sizeof(es));
	AddTableEdge(&es, "pipeline", source,
				 quote_qualified_identifier(def->source_schema, def->source_table),
				 target, quote_qualified_identifier(def->target_schema, def->target_table));
	if (OidIsValid(source) && OidIsValid(target) && def->mode == LOAD_MODE_ROLLUP)
		AddRollupColumnEdges(&es, def, source, target);
	else if (OidIsValid(source) && OidIsValid(target))
	{
		Relation	rel = relation_open(source, AccessShareLock);
		TupleDesc	desc = RelationGetDescr(rel);

		for (int i = 0; i < desc->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, i);
			AttrNumber	t = get_attnum(target, NameStr(att->attname));

			if (!att->attisdropped && t > 0)
				AddColumnEdge(&es, "pipeline", source, pstrdup(NameStr(att->attname)),
							  target, pstrdup(NameStr(att->attname)), false, "load");
		}
		relation_close(rel, AccessShareLock);
	}
	if (OidIsValid(source))
		AnalyzeRelation(source, &es, 0);

	types[0] = INT8OID;
	values[0] = Int64GetDatum(def->id);
	ExecCatalog("DELETE FROM pipeline.lineage_edge WHERE pipeline_id = $1",
				1, types, values, NULL, false);
	ExecCatalog("DELETE FROM pipeline.lineage_column_edge WHERE pipeline_id = $1",
				1, types, values, NULL, false);

	types[1] = TEXTARRAYOID;
	values[1] = TextListArray(es.t_kind);
	types[2] = OIDARRAYOID;
	values[2] = OidListArray(es.t_from);
	types[3] = TEXTARRAYOID;
	values[3] = TextListArray(EdgeNames(es.t_from, es.t_from_name));
	types[4] = TEXTARRAYOID;
	values[4] = TextListArray(EdgeKinds(es.t_from));
	types[5] = OIDARRAYOID;
	values[5] = OidListArray(es.t_to);
	types[6] = TEXTARRAYOID;
	values[6] = TextListArray(EdgeNames(es.t_to, es.t_to_name));
	types[7] = TEXTARRAYOID;
	values[7] = TextListArray(EdgeKinds(es.t_to));
	ExecCatalog("INSERT INTO pipeline.lineage_edge (pipeline_id, edge_kind, from_relid,"
				" from_relation, from_kind, to_relid, to_relation, to_kind)"
				" SELECT $1, * FROM unnest($2, $3, $4, $5, $6, $7, $8)",
				8, types, values, NULL, false);
	/* what the relations look like now, when it changed (what a run sees) */
	ExecCatalog("SELECT pipeline._record_relation_schemas(ARRAY("
				" SELECT e.from_relation FROM pipeline.lineage_edge e WHERE e.pipeline_id = $1"
				" UNION SELECT e.to_relation FROM pipeline.lineage_edge e WHERE e.pipeline_id = $1))",
				1, types, values, NULL, false);
	if (es.c_kind == NIL)
	{
		RecordLineageSnapshot(def);
		return;
	}

	foreach(lc, es.c_transformed)
		bools = lappend(bools, lfirst_int(lc) ? "transformed" : "copied");
	values[1] = TextListArray(es.c_kind);
	values[2] = OidListArray(es.c_from);
	values[3] = TextListArray(EdgeNames(es.c_from, es.c_from));
	types[4] = TEXTARRAYOID;
	values[4] = TextListArray(es.c_from_col);
	values[5] = OidListArray(es.c_to);
	types[6] = TEXTARRAYOID;
	values[6] = TextListArray(EdgeNames(es.c_to, es.c_to));
	values[7] = TextListArray(es.c_to_col);
	types[8] = TEXTARRAYOID;
	values[8] = TextListArray(bools);
	types[9] = TEXTARRAYOID;
	values[9] = TextListArray(es.c_how);
	ExecCatalog("INSERT INTO pipeline.lineage_column_edge (pipeline_id, edge_kind,"
				" from_relid, from_relation, from_column, to_relid, to_relation,"
				" to_column, transformation, how)"
				" SELECT $1, * FROM unnest($2, $3, $4, $5, $6, $7, $8, $9, $10)",
				10, types, values, NULL, false);
	RecordLineageSnapshot(def);
}

/*
 * RefreshPipelinesWhere refreshes the pipelines a query returns the names
 * of, and returns how many; the caller is connected to SPI.
 */
int
RefreshPipelinesWhere(const char *sql, int nargs, Oid *types, Datum *values)
{
	List	   *names = NIL;
	ListCell   *lc;

	ExecCatalog(sql, nargs, types, values, NULL, false);
	for (uint64 i = 0; i < SPI_processed; i++)
		names = lappend(names, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
	foreach(lc, names)
	{
		int			nestlevel = PinSearchPath();
		PipelineDef *def = LoadPipelineByName(lfirst(lc), true);

		if (def)
			RefreshPipelineLineage(def);
		UnpinSearchPath(nestlevel);
	}
	return list_length(names);
}

