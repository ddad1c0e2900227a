/*-------------------------------------------------------------------------
 *
 * src/engine/backfill.c
 *
 * pipeline.backfill: a run that re-applies the source rows whose
 * incremental value lies in [from, to], in committed batches; and
 * pipeline.backfill_plan, its dry run. A backfill is made like a batched
 * run (engine.c: the run lock held at session level, a 'running' record,
 * each batch in a subtransaction of a transaction of its own, one record
 * with the batches and their counts), with triggered_by 'backfill' and an
 * audit entry naming the range. It differs from a run in what it reads
 * and how it writes:
 *
 *   1. its window is the range: the first batch's lower bound is
 *      inclusive (LoadPlan.lower_inclusive), each later batch starts after
 *      the last one's bound and holds at most batch_rows source rows (the
 *      call's, else the pipeline's; none: one batch), never splitting an
 *      incremental value; with a partition_column, each batch is one of
 *      the column's values in the range, in order, over the whole range
 *      (LoadPlan.partition: $4, backfill_sql.c);
 *   2. of a key it reads only its newest version in the source
 *      (LoadPlan.newest_only, when the source may hold several): a key is
 *      written at most once, with the version a run leaves, whatever the
 *      batches, and a key whose newest version lies past the range is
 *      not touched;
 *   3. it never overwrites a newer version of a key in the target
 *      (LoadPlan.keep_newer: the incremental value decides, as in a
 *      quarantine replay);
 *   4. it leaves the watermark where it is, and records no read window:
 *      raw retention never counts a row read by a backfill
 *      (docs/exactly-once.md#backfills).
 *
 * Row checks, conversions, masks and the erasure gate work as in any run;
 * a row quarantined again is not duplicated (WriteQuarantineRow). The
 * downstream pipelines are queued when a batch changed data. What cannot
 * be re-applied idempotently, or has no range, is refused before the run
 * starts and changes nothing; so is a pipeline whose run lock another run
 * holds (55P03, as a replay: a backfill asked for is not skipped quietly).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/typcache.h"

#include "pipeline/engine.h"
#include "run_internal.h"

PIPELINE_FUNCTION(pipeline_backfill);
PIPELINE_FUNCTION(pipeline_backfill_plan);

/*
 * What a backfill was asked for and how far it got, kept across its
 * commits (in cxt) as text of the columns' types, read again by each
 * batch as the plan of now has them.
 */
typedef struct BackfillRange
{
	MemoryContext cxt;
	char	   *from;			/* canonical text of the incremental column */
	char	   *to;
	char	   *next;			/* the last batch's bound, NULL before the first */
	bool		partitioned;	/* one batch per value of the partition column */
	bool		have_partitions;
	int			npartitions;
	int			current;		/* the partition of the next batch */
	char	  **partitions;		/* their values as text, NULL for NULL */
} BackfillRange;

/*
 * CheckBackfillable refuses (22023) a pipeline whose rows cannot be
 * re-applied idempotently or have no range: without an incremental column,
 * in a mode other than merge or append with a key.
 */
static void
CheckBackfillable(PipelineDef *def)
{
	const char *problem = NULL;
	const char *hint = "Run it with pipeline.run.";

	if (def->mode == LOAD_MODE_SNAPSHOT)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("pipeline \"%s\" cannot be backfilled", def->name),
				 errdetail("Pipeline \"%s\" has mode snapshot: a backfill would have to rebuild the histories of the range, which it does not do.",
						   def->name),
				 errhint("Reset the pipeline and truncate its target to rebuild the history from the source.")));
	if (def->incremental_column == NULL)
		problem = "has no incremental column to take a range of";
	else if (def->mode == LOAD_MODE_APPEND && def->unique_key == NIL)
	{
		problem = "appends without a unique key: rows re-applied would be appended twice";
		hint = "Give the pipeline a unique key with pipeline.alter_pipeline.";
	}
	else if (def->mode != LOAD_MODE_MERGE && def->mode != LOAD_MODE_APPEND)
		problem = psprintf("has mode %s, which loads the whole source at every run",
						   LoadModeName(def->mode));
	if (problem)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pipeline \"%s\" cannot be backfilled", def->name),
				 errdetail("Pipeline \"%s\" %s.", def->name, problem),
				 errhint("%s", hint)));
}

/*
 * PartitionColumnOf describes the partition column of a plan's source; a
 * backfill takes its values in order, so it must have a default btree
 * ordering (42883 otherwise, as ORDER BY says).
 */
static LoadColumn *
PartitionColumnOf(PipelineDef *def, Oid source_relid)
{
	LoadColumn *col = palloc0(sizeof(LoadColumn));
	AttrNumber	attnum = get_attnum(source_relid, def->partition_column);
	TypeCacheEntry *tc;

	if (attnum == InvalidAttrNumber || attnum < 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("partition column \"%s\" does not exist in source %s", def->partition_column,
						RelationNameOf(source_relid)),
				 errhint("Column names are matched exactly, including case.")));
	col->name = def->partition_column;
	get_atttypetypmodcoll(source_relid, attnum, &col->typid, &col->typmod, &col->collid);
	tc = lookup_type_cache(col->typid, TYPECACHE_EQ_OPR | TYPECACHE_LT_OPR);
	if (!OidIsValid(tc->eq_opr) || !OidIsValid(tc->lt_opr))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("partition column \"%s\" of pipeline \"%s\" has type %s, which has no ordering",
						col->name, def->name, format_type_be(col->typid)),
				 errdetail("A backfill takes the values of the partition column in order, one batch each."),
				 errhint("SELECT pipeline.alter_pipeline(%s, partition_column => '');",
						 quote_literal_cstr(def->name))));
	col->eq_opr = tc->eq_opr;
	col->sortable = true;
	col->source_typid = col->typid;
	col->source_typmod = col->typmod;
	return col;
}

/* RangeValue reads a value of the range as one of the incremental column */
static Datum
RangeValue(const char *text, LoadColumn *inc, PipelineDef *def)
{
	return WatermarkFromText(text, inc->typid, inc->typmod, def->owner);
}

/*
 * StartRange reads the range a call asks for as values of the incremental
 * column (inc), each refusal raising before anything is done: a value the
 * column's type does not take (its input function's SQLSTATE), an end at
 * infinity (rows there are never loaded), from past to (22023). The range
 * is kept in canonical text, in the current memory context.
 */
static BackfillRange *
StartRange(PipelineDef *def, LoadColumn *inc, const char *from_text, const char *to_text)
{
	BackfillRange *range = palloc0(sizeof(BackfillRange));
	Datum		from = RangeValue(from_text, inc, def);
	Datum		to = RangeValue(to_text, inc, def);

	if (WatermarkIsPlusInfinity(to, inc->typid))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a backfill of pipeline \"%s\" cannot end at infinity", def->name),
				 errdetail("Source rows whose \"%s\" is infinity are never loaded (docs/exactly-once.md).",
						   inc->name),
				 errhint("Pass the greatest finite value to re-apply as to_value.")));
	if (CompareWatermarks(from, to, inc->typid, inc->collid) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the range of a backfill of pipeline \"%s\" is empty", def->name),
				 errdetail("from_value %s lies past to_value %s.", from_text, to_text),
				 errhint("Pass the lower end of the range as from_value: both ends are included.")));
	range->cxt = CurrentMemoryContext;
	range->from = WatermarkToText(from, inc->typid);
	range->to = WatermarkToText(to, inc->typid);
	range->partitioned = def->partition_column != NULL;
	return range;
}

/*
 * PlanBackfill makes a load plan one of a backfill (the header's 1-3):
 * the first window inclusive, each key's newest version only, no newer
 * version overwritten.
 */
static void
PlanBackfill(LoadPlan *plan, bool first)
{
	plan->keep_newer = true;
	plan->newest_only = plan->needs_dedup;
	plan->lower_inclusive = first;
}

/*
 * ReadPartitions reads, as the owner, the values of the partition column
 * in the range [from, to], in order, into the range (as text that
 * survives the commits between batches).
 */
static void
ReadPartitions(BackfillRange *range, LoadPlan *plan, Datum from, Datum to)
{
	LoadColumn *part = PartitionColumnOf(plan->def, plan->source_relid);
	Oid			types[2] = {plan->incremental->typid, plan->incremental->typid};
	Datum		values[2] = {from, to};
	OwnerContext ctx;
	int			rc;

	EnterOwnerContext(&ctx, plan->def->owner);
	rc = SPI_execute_with_args(BuildPartitionValuesQuery(plan, part->name), 2, types, values, NULL,
							   false, 0);
	LeaveOwnerContext(&ctx);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "pg_pipeline could not read the partitions: %s", SPI_result_code_string(rc));
	range->npartitions = (int) SPI_processed;
	range->partitions = MemoryContextAllocZero(range->cxt, sizeof(char *) * (SPI_processed + 1));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Datum		v = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			range->partitions[i] = MemoryContextStrdup(range->cxt, WatermarkToText(v, part->typid));
	}
	range->have_partitions = true;
}

/*
 * BackfillBatch loads the next batch of a backfill: the next partition's
 * rows of the range, or the next at most batch_rows rows of it. The
 * definition is read again, as of now, and refused if it can no longer
 * be backfilled; its watermark is left where it is.
 */
static void
BackfillBatch(RunState *rs)
{
	BackfillRange *range = rs->range;
	PipelineDef *def = LockCurrentDefinition(rs);
	LoadPlan   *plan;
	LoadColumn *inc;
	Datum		lower;
	Datum		upper;
	Oid			types[4];
	Datum		values[4] = {0, 0, Int64GetDatum(0), 0};
	LoadCounts	before = rs->rec.counts;

	CheckBackfillable(def);
	plan = PrepareRun(rs);
	inc = plan->incremental;
	PlanBackfill(plan, range->next == NULL);
	rs->rec.wm_from = rs->rec.wm_to = def->watermark;
	lower = RangeValue(range->next ? range->next : range->from, inc, def);
	upper = RangeValue(range->to, inc, def);
	types[0] = types[1] = inc->typid;
	types[2] = types[3] = INT8OID;
	if (range->partitioned)
	{
		char	   *value;

		if (!range->have_partitions)
			ReadPartitions(range, plan, lower, upper);
		if (range->current >= range->npartitions)
		{
			rs->finished = true;	/* no rows in the range: no batch */
			return;
		}
		plan->lower_inclusive = true;	/* each partition's batch takes the whole range */
		plan->partition = PartitionColumnOf(def, plan->source_relid);
		value = range->partitions[range->current++];
		plan->partition_null = value == NULL;
		types[3] = plan->partition->typid;
		if (value)
			values[3] = WatermarkFromText(value, plan->partition->typid, plan->partition->typmod,
										  def->owner);
		rs->finished = range->current >= range->npartitions;
	}
	else if (def->batch_rows > 0)
	{
		upper = NextBatchBound(plan, true, lower, upper, def->batch_rows, &rs->finished);
		range->next = MemoryContextStrdup(range->cxt, WatermarkToText(upper, inc->typid));
	}
	else
		rs->finished = true;
	values[0] = lower;
	values[1] = upper;
	ExecuteLoad(plan, true, true, 4, types, values, &rs->rec.counts);
	FinishBatchChecks(rs, plan, &before);
	if (rs->rec.batches == 0)
		RefreshSourceRelations(def->id, plan->source_relid);
	if (rs->finished && BuildOwedTargetIndex(plan))
		StoreTargetIndexPending(def->id, false);
	rs->rec.batches++;
	RecordRunProgress(&rs->rec);
}

/*
 * IncrementalColumnOf describes the incremental column as the source has it
 * now, to read the range with before the run starts (each batch reads it
 * again with the plan it builds).
 */
static LoadColumn *
IncrementalColumnOf(PipelineDef *def, Oid relid)
{
	AttrNumber	attnum = get_attnum(relid, def->incremental_column);
	LoadColumn *col = palloc0(sizeof(LoadColumn));

	if (attnum == InvalidAttrNumber || attnum < 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("incremental column \"%s\" does not exist in source %s",
						def->incremental_column, RelationNameOf(relid)),
				 errhint("Column names are matched exactly, including case.")));
	col->name = def->incremental_column;
	get_atttypetypmodcoll(relid, attnum, &col->typid, &col->typmod, &col->collid);
	return col;
}

/* BackfillJson spells what a backfill was asked, for its audit entry */
static char *
BackfillJson(RunState *rs)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "{\"run_id\":%lld,", (long long) rs->rec.run_id);
	AppendJsonMember(&buf, "from_value", rs->range->from, false);
	AppendJsonMember(&buf, "to_value", rs->range->to, true);
	if (rs->range->partitioned)
		AppendJsonMember(&buf, "partition_column", rs->rec.def->partition_column, true);
	else if (rs->rec.def->batch_rows > 0)
		appendStringInfo(&buf, ",\"batch_rows\":%lld", (long long) rs->rec.def->batch_rows);
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

/* BatchRowsArg reads an optional batch size: NULL is 0 (none), else positive (22023) */
static int64
BatchRowsArg(FunctionCallInfo fcinfo, int argno, const char *name)
{
	if (PG_ARGISNULL(argno))
		return 0;
	if (PG_GETARG_INT64(argno) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch size of a backfill of pipeline \"%s\" must be positive", name),
				 errdetail("The batch size is %lld.", (long long) PG_GETARG_INT64(argno)),
				 errhint("Pass NULL for the pipeline's batch_rows, or one batch when it has none.")));
	return PG_GETARG_INT64(argno);
}

/* pipeline.backfill(name, from_value, to_value, batch_rows) */
Datum
pipeline_backfill(PG_FUNCTION_ARGS)
{
	char	   *name = PipelineNameArg(fcinfo, 0);
	int64		batch_rows;
	PipelineDef *def;
	RunState	rs;
	RunRequest	req = {"backfill", 0, 1, 0, false};
	int			nestlevel;
	Oid			source_relid;

	RequireArg(fcinfo, 1, "from_value");
	RequireArg(fcinfo, 2, "to_value");
	batch_rows = BatchRowsArg(fcinfo, 3, name);
	RequireNonAtomic(fcinfo, "pipeline.backfill", "A backfill commits after every batch.",
					 "CALL it outside BEGIN ... COMMIT.");
	SPI_connect_ext(SPI_OPT_NONATOMIC);
	nestlevel = PinSearchPath();
	def = LoadPipelineByName(name, false);
	if (batch_rows > 0)
		def->batch_rows = batch_rows;
	StartRunState(&rs, def, &req);
	CheckRunnable(def, "backfill");
	CheckBackfillable(def);
	source_relid = ResolveRelationName(def->source_schema, def->source_table, "source");
	rs.range = StartRange(def, IncrementalColumnOf(def, source_relid),
						  text_to_cstring(PG_GETARG_TEXT_PP(1)), text_to_cstring(PG_GETARG_TEXT_PP(2)));
	if (def->partition_column)
		(void) PartitionColumnOf(def, source_relid);
	if (!TryLockPipeline(def->id, true))
		ereport(ERROR,
				(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
				 errmsg("pipeline \"%s\" is running", def->name),
				 errdetail("A backfill takes the pipeline's run lock, which another run holds."),
				 errhint("Backfill when the run has finished.")));
	PG_TRY();
	{
		StartCommittedRun(&rs);
		AuditQualityChange("backfill", def, rs.rec.run_id, NULL, BackfillJson(&rs));
		RunCommittedSteps(&rs, BackfillBatch, nestlevel);
	}
	PG_FINALLY();
	{
		UnlockPipeline(def->id);
	}
	PG_END_TRY();
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * CountBackfill counts what a backfill of the plan's range would do now,
 * as the owner, with the masks and the erasure gate armed as for its load
 * (its count queries only read). It disarms both after them, so that they
 * serve no statement of the caller's; an error ends the (sub)transaction
 * they were armed in, and with it their arming.
 */
static void
CountBackfill(LoadPlan *plan, Datum from, Datum to, LoadCounts *counts)
{
	Oid			types[2] = {plan->incremental->typid, plan->incremental->typid};
	Datum		values[2] = {from, to};
	OwnerContext ctx;

	if (plan->erasure != NIL)
		ArmErasureGate(plan);
	EnterOwnerContext(&ctx, plan->def->owner);
	ArmMasks();
	(void) CountLoadStep(plan, true, true, true, 2, types, values, counts);
	DisarmMasks();
	LeaveOwnerContext(&ctx);
	DisarmErasureGate();
}

/*
 * pipeline.backfill_plan(name, from_value, to_value): how many rows of each
 * kind a backfill of the range would read, insert, update, delete, leave
 * unchanged and reject, counted now without writing (as one batch: the
 * batches of a backfill write each key once, so they add up to the same).
 * The row checks are not evaluated: the rows they would quarantine are
 * counted as loaded. A paused pipeline may be planned.
 */
Datum
pipeline_backfill_plan(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *name = PipelineNameArg(fcinfo, 0);
	PipelineDef *def;
	LoadPlan   *plan;
	BackfillRange *range;
	LoadCounts	c = {0};
	int			nestlevel;

	RequireArg(fcinfo, 1, "from_value");
	RequireArg(fcinfo, 2, "to_value");
	InitMaterializedSRF(fcinfo, 0);
	SPI_connect();
	nestlevel = PinSearchPath();
	def = LoadPipelineByName(name, false);
	CheckPipelineOwner(def, "backfill");
	CheckBackfillable(def);
	plan = BuildLoadPlan(def);
	CheckPipelinePrivileges(def, plan->source_relid, plan->target_relid, def->owner);
	range = StartRange(def, plan->incremental, text_to_cstring(PG_GETARG_TEXT_PP(1)),
					   text_to_cstring(PG_GETARG_TEXT_PP(2)));
	PlanBackfill(plan, true);
	plan->row_checks = NIL;
	CountBackfill(plan, RangeValue(range->from, plan->incremental, def),
				  RangeValue(range->to, plan->incremental, def), &c);
	UnpinSearchPath(nestlevel);
	SPI_finish();
	{
		const char *kinds[6] = {"read", "inserted", "updated", "deleted", "unchanged", "rejected"};
		int64		rows[6] = {c.read, c.inserted, c.updated, c.deleted, c.unchanged, c.rejected};

		for (int i = 0; i < 6; i++)
		{
			Datum		v[2] = {CStringGetTextDatum(kinds[i]), Int64GetDatum(rows[i])};
			bool		n[2] = {false, false};

			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
		}
	}
	return (Datum) 0;
}
