/*-------------------------------------------------------------------------
 *
 * src/lineage.c
 *
 * Table and column lineage, derived, never declared. For each pipeline the
 * catalog holds its source -> target edge and, below its source, an edge
 * from every relation a view reads to the view (views of views included),
 * found by walking the view's stored query tree. Column lineage comes from
 * the same trees: each output column of a view is traced through its
 * expression (operators, functions, CASE, casts, aggregates, window
 * functions, scalar subqueries), through joins (the join's alias
 * variables), subqueries in FROM, CTEs and set operations, down to columns
 * of the relations the view reads; an edge is "copied" when the value
 * arrives unchanged (a bare column reference, or an implicit binary
 * coercion) and "transformed" otherwise. Columns only used to filter, join
 * or group are not edges.
 *
 * Edges are refreshed when a pipeline is created or altered (registry.c
 * calls RegistryChanged, which calls RefreshPipelineLineage), dropped (by
 * the foreign key's cascade), and when DDL creates, replaces, alters or
 * drops a relation the lineage of some pipeline mentions (the event
 * trigger pipeline._lineage_ddl on ddl_command_end).
 *
 * Impact analysis (upstream, downstream, at table and column level) and
 * the pictures (DOT, Mermaid) walk the union of all pipelines' edges
 * breadth-first in memory, so the cost is one read of the edge table and
 * linear in the size of the graph.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "parser/parse_relation.h"
#include "parser/parsetree.h"
#include "rewrite/rewriteHandler.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "pg_pipeline.h"

PIPELINE_FUNCTION(pipeline_current_run_id);
PIPELINE_FUNCTION(pipeline_upstream);
PIPELINE_FUNCTION(pipeline_downstream);
PIPELINE_FUNCTION(pipeline_column_upstream);
PIPELINE_FUNCTION(pipeline_column_downstream);
PIPELINE_FUNCTION(pipeline_lineage_graph);
PIPELINE_FUNCTION(pipeline_lineage_ddl);
PIPELINE_FUNCTION(pipeline_refresh_lineage);
PIPELINE_FUNCTION(pipeline_set_lineage_column);

#define MAX_RESOLVE_DEPTH 64

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

/* ---- analysis of view query trees --------------------------------------- */

/* A column a value comes from */
typedef struct ColSource
{
	Oid			relid;
	char	   *column;
	bool		transformed;
	const char *how;
} ColSource;

/* The edges found for one pipeline */
typedef struct EdgeSet
{
	List	   *views_done;		/* OIDs of views analysed */
	/* table edges: parallel lists */
	List	   *t_kind;
	List	   *t_from;
	List	   *t_to;
	List	   *t_from_name;	/* for missing relations */
	List	   *t_to_name;
	/* column edges */
	List	   *c_kind;
	List	   *c_from;
	List	   *c_from_col;
	List	   *c_to;
	List	   *c_to_col;
	List	   *c_transformed;	/* int list */
	List	   *c_how;
} EdgeSet;

static void ResolveExpr(Node *expr, List *stack, bool transformed, const char *how,
						List **out, int depth);
static void ResolveQueryColumn(Query *query, AttrNumber resno, List *stack,
							   bool transformed, const char *how, List **out, int depth);

/* RelationKindName spells a relkind for users */
static const char *
RelationKindName(Oid relid)
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

/* RelationName returns "schema"."name" of a relation, as lineage stores it */
static char *
RelationName(Oid relid)
{
	char	   *rel = get_rel_name(relid);

	if (rel == NULL)
		return psprintf("(dropped relation %u)", relid);
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)), rel);
}

/* DescribeExpr names the kind of transformation an expression applies */
static const char *
DescribeExpr(Node *expr)
{
	switch (nodeTag(expr))
	{
		case T_Aggref:
			return "aggregate";
		case T_WindowFunc:
			return "window function";
		case T_CaseExpr:
			return "case";
		case T_CoalesceExpr:
			return "coalesce";
		case T_MinMaxExpr:
			return "greatest/least";
		case T_RelabelType:
		case T_CoerceViaIO:
		case T_ArrayCoerceExpr:
		case T_CoerceToDomain:
			return "cast";
		case T_FuncExpr:
			{
				FuncExpr   *f = (FuncExpr *) expr;

				if (f->funcformat == COERCE_EXPLICIT_CAST || f->funcformat == COERCE_IMPLICIT_CAST)
					return "cast";
				return psprintf("function %s", get_func_name(f->funcid));
			}
		case T_SubLink:
			return "subquery";
		case T_Const:
			return "constant";
		default:
			return "expression";
	}
}

/* RelationNatts returns how many attributes a relation has */
static int
RelationNatts(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	int			natts;

	if (!HeapTupleIsValid(tup))
		return 0;
	natts = ((Form_pg_class) GETSTRUCT(tup))->relnatts;
	ReleaseSysCache(tup);
	return natts;
}

/* EmitSource records that a value comes from relid.attnum */
static void
EmitSource(Oid relid, AttrNumber attnum, bool transformed, const char *how, List **out)
{
	ColSource  *s;
	char	   *att = get_attname(relid, attnum, true);

	if (att == NULL)
		return;
	s = palloc(sizeof(ColSource));
	s->relid = relid;
	s->column = att;
	s->transformed = transformed;
	s->how = transformed ? (how ? how : "expression") : "copy";
	*out = lappend(*out, s);
}

/*
 * ResolveVar follows a Var to the columns it reads: a relation column, or a
 * column of a subquery, join, or CTE, followed further.
 */
static void
ResolveVar(Var *var, List *stack, bool transformed, const char *how, List **out, int depth)
{
	int			idx = list_length(stack) - 1 - (int) var->varlevelsup;
	Query	   *q;
	RangeTblEntry *rte;
	List	   *at;

	if (idx < 0 || IS_SPECIAL_VARNO(var->varno) || depth > MAX_RESOLVE_DEPTH)
		return;
	q = list_nth(stack, idx);
	if (var->varno < 1 || var->varno > list_length(q->rtable))
		return;
	rte = rt_fetch(var->varno, q->rtable);
	at = list_truncate(list_copy(stack), idx + 1);

	switch (rte->rtekind)
	{
		case RTE_RELATION:
			if (var->varattno > 0)
				EmitSource(rte->relid, var->varattno, transformed, how, out);
			else if (var->varattno == 0)
			{
				/* a whole-row reference reads every column */
				int			natts = RelationNatts(rte->relid);

				for (AttrNumber a = 1; a <= natts; a++)
					EmitSource(rte->relid, a, true, "whole row", out);
			}
			break;
		case RTE_SUBQUERY:
			if (var->varattno > 0)
				ResolveQueryColumn(rte->subquery, var->varattno, at, transformed, how, out, depth + 1);
			break;
		case RTE_JOIN:
			if (var->varattno > 0 && var->varattno <= list_length(rte->joinaliasvars))
			{
				Node	   *alias = list_nth(rte->joinaliasvars, var->varattno - 1);

				if (alias)
					ResolveExpr(alias, at, transformed, how, out, depth + 1);
			}
			break;
		case RTE_CTE:
			{
				int			owner_idx = idx - (int) rte->ctelevelsup;
				Query	   *owner;
				ListCell   *lc;

				if (owner_idx < 0 || var->varattno <= 0)
					break;
				owner = list_nth(stack, owner_idx);
				foreach(lc, owner->cteList)
				{
					CommonTableExpr *cte = lfirst(lc);

					if (strcmp(cte->ctename, rte->ctename) == 0 && IsA(cte->ctequery, Query))
					{
						ResolveQueryColumn((Query *) cte->ctequery, var->varattno,
										   list_truncate(list_copy(stack), owner_idx + 1),
										   transformed, how, out, depth + 1);
						break;
					}
				}
			}
			break;
		default:
			/* functions, VALUES, tuplestores: no source column */
			break;
	}
}

/* The walker that finds every column an expression reads */
typedef struct ExprWalkContext
{
	List	   *stack;
	const char *how;
	List	  **out;
	int			depth;
} ExprWalkContext;

static bool
ExprSourcesWalker(Node *node, ExprWalkContext *ctx)
{
	if (node == NULL)
		return false;
	if (IsA(node, Var))
	{
		ResolveVar((Var *) node, ctx->stack, true, ctx->how, ctx->out, ctx->depth + 1);
		return false;
	}
	if (IsA(node, Query))
	{
		/* a sublink's query: its output is what flows into the expression */
		Query	   *sub = (Query *) node;
		ListCell   *lc;

		foreach(lc, sub->targetList)
		{
			TargetEntry *tle = lfirst(lc);

			if (!tle->resjunk)
				ResolveQueryColumn(sub, tle->resno, ctx->stack, true, "subquery", ctx->out, ctx->depth + 1);
		}
		return false;
	}
	return expression_tree_walker(node, ExprSourcesWalker, (void *) ctx);
}

/*
 * ResolveExpr finds the columns an expression's value comes from. A bare
 * Var (or an implicit binary coercion of one) passes a value on as it is;
 * anything else transforms it.
 */
static void
ResolveExpr(Node *expr, List *stack, bool transformed, const char *how, List **out, int depth)
{
	ExprWalkContext ctx;

	if (expr == NULL || depth > MAX_RESOLVE_DEPTH)
		return;
	while (IsA(expr, RelabelType) && ((RelabelType *) expr)->relabelformat == COERCE_IMPLICIT_CAST)
		expr = (Node *) ((RelabelType *) expr)->arg;
	if (IsA(expr, Var))
	{
		ResolveVar((Var *) expr, stack, transformed, how, out, depth + 1);
		return;
	}
	ctx.stack = stack;
	ctx.how = how ? how : DescribeExpr(expr);
	ctx.out = out;
	ctx.depth = depth;
	(void) ExprSourcesWalker(expr, &ctx);
}

/* SetOpLeaves collects the leaf range table indexes of a set operation */
static void
SetOpLeaves(Node *node, List **leaves)
{
	if (IsA(node, RangeTblRef))
		*leaves = lappend_int(*leaves, ((RangeTblRef *) node)->rtindex);
	else if (IsA(node, SetOperationStmt))
	{
		SetOpLeaves(((SetOperationStmt *) node)->larg, leaves);
		SetOpLeaves(((SetOperationStmt *) node)->rarg, leaves);
	}
}

/*
 * ResolveQueryColumn finds where output column resno of a query comes from;
 * for a set operation, from every branch.
 */
static void
ResolveQueryColumn(Query *query, AttrNumber resno, List *stack, bool transformed,
				   const char *how, List **out, int depth)
{
	List	   *inner = lappend(list_copy(stack), query);
	TargetEntry *tle;

	if (depth > MAX_RESOLVE_DEPTH)
		return;
	if (query->setOperations)
	{
		List	   *leaves = NIL;
		ListCell   *lc;

		SetOpLeaves(query->setOperations, &leaves);
		foreach(lc, leaves)
		{
			RangeTblEntry *rte = rt_fetch(lfirst_int(lc), query->rtable);

			if (rte->rtekind == RTE_SUBQUERY)
				ResolveQueryColumn(rte->subquery, resno, inner, transformed, how, out, depth + 1);
		}
		return;
	}
	tle = get_tle_by_resno(query->targetList, resno);
	if (tle)
		ResolveExpr((Node *) tle->expr, inner, transformed, how, out, depth + 1);
}

/* The walker that lists every relation a query tree reads */
static bool
RelationsWalker(Node *node, List **relids)
{
	if (node == NULL)
		return false;
	if (IsA(node, RangeTblEntry))
	{
		RangeTblEntry *rte = (RangeTblEntry *) node;

		if (rte->rtekind == RTE_RELATION)
			*relids = list_append_unique_oid(*relids, rte->relid);
		return false;
	}
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, RelationsWalker, (void *) relids,
								 QTW_EXAMINE_RTES_BEFORE);
	return expression_tree_walker(node, RelationsWalker, (void *) relids);
}

static void
AddTableEdge(EdgeSet *es, const char *kind, Oid from, const char *from_name, Oid to, const char *to_name)
{
	es->t_kind = lappend(es->t_kind, (void *) kind);
	es->t_from = lappend_oid(es->t_from, from);
	es->t_to = lappend_oid(es->t_to, to);
	es->t_from_name = lappend(es->t_from_name, (void *) from_name);
	es->t_to_name = lappend(es->t_to_name, (void *) to_name);
}

static void
AddColumnEdge(EdgeSet *es, const char *kind, Oid from, const char *from_col, Oid to,
			  const char *to_col, bool transformed, const char *how)
{
	es->c_kind = lappend(es->c_kind, (void *) kind);
	es->c_from = lappend_oid(es->c_from, from);
	es->c_from_col = lappend(es->c_from_col, (void *) from_col);
	es->c_to = lappend_oid(es->c_to, to);
	es->c_to_col = lappend(es->c_to_col, (void *) to_col);
	es->c_transformed = lappend_int(es->c_transformed, transformed);
	es->c_how = lappend(es->c_how, (void *) how);
}

/*
 * AnalyzeRelation adds the edges below a relation: for a view (or
 * materialized view), an edge from every relation its query reads and the
 * column edges of each of its columns, then the same for each relation it
 * reads. Tables end the walk.
 */
static void
AnalyzeRelation(Oid relid, EdgeSet *es, int depth)
{
	char		kind = get_rel_relkind(relid);
	Relation	rel;
	Query	   *query;
	List	   *relids = NIL;
	ListCell   *lc;
	TupleDesc	desc;

	if ((kind != RELKIND_VIEW && kind != RELKIND_MATVIEW) ||
		list_member_oid(es->views_done, relid) || depth > MAX_RESOLVE_DEPTH)
		return;
	es->views_done = lappend_oid(es->views_done, relid);
	rel = relation_open(relid, AccessShareLock);
	query = copyObject(get_view_query(rel));
	desc = RelationGetDescr(rel);

	(void) RelationsWalker((Node *) query, &relids);
	/* PostgreSQL 15 keeps the view itself in its rule's range table (OLD/NEW) */
	relids = list_delete_oid(relids, relid);
	foreach(lc, relids)
		AddTableEdge(es, "view", lfirst_oid(lc), NULL, relid, NULL);

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		List	   *sources = NIL;
		List	   *seen = NIL;
		ListCell   *sc;

		if (att->attisdropped)
			continue;
		ResolveQueryColumn(query, att->attnum, NIL, false, NULL, &sources, 0);
		/* one edge per source column; any transforming path makes it transformed */
		foreach(sc, sources)
		{
			ColSource  *s = lfirst(sc);
			ListCell   *dc;
			bool		dup = false;

			foreach(dc, seen)
			{
				ColSource  *d = lfirst(dc);

				if (d->relid == s->relid && strcmp(d->column, s->column) == 0)
				{
					if (s->transformed && !d->transformed)
					{
						d->transformed = true;
						d->how = s->how;
					}
					dup = true;
				}
			}
			if (!dup)
				seen = lappend(seen, s);
		}
		foreach(sc, seen)
		{
			ColSource  *s = lfirst(sc);

			AddColumnEdge(es, "view", s->relid, s->column, relid,
						  pstrdup(NameStr(att->attname)), s->transformed, s->how);
		}
	}
	relation_close(rel, AccessShareLock);

	foreach(lc, relids)
		AnalyzeRelation(lfirst_oid(lc), es, depth + 1);
}

/* LookupRelation finds a relation by schema and name, InvalidOid if missing */
static Oid
LookupRelation(const char *schema, const char *relname)
{
	Oid			nsp = get_namespace_oid(schema, true);

	return OidIsValid(nsp) ? get_relname_relid(relname, nsp) : InvalidOid;
}

/* OidListArray, TextListArray: a list as an array Datum */
static Datum
OidListArray(List *l)
{
	Datum	   *d = palloc(sizeof(Datum) * (list_length(l) + 1));
	int			n = 0;
	ListCell   *lc;

	foreach(lc, l)
		d[n++] = ObjectIdGetDatum(lfirst_oid(lc));
	return PointerGetDatum(construct_array(d, n, OIDOID, sizeof(Oid), true, TYPALIGN_INT));
}

static Datum
TextListArray(List *l)
{
	Datum	   *d = palloc(sizeof(Datum) * (list_length(l) + 1));
	int			n = 0;
	ListCell   *lc;

	foreach(lc, l)
		d[n++] = CStringGetTextDatum((char *) lfirst(lc));
	return PointerGetDatum(construct_array(d, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/* NameOrRelation returns the stored name for a relation, its own if it exists */
static List *
EdgeNames(List *relids, List *names)
{
	List	   *out = NIL;
	ListCell   *a;
	ListCell   *b;

	forboth(a, relids, b, names)
	{
		Oid			relid = lfirst_oid(a);

		out = lappend(out, OidIsValid(relid) ? RelationName(relid) : (char *) lfirst(b));
	}
	return out;
}

static List *
EdgeKinds(List *relids)
{
	List	   *out = NIL;
	ListCell   *lc;

	foreach(lc, relids)
		out = lappend(out, (void *) RelationKindName(lfirst_oid(lc)));
	return out;
}

/*
 * RefreshPipelineLineage recomputes every table and column edge of one
 * pipeline from the current catalogs. A source or target that does not
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
	if (OidIsValid(source) && OidIsValid(target))
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
	if (es.c_kind == NIL)
		return;

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
}

/* ---- the graph in memory ------------------------------------------------ */

typedef struct GraphEdge
{
	char	   *from;			/* relation, or relation.column */
	char	   *to;
	char	   *from_rel;
	char	   *to_rel;
	char	   *from_kind;
	char	   *to_kind;
	char	   *pipeline;		/* NULL for a view edge */
	char	   *status;			/* last run status of the pipeline */
	char	   *from_col;
	char	   *to_col;
	bool		transformed;
	char	   *how;
} GraphEdge;

/*
 * LoadTableEdges reads every distinct table edge of the pipelines the caller
 * may see (as pipeline.lineage shows them), in a stable order.
 */
static List *
LoadTableEdges(void)
{
	List	   *edges = NIL;
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(GetUserId())};

	ExecCatalog("SELECT DISTINCT e.from_relation, e.to_relation, e.from_kind, e.to_kind,"
						 " CASE WHEN e.edge_kind = 'pipeline' THEN p.name END,"
						 " CASE WHEN e.edge_kind = 'pipeline' THEN coalesce((SELECT h.status"
						 "   FROM pipeline.run_history h WHERE h.pipeline_id = p.pipeline_id"
						 "   ORDER BY h.run_id DESC LIMIT 1), 'never run') END"
						 " FROM pipeline.lineage_edge e"
						 " JOIN pipeline.pipeline p ON p.pipeline_id = e.pipeline_id"
						 " WHERE pg_has_role($1, p.owner::oid, 'USAGE')"
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
						 " WHERE pg_has_role($1, p.owner::oid, 'USAGE')"
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

/* A node reached by a walk */
typedef struct Reached
{
	char	   *key;
	int			depth;
	List	   *path;			/* char * keys from the start */
	bool		transformed;	/* along the path */
	GraphEdge  *via;
} Reached;

/* FindReached returns the node of that key reached so far, or NULL */
static Reached *
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
 * Walk goes breadth-first from start along the edges (forwards for
 * downstream, backwards for upstream), expanding each node once, at its
 * least depth, and returns one Reached per edge of the part of the graph it
 * covers: a relation reached by several edges (a diamond, a join) appears
 * once per edge, each with the depth and path through that edge, so that
 * every pipeline above or below is listed. The start is not included.
 */
static List *
Walk(List *edges, const char *start, bool forward)
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

/* PathArray turns a path into a text[] Datum */
static Datum
PathArray(List *path)
{
	return TextListArray(path);
}

/* StartName spells a regclass argument as lineage stores relations */
static char *
StartName(Oid relid)
{
	if (get_rel_name(relid) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	return RelationName(relid);
}

/* MaterializeResult prepares a tuplestore result for a set-returning function */
static Tuplestorestate *
MaterializeResult(FunctionCallInfo fcinfo, TupleDesc *desc)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext old;
	TupleDesc	td;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) ||
		!(rsinfo->allowedModes & SFRM_Materialize))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("set-valued function called in a context that cannot accept a set")));
	old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	if (get_call_result_type(fcinfo, NULL, &td) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	td = BlessTupleDesc(CreateTupleDescCopy(td));
	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setDesc = td;
	rsinfo->setResult = tuplestore_begin_heap(true, false, work_mem);
	MemoryContextSwitchTo(old);
	*desc = td;
	return rsinfo->setResult;
}

/* TableWalk implements upstream and downstream */
static Datum
TableWalk(FunctionCallInfo fcinfo, bool forward)
{
	Oid			relid = PG_GETARG_OID(0);
	TupleDesc	desc;
	Tuplestorestate *store = MaterializeResult(fcinfo, &desc);
	char	   *start;
	ListCell   *lc;
	int			nestlevel;

	start = StartName(relid);
	SPI_connect();
	nestlevel = PinSearchPath();
	foreach(lc, Walk(LoadTableEdges(), start, forward))
	{
		Reached    *r = lfirst(lc);
		Datum		values[5];
		bool		nulls[5] = {false, false, false, r->via->pipeline == NULL, false};

		values[0] = Int32GetDatum(r->depth);
		values[1] = CStringGetTextDatum(r->key);
		values[2] = CStringGetTextDatum(forward ? r->via->to_kind : r->via->from_kind);
		values[3] = r->via->pipeline ? CStringGetTextDatum(r->via->pipeline) : (Datum) 0;
		values[4] = PathArray(r->path);
		tuplestore_putvalues(store, desc, values, nulls);
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
	TupleDesc	desc;
	Tuplestorestate *store = MaterializeResult(fcinfo, &desc);
	char	   *start;
	ListCell   *lc;
	int			nestlevel;
	AttrNumber	attnum;

	start = StartName(relid);
	attnum = get_attnum(relid, column);
	if (attnum == InvalidAttrNumber || attnum < 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation %s does not exist", column, start),
				 errhint("Column names are matched exactly, including case.")));
	SPI_connect();
	nestlevel = PinSearchPath();
	foreach(lc, Walk(LoadColumnEdges(), ColumnKey(start, column), forward))
	{
		Reached    *r = lfirst(lc);
		Datum		values[7];
		bool		nulls[7] = {false, false, false, false, false, r->via->pipeline == NULL, false};
		ListCell   *pc;
		List	   *path = NIL;

		foreach(pc, r->path)
			path = lappend(path, lfirst(pc));
		values[0] = Int32GetDatum(r->depth);
		values[1] = CStringGetTextDatum(forward ? r->via->to_rel : r->via->from_rel);
		values[2] = CStringGetTextDatum(forward ? r->via->to_col : r->via->from_col);
		values[3] = CStringGetTextDatum(r->transformed ? "transformed" : "copied");
		values[4] = CStringGetTextDatum(r->via->how);
		values[5] = r->via->pipeline ? CStringGetTextDatum(r->via->pipeline) : (Datum) 0;
		values[6] = PathArray(path);
		tuplestore_putvalues(store, desc, values, nulls);
	}
	UnpinSearchPath(nestlevel);
	SPI_finish();
	return (Datum) 0;
}

Datum
pipeline_column_upstream(PG_FUNCTION_ARGS)
{
	return ColumnWalk(fcinfo, false);
}

Datum
pipeline_column_downstream(PG_FUNCTION_ARGS)
{
	return ColumnWalk(fcinfo, true);
}

/* ---- pictures ------------------------------------------------------------ */

/* DotString appends a DOT double-quoted string */
static void
DotString(StringInfo buf, const char *s)
{
	appendStringInfoChar(buf, '"');
	for (; *s; s++)
	{
		if (*s == '"' || *s == '\\')
			appendStringInfoChar(buf, '\\');
		appendStringInfoChar(buf, *s);
	}
	appendStringInfoChar(buf, '"');
}

/* MermaidString appends a Mermaid quoted label, quotes as entities */
static void
MermaidString(StringInfo buf, const char *s)
{
	appendStringInfoChar(buf, '"');
	for (; *s; s++)
	{
		if (*s == '"')
			appendStringInfoString(buf, "#quot;");
		else
			appendStringInfoChar(buf, *s);
	}
	appendStringInfoChar(buf, '"');
}

static const char *
StatusColor(const char *status)
{
	if (status == NULL)
		return "gray50";
	if (strcmp(status, "succeeded") == 0)
		return "darkgreen";
	if (strcmp(status, "failed") == 0)
		return "red";
	if (strcmp(status, "running") == 0)
		return "blue";
	if (strcmp(status, "skipped") == 0)
		return "orange";
	return "gray50";
}

static const char *
MermaidColor(const char *status)
{
	if (strcmp(status, "succeeded") == 0)
		return "#2e7d32";
	if (strcmp(status, "failed") == 0)
		return "#c62828";
	if (strcmp(status, "running") == 0)
		return "#1565c0";
	if (strcmp(status, "skipped") == 0)
		return "#ef6c00";
	return "#9e9e9e";
}

/* A node of the picture */
typedef struct PicNode
{
	char	   *name;
	char	   *kind;
} PicNode;

static int
PicNodeCmp(const ListCell *a, const ListCell *b)
{
	return strcmp(((PicNode *) lfirst(a))->name, ((PicNode *) lfirst(b))->name);
}

static void
AddPicNode(List **nodes, const char *name, const char *kind)
{
	ListCell   *lc;
	PicNode    *n;

	foreach(lc, *nodes)
		if (strcmp(((PicNode *) lfirst(lc))->name, name) == 0)
			return;
	n = palloc(sizeof(PicNode));
	n->name = pstrdup(name);
	n->kind = pstrdup(kind);
	*nodes = lappend(*nodes, n);
}

static int
PicNodeIndex(List *nodes, const char *name)
{
	ListCell   *lc;

	foreach(lc, nodes)
		if (strcmp(((PicNode *) lfirst(lc))->name, name) == 0)
			return foreach_current_index(lc) + 1;
	return 0;
}

static bool
IsTableKind(const char *kind)
{
	return strcmp(kind, "view") != 0 && strcmp(kind, "materialized view") != 0;
}

/*
 * pipeline.lineage_graph(format, around): the whole lineage graph, or the
 * part above and below one relation, as Graphviz DOT or Mermaid text; each
 * pipeline edge carries the pipeline's name and last run status.
 */
Datum
pipeline_lineage_graph(PG_FUNCTION_ARGS)
{
	char	   *format;
	List	   *edges;
	List	   *keep = NIL;
	List	   *nodes = NIL;
	ListCell   *lc;
	StringInfoData buf;
	bool		dot;
	int			nestlevel;
	int			link = 0;
	MemoryContext caller = CurrentMemoryContext;
	text	   *result;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("format must not be NULL"),
				 errhint("Pass 'dot' or 'mermaid'.")));
	format = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (pg_strcasecmp(format, "dot") == 0)
		dot = true;
	else if (pg_strcasecmp(format, "mermaid") == 0)
		dot = false;
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown graph format \"%s\"", format),
				 errhint("The formats are dot (Graphviz) and mermaid.")));

	SPI_connect();
	nestlevel = PinSearchPath();
	edges = LoadTableEdges();
	if (PG_ARGISNULL(1))
		keep = edges;
	else
	{
		char	   *around = StartName(PG_GETARG_OID(1));
		List	   *up = Walk(edges, around, false);
		List	   *down = Walk(edges, around, true);

		/* an edge into the upstream closure, or out of the downstream one */
		foreach(lc, edges)
		{
			GraphEdge  *e = lfirst(lc);

			if (strcmp(e->to, around) == 0 || FindReached(up, e->to) ||
				strcmp(e->from, around) == 0 || FindReached(down, e->from))
				keep = lappend(keep, e);
		}
	}
	foreach(lc, keep)
	{
		GraphEdge  *e = lfirst(lc);

		AddPicNode(&nodes, e->from, e->from_kind);
		AddPicNode(&nodes, e->to, e->to_kind);
	}
	list_sort(nodes, PicNodeCmp);

	initStringInfo(&buf);
	if (dot)
	{
		appendStringInfoString(&buf, "digraph lineage {\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n  edge [fontname=\"Helvetica\", fontsize=10];\n");
		foreach(lc, nodes)
		{
			PicNode    *n = lfirst(lc);

			appendStringInfoString(&buf, "  ");
			DotString(&buf, n->name);
			if (strcmp(n->kind, "missing") == 0)
				appendStringInfoString(&buf, " [shape=box, style=dotted];\n");
			else if (IsTableKind(n->kind))
				appendStringInfoString(&buf, " [shape=cylinder];\n");
			else
				appendStringInfoString(&buf, " [shape=box, style=rounded];\n");
		}
		foreach(lc, keep)
		{
			GraphEdge  *e = lfirst(lc);

			appendStringInfoString(&buf, "  ");
			DotString(&buf, e->from);
			appendStringInfoString(&buf, " -> ");
			DotString(&buf, e->to);
			if (e->pipeline)
			{
				appendStringInfoString(&buf, " [label=");
				DotString(&buf, psprintf("%s: %s", e->pipeline, e->status));
				appendStringInfo(&buf, ", color=%s, penwidth=2];\n", StatusColor(e->status));
			}
			else
				appendStringInfoString(&buf, " [style=dashed, color=gray50];\n");
		}
		appendStringInfoString(&buf, "}\n");
	}
	else
	{
		StringInfoData styles;

		initStringInfo(&styles);
		appendStringInfoString(&buf, "flowchart LR\n");
		foreach(lc, nodes)
		{
			PicNode    *n = lfirst(lc);
			int			i = foreach_current_index(lc) + 1;

			appendStringInfo(&buf, "  n%d", i);
			if (strcmp(n->kind, "missing") == 0)
			{
				appendStringInfoString(&buf, "[");
				MermaidString(&buf, psprintf("%s (missing)", n->name));
				appendStringInfoString(&buf, "]\n");
			}
			else if (IsTableKind(n->kind))
			{
				appendStringInfoString(&buf, "[(");
				MermaidString(&buf, n->name);
				appendStringInfoString(&buf, ")]\n");
			}
			else
			{
				appendStringInfoString(&buf, "(");
				MermaidString(&buf, n->name);
				appendStringInfoString(&buf, ")\n");
			}
		}
		foreach(lc, keep)
		{
			GraphEdge  *e = lfirst(lc);

			appendStringInfo(&buf, "  n%d ", PicNodeIndex(nodes, e->from));
			if (e->pipeline)
			{
				appendStringInfoString(&buf, "==>|");
				MermaidString(&buf, psprintf("%s: %s", e->pipeline, e->status));
				appendStringInfo(&buf, "| n%d\n", PicNodeIndex(nodes, e->to));
				appendStringInfo(&styles, "  linkStyle %d stroke:%s,stroke-width:2px\n",
								 link, MermaidColor(e->status));
			}
			else
				appendStringInfo(&buf, "-.-> n%d\n", PicNodeIndex(nodes, e->to));
			link++;
		}
		appendStringInfoString(&buf, styles.data);
	}
	UnpinSearchPath(nestlevel);
	/* the text is built in SPI's memory, which SPI_finish releases */
	{
		MemoryContext spi = MemoryContextSwitchTo(caller);

		result = cstring_to_text(buf.data);
		MemoryContextSwitchTo(spi);
	}
	SPI_finish();
	PG_RETURN_TEXT_P(result);
}

/* ---- keeping lineage current --------------------------------------------- */

/* RefreshPipelinesWhere refreshes the pipelines a query returns the names of */
static int
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

/*
 * pipeline._lineage_ddl() runs at the end of DDL that creates, replaces,
 * alters or drops a relation. It refreshes the pipelines whose lineage
 * mentions a relation the command touched, a relation that no longer
 * exists, a relation that was renamed, or a missing relation that exists
 * again.
 */
Datum
pipeline_lineage_ddl(PG_FUNCTION_ARGS)
{
	List	   *relids = NIL;
	Oid			types[1] = {OIDARRAYOID};
	Datum		values[1];

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		elog(ERROR, "pipeline._lineage_ddl must be called as an event trigger");
	SPI_connect();
	if (SPI_execute("SELECT objid FROM pg_catalog.pg_event_trigger_ddl_commands()"
					" WHERE classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass",
					true, 0) == SPI_OK_SELECT)
	{
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			bool		isnull;
			Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);

			if (!isnull)
				relids = lappend_oid(relids, DatumGetObjectId(d));
		}
	}
	values[0] = OidListArray(relids);
	RefreshPipelinesWhere("SELECT p.name FROM pipeline.pipeline p WHERE EXISTS ("
						  " SELECT 1 FROM pipeline.lineage_edge e"
						  " LEFT JOIN pg_class f ON f.oid = e.from_relid"
						  " LEFT JOIN pg_class t ON t.oid = e.to_relid"
						  " WHERE e.pipeline_id = p.pipeline_id AND ("
						  "  e.from_relid = ANY ($1) OR e.to_relid = ANY ($1)"
						  "  OR (e.from_relid <> 0 AND f.oid IS NULL) OR (e.to_relid <> 0 AND t.oid IS NULL)"
						  "  OR (e.from_relid = 0 AND to_regclass(e.from_relation) IS NOT NULL)"
						  "  OR (e.to_relid = 0 AND to_regclass(e.to_relation) IS NOT NULL)"
						  "  OR (f.oid IS NOT NULL AND f.relname <> (parse_ident(e.from_relation, false))[2])"
						  "  OR (t.oid IS NOT NULL AND t.relname <> (parse_ident(e.to_relation, false))[2])))"
						  " ORDER BY p.pipeline_id",
						  1, types, values);
	SPI_finish();
	PG_RETURN_NULL();
}

/* pipeline.refresh_lineage(name): recompute one pipeline's lineage, or all */
Datum
pipeline_refresh_lineage(PG_FUNCTION_ARGS)
{
	int			n;

	SPI_connect();
	if (PG_ARGISNULL(0))
	{
		Oid			types[1] = {OIDOID};
		Datum		values[1] = {ObjectIdGetDatum(GetUserId())};

		/* every pipeline the caller may manage (all of them for a superuser) */
		n = RefreshPipelinesWhere("SELECT name FROM pipeline.pipeline"
								  " WHERE pg_has_role($1, owner, 'USAGE') ORDER BY pipeline_id",
								  1, types, values);
	}
	else
	{
		Oid			types[1] = {TEXTOID};
		Datum		values[1];
		int			nestlevel = PinSearchPath();

		/* 42704 for an unknown pipeline, 42501 for one of another role */
		CheckPipelineOwner(LoadPipelineByName(text_to_cstring(PG_GETARG_TEXT_PP(0)), false),
						   "refresh the lineage of");
		UnpinSearchPath(nestlevel);
		values[0] = PG_GETARG_DATUM(0);
		n = RefreshPipelinesWhere("SELECT name FROM pipeline.pipeline WHERE name = $1",
								  1, types, values);
	}
	SPI_finish();
	PG_RETURN_INT32(n);
}

/*
 * pipeline.set_lineage_column(name, column): from the next run on, every row
 * a run of the pipeline inserts or updates carries the run's id in that
 * target column (added as bigint when missing). NULL or '' turns it off.
 */
Datum
pipeline_set_lineage_column(PG_FUNCTION_ARGS)
{
	PipelineDef *def;
	char	   *column = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	int			nestlevel;
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2];
	char		nulls[2] = {' ', ' '};

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("pipeline name must not be NULL")));
	if (column && column[0] == '\0')
		column = NULL;
	SPI_connect();
	nestlevel = PinSearchPath();
	def = LoadPipelineByName(text_to_cstring(PG_GETARG_TEXT_PP(0)), false);
	CheckPipelineOwner(def, "alter");
	if (column)
	{
		Oid			source = ResolveRelationName(def->source_schema, def->source_table, "source");
		Oid			target = ResolveRelationName(def->target_schema, def->target_table, "target");
		AttrNumber	att;

		if (get_attnum(source, column) != InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_COLUMN),
					 errmsg("lineage column \"%s\" is also a column of source %s", column,
							quote_qualified_identifier(def->source_schema, def->source_table)),
					 errdetail("The run would have to write both the source's value and its own id to it."),
					 errhint("Choose another name, for example \"_run_id_%s\".", def->name)));
		att = get_attnum(target, column);
		if (att != InvalidAttrNumber)
		{
			Oid			typid = get_atttype(target, att);

			if (att < 0 || (typid != INT8OID && getBaseType(typid) != INT8OID))
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("lineage column \"%s\" of target %s has type %s", column,
								quote_qualified_identifier(def->target_schema, def->target_table),
								format_type_be(typid)),
						 errdetail("A lineage column holds run ids."),
						 errhint("Use a bigint column, or a name the target does not have yet.")));
		}
		else
		{
			char	   *sql = psprintf("ALTER TABLE %s ADD COLUMN %s bigint",
									   quote_qualified_identifier(def->target_schema, def->target_table),
									   quote_identifier(column));

			/* as the caller, who must own the target */
			if (SPI_execute(sql, false, 0) != SPI_OK_UTILITY)
				elog(ERROR, "could not add lineage column \"%s\"", column);
		}
	}
	values[0] = Int64GetDatum(def->id);
	values[1] = column ? CStringGetTextDatum(column) : (Datum) 0;
	nulls[1] = column ? ' ' : 'n';
	ExecCatalog("UPDATE pipeline.pipeline SET lineage_column = $2, updated_at = now()"
						 " WHERE pipeline_id = $1", 2, types, values, nulls, false);
	def->lineage_column = column;
	RegistryChanged("alter", def, NULL);
	UnpinSearchPath(nestlevel);
	SPI_finish();
	PG_RETURN_VOID();
}
