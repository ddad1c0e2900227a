/*-------------------------------------------------------------------------
 *
 * src/recorders/lineage_indirect.c
 *
 * OpenLineage's INDIRECT lineage of a view: the base table columns it (and
 * the views below it) uses without passing them on, in WHERE and HAVING
 * (FILTER), join conditions (JOIN), GROUP BY (GROUP_BY), ORDER BY (SORT)
 * and window definitions (WINDOW), each followed down through views to the
 * base columns it comes from with lineage_analysis.c's ResolveExpr and
 * ResolveQueryColumn. Nothing here reads or writes the catalog.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "catalog/pg_class.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parsetree.h"
#include "rewrite/rewriteHandler.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "lineage_internal.h"

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

	/* "*", the rows of a count(*), is no column to name */
	if (depth > MAX_RESOLVE_DEPTH || strcmp(column, "*") == 0)
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
