/*-------------------------------------------------------------------------
 *
 * src/engine/parallel_load.c
 *
 * The leader of a parallel run (parallel_workers > 1, docs/parallel.md).
 * When the target is partitioned by the pipeline's partition_column and the
 * run may go parallel, the leader splits the window by target partition
 * (partition i goes to part i % parts: a unique key holds the partition
 * column, so every key lies in one part), starts one dynamic background
 * worker per part (workers/part_worker.c) and waits. Each part loads its
 * partitions in a transaction of its own, as the pipeline owner, with the
 * statements, checks, masks, quarantine and counters of a serial run
 * (parallel_part.c), then PREPAREs it as 'pg_pipeline:<pipeline>:<run>:
 * <part>' and reports its counts here through the DSM segment they share.
 *
 * Two-phase commit, presumed abort: a part that fails makes every part
 * roll back and fails the run as a serial failure would. When all are
 * prepared, the leader goes on as a serial run does (read window, checks,
 * watermark, run record, lineage, audit) in its own transaction; that
 * transaction's commit is the decision. Its commit callback tells the parts
 * to COMMIT PREPARED and waits until they did; an abort of it, or of the
 * subtransaction that holds the run, tells them to roll back. After a crash
 * the decision is read from the catalog: a part whose run is recorded as
 * succeeded is committed, any other rolled back (ResolvePreparedParts,
 * by the launcher's pass and by the next run of the pipeline).
 *
 * A run goes serial, with a NOTICE saying why, when its caller's
 * transaction wrote before it (the parts could not see those writes) or is
 * a transaction block or runs other statements sent with the run's (a
 * later statement of it that wrote the target, or read an index a part
 * built, would wait for the parts' prepared locks, which only that
 * transaction's commit releases: the deadlock detector cannot see such a
 * wait), when
 * the target is not partitioned by partition_column into plain partitions
 * of the column's type, the partition column is masked or converted, a set
 * check other than row_count would read the target, the target owes an
 * index, the run changed the target's columns, or no worker slot is free.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/twophase.h"
#include "access/xact.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "nodes/plannodes.h"
#include "partitioning/partdesc.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "tcop/pquery.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/partcache.h"
#include "utils/rel.h"
#include "utils/ruleutils.h"

#include "pipeline/engine.h"
#include "planner_internal.h"
#include "run_internal.h"

/* pipeline.parallel_pause: where a test stops the last part (docs/parallel.md) */
char	   *pipeline_parallel_pause = NULL;

/* The parallel run of this backend whose parts wait for its decision */
typedef struct ActiveParallelRun
{
	dsm_segment *seg;
	ParallelShared *sh;
	BackgroundWorkerHandle *handles[PIPELINE_MAX_PARALLEL_WORKERS];
	int			nstarted;
	SubTransactionId owner_subid;	/* the (sub)transaction whose fate is the run's */
} ActiveParallelRun;

static ActiveParallelRun *active_run = NULL;
static bool callbacks_registered = false;

/* ParallelLoadInit defines pipeline.parallel_pause, a superuser's test hook */
void
ParallelLoadInit(void)
{
	DefineCustomStringVariable("pipeline.parallel_pause",
							   "Test hook: where the last part of a parallel run waits for advisory lock 7428.",
							   "before_prepare or before_commit_prepared; empty: nowhere.",
							   &pipeline_parallel_pause, "", PGC_SUSET,
							   GUC_NOT_IN_SAMPLE | GUC_NO_SHOW_ALL, NULL, NULL, NULL);
}

/*
 * RequirePreparedTransactions refuses (55000) a parallel_workers the
 * server cannot prepare that many transactions for: at create_pipeline and
 * alter_pipeline (def NULL) and at every parallel run (the setting may
 * have changed since).
 */
void
RequirePreparedTransactions(PipelineDef *def, int workers)
{
	if (workers <= 1 || max_prepared_xacts >= workers)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("parallel_workers => %d needs max_prepared_transactions of at least %d", workers, workers),
			 def ? errdetail("Pipeline \"%s\" loads in %d parts, each a prepared transaction; max_prepared_transactions is %d.",
							 def->name, workers, max_prepared_xacts)
			 : errdetail("Each part of a parallel run is a prepared transaction; max_prepared_transactions is %d.",
						 max_prepared_xacts),
			 errhint("Set max_prepared_transactions to %d or more (it counts the parts of parallel runs that may run at once) and restart the server, or lower parallel_workers.",
					 workers)));
}

/* PartGid spells the global transaction id of a part (at most GIDSIZE) */
void
PartGid(char *gid, int64 pipeline_id, int64 run_id, int part)
{
	snprintf(gid, GIDSIZE, "pg_pipeline:%lld:%lld:%d", (long long) pipeline_id, (long long) run_id, part);
}

/* SerialBecause says why a run with parallel_workers loads serially; returns NIL */
static List *
SerialBecause(PipelineDef *def, const char *why)
{
	ereport(NOTICE,
			(errmsg("pipeline \"%s\" loads serially: %s", def->name, why),
			 errhint("See docs/parallel.md for what a parallel run needs.")));
	return NIL;
}

/*
 * PartitionsOfTarget returns the partitions of a target partitioned by the
 * partition column (a plain table each, the column's type as the key's), in
 * bound order, or NIL with *why set; the caller holds a lock on the target
 * that keeps partitions from being attached or detached.
 */
static List *
PartitionsOfTarget(LoadPlan *plan, const char **why)
{
	Relation	rel = table_open(plan->target_relid, NoLock);
	PartitionKey key;
	PartitionDesc desc;
	List	   *parts = NIL;
	AttrNumber	attnum;
	LoadColumn *col = NULL;

	*why = NULL;
	if (rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
		*why = "its target is not a partitioned table";
	else
	{
		key = RelationGetPartitionKey(rel);
		attnum = get_attnum(plan->target_relid, plan->def->partition_column);
		col = FindLoadColumn(plan->columns, plan->def->partition_column);
		if (key->partnatts != 1 || key->partattrs[0] != attnum)
			*why = "its target's partition key is not its partition column";
		else if (col == NULL || col->mask || col->convert || col->source_typid != key->parttypid[0])
			*why = "its partition column is masked, converted, or of another type in the source";
	}
	if (*why == NULL)
	{
		desc = RelationGetPartitionDesc(rel, false);
		for (int i = 0; i < desc->nparts; i++)
		{
			if (!desc->is_leaf[i])
			{
				*why = "its target has sub-partitioned partitions";
				break;
			}
			parts = lappend_oid(parts, desc->oids[i]);
		}
		if (*why == NULL && list_length(parts) < 2)
			*why = "its target has fewer than two partitions";
	}
	table_close(rel, NoLock);
	return *why ? NIL : parts;
}

/* CoversEveryValue: a hash-partitioned target, or one with a default partition */
static bool
CoversEveryValue(Oid target_relid)
{
	Relation	rel = table_open(target_relid, NoLock);
	bool		covers = RelationGetPartitionKey(rel)->strategy == PARTITION_STRATEGY_HASH ||
		OidIsValid(get_default_oid_from_partdesc(RelationGetPartitionDesc(rel, false)));

	table_close(rel, NoLock);
	return covers;
}

/*
 * SentWithOtherStatements tells whether the statement being run came in
 * one string with others that run in its transaction without making it a
 * block, as pg_cron's background workers run a job's command: a later one
 * that wrote the target, or read an index a part built, would wait for ever
 * for the locks the run's prepared parts hold until that transaction
 * commits. (A simple query's statements make an implicit block; each of
 * the extended protocol's is sent alone.) It parses the statement's text
 * again, so only a run that could go parallel asks.
 */
static bool
SentWithOtherStatements(void)
{
	if (ActivePortal == NULL || ActivePortal->sourceText == NULL)
		return false;
	return list_length(pg_parse_query(ActivePortal->sourceText)) > 1;
}

/*
 * ParallelApplies tells whether a run loads in parts, and which partitions
 * (see the header); it takes SHARE UPDATE EXCLUSIVE on the target, which
 * keeps its partitions as they are until the run's transaction ends.
 */
static List *
ParallelApplies(RunState *rs, LoadPlan *plan)
{
	PipelineDef *def = rs->rec.def;
	const char *why = NULL;
	ListCell   *lc;
	List	   *parts;

	if (def->parallel_workers <= 1 || plan->rollup || plan->snapshot || plan->replay ||
		plan->distributed || plan->incremental == NULL || def->partition_column == NULL)
		return NIL;
	RequirePreparedTransactions(def, def->parallel_workers);
	if (!rs->may_go_parallel)
		return SerialBecause(def, "the transaction it runs in wrote before it, and its part workers could not see that");
	if (rs->in_transaction_block)
		return SerialBecause(def, "it runs in a transaction block, whose later statements could wait for ever for the locks its own prepared parts hold until that transaction commits");
	if (SentWithOtherStatements())
		return SerialBecause(def, "it was sent with other statements that run in its transaction (a pg_cron job's command, run by a background worker), which could wait for ever for the locks its own prepared parts hold until that transaction commits");
	if (def->target_index_pending)
		return SerialBecause(def, "its target owes the index it was created without");
	if (rs->rec.schema_changes != NULL)
		return SerialBecause(def, "this run changed its target's columns");
	foreach(lc, plan->set_checks)
		if (((CheckDef *) lfirst(lc))->kind != CHECK_ROW_COUNT)
			return SerialBecause(def, "a set check reads the target, which holds the parts only once they commit");
	if (list_length(plan->row_checks) > PARALLEL_MAX_CHECKS)
		return SerialBecause(def, "it has too many row checks to report from its parts");
	LockRelationOid(plan->target_relid, ShareUpdateExclusiveLock);
	parts = PartitionsOfTarget(plan, &why);
	if (why)
		return SerialBecause(def, why);
	return parts;
}

/* PartsFinal: every started part has ended its transaction as decided, or exited */
static bool
PartsFinal(ActiveParallelRun *run, bool prepared_is_final)
{
	for (int i = 0; i < run->nstarted; i++)
	{
		int			state = run->sh->slots[i].state;
		pid_t		pid;

		pg_read_barrier();
		if (state == PART_FINISHED || state == PART_FAILED || state == PART_EMPTY ||
			(prepared_is_final && state == PART_PREPARED))
			continue;
		if (GetBackgroundWorkerPid(run->handles[i], &pid) == BGWH_STOPPED)
			continue;			/* gone: what it prepared is the recovery's */
		return false;
	}
	return true;
}

/*
 * WaitForParts waits on the latch until PartsFinal. Interruptible, it
 * takes interrupts and exits when the postmaster dies; in a transaction
 * callback (not interruptible) it only stops waiting then: exiting there
 * would abort a committed transaction.
 */
static void
WaitForParts(ActiveParallelRun *run, bool prepared_is_final, bool interruptible)
{
	while (!PartsFinal(run, prepared_is_final))
	{
		int			rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT |
								   (interruptible ? WL_EXIT_ON_PM_DEATH : WL_POSTMASTER_DEATH),
								   100, PG_WAIT_EXTENSION);

		if (rc & WL_POSTMASTER_DEATH)
			return;
		ResetLatch(MyLatch);
		if (interruptible)
			CHECK_FOR_INTERRUPTS();
	}
}

/*
 * FinishParallelRun hands the decision to the parts and waits until each
 * has committed or rolled back its prepared transaction (a part still
 * loading when the run aborts is terminated), then lets the run go. It
 * runs in transaction callbacks, so it never raises an error.
 */
static void
FinishParallelRun(PartDecision decision)
{
	ActiveParallelRun *run = active_run;

	if (run == NULL)
		return;
	active_run = NULL;
	HOLD_INTERRUPTS();
	run->sh->decision = decision;
	pg_write_barrier();
	for (int i = 0; i < run->nstarted; i++)
	{
		PartSlot   *slot = &run->sh->slots[i];

		if (decision == PARTS_ABORT && slot->state < PART_PREPARED)
			TerminateBackgroundWorker(run->handles[i]);
		else if (slot->latch)
			SetLatch(slot->latch);
	}
	WaitForParts(run, false, false);
	dsm_detach(run->seg);
	for (int i = 0; i < run->nstarted; i++)
		pfree(run->handles[i]);
	pfree(run);
	RESUME_INTERRUPTS();
}

/* The decision follows the top transaction's end */
static void
ParallelXactCallback(XactEvent event, void *arg)
{
	if (active_run == NULL)
		return;
	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot PREPARE a transaction that made a parallel run of a pipeline"),
					 errdetail("The run's parts are prepared transactions that commit with it."),
					 errhint("Commit it, or set parallel_workers => 1.")));
			break;
		case XACT_EVENT_COMMIT:
			FinishParallelRun(PARTS_COMMIT);
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			FinishParallelRun(PARTS_ABORT);
			break;
		default:
			break;
	}
}

/* ... and the fate of the subtransaction that holds the run */
static void
ParallelSubXactCallback(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid, void *arg)
{
	if (active_run == NULL || mySubid != active_run->owner_subid)
		return;
	if (event == SUBXACT_EVENT_COMMIT_SUB)
		active_run->owner_subid = parentSubid;
	else if (event == SUBXACT_EVENT_ABORT_SUB)
		FinishParallelRun(PARTS_ABORT);
}

/* What CalledAlone looks for in a statement: calls of the function itself */
typedef struct AloneContext
{
	Oid			self;
	int			calls;
} AloneContext;

/* NotAloneFunction: a function other than the call's own and a built-in that is not volatile */
static bool
NotAloneFunction(Oid funcid, void *context)
{
	AloneContext *cx = context;

	if (funcid == cx->self)
	{
		cx->calls++;
		return false;
	}
	return funcid >= FirstGenbkiObjectId || func_volatile(funcid) == PROVOLATILE_VOLATILE;
}

/* NotAlone: an expression that could do more than call the function and built-ins */
static bool
NotAlone(Node *node, AloneContext *cx)
{
	if (node == NULL)
		return false;
	if (IsA(node, SubLink) || IsA(node, SubPlan) || IsA(node, AlternativeSubPlan) ||
		check_functions_in_node(node, NotAloneFunction, cx))
		return true;
	return expression_tree_walker(node, NotAlone, cx);
}

/*
 * CalledAlone tells whether the function fcinfo calls is all its
 * transaction does: outside a transaction block, the top-level statement
 * is a CALL of it, or a SELECT of it once, without a table, a subquery or
 * a function but built-in ones. Only such a run's parts build indexes
 * after their rows: what they lock ACCESS EXCLUSIVE stays locked, prepared,
 * until the leader's transaction commits, and that transaction, were it to
 * go on and read the target, would wait for its own parts for ever. (A
 * statement sent with others that share its transaction is not seen here:
 * ParallelApplies makes its run serial, SentWithOtherStatements.)
 */
bool
CalledAlone(FunctionCallInfo fcinfo)
{
	PlannedStmt *stmt;
	AloneContext cx = {fcinfo->flinfo->fn_oid, 0};
	ListCell   *lc;

	if (IsTransactionBlock() || ActivePortal == NULL || list_length(ActivePortal->stmts) != 1)
		return false;
	stmt = linitial_node(PlannedStmt, ActivePortal->stmts);
	if (stmt->commandType == CMD_UTILITY)
		return IsA(stmt->utilityStmt, CallStmt) &&
			((CallStmt *) stmt->utilityStmt)->funcexpr->funcid == cx.self;
	if (stmt->commandType != CMD_SELECT || !IsA(stmt->planTree, Result) ||
		stmt->planTree->lefttree != NULL || stmt->planTree->initPlan != NIL || stmt->subplans != NIL)
		return false;
	foreach(lc, stmt->rtable)
		if (lfirst_node(RangeTblEntry, lc)->rtekind != RTE_RESULT)
			return false;
	if (NotAlone((Node *) stmt->planTree->targetlist, &cx) || NotAlone((Node *) stmt->planTree->qual, &cx) ||
		NotAlone(((Result *) stmt->planTree)->resconstantqual, &cx))
		return false;
	return cx.calls == 1;
}

/* ParallelPauseSetting reads pipeline.parallel_pause */
static ParallelPause
ParallelPauseSetting(void)
{
	if (pipeline_parallel_pause == NULL || *pipeline_parallel_pause == '\0')
		return PAUSE_NONE;
	if (strcmp(pipeline_parallel_pause, "before_prepare") == 0)
		return PAUSE_BEFORE_PREPARE;
	if (strcmp(pipeline_parallel_pause, "before_commit_prepared") == 0)
		return PAUSE_BEFORE_COMMIT_PREPARED;
	return PAUSE_NONE;
}

/*
 * StartParts creates the shared segment (with the leader's settings,
 * saved by SaveLeaderSettings) and starts one part worker per part;
 * returns false, with every started part told to stop, when a worker
 * cannot be registered.
 */
static bool
StartParts(RunState *rs, LoadPlan *plan, List *partitions, int nparts, bool has_lower,
		   Datum lower, Datum upper, const char *settings)
{
	Size		size = offsetof(ParallelShared, partitions) + sizeof(Oid) * list_length(partitions);
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
	ActiveParallelRun *run = palloc0(sizeof(ActiveParallelRun));
	ParallelShared *sh;
	ListCell   *lc;

	run->seg = dsm_create(size, 0);
	dsm_pin_mapping(run->seg);
	sh = dsm_segment_address(run->seg);
	memset(sh, 0, size);
	sh->database = MyDatabaseId;
	sh->pipeline_id = rs->rec.def->id;
	sh->run_id = rs->rec.run_id;
	sh->leader_pid = MyProcPid;
	sh->leader_latch = &MyProc->procLatch;
	sh->pause = ParallelPauseSetting();
	sh->nparts = nparts;
	sh->nchecks = list_length(plan->row_checks);
	sh->has_lower = has_lower;
	sh->build_indexes = rs->ends_transaction;
	if (has_lower)
		strlcpy(sh->lower, WatermarkToText(lower, plan->incremental->typid), PARALLEL_TEXT);
	strlcpy(sh->upper, WatermarkToText(upper, plan->incremental->typid), PARALLEL_TEXT);
	memcpy(sh->settings, settings, PARALLEL_SETTINGS);
	sh->npartitions = list_length(partitions);
	foreach(lc, partitions)
		sh->partitions[foreach_current_index(lc)] = lfirst_oid(lc);
	run->sh = sh;
	run->owner_subid = GetCurrentSubTransactionId();
	active_run = run;
	if (!callbacks_registered)
	{
		RegisterXactCallback(ParallelXactCallback, NULL);
		RegisterSubXactCallback(ParallelSubXactCallback, NULL);
		callbacks_registered = true;
	}
	for (int i = 0; i < nparts; i++)
	{
		BackgroundWorker worker;

		InitPipelineWorker(&worker, "pipeline_part_worker_main", "pg_pipeline part",
						   psprintf("pg_pipeline part %d of run %lld", i, (long long) rs->rec.run_id));
		worker.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(run->seg));
		memcpy(worker.bgw_extra, &i, sizeof(int));
		worker.bgw_notify_pid = MyProcPid;
		if (!RegisterDynamicBackgroundWorker(&worker, &run->handles[i]))
			break;
		run->nstarted++;
	}
	MemoryContextSwitchTo(old);
	if (run->nstarted == nparts)
		return true;
	FinishParallelRun(PARTS_ABORT);
	return false;
}

/* ThrowPartError re-raises the error a part failed with, as a serial run would have */
static void
ThrowPartError(PartSlot *slot)
{
	if (slot->failed_check[0] != '\0')
		KeepFailedCheckText(slot->failed_check);
	ereport(ERROR,
			(errcode(slot->sqlerrcode),
			 errmsg("%s", slot->message),
			 slot->detail[0] ? errdetail("%s", slot->detail) : 0,
			 slot->hint[0] ? errhint("%s", slot->hint) : 0));
}

/*
 * CheckUnroutedRows does, while the parts load, what a serial run's INSERT
 * into the partitioned target would do with window rows no partition takes
 * (only a target partitioned by list or range without a default partition
 * has such values): a row with a NULL key is counted as read and rejected,
 * any other fails the run with 23514.
 */
static void
CheckUnroutedRows(LoadPlan *plan, List *partitions, bool has_lower, Datum lower, Datum upper,
				  LoadCounts *counts)
{
	StringInfoData sql;
	Oid			types[2] = {plan->incremental->typid, plan->incremental->typid};
	Datum		values[2] = {has_lower ? lower : upper, upper};
	ListCell   *lc;
	bool		isnull;
	bool		first = true;
	int64		null_keys;
	int64		unrouted;
	char	   *counted;

	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT pg_catalog.format('%s %s', pg_catalog.count(*) FILTER (WHERE ");
	foreach(lc, plan->columns)
	{
		LoadColumn *col = lfirst(lc);

		if (!col->is_key)
			continue;
		appendStringInfo(&sql, "%s%s IS NULL", first ? "" : " OR ", Col("s", col->name));
		first = false;
	}
	appendStringInfo(&sql, "%s), pg_catalog.count(*)) FROM %s AS s", first ? "false" : "", plan->source_ident);
	AppendWindowPredicate(&sql, plan, "s", has_lower, true, "<=");
	appendStringInfoString(&sql, " AND NOT coalesce(");
	foreach(lc, partitions)
		appendStringInfo(&sql, "%s(%s)", foreach_current_index(lc) > 0 ? " OR " : "",
						 PartitionPredicate(lfirst_oid(lc), "s"));
	appendStringInfoString(&sql, ", false)");
	counted = TextDatumGetCString(QueryAsOwner(plan->def, sql.data, 2, types, values, &isnull));
	if (sscanf(counted, INT64_FORMAT " " INT64_FORMAT, &null_keys, &unrouted) != 2)
		elog(ERROR, "pg_pipeline could not count the rows no partition takes: %s", counted);
	counts->read += null_keys;
	counts->rejected += null_keys;
	if (unrouted > null_keys)
		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("no partition of relation \"%s\" found for row", get_rel_name(plan->target_relid)),
				 errdetail("Pipeline \"%s\": %lld rows of the window have a %s no partition of target %s takes.",
						   plan->def->name, (long long) (unrouted - null_keys),
						   quote_identifier(plan->def->partition_column), plan->target_ident),
				 errhint("Create the partition these rows belong in (or a default partition), then run the pipeline again.")));
}

/*
 * RunParallelLoad loads the window (lower, upper] in parts when the run
 * may (see the header) and returns true with the parts prepared and their
 * counts added to the run's; false when the caller must load serially.
 * A failed part fails the run here, after every part rolled back.
 */
bool
RunParallelLoad(RunState *rs, LoadPlan *plan, bool has_lower, Datum lower, Datum upper)
{
	List	   *partitions = ParallelApplies(rs, plan);
	char		settings[PARALLEL_SETTINGS];
	int			nparts;
	ActiveParallelRun *run;
	PartSlot   *failed = NULL;
	ListCell   *lc;

	if (partitions == NIL)
		return false;
	nparts = Min(rs->rec.def->parallel_workers, list_length(partitions));
	/* the DSM ends with the window bounds as text; refuse what does not fit */
	if ((has_lower && strlen(WatermarkToText(lower, plan->incremental->typid)) >= PARALLEL_TEXT) ||
		strlen(WatermarkToText(upper, plan->incremental->typid)) >= PARALLEL_TEXT)
	{
		(void) SerialBecause(rs->rec.def, "its window's bounds are too long to hand to its parts");
		return false;
	}
	if (!SaveLeaderSettings(settings, PARALLEL_SETTINGS))
	{
		(void) SerialBecause(rs->rec.def, "its session's settings are too long to hand to its parts");
		return false;
	}
	if (!StartParts(rs, plan, partitions, nparts, has_lower, lower, upper, settings))
	{
		(void) SerialBecause(rs->rec.def, "no background worker slot was free for its parts");
		return false;
	}
	run = active_run;
	if (!CoversEveryValue(plan->target_relid))
		CheckUnroutedRows(plan, partitions, has_lower, lower, upper, &rs->rec.counts);
	WaitForParts(run, true, true);
	for (int i = 0; i < nparts; i++)
	{
		PartSlot   *slot = &run->sh->slots[i];

		if (slot->state == PART_FAILED)
		{
			failed = slot;
			break;
		}
		if (slot->state != PART_PREPARED && slot->state != PART_EMPTY)
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("part %d of run %lld of pipeline \"%s\" exited before it was prepared",
							i, (long long) rs->rec.run_id, rs->rec.def->name),
					 errdetail("Its worker ended without reporting; every part of the run rolls back."),
					 errhint("Look in the server log for why, then run the pipeline again.")));
	}
	if (failed)
		ThrowPartError(failed);	/* the subtransaction's abort rolls every part back */
	for (int i = 0; i < nparts; i++)
	{
		PartSlot   *slot = &run->sh->slots[i];
		LoadCounts *c = &rs->rec.counts;

		c->read += slot->counts.read;
		c->inserted += slot->counts.inserted;
		c->updated += slot->counts.updated;
		c->deleted += slot->counts.deleted;
		c->unchanged += slot->counts.unchanged;
		c->rejected += slot->counts.rejected;
		c->quarantined += slot->counts.quarantined;
		c->forgotten += slot->counts.forgotten;
		foreach(lc, plan->row_checks)
			((CheckDef *) lfirst(lc))->failed_rows += slot->check_failed[foreach_current_index(lc)];
	}
	return true;
}
