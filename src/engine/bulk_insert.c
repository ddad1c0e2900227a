/*-------------------------------------------------------------------------
 *
 * src/engine/bulk_insert.c
 *
 * The bulk path of an initial load (initial_load.c): when the empty target
 * has no trigger, no CHECK constraint, no row-level security and no rule,
 * and the rows' query yields exactly the target's column types (masks
 * included: a masked column is loaded as the type its mask yields; no
 * conversions), inserting row by row through the executor does nothing an
 * INSERT must do but write the heap and the indexes. So the rows' SELECT is
 * run with a receiver that writes its rows into the target in batches
 * (table_multi_insert with a bulk-insert state, as COPY FROM does): one WAL
 * record and one buffer lookup per page instead of per row. The indexes
 * are then filled row by row from the batch, as COPY FROM fills them
 * (ExecInsertIndexTuples: uniqueness and exclusion are checked as an
 * INSERT checks them, 23505 and 23P01); none at all when the primary key
 * was deferred until after the data. NOT NULL is checked as the executor
 * would (23502); columns of the target the pipeline does not load must
 * have been dropped. A partition is bulk loaded only by a parallel run's
 * part, whose rows' query applies the partition's constraint; a deferrable
 * unique or exclusion constraint (checked at commit, through a trigger
 * queue) keeps the INSERT. Whatever does not fit takes the INSERT, which
 * gives the same rows.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "nodes/params.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/syscache.h"

#include "pipeline/engine.h"

/* rows per batch, and bytes: a batch is written when either is reached */
#define BULK_BATCH_ROWS		1000
#define BULK_BATCH_BYTES	65536

/* The receiver of the rows' SELECT: it writes them into the target in batches */
typedef struct BulkReceiver
{
	DestReceiver pub;
	Relation	rel;
	EState	   *estate;			/* the indexes' insertion: its per-row context */
	ResultRelInfo *rri;			/* the target, its indexes open (none: NULL) */
	int		   *source_of;		/* per target column: the SELECT's column, -1: NULL */
	BulkInsertState bistate;
	CommandId	cid;
	MemoryContext batch_cxt;	/* what table_multi_insert leaks, per batch */
	MemoryContext slot_cxt;		/* the slots': the caller's, which outlives
								 * the SELECT's executor (they are dropped
								 * after it ended) */
	TupleTableSlot *slots[BULK_BATCH_ROWS];
	int			nslots;			/* slots created */
	int			nused;			/* rows in the batch */
	Size		bytes;
	uint64		processed;
} BulkReceiver;

/*
 * BulkColumnMap maps each column of the target to the column of the
 * rows' SELECT (the plan's columns, then the lineage column) it takes, or
 * returns NULL when the bulk path does not fit: a column the load does not
 * write that is not dropped, or a type that differs from the target's.
 */
static int *
BulkColumnMap(LoadPlan *plan, TupleDesc desc)
{
	int		   *source_of = palloc(sizeof(int) * desc->natts);
	int			nselect = list_length(plan->columns) + (plan->def->lineage_column ? 1 : 0);

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		ListCell   *lc;

		source_of[i] = -1;
		if (att->attisdropped)
			continue;
		if (att->attgenerated)
			return NULL;
		foreach(lc, plan->columns)
		{
			LoadColumn *col = lfirst(lc);

			if (strcmp(col->name, NameStr(att->attname)) != 0)
				continue;
			if (col->typid != att->atttypid || (att->atttypmod >= 0 && col->typmod != att->atttypmod))
				return NULL;
			source_of[i] = foreach_current_index(lc);
		}
		if (source_of[i] < 0 && plan->def->lineage_column &&
			strcmp(plan->def->lineage_column, NameStr(att->attname)) == 0 && att->atttypid == INT8OID)
			source_of[i] = nselect - 1;
		if (source_of[i] < 0)
			return NULL;
	}
	return source_of;
}

/*
 * IndexesCheckedAtOnce tells whether every index of rel checks its rows
 * as they are inserted: none belongs to a deferrable constraint
 */
static bool
IndexesCheckedAtOnce(Relation rel)
{
	ListCell   *lc;

	foreach(lc, RelationGetIndexList(rel))
	{
		HeapTuple	tuple = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(lfirst_oid(lc)));
		bool		immediate;

		if (!HeapTupleIsValid(tuple))
			elog(ERROR, "cache lookup failed for index %u", lfirst_oid(lc));
		immediate = ((Form_pg_index) GETSTRUCT(tuple))->indimmediate;
		ReleaseSysCache(tuple);
		if (!immediate)
			return false;
	}
	return true;
}

/*
 * BulkInsertFits tells whether the initial load of plan may take the bulk
 * path (see the header): a run asks under its lock on the target, explain
 * under ACCESS SHARE.
 */
bool
BulkInsertFits(LoadPlan *plan)
{
	Relation	rel;
	bool		fits;

	if (plan->has_conversions)
		return false;
	rel = table_open(plan->target_relid, AccessShareLock);
	/*
	 * a partitioned target routes rows, which table_multi_insert does not;
	 * a partition's constraint is applied by a part's query only
	 */
	fits = rel->rd_rel->relkind == RELKIND_RELATION &&
		(!rel->rd_rel->relispartition || plan->part_relid == plan->target_relid) &&
		!rel->rd_rel->relhastriggers && rel->rd_rel->relchecks == 0 &&
		!rel->rd_rel->relrowsecurity && !rel->rd_rel->relhasrules &&
		IndexesCheckedAtOnce(rel) && BulkColumnMap(plan, RelationGetDescr(rel)) != NULL;
	table_close(rel, AccessShareLock);
	return fits;
}

/*
 * FlushBatch writes the batch of rows into the target, then their entries
 * into its indexes (table_multi_insert has set each slot's TID)
 */
static void
FlushBatch(BulkReceiver *r)
{
	MemoryContext old;

	if (r->nused == 0)
		return;
	old = MemoryContextSwitchTo(r->batch_cxt);
	table_multi_insert(r->rel, r->slots, r->nused, r->cid, TABLE_INSERT_SKIP_FSM, r->bistate);
	if (r->rri != NULL)
		for (int i = 0; i < r->nused; i++)
		{
			List	   *recheck = ExecInsertIndexTuples(r->rri, r->slots[i], r->estate,
														false, false, NULL, NIL);

			/* only a deferrable constraint asks for one (BulkInsertFits) */
			if (recheck != NIL)
				elog(ERROR, "pg_pipeline's bulk load cannot recheck indexes of %s",
					 RelationGetRelationName(r->rel));
			ResetPerTupleExprContext(r->estate);
		}
	MemoryContextSwitchTo(old);
	MemoryContextReset(r->batch_cxt);
	for (int i = 0; i < r->nused; i++)
		ExecClearTuple(r->slots[i]);
	r->processed += r->nused;
	r->nused = 0;
	r->bytes = 0;
}

/* BulkReceive copies one row of the SELECT into the batch, as a row of the target */
static bool
BulkReceive(TupleTableSlot *slot, DestReceiver *self)
{
	BulkReceiver *r = (BulkReceiver *) self;
	TupleDesc	desc = RelationGetDescr(r->rel);
	TupleTableSlot *dst;

	if (r->nused == r->nslots)
	{
		MemoryContext old = MemoryContextSwitchTo(r->slot_cxt);

		r->slots[r->nslots++] = table_slot_create(r->rel, NULL);
		MemoryContextSwitchTo(old);
	}
	dst = r->slots[r->nused];
	ExecClearTuple(dst);
	slot_getallattrs(slot);
	for (int i = 0; i < desc->natts; i++)
	{
		int			from = r->source_of[i];
		Form_pg_attribute att = TupleDescAttr(desc, i);

		dst->tts_isnull[i] = from < 0 || slot->tts_isnull[from];
		dst->tts_values[i] = dst->tts_isnull[i] ? (Datum) 0 : slot->tts_values[from];
		if (dst->tts_isnull[i] && att->attnotnull)
			ereport(ERROR,
					(errcode(ERRCODE_NOT_NULL_VIOLATION),
					 errmsg("null value in column \"%s\" of relation \"%s\" violates not-null constraint",
							NameStr(att->attname), RelationGetRelationName(r->rel)),
					 errtablecol(r->rel, i + 1)));
	}
	ExecStoreVirtualTuple(dst);
	ExecMaterializeSlot(dst);
	r->nused++;
	r->bytes += ExecFetchSlotHeapTuple(dst, false, NULL)->t_len;
	if (r->nused == BULK_BATCH_ROWS || r->bytes >= BULK_BATCH_BYTES)
		FlushBatch(r);
	return true;
}

/*
 * BulkStartup takes the command id the rows are written with (the
 * SELECT's), and makes sure the SELECT yields what BulkColumnMap expects:
 * each target column's type, in the column it maps to.
 */
static void
BulkStartup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
	BulkReceiver *r = (BulkReceiver *) self;
	TupleDesc	desc = RelationGetDescr(r->rel);

	for (int i = 0; i < desc->natts; i++)
		if (r->source_of[i] >= 0 &&
			(r->source_of[i] >= typeinfo->natts ||
			 TupleDescAttr(typeinfo, r->source_of[i])->atttypid != TupleDescAttr(desc, i)->atttypid))
			elog(ERROR, "pg_pipeline's bulk load does not fit column \"%s\" of %s",
				 NameStr(TupleDescAttr(desc, i)->attname), RelationGetRelationName(r->rel));
	r->cid = GetCurrentCommandId(true);
}

static void
BulkShutdown(DestReceiver *self)
{
	FlushBatch((BulkReceiver *) self);
}

static void
BulkDestroy(DestReceiver *self)
{
}

/*
 * ExecuteBulkInsert runs the rows' SELECT of an initial load (its window
 * bounds as parameters) and writes its rows into the target in batches;
 * returns how many it wrote. The caller runs it as the pipeline's owner,
 * holding its lock on the target, where BulkInsertFits said it fits.
 */
uint64
ExecuteBulkInsert(LoadPlan *plan, const char *rows_sql, int nargs, Oid *types, Datum *values)
{
	BulkReceiver r;
	SPIExecuteOptions options;
	ParamListInfo params = makeParamList(nargs);
	SPIPlanPtr	select;
	int			rc;

	memset(&r, 0, sizeof(r));
	r.pub.receiveSlot = BulkReceive;
	r.pub.rStartup = BulkStartup;
	r.pub.rShutdown = BulkShutdown;
	r.pub.rDestroy = BulkDestroy;
	r.pub.mydest = DestNone;
	r.rel = table_open(plan->target_relid, NoLock);
	r.source_of = BulkColumnMap(plan, RelationGetDescr(r.rel));
	if (r.source_of == NULL)
		elog(ERROR, "pg_pipeline's bulk load does not fit target %s", plan->target_ident);
	if (r.rel->rd_rel->relhasindex)
	{
		/* the indexes are filled as an INSERT's executor fills them */
		r.estate = CreateExecutorState();
		r.rri = makeNode(ResultRelInfo);
		InitResultRelInfo(r.rri, r.rel, 1, NULL, 0);
		ExecOpenIndices(r.rri, false);
		if (r.rri->ri_NumIndices == 0)
			r.rri = NULL;
	}
	r.bistate = GetBulkInsertState();
	r.batch_cxt = AllocSetContextCreate(CurrentMemoryContext, "pg_pipeline bulk batch",
										ALLOCSET_DEFAULT_SIZES);
	r.slot_cxt = CurrentMemoryContext;
	for (int i = 0; i < nargs; i++)
	{
		params->params[i].value = values[i];
		params->params[i].isnull = false;
		params->params[i].pflags = PARAM_FLAG_CONST;
		params->params[i].ptype = types[i];
	}
	memset(&options, 0, sizeof(options));
	options.params = params;
	options.dest = (DestReceiver *) &r;
	select = SPI_prepare(rows_sql, nargs, types);
	if (select == NULL)
		elog(ERROR, "pg_pipeline could not prepare its load: %s", SPI_result_code_string(SPI_result));
	rc = SPI_execute_plan_extended(select, &options);
	/* SPI says UTILITY for a SELECT whose rows go to a receiver of its caller's */
	if (rc != SPI_OK_SELECT && rc != SPI_OK_UTILITY)
		elog(ERROR, "pg_pipeline load failed: %s", SPI_result_code_string(rc));
	SPI_freeplan(select);
	for (int i = 0; i < r.nslots; i++)
		ExecDropSingleTupleTableSlot(r.slots[i]);
	FreeBulkInsertState(r.bistate);
	table_finish_bulk_insert(r.rel, TABLE_INSERT_SKIP_FSM);
	if (r.estate != NULL)
	{
		if (r.rri != NULL)
			ExecCloseIndices(r.rri);
		FreeExecutorState(r.estate);
	}
	MemoryContextDelete(r.batch_cxt);
	table_close(r.rel, NoLock);
	CommandCounterIncrement();
	return r.processed;
}
