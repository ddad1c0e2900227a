/*-------------------------------------------------------------------------
 *
 * src/engine/load_step.c
 *
 * The data work of one run, each piece as the pipeline's owner through
 * EnterOwnerContext: reading the source's high-water mark (rows at
 * +infinity kept out of it), waiting for the writers in flight on the
 * source's base tables, the window's lower bound with a lookback, and one
 * load step (the statements of planner.c with the window as parameters,
 * and their exact counts; into a Citus table, distributed_load.c's).
 * engine.c drives them through a run.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "pipeline/engine.h"
#include "run_internal.h"

/* QueryAsOwner runs one data query as the pipeline owner; returns datum 1 */
Datum
QueryAsOwner(PipelineDef *def, const char *sql, int nargs, Oid *types,
			 Datum *values, bool *isnull)
{
	OwnerContext ctx;
	int			rc;
	Datum		result = (Datum) 0;

	EnterOwnerContext(&ctx, def->owner);
	/* not read-only: each query takes a fresh snapshot under READ COMMITTED */
	rc = SPI_execute_with_args(sql, nargs, types, values, NULL, false, 1);
	LeaveOwnerContext(&ctx);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "pg_pipeline query failed: %s", SPI_result_code_string(rc));
	*isnull = true;
	if (SPI_processed > 0)
		result = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, isnull);
	return result;
}

/*
 * The high-water-mark statements of the pipelines this backend ran lately,
 * each prepared once (a run that finds nothing new is little else), in a
 * small cache of slots chosen by pipeline id. A slot is reused when its
 * statement's text or owner differ; the plan cache re-plans a kept
 * statement when what it reads changes.
 */
#define HWM_PLAN_SLOTS 32

typedef struct KeptHighWaterPlan
{
	int64		pipeline_id;
	Oid			owner;
	char	   *sql;			/* in TopMemoryContext */
	SPIPlanPtr	plan;
} KeptHighWaterPlan;

static KeptHighWaterPlan hwm_plans[HWM_PLAN_SLOTS];

/*
 * QueryHighWaterAsOwner runs a pipeline's high-water-mark statement (no
 * parameters) as its owner, through the kept plan of its slot; returns
 * datum 1 of its one row.
 */
static Datum
QueryHighWaterAsOwner(PipelineDef *def, const char *sql, bool *isnull)
{
	KeptHighWaterPlan *slot = &hwm_plans[(uint64) def->id % HWM_PLAN_SLOTS];
	OwnerContext ctx;
	int			rc;

	EnterOwnerContext(&ctx, def->owner);
	if (slot->plan == NULL || slot->pipeline_id != def->id || slot->owner != def->owner ||
		strcmp(slot->sql, sql) != 0)
	{
		SPIPlanPtr	plan = SPI_prepare(sql, 0, NULL);

		if (plan == NULL)
			elog(ERROR, "pg_pipeline could not prepare: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		if (slot->plan)
		{
			SPI_freeplan(slot->plan);
			pfree(slot->sql);
		}
		slot->plan = plan;
		slot->sql = MemoryContextStrdup(TopMemoryContext, sql);
		slot->pipeline_id = def->id;
		slot->owner = def->owner;
	}
	/* not read-only: a fresh snapshot under READ COMMITTED */
	rc = SPI_execute_plan(slot->plan, NULL, NULL, false, 1);
	LeaveOwnerContext(&ctx);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "pg_pipeline query failed: %s", SPI_result_code_string(rc));
	*isnull = true;
	if (SPI_processed > 0)
		return SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, isnull);
	return (Datum) 0;
}

/*
 * ReadHighWaterMark reads the greatest incremental value in the source, as
 * the owner. Rows at +infinity never become the mark: they would put the
 * watermark past every later row and stop the pipeline without a failure.
 * They stay in the source, are not loaded, and are counted as read and
 * rejected by the run (docs/exactly-once.md), with a WARNING naming them.
 */
Datum
ReadHighWaterMark(LoadPlan *plan, bool *isnull, LoadCounts *counts)
{
	PipelineDef *def = plan->def;
	Oid			typid = plan->incremental->typid;
	Datum		hwm = QueryHighWaterAsOwner(def, BuildHighWaterQuery(plan), isnull);
	bool		count_null;
	int64		at_infinity;

	if (*isnull || !WatermarkIsPlusInfinity(hwm, typid))
		return hwm;
	at_infinity = DatumGetInt64(QueryAsOwner(def, BuildInfiniteRowsQuery(plan), 0, NULL,
											 NULL, &count_null));
	counts->read += at_infinity;
	counts->rejected += at_infinity;
	ereport(WARNING,
			(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
			 errmsg("pipeline \"%s\" did not load %lld source rows whose \"%s\" is infinity",
					def->name, (long long) at_infinity, plan->incremental->name),
			 errdetail("Source %s: a row at infinity would move the watermark past every later row. Such rows are counted as rejected by every run until they change.",
					   plan->source_ident),
			 errhint("Give these rows a finite %s in the source, or delete them.",
					 quote_identifier(plan->incremental->name))));
	return QueryAsOwner(def, BuildFiniteHighWaterQuery(plan), 0, NULL, NULL, isnull);
}

/*
 * WaitForSourceWriters waits for every transaction that holds a lock
 * conflicting with SHARE on a base table of the source (that is, every
 * transaction that has written to it and not yet ended), the way CREATE
 * INDEX CONCURRENTLY waits for writers.
 */
void
WaitForSourceWriters(LoadPlan *plan)
{
	List	   *tags = NIL;
	ListCell   *lc;

	foreach(lc, plan->base_relids)
	{
		LOCKTAG    *tag = palloc(sizeof(LOCKTAG));

		SET_LOCKTAG_RELATION(*tag, MyDatabaseId, lfirst_oid(lc));
		tags = lappend(tags, tag);
	}
	WaitForLockersMultiple(tags, ShareLock, false);
}

/* SubtractLookback computes watermark - lookback in the column's type */
Datum
SubtractLookback(Datum wm, Interval *lookback, Oid typid)
{
	Oid			base = getBaseType(typid);

	if (base == TIMESTAMPTZOID)
		return DirectFunctionCall2(timestamptz_mi_interval, wm, IntervalPGetDatum(lookback));
	if (base == TIMESTAMPOID)
		return DirectFunctionCall2(timestamp_mi_interval, wm, IntervalPGetDatum(lookback));
	if (base == DATEOID)
		return DirectFunctionCall1(timestamp_date,
								   DirectFunctionCall2(date_mi_interval, wm,
													   IntervalPGetDatum(lookback)));
	elog(ERROR, "lookback applies to time columns only");
	return (Datum) 0;
}

/* TargetStatsSayEmpty: the target was analyzed (or vacuumed) while empty */
static bool
TargetStatsSayEmpty(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	bool		empty;

	if (!HeapTupleIsValid(tup))
		return false;
	empty = ((Form_pg_class) GETSTRUCT(tup))->reltuples == 0;
	ReleaseSysCache(tup);
	return empty;
}

/*
 * ExecuteStatements runs the statements of one load step as the pipeline
 * owner with their parameters, and adds their exact counts; the gate of
 * the row checks is armed for the load statement (FlushRowChecks, which
 * the caller calls next, writes what it kept), and so are the erasure gate
 * (erasure_gate.c) and the keys of its masks (catalog/masks.c).
 */
void
ExecuteStatements(LoadPlan *plan, LoadStatements *stmts, bool has_lower, bool has_upper,
				  int nargs, Oid *types, Datum *values, LoadCounts *counts)
{
	OwnerContext ctx;
	int			rc;
	int			guc_level;
	uint64		processed;

	LockRelationOid(plan->target_relid, ShareRowExclusiveLock);
	/* the tombstones, read under the lock a forget of the target waits for */
	if (stmts->has_erasure_gate)
		ArmErasureGate(plan);
	/*
	 * No JIT for the load: the row counter's cost (which keeps it the last
	 * filter) would otherwise push every large load over jit_above_cost, and
	 * compiling a set-based MERGE costs more than it saves.
	 */
	guc_level = NewGUCNestLevel();
	(void) set_config_option("jit", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	/*
	 * A target analyzed while empty makes the planner trust it to stay
	 * empty and pick a nested loop over a scan of it, which is quadratic as
	 * the load fills it; without nested loops it hashes instead.
	 */
	if (TargetStatsSayEmpty(plan->target_relid))
		(void) set_config_option("enable_nestloop", "off", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	EnterOwnerContext(&ctx, plan->def->owner);
	/* the masks of the load (and of the full mode's vanished keys) may use their keys */
	ArmMasks();
	if (plan->distributed)
	{
		/* no masks nor row checks on Citus (CheckDistributedPlan) */
		DisarmMasks();
		ExecuteDistributedLoad(plan, stmts, has_lower, has_upper, nargs, types, values, counts);
		LeaveOwnerContext(&ctx);
		AtEOXact_GUC(true, guc_level);
		return;
	}
	if (stmts->prepare)
	{
		rc = SPI_execute(stmts->prepare, false, 0);
		if (rc != SPI_OK_DELETE && rc != SPI_OK_UPDATE)
			elog(ERROR, "pg_pipeline could not remove vanished keys: %s", SPI_result_code_string(rc));
		counts->deleted += SPI_processed;
	}
	/* an empty target is loaded with an INSERT (initial_load.c), decided under the lock */
	stmts = ChooseInitialLoad(plan, stmts, has_lower, has_upper);
	RunInitialLoadStatement(stmts->drop_key);
	ResetLoadCounters();
	if (stmts->has_row_checks)
		ArmRowChecks(plan);
	if (stmts->load_is_merge)
		ArmMergeCapture();
	if (stmts->bulk_rows)
		processed = ExecuteBulkInsert(plan, stmts->bulk_rows, nargs, types, values);
	else
	{
		rc = SPI_execute_with_args(stmts->load, nargs, types, values, NULL, false, 0);
		if (rc != SPI_OK_MERGE && rc != SPI_OK_INSERT)
			elog(ERROR, "pg_pipeline load failed: %s", SPI_result_code_string(rc));
		processed = SPI_processed;
	}
	CollectLoadCounters(stmts, processed, counts);
	RunInitialLoadStatement(stmts->add_key);
	DisarmMasks();
	LeaveOwnerContext(&ctx);
	AtEOXact_GUC(true, guc_level);
}

/*
 * ExecuteLoadStep runs the statements of one load step with the window
 * bounds as parameters, and adds their exact counts.
 */
void
ExecuteLoadStep(LoadPlan *plan, bool has_lower, Datum lower, bool has_upper,
				Datum upper, LoadCounts *counts)
{
	Oid			types[2];
	Datum		values[2] = {lower, upper};
	int			nargs = plan->incremental ? 2 : 0;

	if (plan->incremental)
		types[0] = types[1] = plan->incremental->typid;
	ExecuteLoad(plan, has_lower, has_upper, nargs, types, values, counts);
}
