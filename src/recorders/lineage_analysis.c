/*-------------------------------------------------------------------------
 *
 * src/recorders/lineage_analysis.c
 *
 * Lineage derived from view query trees: for a relation a pipeline reads,
 * an edge from every relation a view reads to the view (views of views
 * included), found by walking the view's stored query tree, and the column
 * edges of each of its output columns. Each output column is traced
 * through its expression (operators, functions, CASE, casts, aggregates,
 * window functions, scalar subqueries), through joins (the join's alias
 * variables), subqueries in FROM, CTEs and set operations, down to columns
 * of the relations the view reads; an edge is "copied" when the value
 * arrives unchanged (a bare column reference, or an implicit binary
 * coercion) and "transformed" otherwise. Columns only used to filter, join
 * or group are not edges. The edges go into an EdgeSet, which
 * lineage_store.c writes to the catalog; nothing here reads or writes it.
 *
 * IndirectLineage lists those other columns for OpenLineage's INDIRECT
 * lineage: the base table columns a view (and the views below it) uses in
 * WHERE and HAVING (FILTER), join conditions (JOIN), GROUP BY (GROUP_BY),
 * ORDER BY (SORT) and window definitions (WINDOW).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "catalog/pg_class.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parsetree.h"
#include "rewrite/rewriteHandler.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "lineage_internal.h"

#define MAX_RESOLVE_DEPTH 64

/* A column a value comes from */
typedef struct ColSource
{
	Oid			relid;
	char	   *column;
	bool		transformed;
	const char *how;
} ColSource;

static void ResolveExpr(Node *expr, List *stack, bool transformed, const char *how,
						List **out, int depth);
static void ResolveQueryColumn(Query *query, AttrNumber resno, List *stack,
							   bool transformed, const char *how, List **out, int depth);

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

/*
 * AddTableEdge adds a table edge to the set: by OID, and by name for a
 * relation that does not exist
 */
void
AddTableEdge(EdgeSet *es, const char *kind, Oid from, const char *from_name, Oid to, const char *to_name)
{
	es->t_kind = lappend(es->t_kind, (void *) kind);
	es->t_from = lappend_oid(es->t_from, from);
	es->t_to = lappend_oid(es->t_to, to);
	es->t_from_name = lappend(es->t_from_name, (void *) from_name);
	es->t_to_name = lappend(es->t_to_name, (void *) to_name);
}

/* AddColumnEdge adds a column edge to the set, with how the value gets there */
void
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
void
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

/* ---- INDIRECT lineage --------------------------------------------------- */

/* What IndirectLineage collects */
typedef struct IndirectContext
{
	List	   *out;			/* IndirectInput * */
	List	   *views_done;		/* OIDs of views whose own uses are collected */
} IndirectContext;

static void CollectViewIndirect(IndirectContext *ic, Oid relid, int depth);

/*
 * AddIndirectColumn records that column of relid is used as subtype; a
 * column of a view is followed down to the base columns it comes from.
 */
static void
AddIndirectColumn(IndirectContext *ic, Oid relid, const char *column, const char *subtype,
				  int depth)
{
	char		kind = get_rel_relkind(relid);
	char	   *relation;
	ListCell   *lc;
	IndirectInput *in;

	if (depth > MAX_RESOLVE_DEPTH)
		return;
	if (kind == RELKIND_VIEW || kind == RELKIND_MATVIEW)
	{
		Relation	rel = relation_open(relid, AccessShareLock);
		Query	   *query = copyObject(get_view_query(rel));
		AttrNumber	attnum = get_attnum(relid, column);
		List	   *sources = NIL;

		relation_close(rel, AccessShareLock);
		if (attnum != InvalidAttrNumber)
			ResolveQueryColumn(query, attnum, NIL, false, NULL, &sources, 0);
		foreach(lc, sources)
		{
			ColSource  *src = lfirst(lc);

			AddIndirectColumn(ic, src->relid, src->column, subtype, depth + 1);
		}
		return;
	}
	relation = LineageRelationName(relid);
	foreach(lc, ic->out)
	{
		in = lfirst(lc);
		if (strcmp(in->relation, relation) == 0 && strcmp(in->column, column) == 0 &&
			strcmp(in->subtype, subtype) == 0)
			return;
	}
	in = palloc(sizeof(IndirectInput));
	in->relation = relation;
	in->column = pstrdup(column);
	in->subtype = subtype;
	in->description = strcmp(subtype, "FILTER") == 0 ? "WHERE or HAVING of a view"
		: strcmp(subtype, "JOIN") == 0 ? "join condition of a view"
		: strcmp(subtype, "GROUP_BY") == 0 ? "GROUP BY of a view"
		: strcmp(subtype, "SORT") == 0 ? "ORDER BY of a view" : "window of a view";
	ic->out = lappend(ic->out, in);
}

/* AddIndirectExpr records every column an expression of a query reads */
static void
AddIndirectExpr(IndirectContext *ic, Node *expr, List *stack, const char *subtype, int depth)
{
	List	   *sources = NIL;
	ListCell   *lc;

	if (expr == NULL)
		return;
	ResolveExpr(expr, stack, true, NULL, &sources, 0);
	foreach(lc, sources)
	{
		ColSource  *src = lfirst(lc);

		AddIndirectColumn(ic, src->relid, src->column, subtype, depth + 1);
	}
}

/* CollectJoinTree records the join conditions and WHERE of a FROM tree */
static void
CollectJoinTree(IndirectContext *ic, Node *node, List *stack, int depth)
{
	ListCell   *lc;

	if (node == NULL)
		return;
	if (IsA(node, FromExpr))
	{
		FromExpr   *f = (FromExpr *) node;

		foreach(lc, f->fromlist)
			CollectJoinTree(ic, lfirst(lc), stack, depth);
		AddIndirectExpr(ic, f->quals, stack, "FILTER", depth);
	}
	else if (IsA(node, JoinExpr))
	{
		JoinExpr   *j = (JoinExpr *) node;

		CollectJoinTree(ic, j->larg, stack, depth);
		CollectJoinTree(ic, j->rarg, stack, depth);
		AddIndirectExpr(ic, j->quals, stack, "JOIN", depth);
	}
}

/* AddIndirectClause records the expressions of a GROUP BY or ORDER BY list */
static void
AddIndirectClause(IndirectContext *ic, List *clause, Query *query, List *stack,
				  const char *subtype, int depth)
{
	ListCell   *lc;

	foreach(lc, clause)
	{
		TargetEntry *tle = get_sortgroupclause_tle(lfirst(lc), query->targetList);

		AddIndirectExpr(ic, (Node *) tle->expr, stack, subtype, depth);
	}
}

/*
 * CollectQueryIndirect records the columns a query (and its subqueries in
 * FROM, its CTEs, the views it reads) uses without passing them on.
 */
static void
CollectQueryIndirect(IndirectContext *ic, Query *query, List *stack, int depth)
{
	List	   *inner = lappend(list_copy(stack), query);
	ListCell   *lc;

	if (depth > MAX_RESOLVE_DEPTH)
		return;
	CollectJoinTree(ic, (Node *) query->jointree, inner, depth);
	AddIndirectExpr(ic, query->havingQual, inner, "FILTER", depth);
	AddIndirectClause(ic, query->groupClause, query, inner, "GROUP_BY", depth);
	AddIndirectClause(ic, query->sortClause, query, inner, "SORT", depth);
	foreach(lc, query->windowClause)
	{
		WindowClause *w = lfirst(lc);

		AddIndirectClause(ic, w->partitionClause, query, inner, "WINDOW", depth);
		AddIndirectClause(ic, w->orderClause, query, inner, "WINDOW", depth);
	}
	foreach(lc, query->cteList)
	{
		CommonTableExpr *cte = lfirst(lc);

		if (IsA(cte->ctequery, Query))
			CollectQueryIndirect(ic, (Query *) cte->ctequery, inner, depth + 1);
	}
	foreach(lc, query->rtable)
	{
		RangeTblEntry *rte = lfirst(lc);

		if (rte->rtekind == RTE_SUBQUERY && rte->subquery)
			CollectQueryIndirect(ic, rte->subquery, inner, depth + 1);
		else if (rte->rtekind == RTE_RELATION)
			CollectViewIndirect(ic, rte->relid, depth + 1);
	}
}

/* CollectViewIndirect records the indirect uses of a view, once */
static void
CollectViewIndirect(IndirectContext *ic, Oid relid, int depth)
{
	char		kind = get_rel_relkind(relid);
	Relation	rel;
	Query	   *query;

	if ((kind != RELKIND_VIEW && kind != RELKIND_MATVIEW) ||
		list_member_oid(ic->views_done, relid) || depth > MAX_RESOLVE_DEPTH)
		return;
	ic->views_done = lappend_oid(ic->views_done, relid);
	rel = relation_open(relid, AccessShareLock);
	query = copyObject(get_view_query(rel));
	relation_close(rel, AccessShareLock);
	CollectQueryIndirect(ic, query, NIL, depth);
}

/*
 * IndirectLineage returns the base table columns a relation's rows depend
 * on without being copied into them (IndirectInput *, each column once per
 * subtype): nothing for a table, the filters, join conditions, groupings,
 * orderings and window definitions of a view and of the views below it.
 */
List *
IndirectLineage(Oid relid)
{
	IndirectContext ic = {NIL, NIL};

	CollectViewIndirect(&ic, relid, 0);
	return ic.out;
}
