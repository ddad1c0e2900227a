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
 * coercion) and "transformed" otherwise, named by the strongest kind of
 * transformation on the way (an aggregate under a cast is "aggregate"). A
 * column that only chooses the value (a CASE test, NULLIF's second
 * argument, an aggregate's FILTER) is a "condition" edge; an aggregate that
 * reads no column (count(*)) has an edge from "*", the rows of each table
 * it counts. Columns only used to filter, join or group are not edges. The
 * edges go into an EdgeSet, which lineage_store.c writes to the catalog;
 * nothing here reads or writes it.
 *
 * lineage_indirect.c lists those other columns for OpenLineage's INDIRECT
 * lineage, with ResolveExpr and ResolveQueryColumn from here.
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


static void SetOpLeaves(Node *node, List **leaves);

/*
 * DescribeExpr names the kind of transformation an expression node applies,
 * or NULL for a node that passes values on as they are (a list, an implicit
 * binary coercion)
 */
static const char *
DescribeExpr(Node *expr)
{
	switch (nodeTag(expr))
	{
		case T_List:
		case T_TargetEntry:
			return NULL;
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
		case T_NullIfExpr:
			return "nullif";
		case T_RelabelType:
			if (((RelabelType *) expr)->relabelformat == COERCE_IMPLICIT_CAST)
				return NULL;
			return "cast";
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

/*
 * HowRank orders the kinds of transformation, so that the strongest one on
 * a value's path names it: a copy, a cast, any other transformation, a
 * scalar subquery, a window function, an aggregate. "condition" (the value
 * only decides which branch of a CASE is taken) absorbs everything.
 */
static int
HowRank(const char *how)
{
	if (how == NULL || strcmp(how, "copy") == 0)
		return 0;
	if (strcmp(how, "cast") == 0)
		return 1;
	if (strcmp(how, "subquery") == 0)
		return 3;
	if (strcmp(how, "window function") == 0)
		return 4;
	if (strcmp(how, "aggregate") == 0)
		return 5;
	if (strcmp(how, "condition") == 0)
		return 9;
	return 2;
}

/* StrongerHow returns the stronger of two kinds; the outer one on a tie */
static const char *
StrongerHow(const char *outer, const char *inner)
{
	return HowRank(inner) > HowRank(outer) ? inner : outer;
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

/*
 * RowSources records that a value is computed from the rows of a query (an
 * aggregate or window function that reads no column: count(*), count(1),
 * row_number()): an edge from column "*" of each relation its FROM reads,
 * followed through joins, subqueries in FROM, CTEs, set operations and
 * views down to tables (and materialized views' own tables). Functions and
 * VALUES in FROM have no rows to name.
 */
static void
RowSources(Node *node, Query *query, List *stack, const char *how, List **out, int depth)
{
	ListCell   *lc;

	if (node == NULL || depth > MAX_RESOLVE_DEPTH)
		return;
	if (IsA(node, FromExpr))
	{
		foreach(lc, ((FromExpr *) node)->fromlist)
			RowSources(lfirst(lc), query, stack, how, out, depth + 1);
	}
	else if (IsA(node, JoinExpr))
	{
		RowSources(((JoinExpr *) node)->larg, query, stack, how, out, depth + 1);
		RowSources(((JoinExpr *) node)->rarg, query, stack, how, out, depth + 1);
	}
	else if (IsA(node, RangeTblRef))
	{
		RangeTblEntry *rte = rt_fetch(((RangeTblRef *) node)->rtindex, query->rtable);
		Query	   *sub = NULL;
		List	   *at = lappend(list_copy(stack), query);

		if (rte->rtekind == RTE_RELATION)
		{
			char		kind = get_rel_relkind(rte->relid);

			if (kind == RELKIND_VIEW || kind == RELKIND_MATVIEW)
			{
				Relation	rel = relation_open(rte->relid, AccessShareLock);

				sub = copyObject(get_view_query(rel));
				relation_close(rel, AccessShareLock);
				at = NIL;
			}
			else
			{
				ColSource  *s = palloc(sizeof(ColSource));

				s->relid = rte->relid;
				s->column = pstrdup("*");
				s->transformed = true;
				s->how = how;
				*out = lappend(*out, s);
			}
		}
		else if (rte->rtekind == RTE_SUBQUERY)
			sub = rte->subquery;
		else if (rte->rtekind == RTE_CTE)
		{
			int			owner_idx = list_length(at) - 1 - (int) rte->ctelevelsup;

			if (owner_idx >= 0)
			{
				Query	   *owner = list_nth(at, owner_idx);

				foreach(lc, owner->cteList)
				{
					CommonTableExpr *cte = lfirst(lc);

					if (strcmp(cte->ctename, rte->ctename) == 0 && IsA(cte->ctequery, Query))
						sub = (Query *) cte->ctequery;
				}
				at = list_truncate(at, owner_idx + 1);
			}
		}
		if (sub && sub->setOperations)
		{
			List	   *leaves = NIL;

			SetOpLeaves(sub->setOperations, &leaves);
			foreach(lc, leaves)
			{
				RangeTblRef *ref = makeNode(RangeTblRef);

				ref->rtindex = lfirst_int(lc);
				RowSources((Node *) ref, sub, at, how, out, depth + 1);
			}
		}
		else if (sub)
			RowSources((Node *) sub->jointree, sub, at, how, out, depth + 1);
	}
}

/* The walker that finds every column an expression reads */
typedef struct ExprWalkContext
{
	List	   *stack;
	const char *how;			/* the strongest kind above this node */
	List	  **out;
	int			depth;
} ExprWalkContext;

static bool ExprSourcesWalker(Node *node, ExprWalkContext *ctx);

/* WalkAs walks a part of an expression as kind how */
static void
WalkAs(Node *node, ExprWalkContext *ctx, const char *how)
{
	const char *saved = ctx->how;

	ctx->how = how;
	(void) ExprSourcesWalker(node, ctx);
	ctx->how = saved;
}

/*
 * WalkAggregate walks an aggregate's or a window function's arguments; its
 * FILTER only decides which rows count (a condition); one that reads no
 * column computes from the rows of its query level (RowSources).
 */
static void
WalkAggregate(Node *args, Expr *filter, Index levelsup, ExprWalkContext *ctx, const char *how)
{
	int			before = list_length(*ctx->out);
	int			idx = list_length(ctx->stack) - 1 - (int) levelsup;

	WalkAs(args, ctx, how);
	if (list_length(*ctx->out) == before && idx >= 0)
	{
		Query	   *q = list_nth(ctx->stack, idx);

		RowSources((Node *) q->jointree, q, list_truncate(list_copy(ctx->stack), idx), how,
				   ctx->out, ctx->depth + 1);
	}
	WalkAs((Node *) filter, ctx, "condition");
}

static bool
ExprSourcesWalker(Node *node, ExprWalkContext *ctx)
{
	const char *how;
	ListCell   *lc;

	if (node == NULL)
		return false;
	if (IsA(node, Var))
	{
		ResolveVar((Var *) node, ctx->stack, true, ctx->how ? ctx->how : "expression",
				   ctx->out, ctx->depth + 1);
		return false;
	}
	if (IsA(node, Query))
	{
		/* a sublink's query: its output is what flows into the expression */
		Query	   *sub = (Query *) node;

		foreach(lc, sub->targetList)
		{
			TargetEntry *tle = lfirst(lc);

			if (!tle->resjunk)
				ResolveQueryColumn(sub, tle->resno, ctx->stack, true,
								   StrongerHow(ctx->how, "subquery"), ctx->out, ctx->depth + 1);
		}
		return false;
	}
	how = StrongerHow(ctx->how, DescribeExpr(node));
	if (IsA(node, Aggref))
	{
		Aggref	   *a = (Aggref *) node;

		WalkAggregate((Node *) list_concat(list_copy(a->aggdirectargs), a->args), a->aggfilter,
					  a->agglevelsup, ctx, how);
		return false;
	}
	if (IsA(node, WindowFunc))
	{
		WindowFunc *w = (WindowFunc *) node;

		WalkAggregate((Node *) w->args, w->aggfilter, 0, ctx, how);
		return false;
	}
	if (IsA(node, CaseExpr))
	{
		/* the tests choose a branch (INDIRECT, CONDITIONAL); the results are the value */
		CaseExpr   *c = (CaseExpr *) node;

		WalkAs((Node *) c->arg, ctx, "condition");
		foreach(lc, c->args)
		{
			CaseWhen   *w = lfirst(lc);

			WalkAs((Node *) w->expr, ctx, "condition");
			WalkAs((Node *) w->result, ctx, how);
		}
		WalkAs((Node *) c->defresult, ctx, how);
		return false;
	}
	if (IsA(node, NullIfExpr) && list_length(((NullIfExpr *) node)->args) == 2)
	{
		/* NULLIF(a, b) is a or NULL: b only decides which */
		NullIfExpr *n = (NullIfExpr *) node;

		WalkAs(linitial(n->args), ctx, how);
		WalkAs(lsecond(n->args), ctx, "condition");
		return false;
	}
	{
		const char *saved = ctx->how;

		ctx->how = how;
		(void) expression_tree_walker(node, ExprSourcesWalker, (void *) ctx);
		ctx->how = saved;
	}
	return false;
}

/*
 * ResolveExpr finds the columns an expression's value comes from. A bare
 * Var (or an implicit binary coercion of one) passes a value on as it is;
 * anything else transforms it, named by the strongest kind of
 * transformation on the path from the expression down to the column (an
 * aggregate under a cast is an aggregate); a column a CASE tests or NULLIF
 * compares with, or an aggregate's FILTER, is a "condition".
 */
void
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
	ctx.how = how;
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
void
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
 * AddCaptureEdges adds, for the capture table of a captured table
 * (docs/capture.md), a "capture" edge from that table, and a copied column
 * edge from each of its columns the capture table keeps: lineage then
 * shows the captured table upstream of the pipelines that read its
 * changes.
 */
static void
AddCaptureEdges(Oid relid, EdgeSet *es)
{
	ChangeCapture *c = LookupCaptureOf(relid);
	Relation	rel;
	TupleDesc	desc;

	if (c == NULL || c->capture_relid != relid)
		return;
	AddTableEdge(es, "capture", c->relid, NULL, relid, NULL);
	rel = relation_open(c->relid, AccessShareLock);
	desc = RelationGetDescr(rel);
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && get_attnum(relid, NameStr(att->attname)) > 0)
			AddColumnEdge(es, "capture", c->relid, pstrdup(NameStr(att->attname)), relid,
						  pstrdup(NameStr(att->attname)), false, "capture");
	}
	relation_close(rel, AccessShareLock);
}

/*
 * AddColumnSourceEdges adds the edges of one column from the sources
 * ResolveQueryColumn found: one edge per source column, and one more if a
 * CASE also tests it; any transforming path makes it transformed, the
 * strongest names it.
 */
void
AddColumnSourceEdges(EdgeSet *es, const char *kind, List *sources, Oid to, const char *to_col)
{
	List	   *seen = NIL;
	ListCell   *sc;

	foreach(sc, sources)
	{
		ColSource  *s = lfirst(sc);
		ListCell   *dc;
		bool		dup = false;

		foreach(dc, seen)
		{
			ColSource  *d = lfirst(dc);

			if (d->relid == s->relid && strcmp(d->column, s->column) == 0 &&
				(strcmp(d->how, "condition") == 0) == (strcmp(s->how, "condition") == 0))
			{
				if (s->transformed && !d->transformed)
					d->how = s->how;
				else if (s->transformed)
					d->how = StrongerHow(d->how, s->how);
				d->transformed |= s->transformed;
				dup = true;
			}
		}
		if (!dup)
			seen = lappend(seen, s);
	}
	foreach(sc, seen)
	{
		ColSource  *s = lfirst(sc);

		AddColumnEdge(es, kind, s->relid, s->column, to, pstrdup(to_col), s->transformed, s->how);
	}
}

/*
 * AnalyzeRelation adds the edges below a relation: for a view (or
 * materialized view), an edge from every relation its query reads and the
 * column edges of each of its columns, then the same for each relation it
 * reads. Tables end the walk, but for a capture table, whose edges come
 * from the table it captures (AddCaptureEdges).
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

	if (kind == RELKIND_RELATION && !list_member_oid(es->views_done, relid))
	{
		es->views_done = lappend_oid(es->views_done, relid);
		AddCaptureEdges(relid, es);
	}
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

		if (att->attisdropped)
			continue;
		ResolveQueryColumn(query, att->attnum, NIL, false, NULL, &sources, 0);
		AddColumnSourceEdges(es, "view", sources, relid, NameStr(att->attname));
	}
	relation_close(rel, AccessShareLock);

	foreach(lc, relids)
		AnalyzeRelation(lfirst_oid(lc), es, depth + 1);
}
