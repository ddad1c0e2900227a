/*-------------------------------------------------------------------------
 *
 * src/recorders/lineage_graph.c
 *
 * Impact analysis: the lineage graph in memory and the SQL functions that
 * walk it, pipeline.upstream and pipeline.downstream at table level,
 * pipeline.column_upstream and pipeline.column_downstream at column level.
 * They walk the union of the edges of every pipeline the caller may see
 * breadth-first in memory, so the cost is one read of the edge table and
 * linear in the size of the graph. lineage_picture.c draws the same graph.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "lineage_internal.h"

PIPELINE_FUNCTION(pipeline_upstream);
PIPELINE_FUNCTION(pipeline_downstream);
PIPELINE_FUNCTION(pipeline_column_upstream);
PIPELINE_FUNCTION(pipeline_column_downstream);

/* ---- the graph in memory ------------------------------------------------ */

/*
 * LoadTableEdges reads every distinct table edge of the pipelines the caller
 * may see (as pipeline.lineage shows them), in a stable order.
 */
List *
LoadTableEdges(void)
{
	List	   *edges = NIL;
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(GetUserId())};

	ExecCatalog("SELECT DISTINCT e.from_relation, e.to_relation, e.from_kind, e.to_kind,"
				" CASE WHEN e.edge_kind = 'pipeline' THEN p.name END,"
				" CASE WHEN e.edge_kind = 'pipeline' THEN coalesce((SELECT"
				"   CASE WHEN w.last_idle_run_id > coalesce(l.run_id, 0) THEN 'succeeded' ELSE l.status END"
				"   FROM pipeline.watermark w LEFT JOIN LATERAL (SELECT h.run_id, h.status"
				"     FROM pipeline.run_history h WHERE h.pipeline_id = p.pipeline_id"
				"     ORDER BY h.run_id DESC LIMIT 1) l ON true"
				"   WHERE w.pipeline_id = p.pipeline_id), 'never run') END"
				" FROM pipeline.lineage_edge e"
				" JOIN pipeline.pipeline p ON p.pipeline_id = e.pipeline_id"
				" WHERE pipeline._may('read', p.owner::oid, $1)"
				" ORDER BY 1, 2, 5",
				1, types, values, NULL, true);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	d = SPI_tuptable->tupdesc;
		GraphEdge  *e = palloc0(sizeof(GraphEdge));

		e->from = e->from_rel = SPI_getvalue(t, d, 1);
		e->to = e->to_rel = SPI_getvalue(t, d, 2);
		e->from_kind = SPI_getvalue(t, d, 3);
		e->to_kind = SPI_getvalue(t, d, 4);
		e->pipeline = SPI_getvalue(t, d, 5);
		e->status = SPI_getvalue(t, d, 6);
		edges = lappend(edges, e);
	}
	return edges;
}

/* ColumnKey spells a column node: relation.column (the column quoted) */
static char *
ColumnKey(const char *rel, const char *col)
{
	return psprintf("%s.%s", rel, quote_identifier(col));
}

/* LoadColumnEdges reads the column edges the caller may see, likewise */
static List *
LoadColumnEdges(void)
{
	List	   *edges = NIL;
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(GetUserId())};

	ExecCatalog("SELECT DISTINCT e.from_relation, e.from_column::text, e.to_relation,"
				" e.to_column::text, e.transformation, e.how,"
				" CASE WHEN e.edge_kind = 'pipeline' THEN p.name END"
				" FROM pipeline.lineage_column_edge e"
				" JOIN pipeline.pipeline p ON p.pipeline_id = e.pipeline_id"
				" WHERE pipeline._may('read', p.owner::oid, $1)"
				" ORDER BY 1, 2, 3, 4, 7",
				1, types, values, NULL, true);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	d = SPI_tuptable->tupdesc;
		GraphEdge  *e = palloc0(sizeof(GraphEdge));

		e->from_rel = SPI_getvalue(t, d, 1);
		e->from_col = SPI_getvalue(t, d, 2);
		e->to_rel = SPI_getvalue(t, d, 3);
		e->to_col = SPI_getvalue(t, d, 4);
		e->transformed = strcmp(SPI_getvalue(t, d, 5), "transformed") == 0;
		e->how = SPI_getvalue(t, d, 6);
		e->pipeline = SPI_getvalue(t, d, 7);
		e->from = ColumnKey(e->from_rel, e->from_col);
		e->to = ColumnKey(e->to_rel, e->to_col);
		edges = lappend(edges, e);
	}
	return edges;
}

/* FindReached returns the node of that key reached so far, or NULL */
Reached *
FindReached(List *reached, const char *key)
{
	ListCell   *lc;

	foreach(lc, reached)
	{
		Reached    *r = lfirst(lc);

		if (strcmp(r->key, key) == 0)
			return r;
	}
	return NULL;
}

/*
 * WalkEdges goes breadth-first from start along the edges (forwards for
 * downstream, backwards for upstream), expanding each node once, at its
 * least depth, and returns one Reached per edge of the part of the graph it
 * covers: a relation reached by several edges (a diamond, a join) appears
 * once per edge, each with the depth and path through that edge, so that
 * every pipeline above or below is listed. The start is not included.
 */
List *
WalkEdges(List *edges, const char *start, bool forward)
{
	List	   *result = NIL;
	List	   *visited = list_make1(pstrdup(start));
	List	   *frontier;
	Reached    *s = palloc0(sizeof(Reached));
	int			depth = 0;

	s->key = pstrdup(start);
	s->path = list_make1(s->key);
	frontier = list_make1(s);
	while (frontier != NIL)
	{
		List	   *next = NIL;
		ListCell   *fc;

		depth++;
		foreach(fc, frontier)
		{
			Reached    *f = lfirst(fc);
			ListCell   *ec;

			foreach(ec, edges)
			{
				GraphEdge  *e = lfirst(ec);
				const char *here = forward ? e->from : e->to;
				const char *there = forward ? e->to : e->from;
				Reached    *r;
				ListCell   *vc;
				bool		seen = false;

				if (strcmp(here, f->key) != 0)
					continue;
				foreach(vc, visited)
					if (strcmp(lfirst(vc), there) == 0)
						seen = true;
				r = palloc0(sizeof(Reached));
				r->key = pstrdup(there);
				r->depth = depth;
				r->path = lappend(list_copy(f->path), r->key);
				r->transformed = f->transformed || e->transformed;
				r->via = e;
				result = lappend(result, r);
				if (!seen)
				{
					visited = lappend(visited, r->key);
					next = lappend(next, r);
				}
			}
		}
		frontier = next;
	}
	return result;
}

/* LineageStartName spells a regclass argument as lineage stores relations */
char *
LineageStartName(Oid relid)
{
	if (get_rel_name(relid) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	return LineageRelationName(relid);
}

/* TableWalk implements upstream and downstream */
static Datum
TableWalk(FunctionCallInfo fcinfo, bool forward)
{
	Oid			relid = PG_GETARG_OID(0);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *start;
	ListCell   *lc;
	int			nestlevel;

	InitMaterializedSRF(fcinfo, MAT_SRF_BLESS);
	start = LineageStartName(relid);
	SPI_connect();
	nestlevel = PinSearchPath();
	foreach(lc, WalkEdges(LoadTableEdges(), start, forward))
	{
		Reached    *r = lfirst(lc);
		Datum		values[5];
		bool		nulls[5] = {false, false, false, r->via->pipeline == NULL, false};

		values[0] = Int32GetDatum(r->depth);
		values[1] = CStringGetTextDatum(r->key);
		values[2] = CStringGetTextDatum(forward ? r->via->to_kind : r->via->from_kind);
		values[3] = r->via->pipeline ? CStringGetTextDatum(r->via->pipeline) : (Datum) 0;
		values[4] = TextListArray(r->path);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	UnpinSearchPath(nestlevel);
	SPI_finish();
	return (Datum) 0;
}

/* pipeline.upstream(relation): every relation above, with depth and path */
Datum
pipeline_upstream(PG_FUNCTION_ARGS)
{
	return TableWalk(fcinfo, false);
}

/* pipeline.downstream(relation): every relation below, with depth and path */
Datum
pipeline_downstream(PG_FUNCTION_ARGS)
{
	return TableWalk(fcinfo, true);
}

/* ColumnWalk implements column_upstream and column_downstream */
static Datum
ColumnWalk(FunctionCallInfo fcinfo, bool forward)
{
	Oid			relid = PG_GETARG_OID(0);
	char	   *column = text_to_cstring(PG_GETARG_TEXT_PP(1));
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *start;
	ListCell   *lc;
	int			nestlevel;
	AttrNumber	attnum;

	InitMaterializedSRF(fcinfo, MAT_SRF_BLESS);
	start = LineageStartName(relid);
	attnum = get_attnum(relid, column);
	if (attnum == InvalidAttrNumber || attnum < 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation %s does not exist", column, start),
				 errhint("Column names are matched exactly, including case.")));
	SPI_connect();
	nestlevel = PinSearchPath();
	foreach(lc, WalkEdges(LoadColumnEdges(), ColumnKey(start, column), forward))
	{
		Reached    *r = lfirst(lc);
		Datum		values[7];
		bool		nulls[7] = {false, false, false, false, false, r->via->pipeline == NULL, false};
		values[0] = Int32GetDatum(r->depth);
		values[1] = CStringGetTextDatum(forward ? r->via->to_rel : r->via->from_rel);
		values[2] = CStringGetTextDatum(forward ? r->via->to_col : r->via->from_col);
		values[3] = CStringGetTextDatum(r->transformed ? "transformed" : "copied");
		values[4] = CStringGetTextDatum(r->via->how);
		values[5] = r->via->pipeline ? CStringGetTextDatum(r->via->pipeline) : (Datum) 0;
		values[6] = TextListArray(r->path);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	UnpinSearchPath(nestlevel);
	SPI_finish();
	return (Datum) 0;
}

/* pipeline.column_upstream(relation, column): every column above, with how */
Datum
pipeline_column_upstream(PG_FUNCTION_ARGS)
{
	return ColumnWalk(fcinfo, false);
}

/* pipeline.column_downstream(relation, column): every column below, likewise */
Datum
pipeline_column_downstream(PG_FUNCTION_ARGS)
{
	return ColumnWalk(fcinfo, true);
}
