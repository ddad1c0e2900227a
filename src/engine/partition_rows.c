/*-------------------------------------------------------------------------
 *
 * src/engine/partition_rows.c
 *
 * One scan of the source for two partitions of a parallel run's part
 * (docs/parallel.md, "One scan for two partitions").
 *
 * A part loads its partitions one after the other, each from the window's
 * rows its partition's constraint takes. When it has a next partition, the
 * statement of the first names both constraints in one marker,
 * pipeline._partition_rows(these, next), which is simply `these` wherever
 * nothing below takes it over. Here a planner hook takes it over: the scan
 * of the source becomes a custom scan that returns the rows of `these` and
 * keeps those of `next` in a sort, in the order the statement sorts its
 * own rows in. The next partition's statement, pipeline._partition_rows(
 * next, NULL) with the same other filters, then reads that sort instead of
 * the source: no second scan, and no second sort. Anything that does not
 * match exactly (another order, other filters, a security qual, an index
 * the planner prefers for a window with a lower bound) plans the ordinary
 * scan, with the same rows.
 *
 * The other filters are split where the first volatile one begins: the
 * window's bounds come before, the row counter (counters.c) and a gate
 * (the erasure gate, erasure_gate.c) after. A kept row passed those before; the
 * next statement evaluates those after on it, when it reads it, so that
 * every count and every row sent to quarantine is the statement's own, as
 * if it had scanned the source itself: keeping a row has no side effect.
 * The kept rows live in the part's transaction; only a part arms the hook.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/tableam.h"
#include "access/xact.h"
#include "commands/explain.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "nodes/extensible.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "nodes/pathnodes.h"
#include "optimizer/optimizer.h"
#include "optimizer/pathnode.h"
#include "optimizer/paths.h"
#include "optimizer/restrictinfo.h"
#include "parser/parse_func.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/ruleutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/tuplesort.h"

#include "pipeline/common.h"
#include "pipeline/engine.h"

PIPELINE_FUNCTION(pipeline_partition_rows);

/* The rows a part's scan kept for its next partition, in its transaction */
typedef struct KeptRows
{
	MemoryContext cxt;
	Oid			source_relid;
	Node	   *predicate;		/* the next partition's constraint (marker's second argument) */
	List	   *filters;		/* the other filters, as planned: they passed
								 * those before the first volatile one */
	List	   *order;			/* OrderOf the reading statement's sort */
	Snapshot	snapshot;		/* the scan's, held until they are read: their
								 * TOAST values stay where they point */
	Tuplesortstate *sort;
	bool		complete;		/* the scan ran to its end and the sort is done */
} KeptRows;

typedef enum PartitionRowsMode
{
	PARTITION_ROWS_KEEP,		/* scan: return these, keep next's */
	PARTITION_ROWS_READ			/* read what the previous scan kept */
} PartitionRowsMode;

/* The executor's state of a custom scan of either mode */
typedef struct PartitionRowsState
{
	CustomScanState css;
	PartitionRowsMode mode;
	ExprState  *these;
	ExprState  *next;
	ExprState  *filters;		/* KEEP: all the other filters, for these */
	ExprState  *early;			/* KEEP: those before the first volatile one, for next */
	ExprState  *late;			/* READ: the others, evaluated on the kept rows */
	TableScanDesc scan;
	TupleTableSlot *slot;
	KeptRows   *keeping;		/* KEEP: where the kept rows go, NULL when not keeping */
	bool		done;
} PartitionRowsState;

static Oid	partition_rows_marker = InvalidOid;	/* pipeline._partition_rows where armed */
static bool partition_rows_whole = false;	/* the window has no lower bound */
static KeptRows *kept = NULL;
static set_rel_pathlist_hook_type prev_set_rel_pathlist = NULL;

static Plan *PlanPartitionRows(PlannerInfo *root, RelOptInfo *rel, CustomPath *best_path,
							   List *tlist, List *clauses, List *custom_plans);
static Node *CreatePartitionRowsState(CustomScan *cscan);
static void BeginPartitionRows(CustomScanState *node, EState *estate, int eflags);
static TupleTableSlot *ExecPartitionRows(CustomScanState *node);
static void EndPartitionRows(CustomScanState *node);
static void ReScanPartitionRows(CustomScanState *node);
static void ExplainPartitionRows(CustomScanState *node, List *ancestors, ExplainState *es);

static const CustomPathMethods partition_rows_path_methods = {
	.CustomName = "PipelinePartitionRows",
	.PlanCustomPath = PlanPartitionRows,
};

static const CustomScanMethods partition_rows_scan_methods = {
	.CustomName = "PipelinePartitionRows",
	.CreateCustomScanState = CreatePartitionRowsState,
};

static const CustomExecMethods partition_rows_exec_methods = {
	.CustomName = "PipelinePartitionRows",
	.BeginCustomScan = BeginPartitionRows,
	.ExecCustomScan = ExecPartitionRows,
	.EndCustomScan = EndPartitionRows,
	.ReScanCustomScan = ReScanPartitionRows,
	.ExplainCustomScan = ExplainPartitionRows,
};

/*
 * pipeline._partition_rows(these, next) is the marker of a part's window
 * scan: it returns these (the row is its partition's). The planner hook
 * below reads next.
 */
Datum
pipeline_partition_rows(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	PG_RETURN_BOOL(PG_GETARG_BOOL(0));
}

/*
 * ArmPartitionRows lets (or no longer lets) this backend's scans keep rows:
 * a part's. whole: its window has no lower bound (a first load, or one
 * after a reset), so it reads the source whole, whatever the planner
 * estimates (a table just loaded and not yet analyzed looks selective).
 */
void
ArmPartitionRows(bool armed, bool whole)
{
	Oid			args[2] = {BOOLOID, BOOLOID};

	partition_rows_marker = armed ?
		LookupFuncName(list_make2(makeString("pipeline"), makeString("_partition_rows")), 2, args, true) :
		InvalidOid;
	partition_rows_whole = whole;
}

/*
 * OrderOf is the sort of rel's rows that pathkeys ask for, as four lists
 * (column numbers, sort operators, collations, nulls first), each key a
 * plain column of rel; NIL when one is not. Two statements' are compared
 * with equal().
 */
static List *
OrderOf(List *pathkeys, RelOptInfo *rel)
{
	List	   *attnums = NIL,
			   *sortops = NIL,
			   *collations = NIL,
			   *nulls_first = NIL;
	ListCell   *lc;

	foreach(lc, pathkeys)
	{
		PathKey    *pk = lfirst(lc);
		EquivalenceClass *ec = pk->pk_eclass;
		Var		   *var = NULL;
		Oid			type = InvalidOid;
		Oid			sortop;
		ListCell   *mc;

		if (ec->ec_has_volatile)
			return NIL;
		foreach(mc, ec->ec_members)
		{
			EquivalenceMember *em = lfirst(mc);
			Expr	   *e = em->em_expr;

			while (IsA(e, RelabelType))
				e = ((RelabelType *) e)->arg;
			if (IsA(e, Var) && ((Var *) e)->varno == rel->relid &&
				((Var *) e)->varlevelsup == 0 && ((Var *) e)->varattno > 0)
			{
				var = (Var *) e;
				type = em->em_datatype;
				break;
			}
		}
		if (var == NULL)
			return NIL;
		sortop = get_opfamily_member(pk->pk_opfamily, type, type, pk->pk_strategy);
		if (!OidIsValid(sortop))
			return NIL;
		attnums = lappend_int(attnums, var->varattno);
		sortops = lappend_oid(sortops, sortop);
		collations = lappend_oid(collations, ec->ec_collation);
		nulls_first = lappend_int(nulls_first, pk->pk_nulls_first);
	}
	return attnums == NIL ? NIL : list_make4(attnums, sortops, collations, nulls_first);
}

/*
 * SplitClauses finds the marker among rel's filters: its arguments into
 * these and next, the other filters (in their order) into filters; false
 * without exactly one marker, or with a filter of a security policy.
 */
static bool
SplitClauses(RelOptInfo *rel, Oid marker, Node **these, Node **next, List **filters)
{
	ListCell   *lc;
	int			markers = 0;

	*filters = NIL;
	foreach(lc, rel->baserestrictinfo)
	{
		RestrictInfo *ri = lfirst(lc);

		if (ri->security_level > 0)
			return false;
		if (IsA(ri->clause, FuncExpr) && ((FuncExpr *) ri->clause)->funcid == marker)
		{
			*these = linitial(((FuncExpr *) ri->clause)->args);
			*next = lsecond(((FuncExpr *) ri->clause)->args);
			markers++;
		}
		else
			*filters = lappend(*filters, ri->clause);
	}
	return markers == 1;
}

/*
 * EarlyFilters counts the filters before the first volatile one: those a
 * kept row passes when it is kept; the next statement evaluates the others
 * on it
 */
static int
EarlyFilters(List *filters)
{
	ListCell   *lc;

	foreach(lc, filters)
		if (contain_volatile_functions(lfirst(lc)))
			return foreach_current_index(lc);
	return list_length(filters);
}

/*
 * ScanToKeep is the sequential scan path of rel when a keeping scan should
 * take its place: the planner's cheapest unparameterized path, or, when the
 * window is read whole (partition_rows_whole), one made for it (the planner
 * dropped its own, costlier than an index that looked selective); else
 * NULL (an index serves a narrow window better, twice).
 */
static Path *
ScanToKeep(PlannerInfo *root, RelOptInfo *rel)
{
	Path	   *cheapest = NULL;
	ListCell   *lc;

	foreach(lc, rel->pathlist)
	{
		Path	   *p = lfirst(lc);

		if (p->param_info == NULL && (cheapest == NULL || p->total_cost < cheapest->total_cost))
			cheapest = p;
	}
	if (cheapest != NULL && cheapest->pathtype == T_SeqScan)
		return cheapest;
	return partition_rows_whole ? create_seqscan_path(root, rel, NULL, 0) : NULL;
}

/*
 * PartitionRowsPathlist, the set_rel_pathlist hook: in an armed backend,
 * a scan of a table filtered by the marker becomes a keeping scan (the
 * marker names a next partition, nothing is kept yet, the table is read
 * whole: ScanToKeep, and its statement sorts its rows by columns of it),
 * or a read of the kept rows (the marker's partition is the one kept,
 * under the same other filters, from the same table), sorted as kept.
 */
static void
PartitionRowsPathlist(PlannerInfo *root, RelOptInfo *rel, Index rti, RangeTblEntry *rte)
{
	Node	   *these = NULL;
	Node	   *next = NULL;
	List	   *filters;
	List	   *order;
	CustomPath *path;
	PartitionRowsMode mode;
	List	   *pathkeys = NIL;
	Path	   *seqscan = NULL;

	if (prev_set_rel_pathlist)
		prev_set_rel_pathlist(root, rel, rti, rte);
	if (!OidIsValid(partition_rows_marker) || rel->reloptkind != RELOPT_BASEREL ||
		rte->rtekind != RTE_RELATION || rte->relkind != RELKIND_RELATION ||
		rte->tablesample != NULL || rte->securityQuals != NIL || rel->baserestrictinfo == NIL)
		return;
	if (!SplitClauses(rel, partition_rows_marker, &these, &next, &filters))
		return;
	order = OrderOf(root->query_pathkeys, rel);
	if (kept != NULL && kept->complete && kept->source_relid == rte->relid &&
		equal(these, kept->predicate) && equal(filters, kept->filters))
	{
		mode = PARTITION_ROWS_READ;
		if (order != NIL && equal(order, kept->order))
			pathkeys = root->query_pathkeys;
	}
	else if (kept == NULL && !(IsA(next, Const) && ((Const *) next)->constisnull) &&
			 order != NIL && (seqscan = ScanToKeep(root, rel)) != NULL)
		mode = PARTITION_ROWS_KEEP;
	else
		return;

	path = makeNode(CustomPath);
	path->path.pathtype = T_CustomScan;
	path->path.parent = rel;
	path->path.pathtarget = rel->reltarget;
	path->path.param_info = NULL;
	path->path.parallel_aware = false;
	path->path.parallel_safe = false;
	path->path.parallel_workers = 0;
	path->path.rows = rel->rows;
	path->path.pathkeys = pathkeys;
	/* the only path: a keeping scan costs the scan; a read, its rows */
	path->path.startup_cost = 0;
	path->path.total_cost = mode == PARTITION_ROWS_KEEP ? seqscan->total_cost : rel->rows * cpu_tuple_cost;
	path->flags = 0;
	path->custom_paths = NIL;
	path->custom_private = list_make4(makeInteger(mode), list_make3(these, next, filters),
									  order, makeInteger(EarlyFilters(filters)));
	path->methods = &partition_rows_path_methods;
	rel->pathlist = list_make1(path);
	rel->partial_pathlist = NIL;
}

/*
 * PlanPartitionRows makes the custom scan: the marker's arguments and the
 * other filters go into custom_exprs (these, next, filters...), which the
 * executor evaluates itself; custom_private keeps the mode, unchanged by
 * setrefs the next partition's constraint and the filters as planned (what
 * the next statement's are compared with), the order, and how many filters
 * come before the first volatile one.
 */
static Plan *
PlanPartitionRows(PlannerInfo *root, RelOptInfo *rel, CustomPath *best_path,
				  List *tlist, List *clauses, List *custom_plans)
{
	CustomScan *cscan = makeNode(CustomScan);
	List	   *exprs = lsecond(best_path->custom_private);

	cscan->scan.plan.targetlist = tlist;
	cscan->scan.plan.qual = NIL;
	cscan->scan.scanrelid = rel->relid;
	cscan->flags = best_path->flags;
	cscan->custom_plans = NIL;
	cscan->custom_exprs = list_concat(list_make2(copyObject(linitial(exprs)), copyObject(lsecond(exprs))),
									  copyObject(lthird(exprs)));
	cscan->custom_private = list_make5(linitial(best_path->custom_private),
									   copyObject(lsecond(exprs)), copyObject(lthird(exprs)),
									   lthird(best_path->custom_private),
									   lfourth(best_path->custom_private));
	cscan->custom_scan_tlist = NIL;
	cscan->custom_relids = bms_make_singleton(rel->relid);
	cscan->methods = &partition_rows_scan_methods;
	return &cscan->scan.plan;
}

static Node *
CreatePartitionRowsState(CustomScan *cscan)
{
	PartitionRowsState *st = (PartitionRowsState *) newNode(sizeof(PartitionRowsState),
															 T_CustomScanState);

	st->css.methods = &partition_rows_exec_methods;
	st->mode = intVal(linitial(cscan->custom_private));
	return (Node *) st;
}

/* UseSlot makes slot the scan's tuple slot, and its projection read it */
static void
UseSlot(PartitionRowsState *st, TupleTableSlot *slot)
{
	ScanState  *ss = &st->css.ss;
	CustomScan *cscan = (CustomScan *) ss->ps.plan;

	st->slot = slot;
	ss->ss_ScanTupleSlot = slot;
	ss->ps.scanops = slot->tts_ops;
	ss->ps.scanopsfixed = true;
	ss->ps.scanopsset = true;
	ExecAssignScanProjectionInfoWithVarno(ss, cscan->scan.scanrelid);
}

/* StartKeeping begins the kept rows of a keeping scan, in the transaction's memory */
static KeptRows *
StartKeeping(PartitionRowsState *st, CustomScan *cscan)
{
	Relation	rel = st->css.ss.ss_currentRelation;
	MemoryContext cxt = AllocSetContextCreate(TopTransactionContext, "pg_pipeline kept rows",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	ResourceOwner owner = CurrentResourceOwner;
	KeptRows   *k = palloc0(sizeof(KeptRows));
	List	   *order = lfourth(cscan->custom_private);
	int			nkeys = list_length(linitial(order));
	AttrNumber *attnums = palloc(sizeof(AttrNumber) * nkeys);
	Oid		   *sortops = palloc(sizeof(Oid) * nkeys);
	Oid		   *collations = palloc(sizeof(Oid) * nkeys);
	bool	   *nulls_first = palloc(sizeof(bool) * nkeys);

	/* the order, as tuplesort takes it */
	for (int i = 0; i < nkeys; i++)
	{
		attnums[i] = list_nth_int(linitial(order), i);
		sortops[i] = list_nth_oid(lsecond(order), i);
		collations[i] = list_nth_oid(lthird(order), i);
		nulls_first[i] = list_nth_int(lfourth(order), i) != 0;
	}
	k->cxt = cxt;
	k->source_relid = RelationGetRelid(rel);
	k->predicate = copyObject(lsecond(cscan->custom_private));
	k->filters = copyObject(lthird(cscan->custom_private));
	k->order = copyObject(order);
	/* its files, should it spill, and its snapshot outlive this statement (and any subtransaction) */
	CurrentResourceOwner = TopTransactionResourceOwner;
	k->snapshot = RegisterSnapshot(st->css.ss.ps.state->es_snapshot);
	k->sort = tuplesort_begin_heap(CreateTupleDescCopy(RelationGetDescr(rel)), nkeys, attnums,
								   sortops, collations, nulls_first, work_mem, NULL, TUPLESORT_NONE);
	CurrentResourceOwner = owner;
	MemoryContextSwitchTo(old);
	return k;
}

/* DropKept frees the kept rows */
static void
DropKept(void)
{
	KeptRows   *k = kept;
	ResourceOwner owner = CurrentResourceOwner;

	if (k == NULL)
		return;
	kept = NULL;
	CurrentResourceOwner = TopTransactionResourceOwner;
	tuplesort_end(k->sort);
	UnregisterSnapshot(k->snapshot);
	CurrentResourceOwner = owner;
	MemoryContextDelete(k->cxt);
}

static void
BeginPartitionRows(CustomScanState *node, EState *estate, int eflags)
{
	PartitionRowsState *st = (PartitionRowsState *) node;
	CustomScan *cscan = (CustomScan *) node->ss.ps.plan;
	Relation	rel = node->ss.ss_currentRelation;
	List	   *exprs = cscan->custom_exprs;
	int			n_early = intVal(list_nth(cscan->custom_private, 4));

	if (st->mode == PARTITION_ROWS_READ)
	{
		UseSlot(st, ExecAllocTableSlot(&estate->es_tupleTable, RelationGetDescr(rel),
									   &TTSOpsMinimalTuple));
		if (eflags & EXEC_FLAG_EXPLAIN_ONLY)
			return;
		if (kept == NULL || !kept->complete || kept->source_relid != RelationGetRelid(rel))
			elog(ERROR, "pg_pipeline lost the rows a part's scan kept for this partition");
		st->late = ExecInitQual(list_copy_tail(exprs, 2 + n_early), &node->ss.ps);
		return;
	}
	UseSlot(st, ExecAllocTableSlot(&estate->es_tupleTable, RelationGetDescr(rel),
								   table_slot_callbacks(rel)));
	st->these = ExecInitQual(list_make1(linitial(exprs)), &node->ss.ps);
	st->next = ExecInitQual(list_make1(lsecond(exprs)), &node->ss.ps);
	st->filters = ExecInitQual(list_copy_tail(exprs, 2), &node->ss.ps);
	st->early = ExecInitQual(list_copy_head(list_copy_tail(exprs, 2), n_early), &node->ss.ps);
	/* a second keeping scan in the transaction keeps nothing: its rows are read as usual */
	if (!(eflags & EXEC_FLAG_EXPLAIN_ONLY) && kept == NULL)
	{
		kept = StartKeeping(st, cscan);
		st->keeping = kept;
	}
}

/* Keep puts the scanned row, which passed next, into the kept rows when it passes the early filters */
static void
Keep(PartitionRowsState *st, ExprContext *econtext)
{
	ResourceOwner owner;

	if (!ExecQual(st->early, econtext))
		return;
	owner = CurrentResourceOwner;
	CurrentResourceOwner = TopTransactionResourceOwner;
	tuplesort_puttupleslot(st->keeping->sort, st->slot);
	CurrentResourceOwner = owner;
}

/* NextRow returns the scan's next row to return, or NULL at the end */
static TupleTableSlot *
NextRow(ScanState *ss)
{
	PartitionRowsState *st = (PartitionRowsState *) ss;
	ExprContext *econtext = ss->ps.ps_ExprContext;

	if (st->mode == PARTITION_ROWS_READ)
	{
		for (;;)
		{
			CHECK_FOR_INTERRUPTS();
			ResetExprContext(econtext);
			if (!tuplesort_gettupleslot(kept->sort, true, false, st->slot, NULL))
				return NULL;
			econtext->ecxt_scantuple = st->slot;
			if (ExecQual(st->late, econtext))
				return st->slot;
		}
	}
	if (st->scan == NULL)
		st->scan = table_beginscan(ss->ss_currentRelation, ss->ps.state->es_snapshot, 0, NULL);
	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		ResetExprContext(econtext);
		if (!table_scan_getnextslot(st->scan, ForwardScanDirection, st->slot))
		{
			st->done = true;
			return NULL;
		}
		econtext->ecxt_scantuple = st->slot;
		if (ExecQual(st->these, econtext))
		{
			if (ExecQual(st->filters, econtext))
				return st->slot;
		}
		else if (st->keeping != NULL && ExecQual(st->next, econtext))
			Keep(st, econtext);
	}
}

/* The rows are read once, under the statement's snapshot: nothing to recheck */
static bool
RecheckRow(ScanState *ss, TupleTableSlot *slot)
{
	return true;
}

static TupleTableSlot *
ExecPartitionRows(CustomScanState *node)
{
	return ExecScan(&node->ss, NextRow, RecheckRow);
}

/*
 * EndPartitionRows: a keeping scan that ran to its end sorts what it kept
 * for the next statement (one that did not keeps nothing); a read frees it.
 */
static void
EndPartitionRows(CustomScanState *node)
{
	PartitionRowsState *st = (PartitionRowsState *) node;

	if (st->scan != NULL)
		table_endscan(st->scan);
	if (st->mode == PARTITION_ROWS_READ)
	{
		if (kept != NULL && kept->complete)
			DropKept();
		return;
	}
	if (st->keeping != NULL && st->keeping == kept)
	{
		if (st->done)
		{
			ResourceOwner owner = CurrentResourceOwner;

			CurrentResourceOwner = TopTransactionResourceOwner;
			tuplesort_performsort(kept->sort);
			CurrentResourceOwner = owner;
			kept->complete = true;
		}
		else
			DropKept();
	}
}

/* A rescan of a keeping scan keeps nothing more; the kept rows are read once */
static void
ReScanPartitionRows(CustomScanState *node)
{
	PartitionRowsState *st = (PartitionRowsState *) node;

	if (st->mode == PARTITION_ROWS_READ)
		elog(ERROR, "pg_pipeline cannot read the rows a part's scan kept twice");
	if (st->keeping != NULL && st->keeping == kept)
		DropKept();
	st->keeping = NULL;
	st->done = false;
	if (st->scan != NULL)
		table_rescan(st->scan, NULL);
}

/*
 * ExplainPartitionRows shows what a keeping scan returns ("Filter") and
 * keeps ("Keeps"), and what a read reads ("Reads") and filters ("Filter")
 */
static void
ExplainPartitionRows(CustomScanState *node, List *ancestors, ExplainState *es)
{
	PartitionRowsState *st = (PartitionRowsState *) node;
	CustomScan *cscan = (CustomScan *) node->ss.ps.plan;
	List	   *exprs = cscan->custom_exprs;
	List	   *filters = list_copy_tail(exprs, 2);
	int			n_early = intVal(list_nth(cscan->custom_private, 4));
	List	   *context = set_deparse_context_plan(es->deparse_cxt, &cscan->scan.plan, ancestors);

	if (st->mode == PARTITION_ROWS_READ)
	{
		ExplainPropertyText("Reads", "the rows the previous statement's scan kept, sorted", es);
		if (list_length(filters) > n_early)
			ExplainPropertyText("Filter",
								deparse_expression((Node *) make_ands_explicit(list_copy_tail(filters, n_early)),
												   context, true, false), es);
		return;
	}
	ExplainPropertyText("Filter",
						deparse_expression((Node *) make_ands_explicit(lcons(linitial(exprs), list_copy(filters))),
										   context, true, false), es);
	ExplainPropertyText("Keeps",
						deparse_expression((Node *) make_ands_explicit(lcons(lsecond(exprs),
																			 list_copy_head(filters, n_early))),
										   context, true, false), es);
}

/*
 * The kept rows are the transaction's: freed before it commits or prepares
 * (a statement that did not read them leaves them), gone with it when it
 * aborts (its memory and its resource owner's files)
 */
static void
PartitionRowsXactCallback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
		case XACT_EVENT_PARALLEL_PRE_COMMIT:
			DropKept();
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			kept = NULL;
			break;
		default:
			break;
	}
}

/* A subtransaction that fails drops the kept rows */
static void
PartitionRowsSubXactCallback(SubXactEvent event, SubTransactionId mySubid,
							 SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		DropKept();
}

/* PartitionRowsInit installs the planner hook and the custom scan */
void
PartitionRowsInit(void)
{
	RegisterCustomScanMethods(&partition_rows_scan_methods);
	prev_set_rel_pathlist = set_rel_pathlist_hook;
	set_rel_pathlist_hook = PartitionRowsPathlist;
	RegisterXactCallback(PartitionRowsXactCallback, NULL);
	RegisterSubXactCallback(PartitionRowsSubXactCallback, NULL);
}
