/*-------------------------------------------------------------------------
 *
 * src/engine/distributed_load.c
 *
 * Loads into a Citus table, or from one (docs/citus.md), and distributes
 * the target create_target creates over one (DistributeCreatedTarget).
 * Citus runs a MERGE into a distributed table in the worker nodes'
 * backends and refuses one that calls a non-immutable function, and runs
 * the source's part of any statement reading a Citus table there too, so
 * the load statement carries none of the row counters of counters.c, and
 * the MERGE's tallies, kept by the executors of the worker nodes, never
 * reach the coordinator's. A load is counted instead by the queries of
 * BuildCountQueries, run just before it, while the run holds SHARE on the
 * source's tables and SHARE ROW EXCLUSIVE on the target, on every node with
 * metadata (LockCitusTables), so that no writer through any node changes
 * what they read; the rows the load then reports as written (the sum Citus
 * gathers from the shards) must equal what the counts predict, or the run
 * fails: a count that cannot be shown exact is never reported.
 *
 * What Citus cannot load is refused when the plan is built, at
 * registration and at every run (CheckDistributedPlan). A window across
 * local and Citus tables is loaded by the statements of
 * local_source_load.c, counted the same way. The same counts are a
 * backfill's dry run (backfill.c), into any target.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"

#include "utils/jsonb.h"

#include "pipeline/engine.h"

/*
 * CitusPlanSubject names, for a message, what makes a plan a Citus one:
 * its distributed target, or its source reading Citus tables.
 */
char *
CitusPlanSubject(LoadPlan *plan)
{
	if (CitusTableKindOf(plan->target_relid) != CITUS_NONE)
		return psprintf("Citus distributed target %s", plan->target_ident);
	return psprintf("source %s, which reads Citus tables", plan->source_ident);
}

/*
 * CheckDistributedPlan marks a plan whose target is a Citus table, or
 * whose source reads one (Citus then runs the source's part of the load
 * statement on the worker nodes, where pg_pipeline's counter functions
 * would count nothing the run sees), and refuses (0A000) what Citus cannot
 * load: a reference or Citus local table as target, a lineage column (the
 * run id is a function of the coordinator's backend, which Citus would
 * call on the worker nodes), row checks, masks and
 * quarantining conversions (pg_pipeline's functions in the source rows). A
 * load across local and Citus tables (a local source into a distributed
 * target, a Citus source into a local target) is loaded another way
 * (local_source_load.c), which refuses what it cannot load.
 */
void
CheckDistributedPlan(LoadPlan *plan)
{
	CitusTableKind kind;
	bool		citus_source = false;
	ListCell   *lc;

	plan->distributed = false;
	if (!OidIsValid(get_extension_oid("citus", true)))
		return;					/* no Citus table: one lookup, not one per table */
	kind = CitusTableKindOf(plan->target_relid);
	foreach(lc, plan->base_relids)
		citus_source |= CitusTableKindOf(lfirst_oid(lc)) != CITUS_NONE;
	plan->distributed = kind != CITUS_NONE || citus_source;
	if (!plan->distributed)
		return;
	if (kind != CITUS_NONE && kind != CITUS_DISTRIBUTED)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("target %s is a Citus %s table", plan->target_ident,
						kind == CITUS_REFERENCE ? "reference" : "local"),
				 errdetail("Citus 13 loads with MERGE only into distributed tables."),
				 errhint("Load into a distributed table: SELECT create_distributed_table(%s, '<key column>');",
						 quote_literal_cstr(plan->target_ident))));
	if (plan->def->lineage_column)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("a lineage column is not supported on %s", CitusPlanSubject(plan)),
				 errdetail("Lineage column \"%s\" would be set by a function of the coordinator's session, which Citus cannot run in a distributed statement (and the load from Citus tables into a local one is an upsert that does not set it).",
						   plan->def->lineage_column),
				 errhint("SELECT pipeline.set_lineage_column(%s, NULL);",
						 quote_literal_cstr(plan->def->name))));
	if (plan->row_checks != NIL || (plan->def->masks && JB_ROOT_COUNT(plan->def->masks) > 0))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("row checks and masks are not supported on %s", CitusPlanSubject(plan)),
				 errdetail("Both are evaluated by pg_pipeline's functions in the source rows of the load statement, which Citus would run on the worker nodes, and in a distributed MERGE not at all (it runs no function that is not IMMUTABLE)."),
				 errhint("Check and mask in a stage before the distributed one, or use set checks (unique, row_count, query).")));
	if (plan->has_conversions && strcmp(plan->def->on_conversion_error, "quarantine") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("conversions that quarantine are not supported on %s", CitusPlanSubject(plan)),
				 errdetail("A value that does not convert is caught by pg_pipeline's conversion gate, a function of the source rows, which Citus would run on the worker nodes."),
				 errhint("Pass on_conversion_error => 'error' (a value that does not convert fails the run), or convert in a stage before the distributed one.")));
	CheckUpsertPlan(plan, kind != CITUS_NONE);
}

/* CountRow runs one count query and returns its bigint columns in out */
static void
CountRow(const char *sql, int nargs, Oid *types, Datum *values, int64 *out, int ncols)
{
	int			rc = SPI_execute_with_args(sql, nargs, types, values, NULL, false, 1);

	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "pg_pipeline could not count a distributed load: %s", SPI_result_code_string(rc));
	for (int i = 0; i < ncols; i++)
	{
		bool		isnull;

		out[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
											 i + 1, &isnull));
	}
}

/* LockSourceTables takes SHARE on the source's tables until the run ends */
static void
LockSourceTables(LoadPlan *plan)
{
	ListCell   *lc;

	foreach(lc, plan->base_relids)
		if (get_rel_relkind(lfirst_oid(lc)) != RELKIND_VIEW)
			LockRelationOid(lfirst_oid(lc), ShareLock);
}

/*
 * CountLoadStep counts what a load step would do, by the queries of
 * BuildCountQueries, without running it: the rows read and rejected, and
 * of the rows kept those it would insert (merge: the rows neither matched
 * nor flagged deleted), delete, update, and leave unchanged; adds them to
 * counts and returns the rows the load would write. Run as the owner.
 */
int64
CountLoadStep(LoadPlan *plan, bool merge, bool has_lower, bool has_upper, int nargs, Oid *types,
			  Datum *values, LoadCounts *counts)
{
	CountQueries *q = BuildCountQueries(plan, has_lower, has_upper);
	int64		window[2] = {0, 0};
	int64		kept[2] = {0, 0};
	int64		matched[3] = {0, 0, 0};
	int64		inserted;
	int64		written;

	CountRow(q->window, nargs, types, values, window, 2);
	if (plan->def->unique_key == NIL)
		CountRow(q->kept, nargs, types, values, kept, 2);
	else
	{
		int64		row[5];

		CountRow(q->kept, nargs, types, values, row, 5);
		kept[0] = row[0];
		kept[1] = row[1];
		memcpy(matched, row + 2, sizeof(matched));
	}
	inserted = merge ? kept[1] - matched[2] : kept[0];
	written = inserted + matched[0] + matched[1];
	counts->read += window[0];
	counts->rejected += window[1];
	counts->inserted += inserted;
	counts->deleted += matched[0];
	counts->updated += matched[1];
	counts->unchanged += kept[0] - written;
	return written;
}

/*
 * ExecuteDistributedLoad runs one load step into a Citus table, in the
 * owner's context, and adds its exact counts: the vanished keys of full
 * mode, then the counts, then the load (for a local source, its flagged
 * rows' step first: local_source_load.c), checked against them.
 */
void
ExecuteDistributedLoad(LoadPlan *plan, LoadStatements *stmts, bool has_lower, bool has_upper,
					   int nargs, Oid *types, Datum *values, LoadCounts *counts)
{
	int64		written;
	uint64		processed = 0;
	int			rc;

	LockSourceTables(plan);
	if (stmts->prepare)
	{
		rc = SPI_execute(stmts->prepare, false, 0);
		if (rc != SPI_OK_DELETE && rc != SPI_OK_UPDATE)
			elog(ERROR, "pg_pipeline could not remove vanished keys: %s", SPI_result_code_string(rc));
		counts->deleted += SPI_processed;
	}
	/* a load that fails its check fails the run: its counts are not kept */
	written = CountLoadStep(plan, stmts->load_is_merge, has_lower, has_upper, nargs, types, values,
							counts);
	if (stmts->flagged)
	{
		rc = SPI_execute_with_args(stmts->flagged, nargs, types, values, NULL, false, 0);
		if (rc != SPI_OK_DELETE && rc != SPI_OK_UPDATE)
			elog(ERROR, "pg_pipeline could not apply the deletes: %s", SPI_result_code_string(rc));
		processed += SPI_processed;
	}
	rc = SPI_execute_with_args(stmts->load, nargs, types, values, NULL, false, 0);
	if (rc == SPI_OK_SELECT && SPI_processed == 1)
	{
		/* an upsert from a local source counts the rows it wrote (local_source_load.c) */
		bool		isnull;

		processed += DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
												 1, &isnull));
	}
	else if (rc == SPI_OK_MERGE || rc == SPI_OK_INSERT)
		processed += SPI_processed;
	else
		elog(ERROR, "pg_pipeline load failed: %s", SPI_result_code_string(rc));
	if ((int64) processed != written)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("the load into %s wrote %llu rows where its counts expected %lld",
						plan->target_ident, (unsigned long long) processed, (long long) written),
				 errdetail("Something changed the source or the target between the counts and the load that the run's locks, taken on every node with metadata, do not hold off: a write straight into a shard."),
				 errhint("Run the pipeline again; write to its source and target through the distributed tables, not their shards.")));
}

/*
 * SourceDistributionColumn returns the name of the column a hash-distributed
 * Citus table is distributed on, or NULL (a reference or single-shard
 * table), from Citus's catalog through its column_to_column_name.
 */
static char *
SourceDistributionColumn(Oid relid)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(relid)};
	bool		isnull;

	if (SPI_execute_with_args("SELECT pg_catalog.column_to_column_name(logicalrelid, partkey)"
							  " FROM pg_catalog.pg_dist_partition"
							  " WHERE logicalrelid OPERATOR(pg_catalog.=) $1 AND partkey IS NOT NULL",
							  1, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "pg_pipeline could not read the distribution column of %s", RelationNameOf(relid));
	if (SPI_processed != 1)
		return NULL;
	return TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * ChooseDistributionColumn names the column a created target over a Citus
 * source is distributed on: distribution_column, else the source's
 * distribution column, else (a reference-table source) the key's only
 * column; a keyed target's column must be one of the key's, since Citus
 * requires its primary key to include it.
 */
static char *
ChooseDistributionColumn(PipelineDef *def, const char *source_column, const char *target)
{
	char	   *column = def->distribution_column ? def->distribution_column : (char *) source_column;
	StringInfoData key;
	ListCell   *lc;

	if (column == NULL && list_length(def->unique_key) == 1)
		column = linitial(def->unique_key);
	if (column == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("pg_pipeline cannot choose the distribution column of target %s", target),
				 errdetail("The source of pipeline \"%s\" is a Citus table without a distribution column, and the pipeline's unique key is not one column.",
						   def->name),
				 errhint("Pass distribution_column => '<column>'.")));
	if (def->unique_key == NIL)
		return column;
	initStringInfo(&key);
	foreach(lc, def->unique_key)
	{
		if (strcmp(lfirst(lc), column) == 0)
			return column;
		appendStringInfo(&key, "%s%s", key.len ? ", " : "", quote_identifier(lfirst(lc)));
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("distribution column \"%s\" of target %s is not a column of the unique key",
					column, target),
			 errdetail("Citus requires the primary key of a distributed table to include its distribution column; pipeline \"%s\" has unique key (%s).",
					   def->name, key.data),
			 errhint(def->distribution_column ? "Pass a column of the unique key as distribution_column."
					 : "Pass a column of the unique key as distribution_column, or include the source's distribution column in the unique key.")));
	return NULL;				/* keep compiler quiet */
}

/*
 * DistributeCreatedTarget distributes the target create_target has just
 * created (docs/citus.md): over a distributed source, on its distribution
 * column (or distribution_column) and colocated with it when that is the
 * same column, so that Citus pushes the load down to the shards; over a
 * reference table, on the key's column. A target Citus already took
 * (schema-based sharding) is left as it is. Nothing happens for a source
 * that is not a Citus table unless distribution_column is given.
 */
void
DistributeCreatedTarget(PipelineDef *def, Oid source_relid, const char *target)
{
	CitusTableKind kind = CitusTableKindOf(source_relid);
	char	   *source_column = NULL;
	char	   *column;
	Oid			types[3] = {TEXTOID, TEXTOID, TEXTOID};
	Datum		values[3];
	Oid			target_relid;

	if (kind != CITUS_DISTRIBUTED && kind != CITUS_REFERENCE && def->distribution_column == NULL)
		return;
	if (!OidIsValid(get_extension_oid("citus", true)))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("distribution_column needs Citus"),
				 errdetail("Pipeline \"%s\" names distribution column \"%s\", but the citus extension is not installed.",
						   def->name, def->distribution_column),
				 errhint("Leave out distribution_column, or CREATE EXTENSION citus.")));
	target_relid = ResolveRelationName(def->target_schema, def->target_table, "target");
	if (CitusTableKindOf(target_relid) != CITUS_NONE)
		return;
	if (kind == CITUS_DISTRIBUTED)
		source_column = SourceDistributionColumn(source_relid);
	column = ChooseDistributionColumn(def, source_column, target);
	values[0] = CStringGetTextDatum(target);
	values[1] = CStringGetTextDatum(column);
	values[2] = CStringGetTextDatum(source_column && strcmp(source_column, column) == 0
									? RelationNameOf(source_relid) : "default");
	if (SPI_execute_with_args("SELECT pg_catalog.create_distributed_table($1::pg_catalog.regclass, $2,"
							  " colocate_with => $3)", 3, types, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "pg_pipeline could not distribute target %s", target);
}

/*
 * LockCitusTables takes a lock (mode: "SHARE", "SHARE ROW EXCLUSIVE") on
 * the distributed and reference tables among relids with LOCK TABLE, which
 * Citus propagates to every node with metadata, the coordinator included
 * (AcquireDistributedLockOnRelations in Citus's resource_lock.c), in the
 * run's distributed transaction: it waits for the writers of those tables
 * through any node (query-from-any-node), the way the run's lock on the
 * coordinator waits for writers through the coordinator, and holds off new
 * ones until the run ends (docs/citus.md). Propagation is forced on for
 * the statement (citus.enable_ddl_propagation, citus.enable_metadata_sync,
 * which turn it off), and it runs as the extension owner, who may lock what
 * the pipeline's owner only reads (LOCK runs no user code).
 */
void
LockCitusTables(List *relids, const char *mode)
{
	StringInfoData sql;
	ListCell   *lc;
	RoleSwitch	sw;
	int			guc_level;

	if (!OidIsValid(get_extension_oid("citus", true)))
		return;
	initStringInfo(&sql);
	foreach(lc, relids)
	{
		CitusTableKind kind = CitusTableKindOf(lfirst_oid(lc));

		if (kind != CITUS_DISTRIBUTED && kind != CITUS_REFERENCE)
			continue;
		appendStringInfo(&sql, "%s%s", sql.len ? ", " : "LOCK TABLE ", RelationNameOf(lfirst_oid(lc)));
	}
	if (sql.len == 0)
		return;
	appendStringInfo(&sql, " IN %s MODE", mode);
	guc_level = NewGUCNestLevel();
	(void) set_config_option("citus.enable_ddl_propagation", "on", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("citus.enable_metadata_sync", "on", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	BecomeCatalogOwner(&sw);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "pg_pipeline could not connect to SPI");
	if (SPI_execute(sql.data, false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "pg_pipeline could not lock %s", sql.data);
	SPI_finish();
	RestoreRole(&sw);
	AtEOXact_GUC(true, guc_level);
}

/*
 * NoticeSequenceAcrossNodes tells, at registration, that the incremental
 * column of a Citus table the source reads directly is filled by a
 * sequence (a nextval default or an identity) while worker nodes have
 * metadata: Citus gives each node its own range of values, so a row
 * written through a worker node is numbered above every row written
 * through the coordinator, and the coordinator's next rows fall below the
 * watermark (docs/citus.md, "Writers through any node").
 */
void
NoticeSequenceAcrossNodes(LoadPlan *plan)
{
	Oid			types[2] = {OIDOID, TEXTOID};
	Datum		values[2];
	bool		isnull;
	bool		risky;

	if (!plan->distributed || plan->incremental == NULL ||
		CitusTableKindOf(plan->source_relid) != CITUS_DISTRIBUTED)
		return;
	values[0] = ObjectIdGetDatum(plan->source_relid);
	values[1] = CStringGetTextDatum(plan->incremental->name);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "pg_pipeline could not connect to SPI");
	if (SPI_execute_with_args("SELECT (a.attidentity OPERATOR(pg_catalog.<>) ''"
							  "        OR pg_catalog.pg_get_expr(d.adbin, d.adrelid) OPERATOR(pg_catalog.~~) '%nextval(%')"
							  "   AND EXISTS (SELECT FROM pg_catalog.pg_dist_node n WHERE n.hasmetadata"
							  "               AND n.groupid OPERATOR(pg_catalog.<>) 0 AND n.isactive)"
							  "  FROM pg_catalog.pg_attribute a"
							  "  LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid OPERATOR(pg_catalog.=) a.attrelid"
							  "   AND d.adnum OPERATOR(pg_catalog.=) a.attnum"
							  " WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attname OPERATOR(pg_catalog.=) $2::pg_catalog.name",
							  2, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "pg_pipeline could not read the default of %s", plan->incremental->name);
	risky = SPI_processed == 1 &&
		DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) && !isnull;
	SPI_finish();
	if (risky)
		ereport(NOTICE,
				(errmsg("incremental column \"%s\" of Citus table %s is numbered by a sequence",
						plan->incremental->name, plan->source_ident),
				 errdetail("Citus numbers the rows written through each worker node from a range of its own, above the coordinator's: a row written through the coordinator after one written through a worker node falls below the watermark and is not loaded."),
				 errhint("Write %s through one node only, or make the incremental column one that every node fills alike (a timestamp with a lookback).",
						 plan->source_ident)));
}
