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
 * record and one buffer lookup per page instead of per row. A table's
 * indexes are built after its rows, as REINDEX builds them (one sort per
 * index, its pages written whole; uniqueness and exclusion checked by the
 * build, 23505 and 23P01), when the run can lock them all ACCESS EXCLUSIVE
 * at once and owns the table (IndexesBuiltAfter), unless it is a parallel
 * run's part whose leader's transaction goes on after the run
 * (fill_indexes: parallel_load.c's CalledAlone); otherwise they are
 * filled row by row from each batch, as COPY FROM fills them
 * (ExecInsertIndexTuples: uniqueness and exclusion are checked as an
 * INSERT checks them); none at all when the primary key was deferred
 * until after the data (initial_load.c). NOT NULL is checked as the executor
 * would (23502); columns of the target the pipeline does not load must
 * have been dropped. A partitioned target's rows are routed to their
 * partitions by the executor's own tuple routing (ExecFindPartition: a row
 * no partition takes fails with 23514, as the INSERT's), each partition
 * with a batch of its own; every partition must fit as the target does.
 * A partition named as the target is bulk loaded only by a parallel run's
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
#include "catalog/index.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "catalog/pg_inherits.h"
#include "executor/execPartition.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "nodes/params.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/syscache.h"

#include "pipeline/engine.h"

/* rows per batch, and bytes: the batches are written when either is reached */
#define BULK_BATCH_ROWS		1000
#define BULK_BATCH_BYTES	65536
/* partitions written to beyond which a flushed batch gives back its slots and page */
#define BULK_KEPT_BATCHES	32

/* The batch of one table the rows go into: the target, or one of its partitions */
typedef struct BulkBatch
{
	Oid			relid;			/* the hash key */
	ResultRelInfo *rri;			/* the table, its indexes open */
	BulkInsertState bistate;	/* the page it fills (one per table) */
	TupleTableSlot *slots[BULK_BATCH_ROWS];
	int			nslots;			/* slots created */
	int			nused;			/* rows in the batch */
	bool		build_after;	/* its indexes are built after its rows */
} BulkBatch;

/* The receiver of the rows' SELECT: it writes them into the target in batches */
typedef struct BulkReceiver
{
	DestReceiver pub;
	Relation	rel;			/* the target */
	EState	   *estate;			/* tuple routing, index entries: their per-row context */
	ResultRelInfo *root;		/* the target's */
	ModifyTableState *mtstate;	/* a partitioned target's routing, as COPY's */
	PartitionTupleRouting *proute;
	TupleTableSlot *routed;		/* a partitioned target: the row, before routing */
	HTAB	   *batches;		/* BulkBatch per table */
	BulkBatch  *last;			/* the batch the last row went into */
	List	   *filled;			/* the batches holding rows */
	int		   *source_of;		/* per target column: the SELECT's column, -1: NULL */
	CommandId	cid;
	MemoryContext batch_cxt;	/* what table_multi_insert leaks, per batch */
	MemoryContext slot_cxt;		/* the slots': the caller's, which outlives
								 * the SELECT's executor (they are dropped
								 * after it ended) */
	int			nrows;			/* rows in all batches */
	Size		bytes;
	uint64		processed;
	List	   *to_build;		/* the indexes built after the rows */
	bool		fill_indexes;	/* the plan's: build none after the rows */
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
 * TableFits tells whether rows may be written into rel in batches: nothing
 * an INSERT into it must do but write rows and index entries
 */
static bool
TableFits(Relation rel)
{
	return !rel->rd_rel->relhastriggers && rel->rd_rel->relchecks == 0 &&
		!rel->rd_rel->relrowsecurity && !rel->rd_rel->relhasrules && IndexesCheckedAtOnce(rel);
}

/*
 * PartitionsFit tells whether every partition under a partitioned target
 * (under the lock the caller holds on them all) fits as the target does
 */
static bool
PartitionsFit(Oid relid)
{
	ListCell   *lc;

	foreach(lc, find_all_inheritors(relid, NoLock, NULL))
	{
		Relation	part;
		bool		fits;

		if (lfirst_oid(lc) == relid)
			continue;
		/* (explain holds no lock on them: one may be gone) */
		part = try_relation_open(lfirst_oid(lc), AccessShareLock);
		if (part == NULL)
			return false;
		fits = part->rd_rel->relkind == RELKIND_PARTITIONED_TABLE ||
			(part->rd_rel->relkind == RELKIND_RELATION && TableFits(part));
		relation_close(part, AccessShareLock);
		if (!fits)
			return false;
	}
	return true;
}

/*
 * BulkInsertFits tells whether the initial load of plan may take the bulk
 * path (see the header): a run asks under its lock on the target (and, a
 * partitioned one, on every partition), explain under ACCESS SHARE.
 */
bool
BulkInsertFits(LoadPlan *plan)
{
	Relation	rel;
	bool		partitioned;
	bool		fits;

	if (plan->has_conversions)
		return false;
	rel = table_open(plan->target_relid, AccessShareLock);
	partitioned = rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE;
	/* a partition's constraint is applied by a part's query only */
	fits = (partitioned ||
			(rel->rd_rel->relkind == RELKIND_RELATION &&
			 (!rel->rd_rel->relispartition || plan->part_relid == plan->target_relid))) &&
		TableFits(rel) && BulkColumnMap(plan, RelationGetDescr(rel)) != NULL;
	table_close(rel, AccessShareLock);
	return fits && (!partitioned || PartitionsFit(plan->target_relid));
}

/*
 * FlushBatch writes one table's batch of rows, then their entries into its
 * indexes (table_multi_insert has set each slot's TID)
 */
static void
FlushBatch(BulkReceiver *r, BulkBatch *b)
{
	MemoryContext old = MemoryContextSwitchTo(r->batch_cxt);

	table_multi_insert(b->rri->ri_RelationDesc, b->slots, b->nused, r->cid, TABLE_INSERT_SKIP_FSM,
					   b->bistate);
	for (int i = 0; i < b->nused && b->rri->ri_NumIndices > 0 && !b->build_after; i++)
	{
		List	   *recheck = ExecInsertIndexTuples(b->rri, b->slots[i], r->estate,
													false, false, NULL, NIL);

		/* only a deferrable constraint asks for one (BulkInsertFits) */
		if (recheck != NIL)
			elog(ERROR, "pg_pipeline's bulk load cannot recheck indexes of %s",
				 RelationGetRelationName(b->rri->ri_RelationDesc));
		ResetPerTupleExprContext(r->estate);
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(r->batch_cxt);
	for (int i = 0; i < b->nused; i++)
		ExecClearTuple(b->slots[i]);
	r->processed += b->nused;
	b->nused = 0;
	/* many partitions: memory and pins stay bounded, as COPY FROM bounds them */
	if (hash_get_num_entries(r->batches) > BULK_KEPT_BATCHES)
	{
		for (int i = 0; i < b->nslots; i++)
			ExecDropSingleTupleTableSlot(b->slots[i]);
		b->nslots = 0;
		ReleaseBulkInsertStatePin(b->bistate);
	}
}

/* FlushBatches writes every batch that holds rows */
static void
FlushBatches(BulkReceiver *r)
{
	ListCell   *lc;

	foreach(lc, r->filled)
		FlushBatch(r, lfirst(lc));
	list_free(r->filled);
	r->filled = NIL;
	r->nrows = 0;
	r->bytes = 0;
}

/*
 * IndexesBuiltAfter tells whether the indexes of the (empty) table rri
 * writes into may be built after its rows rather than filled row by row:
 * it has some, the load's owner (the current user) owns the table, each
 * index is valid and open nowhere else in this session, and ACCESS
 * EXCLUSIVE on each was granted at once, never waited for (a reader of the
 * table, or the caller's own transaction in a parallel run's leader, keeps
 * the row by row fill). The locks are then held to the end of the
 * transaction: readers that come meanwhile wait for the load to commit.
 */
static bool
IndexesBuiltAfter(ResultRelInfo *rri)
{
	int			locked = 0;
	bool		all = rri->ri_NumIndices > 0 &&
		pg_class_ownercheck(RelationGetRelid(rri->ri_RelationDesc), GetUserId());

	for (int i = 0; all && i < rri->ri_NumIndices; i++)
	{
		Relation	index = rri->ri_IndexRelationDescs[i];

		all = index->rd_index->indisvalid && index->rd_index->indisready && index->rd_index->indislive &&
			index->rd_refcnt == 1 && ConditionalLockRelationOid(RelationGetRelid(index), AccessExclusiveLock);
		locked += all ? 1 : 0;
	}
	if (!all)
		for (int i = 0; i < locked; i++)
			UnlockRelationOid(RelationGetRelid(rri->ri_IndexRelationDescs[i]), AccessExclusiveLock);
	return all;
}

/*
 * BatchOf returns the batch of the table rri writes into, making it on
 * first use (in the caller's context: the SELECT's per-row one is reset)
 */
static BulkBatch *
BatchOf(BulkReceiver *r, ResultRelInfo *rri)
{
	Oid			relid;
	bool		found;
	BulkBatch  *b;

	if (r->last != NULL && r->last->rri == rri)
		return r->last;
	relid = RelationGetRelid(rri->ri_RelationDesc);
	b = r->last = hash_search(r->batches, &relid, HASH_ENTER, &found);
	if (!found)
	{
		MemoryContext old = MemoryContextSwitchTo(r->slot_cxt);

		b->rri = rri;
		b->bistate = GetBulkInsertState();
		b->nslots = 0;
		b->nused = 0;
		b->build_after = !r->fill_indexes && IndexesBuiltAfter(rri);
		MemoryContextSwitchTo(old);
	}
	return b;
}

/* NextSlot returns the slot the next row of a batch goes into */
static TupleTableSlot *
NextSlot(BulkReceiver *r, BulkBatch *b)
{
	MemoryContext old = MemoryContextSwitchTo(r->slot_cxt);

	if (b->nused == b->nslots)
		b->slots[b->nslots++] = table_slot_create(b->rri->ri_RelationDesc, NULL);
	if (b->nused == 0)
		r->filled = lappend(r->filled, b);
	MemoryContextSwitchTo(old);
	return b->slots[b->nused++];
}

/* CheckNotNull raises 23502, as the executor would, for a NULL in a NOT NULL column of rel */
static void
CheckNotNull(Relation rel, TupleTableSlot *slot)
{
	TupleDesc	desc = RelationGetDescr(rel);

	for (int i = 0; i < desc->natts; i++)
		if (slot->tts_isnull[i] && TupleDescAttr(desc, i)->attnotnull)
			ereport(ERROR,
					(errcode(ERRCODE_NOT_NULL_VIOLATION),
					 errmsg("null value in column \"%s\" of relation \"%s\" violates not-null constraint",
							NameStr(TupleDescAttr(desc, i)->attname), RelationGetRelationName(rel)),
					 errtablecol(rel, i + 1)));
}

/*
 * BulkReceive copies one row of the SELECT into a batch, as a row of the
 * target, or of the partition the target routes it to
 */
static bool
BulkReceive(TupleTableSlot *slot, DestReceiver *self)
{
	BulkReceiver *r = (BulkReceiver *) self;
	TupleDesc	desc = RelationGetDescr(r->rel);
	BulkBatch  *b = NULL;
	TupleTableSlot *row;
	TupleTableSlot *dst;

	if (r->proute == NULL)
	{
		b = BatchOf(r, r->root);
		row = NextSlot(r, b);
	}
	else
		row = r->routed;
	ExecClearTuple(row);
	slot_getallattrs(slot);
	for (int i = 0; i < desc->natts; i++)
	{
		int			from = r->source_of[i];

		row->tts_isnull[i] = from < 0 || slot->tts_isnull[from];
		row->tts_values[i] = row->tts_isnull[i] ? (Datum) 0 : slot->tts_values[from];
	}
	ExecStoreVirtualTuple(row);
	dst = row;
	if (r->proute)
	{
		/* the executor's routing, its map to the partition's columns */
		ResultRelInfo *part = ExecFindPartition(r->mtstate, r->root, r->proute, row, r->estate);
		TupleConversionMap *map = part->ri_RootToPartitionMap;

		b = BatchOf(r, part);
		dst = NextSlot(r, b);
		if (map)
			execute_attr_map_slot(map->attrMap, row, dst);
		else
			ExecCopySlot(dst, row);
		ResetPerTupleExprContext(r->estate);
	}
	CheckNotNull(b->rri->ri_RelationDesc, dst);
	ExecMaterializeSlot(dst);
	r->nrows++;
	r->bytes += ExecFetchSlotHeapTuple(dst, false, NULL)->t_len;
	if (b->nused == BULK_BATCH_ROWS || r->nrows == BULK_BATCH_ROWS || r->bytes >= BULK_BATCH_BYTES)
		FlushBatches(r);
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
	FlushBatches((BulkReceiver *) self);
}

static void
BulkDestroy(DestReceiver *self)
{
}

/*
 * StartBulkReceiver opens the target for the receiver: its indexes, and
 * for a partitioned target the executor's tuple routing, set up as COPY
 * FROM sets it up (a ModifyTableState without a plan)
 */
static void
StartBulkReceiver(BulkReceiver *r, LoadPlan *plan)
{
	HASHCTL		ctl;

	r->pub.receiveSlot = BulkReceive;
	r->pub.rStartup = BulkStartup;
	r->pub.rShutdown = BulkShutdown;
	r->pub.rDestroy = BulkDestroy;
	r->pub.mydest = DestNone;
	r->rel = table_open(plan->target_relid, NoLock);
	r->source_of = BulkColumnMap(plan, RelationGetDescr(r->rel));
	r->fill_indexes = plan->fill_indexes;
	if (r->source_of == NULL)
		elog(ERROR, "pg_pipeline's bulk load does not fit target %s", plan->target_ident);
	r->estate = CreateExecutorState();
	r->root = makeNode(ResultRelInfo);
	InitResultRelInfo(r->root, r->rel, 1, NULL, 0);
	ExecOpenIndices(r->root, false);
	if (r->rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE)
	{
		r->mtstate = makeNode(ModifyTableState);
		r->mtstate->ps.state = r->estate;
		r->mtstate->operation = CMD_INSERT;
		r->mtstate->mt_nrels = 1;
		r->mtstate->resultRelInfo = r->root;
		r->mtstate->rootResultRelInfo = r->root;
		r->proute = ExecSetupPartitionTupleRouting(r->estate, r->rel);
		r->routed = table_slot_create(r->rel, &r->estate->es_tupleTable);
	}
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(BulkBatch);
	ctl.hcxt = CurrentMemoryContext;
	r->batches = hash_create("pg_pipeline bulk batches", 16, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	r->batch_cxt = AllocSetContextCreate(CurrentMemoryContext, "pg_pipeline bulk batch",
										 ALLOCSET_DEFAULT_SIZES);
	r->slot_cxt = CurrentMemoryContext;
}

/* EndBulkReceiver ends each table's bulk insert and closes what the receiver opened */
static void
EndBulkReceiver(BulkReceiver *r)
{
	HASH_SEQ_STATUS seq;
	BulkBatch  *b;

	hash_seq_init(&seq, r->batches);
	while ((b = hash_seq_search(&seq)) != NULL)
	{
		for (int i = 0; b->build_after && i < b->rri->ri_NumIndices; i++)
			r->to_build = lappend_oid(r->to_build, RelationGetRelid(b->rri->ri_IndexRelationDescs[i]));
		for (int i = 0; i < b->nslots; i++)
			ExecDropSingleTupleTableSlot(b->slots[i]);
		FreeBulkInsertState(b->bistate);
		table_finish_bulk_insert(b->rri->ri_RelationDesc, TABLE_INSERT_SKIP_FSM);
	}
	hash_destroy(r->batches);
	if (r->proute)
		ExecCleanupTupleRouting(r->mtstate, r->proute);
	ExecCloseIndices(r->root);
	ExecResetTupleTable(r->estate->es_tupleTable, false);
	FreeExecutorState(r->estate);
	MemoryContextDelete(r->batch_cxt);
	table_close(r->rel, NoLock);
}

/* BuildIndexContext names, in an error of an index's build, the load it is part of */
static void
BuildIndexContext(void *arg)
{
	errcontext("building index \"%s\" after the rows of the initial load (docs/exactly-once.md)",
			   get_rel_name(*(Oid *) arg));
}

/*
 * BuildIndexesAfter builds each index of to_build, which holds none of the
 * rows just written, from its table, as REINDEX does: a new file, filled by
 * one sort, its definition, name and constraint kept. A duplicate fails
 * with 23505, an exclusion conflict with 23P01, with the message a row by
 * row fill gives (the build's own says it could not create the index).
 */
static void
BuildIndexesAfter(List *to_build)
{
	MemoryContext cxt = CurrentMemoryContext;
	ListCell   *lc;
	ErrorContextCallback callback;
	Oid			index = InvalidOid;

	callback.callback = BuildIndexContext;
	callback.arg = &index;
	callback.previous = error_context_stack;
	error_context_stack = &callback;
	PG_TRY();
	{
		foreach(lc, to_build)
		{
			ReindexParams params = {0};

			index = lfirst_oid(lc);
			/* (an index is as persistent as its table) */
			reindex_index(index, false, get_rel_persistence(index), &params);
		}
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		if (edata->constraint_name && edata->sqlerrcode == ERRCODE_UNIQUE_VIOLATION)
			edata->message = psprintf("duplicate key value violates unique constraint \"%s\"",
									  edata->constraint_name);
		else if (edata->constraint_name && edata->sqlerrcode == ERRCODE_EXCLUSION_VIOLATION)
			edata->message = psprintf("conflicting key value violates exclusion constraint \"%s\"",
									  edata->constraint_name);
		ReThrowError(edata);
	}
	PG_END_TRY();
	error_context_stack = callback.previous;
	CommandCounterIncrement();
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
	StartBulkReceiver(&r, plan);
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
	EndBulkReceiver(&r);
	CommandCounterIncrement();
	if (r.to_build != NIL)
		BuildIndexesAfter(r.to_build);
	return r.processed;
}
