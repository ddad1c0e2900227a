/*-------------------------------------------------------------------------
 *
 * src/engine/initial_load.c
 *
 * The initial load. When a load that MERGEs (merge and full modes, append
 * with a key) finds its target empty -- the first run, a run after reset
 * with a truncated target, a full rebuild -- the MERGE has nothing to
 * match: every row it keeps is inserted. So it is replaced by one INSERT
 * ... SELECT of the same rows (the window, de-duplicated with DISTINCT ON
 * when the source may hold several rows per key, masked, converted, gated
 * by the row checks and counted by the row counters exactly as for the
 * MERGE, without the rows flagged deleted), which skips the join against
 * the target; and the index on the incremental column that a pipeline owes
 * the target it created is built after the data, by one sort, rather than
 * row by row (docs/exactly-once.md, "The initial load").
 *
 * Whether the target is empty is decided under the SHARE ROW EXCLUSIVE
 * lock the load holds on it from before the decision to the end of its
 * transaction, so no other writer can add a row in between, with a
 * snapshot taken after that lock was granted: a writer that committed
 * while the run waited for the lock is seen, and the MERGE is kept. A
 * table never written to, or truncated, has no pages; one with rows shows
 * one at the start of a scan. A partitioned target is empty when every
 * partition is: a writer of a partition does not lock the parent, so the
 * run locks every partition SHARE ROW EXCLUSIVE too before it decides, and
 * its INSERT is routed to them. Targets that keep the MERGE whatever they
 * hold: a table with inheritance children (a writer of a child does not
 * lock the parent, and nothing routes an INSERT to it), a Citus table
 * (distributed_load.c), a replay's target, a snapshot pipeline's history
 * (snapshot_load.c: its MERGE computes versions), a target with rules (MERGE
 * refuses them, an INSERT would apply them), and one with statement-level
 * UPDATE or DELETE triggers (the MERGE fires them, an INSERT would not).
 *
 * Indexes the target already has are never dropped: rebuilding a user's
 * index from its definition would lose what the pipeline does not know of
 * it. What the pipeline itself owes the target it created, until the
 * first load, is built after the data: the index on the incremental column
 * (BuildOwedTargetIndex), and the primary key when that first load can lock
 * the empty table ACCESS EXCLUSIVE without waiting (DeferPrimaryKey). When
 * nothing but its rows and their index entries is due from the INSERT,
 * bulk_insert.c writes the rows in batches and builds the indexes it can
 * lock at once after them, each in a new file as REINDEX builds it (name,
 * definition and constraint kept); the INSERT, and the bulk path for an
 * index someone holds, fill them row by row. The index DDL is a run's own
 * (RunIndexDdl): the lineage event trigger skips it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/dependency.h"
#include "catalog/pg_class.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_inherits.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/ruleutils.h"
#include "utils/snapmgr.h"

#include "pipeline/engine.h"
#include "planner_internal.h"

/* HasNoVisibleRow tells whether a table holds no row a fresh snapshot sees */
static bool
HasNoVisibleRow(Relation rel)
{
	Snapshot	snapshot;
	TableScanDesc scan;
	TupleTableSlot *slot;
	bool		found;

	if (RelationGetNumberOfBlocks(rel) == 0)
		return true;
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	scan = table_beginscan(rel, snapshot, 0, NULL);
	slot = table_slot_create(rel, NULL);
	found = table_scan_getnextslot(scan, ForwardScanDirection, slot);
	ExecDropSingleTupleTableSlot(slot);
	table_endscan(scan);
	UnregisterSnapshot(snapshot);
	return !found;
}

/*
 * PartitionsHoldNoRow tells whether no partition of a partitioned table,
 * at any level, holds a row a fresh snapshot sees; a foreign partition
 * counts as holding rows (nothing tells).
 */
static bool
PartitionsHoldNoRow(Oid relid)
{
	ListCell   *lc;

	foreach(lc, find_all_inheritors(relid, AccessShareLock, NULL))
	{
		Oid			part = lfirst_oid(lc);
		char		kind = get_rel_relkind(part);
		Relation	rel;
		bool		empty;

		if (kind == RELKIND_PARTITIONED_TABLE)
			continue;
		if (kind != RELKIND_RELATION)
			return false;
		rel = table_open(part, NoLock);
		empty = HasNoVisibleRow(rel);
		table_close(rel, NoLock);
		if (!empty)
			return false;
	}
	return true;
}

/* FiresOnUpdateOrDelete tells whether a MERGE would fire statement triggers an INSERT would not */
static bool
FiresOnUpdateOrDelete(Relation rel)
{
	TriggerDesc *t = rel->trigdesc;

	return t != NULL &&
		(t->trig_update_before_statement || t->trig_update_after_statement ||
		 t->trig_delete_before_statement || t->trig_delete_after_statement);
}

/*
 * InitialLoadApplies tells whether the load step of stmts may be an
 * initial load now: it MERGEs into an ordinary table (see the header) that
 * holds no row. A run asks under its lock on the target; explain asks
 * without one, for what a run would do now.
 */
bool
InitialLoadApplies(LoadPlan *plan, LoadStatements *stmts)
{
	Relation	rel;
	bool		applies;

	/* a history's MERGE also closes versions: no INSERT can stand for it */
	if (!stmts->load_is_merge || stmts->snapshot || plan->replay || plan->distributed)
		return false;
	rel = table_open(plan->target_relid, AccessShareLock);
	if (rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE)
		applies = !rel->rd_rel->relhasrules && !FiresOnUpdateOrDelete(rel) &&
			PartitionsHoldNoRow(plan->target_relid);
	else
		applies = rel->rd_rel->relkind == RELKIND_RELATION && !rel->rd_rel->relhassubclass &&
			!rel->rd_rel->relhasrules && !FiresOnUpdateOrDelete(rel) && HasNoVisibleRow(rel);
	table_close(rel, AccessShareLock);
	return applies;
}

/*
 * AppendInitialRows appends the SELECT of the rows an initial load
 * inserts: the rows the MERGE would read (AppendSourceRows, with its
 * counters, gate, masks and conversions), without those flagged deleted,
 * which the MERGE would not insert. Their filter stays above the rows'
 * query (OFFSET 0), so that the window counter still sees every row.
 */
static void
AppendInitialRows(StringInfo buf, LoadPlan *plan, bool has_lower, bool has_upper)
{
	AppendInsertSelect(buf, plan, "s");
	appendStringInfoString(buf, " FROM (");
	AppendSourceRows(buf, plan, has_lower, has_upper);
	if (plan->delete_flag)
		appendStringInfo(buf, " OFFSET 0) AS s WHERE %s IS NOT TRUE",
						 Col("s", plan->delete_flag->name));
	else
		appendStringInfoString(buf, ") AS s");
}

/* BuildInitialInsert builds the INSERT of an initial load */
char *
BuildInitialInsert(LoadPlan *plan, bool has_lower, bool has_upper)
{
	StringInfoData buf;

	initStringInfo(&buf);
	AppendInsertHead(&buf, plan);
	AppendInitialRows(&buf, plan, has_lower, has_upper);
	return buf.data;
}

/* IsReferenced tells whether a foreign key of some table references relid */
static bool
IsReferenced(Oid relid)
{
	Relation	rel = table_open(ConstraintRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	bool		found;

	ScanKeyInit(&key, Anum_pg_constraint_confrelid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 1, &key);
	found = HeapTupleIsValid(systable_getnext(scan));
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * DeferPrimaryKey sets the statements that drop the target's primary key
 * before an initial load and add it back, as it was, after the data: one
 * sort instead of an insertion per row. Only for the first load of a
 * target the pipeline created (it owes the target its indexes), when the
 * run can take ACCESS EXCLUSIVE on it at once: from then to its commit
 * nobody sees the table, so nobody sees it without its key. Whoever holds
 * a lock on it then (a reader) keeps the key in place; so do a foreign key
 * that references it, an index used as replica identity, and a target its
 * pipeline's owner no longer owns.
 */
static void
DeferPrimaryKey(LoadPlan *plan, LoadStatements *stmts)
{
	Relation	rel;
	Oid			key_index;
	Oid			key_constraint = InvalidOid;

	if (!plan->def->target_index_pending || !pg_class_ownercheck(plan->target_relid, plan->def->owner) ||
		IsReferenced(plan->target_relid))
		return;
	/* the load's lock keeps the key as it is read here: no DDL can change it */
	rel = table_open(plan->target_relid, NoLock);
	key_index = RelationGetPrimaryKeyIndex(rel);
	if (OidIsValid(key_index) && rel->rd_rel->relreplident != REPLICA_IDENTITY_INDEX)
		key_constraint = get_index_constraint(key_index);
	table_close(rel, NoLock);
	if (!OidIsValid(key_constraint) ||
		!ConditionalLockRelationOid(plan->target_relid, AccessExclusiveLock))
		return;
	stmts->drop_key = psprintf("ALTER TABLE %s DROP CONSTRAINT %s", plan->target_ident,
							   quote_identifier(get_constraint_name(key_constraint)));
	stmts->add_key = pg_get_constraintdef_command(key_constraint);
}

/*
 * ChooseInitialLoad is the hook of ExecuteStatements: called under the
 * load's lock on the target, right before the load statement, it returns
 * the statements of an initial load when one applies (with the primary key
 * deferred when it may be), else stmts.
 */
LoadStatements *
ChooseInitialLoad(LoadPlan *plan, LoadStatements *stmts, bool has_lower, bool has_upper)
{
	LoadStatements *initial;

	/*
	 * A writer of a partition does not lock the parent: the run locks every
	 * partition as it locked the target before it decides they are empty
	 */
	if (get_rel_relkind(plan->target_relid) == RELKIND_PARTITIONED_TABLE)
		(void) find_all_inheritors(plan->target_relid, ShareRowExclusiveLock, NULL);
	if (!InitialLoadApplies(plan, stmts))
		return stmts;
	initial = palloc(sizeof(LoadStatements));
	*initial = *stmts;
	initial->load = BuildInitialInsert(plan, has_lower, has_upper);
	initial->load_is_merge = false;
	initial->initial_load = true;
	DeferPrimaryKey(plan, initial);
	if (BulkInsertFits(plan))
	{
		StringInfoData rows;

		initStringInfo(&rows);
		AppendInitialRows(&rows, plan, has_lower, has_upper);
		initial->bulk_rows = rows.data;
	}
	return initial;
}

/* RunInitialLoadStatement runs the drop or the add of a deferred primary key, if any */
void
RunInitialLoadStatement(const char *sql)
{
	if (sql != NULL)
		RunIndexDdl(sql);
}

/*
 * OwedTargetIndex returns the CREATE INDEX a pipeline owes the target it
 * created (on its incremental column, for the pipelines that read the
 * target incrementally), or NULL when it owes none: it was built, the
 * target has an index that leads with the column, or the column is the
 * key (whose primary key serves).
 */
char *
OwedTargetIndex(LoadPlan *plan)
{
	PipelineDef *def = plan->def;

	if (!def->target_index_pending || plan->incremental == NULL ||
		(list_length(def->unique_key) == 1 &&
		 strcmp(linitial(def->unique_key), plan->incremental->name) == 0) ||
		SourceHasIndexOn(plan->target_relid, plan->incremental->name))
		return NULL;
	return psprintf("CREATE INDEX ON %s (%s)", plan->target_ident,
					quote_identifier(plan->incremental->name));
}

/*
 * BuildOwedTargetIndex builds, after a run's load, the index the pipeline
 * owes its target, as the pipeline's owner, and marks def as owing none
 * any more (the caller stores that with the watermark); returns whether it
 * owed one. An owner who no longer owns the target cannot build it: the
 * index is then left to the table's owner, with a NOTICE that says how.
 */
bool
BuildOwedTargetIndex(LoadPlan *plan)
{
	PipelineDef *def = plan->def;
	char	   *sql;

	if (!def->target_index_pending)
		return false;
	sql = OwedTargetIndex(plan);
	if (sql != NULL && !pg_class_ownercheck(plan->target_relid, def->owner))
		ereport(NOTICE,
				(errmsg("the index on \"%s\" of target %s was not created", plan->incremental->name,
						plan->target_ident),
				 errdetail("Pipeline \"%s\" created the target, but its owner no longer owns it.", def->name),
				 errhint("%s;", sql)));
	else if (sql != NULL)
	{
		OwnerContext ctx;

		EnterOwnerContext(&ctx, def->owner);
		RunIndexDdl(sql);
		LeaveOwnerContext(&ctx);
	}
	def->target_index_pending = false;
	return true;
}
