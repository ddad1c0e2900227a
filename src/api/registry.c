/*-------------------------------------------------------------------------
 *
 * src/api/registry.c
 *
 * The SQL API that manages pipeline definitions: create_pipeline,
 * alter_pipeline and drop_pipeline (pause, resume, reset and explain are in
 * pipeline_actions.c; the arguments are read in registry_args.c, as the
 * option table of catalog/options.c lists them). Input is
 * validated completely before anything is written, each mistake with its
 * own SQLSTATE, and everything a call does happens in the caller's
 * transaction, so a failed call changes nothing.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "access/tupdesc.h"
#include "utils/tuplestore.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/timestamp.h"

#include "pipeline/workers.h"
#include "registry_internal.h"

PIPELINE_FUNCTION(pipeline_create_pipeline);
PIPELINE_FUNCTION(pipeline_alter_pipeline);
PIPELINE_FUNCTION(pipeline_drop_pipeline);


/*
 * ResolveTarget finds the target named by text on the caller's search_path.
 * A missing target is created when allowed; it goes to the named schema or
 * the first schema of search_path.
 */
static Oid
ResolveTarget(PipelineDef *def, const char *target, bool create_target, Oid source_relid)
{
	RangeVar   *rv = makeRangeVarFromNameList(stringToQualifiedNameList(target));
	Oid			relid;

	if (rv->catalogname)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("target \"%s\" names a database", target),
				 errhint("Name the target as schema.table.")));
	if (rv->schemaname && strcmp(rv->schemaname, "pg_temp") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("target \"%s\" would be a temporary table", target),
				 errdetail("A temporary table belongs to one session; runs of a pipeline happen in others."),
				 errhint("Name a permanent schema for the target.")));
	if (rv->schemaname && !OidIsValid(get_namespace_oid(rv->schemaname, true)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_SCHEMA),
				 errmsg("schema \"%s\" does not exist", rv->schemaname),
				 errhint("Create the schema first.")));
	relid = RangeVarGetRelid(rv, NoLock, true);
	if (OidIsValid(relid))
	{
		DescribeRelation(relid, &def->target_schema, &def->target_table);
		return relid;
	}
	if (!create_target)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("target relation \"%s\" does not exist", target),
				 errhint("Create it, or pass create_target => true.")));
	if (isAnyTempNamespace(RangeVarGetCreationNamespace(rv)))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("target \"%s\" would be a temporary table", target),
				 errdetail("A temporary table belongs to one session; runs of a pipeline happen in others."),
				 errhint("Name a permanent schema for the target.")));
	def->target_schema = rv->schemaname ? rv->schemaname
		: get_namespace_name(RangeVarGetCreationNamespace(rv));
	def->target_table = rv->relname;
	if (source_relid == InvalidOid)
		return InvalidOid;
	CheckRelationAccess(source_relid, GetUserId(), ACL_SELECT, "source");
	ValidateOptions(def);
	CreateTargetTable(def, source_relid);
	return ResolveRelationName(def->target_schema, def->target_table, "target");
}

/*
 * FinishDefinition validates a complete definition against the relations
 * and the owner's privileges (and a raw_retention against its source and
 * the other pipelines that read it), warns when a snapshot pipeline's
 * existing target lacks a history's constraints, and advises on a
 * sequence-numbered incremental column on Citus and on a missing
 * index (not on one a pipeline owes the source, the target it created,
 * until its first load).
 */
static void
FinishDefinition(PipelineDef *def)
{
	LoadPlan   *plan;

	ValidateOptions(def);
	plan = BuildLoadPlan(def);
	CheckPipelinePrivileges(def, plan->source_relid, plan->target_relid, def->owner);
	if (def->raw_retention)
		CheckRawRetention(def, plan);
	if (plan->snapshot)
		WarnSnapshotTarget(plan);
	if (plan->rollup && !plan->rollup->time_indexed)
		ereport(NOTICE,
				(errmsg("source %s has no index on the rollup's time column \"%s\"",
						plan->source_ident, plan->rollup->spec->time_column),
				 errdetail("Every dirty cell a run recomputes then scans the whole source."),
				 errhint("CREATE INDEX ON %s (%s);", plan->source_ident,
						 quote_identifier(plan->rollup->spec->time_column))));
	/* on Citus, a sequence is not monotonic across the nodes */
	NoticeSequenceAcrossNodes(plan);
	if (plan->incremental && !SourceHasIndexOn(plan->source_relid, plan->incremental->name) &&
		!TargetIndexOwed(plan->source_relid, plan->incremental->name))
		ereport(NOTICE,
				(errmsg("source %s has no index on incremental column \"%s\"",
						plan->source_ident, plan->incremental->name),
				 errdetail("Every run then scans the whole source to find new rows."),
				 errhint("CREATE INDEX ON %s (%s);", plan->source_ident,
						 quote_identifier(plan->incremental->name))));
}

/*
 * FinishGraph records what the pipeline's source reads and its declared
 * dependencies (when given), refuses a cycle, and keeps the pg_cron job in
 * step with the schedule: old_name and old_schedule are what the pipeline
 * was called and scheduled as before (NULL schedule: it had no job).
 */
static void
FinishGraph(PipelineDef *def, Oid source_relid, List *depends_on, bool set_depends,
			const char *old_name, const char *old_schedule)
{
	RefreshSourceRelations(def->id, source_relid);
	if (set_depends)
		SetDeclaredDependencies(def, depends_on);
	CheckNoDependencyCycle(def);
	if (def->schedule == NULL)
	{
		if (old_schedule)
			(void) UnscheduleCronJob(old_name);
	}
	else if (old_schedule == NULL || strcmp(old_schedule, def->schedule) != 0 ||
			 strcmp(old_name, def->name) != 0)
		ScheduleCronJob(def, old_name);
}

/*
 * OptionArgno is the position of an option's argument in create_pipeline
 * or alter_pipeline, looked up by name in the option table.
 */
static int
OptionArgno(const char *name, bool alter)
{
	return PipelineOptionArgno(PipelineOptionByName(name), alter);
}

/* pipeline.create_pipeline(...) registers a pipeline and returns its id */
Datum
pipeline_create_pipeline(PG_FUNCTION_ARGS)
{
	PipelineDef *def = palloc0(sizeof(PipelineDef));
	OptionArgs	args;
	int			nestlevel;

	def->name = PipelineNameArg(fcinfo, OptionArgno("name", false));
	RequireOptionArgs(fcinfo);
	ValidateName(def->name);

	def->active = true;
	def->owner = GetUserId();
	ReadOptionArgs(fcinfo, def, false, &args);
	SetUpCaptureSource(fcinfo, def, &args, false, false);
	ValidateOptions(def);

	SPI_connect();
	CheckNameIsFree(def->name);
	/* the target's name is resolved on the caller's search_path */
	ResolveTarget(def, args.target, args.create_target, args.source_relid);
	nestlevel = PinSearchPath();
	FinishDefinition(def);
	InsertPipelineDef(def);
	if (def->mode == LOAD_MODE_ROLLUP)
		InstallRollupCapture(def);
	FinishGraph(def, args.source_relid, args.depends_on, true, def->name, NULL);
	RegistryChanged("create", def, NULL);
	UnpinSearchPath(nestlevel);
	SPI_finish();
	PG_RETURN_INT64(def->id);
}

/*
 * RollupMoves checks that alter_pipeline neither makes a pipeline a rollup
 * nor makes a rollup something else (22023: their targets differ), and
 * tells whether a rollup's capture must move: a new source or rollup
 * (the caller adds a new target, once resolved); every cell is then
 * recomputed.
 */
static bool
RollupMoves(PipelineDef *before, PipelineDef *def)
{
	if ((before->mode == LOAD_MODE_ROLLUP) != (def->mode == LOAD_MODE_ROLLUP))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("alter_pipeline cannot change the mode of pipeline \"%s\" to or from rollup", def->name),
				 errdetail("Pipeline \"%s\" has mode %s; a rollup's target holds cells, not rows.",
						   def->name, LoadModeName(before->mode)),
				 errhint("Drop the pipeline and create it again in the mode you want.")));
	if (def->mode != LOAD_MODE_ROLLUP)
		return false;
	if (before->rollup == NULL || def->rollup == NULL)
		return true;			/* ValidateOptions refuses it */
	return strcmp(before->source_schema, def->source_schema) != 0 ||
		strcmp(before->source_table, def->source_table) != 0 ||
		compareJsonbContainers(&before->rollup->root, &def->rollup->root) != 0;
}

/*
 * pipeline.alter_pipeline(name, ...) changes the options given (NULL leaves
 * one as it is; '' clears an optional text option). A new source or
 * incremental column resets the watermark.
 */
Datum
pipeline_alter_pipeline(PG_FUNCTION_ARGS)
{
	char	   *name = PipelineNameArg(fcinfo, OptionArgno("name", true));
	PipelineDef *def;
	OptionArgs	args;
	int			nestlevel;
	char	   *old_name;
	char	   *old_schedule;
	Oid			source_relid;
	int			depends_argno = OptionArgno("depends_on", true);
	bool		target_index_changed = false;
	bool		was_capture;
	PipelineDef *before;
	bool		rollup_moves;

	SPI_connect();
	nestlevel = PinSearchPath();
	def = LoadPipelineByName(name, false);
	CheckPipelineOwner(def, "alter");
	UnpinSearchPath(nestlevel);
	before = CopyDefIdentity(def);
	before->mode = def->mode;
	before->rollup = def->rollup;
	old_name = def->name;
	old_schedule = def->schedule;

	if (!PG_ARGISNULL(ALTER_NEW_NAME_ARGNO))
	{
		char	   *new_name = text_to_cstring(PG_GETARG_TEXT_PP(ALTER_NEW_NAME_ARGNO));

		ValidateName(new_name);
		if (strcmp(new_name, def->name) != 0)
			CheckNameIsFree(new_name);
		def->name = new_name;
	}
	was_capture = def->capture;
	ReadOptionArgs(fcinfo, def, true, &args);
	SetUpCaptureSource(fcinfo, def, &args, true, was_capture);
	rollup_moves = RollupMoves(before, def);
	ValidateOptions(def);

	if (args.target)
	{
		Oid			source_relid = ResolveRelationName(def->source_schema, def->source_table, "source");
		char	   *old_schema = def->target_schema;
		char	   *old_table = def->target_table;
		bool		owed = def->target_index_pending;

		/* an index is owed to a target the pipeline creates, not to another table */
		def->target_index_pending = false;
		ResolveTarget(def, args.target, args.create_target, source_relid);
		if (strcmp(old_schema, def->target_schema) == 0 && strcmp(old_table, def->target_table) == 0)
			def->target_index_pending = owed;
		target_index_changed = def->target_index_pending != owed;
	}

	rollup_moves |= def->mode == LOAD_MODE_ROLLUP &&
		(strcmp(before->target_schema, def->target_schema) != 0 ||
		 strcmp(before->target_table, def->target_table) != 0);
	args.reset_watermark |= rollup_moves;
	nestlevel = PinSearchPath();
	FinishDefinition(def);
	UpdatePipelineDef(def, args.reset_watermark);
	if (rollup_moves)
	{
		RemoveRollupCapture(before);
		InstallRollupCapture(def);
	}
	if (target_index_changed)
		StoreTargetIndexPending(def->id, def->target_index_pending);
	source_relid = ResolveRelationName(def->source_schema, def->source_table, "source");
	FinishGraph(def, source_relid,
				PG_ARGISNULL(depends_argno) ? NIL : DependsOnArg(fcinfo, depends_argno),
				!PG_ARGISNULL(depends_argno), old_name, old_schedule);
	RegistryChanged("alter", def, NULL);
	if (args.reset_watermark)
		ereport(NOTICE,
				(errmsg("watermark of pipeline \"%s\" reset", def->name),
				 errdetail("The source or the incremental column changed; the next run reads the whole source.")));
	UnpinSearchPath(nestlevel);
	SPI_finish();
	PG_RETURN_INT64(def->id);
}

/*
 * pipeline.drop_pipeline(name, drop_target) removes a pipeline (its run
 * history stays) and, when asked, its target table.
 */
Datum
pipeline_drop_pipeline(PG_FUNCTION_ARGS)
{
	char	   *name = PipelineNameArg(fcinfo, 0);
	bool		drop_target;
	PipelineDef *def;
	int			nestlevel;

	RequireArg(fcinfo, 1, "drop_target");
	drop_target = PG_GETARG_BOOL(1);
	SPI_connect();
	nestlevel = PinSearchPath();
	def = LoadPipelineByName(name, false);
	CheckPipelineOwner(def, "drop");
	if (def->schedule)
		(void) UnscheduleCronJob(def->name);
	DeletePipelineDef(def->id);
	if (def->mode == LOAD_MODE_ROLLUP)
		RemoveRollupCapture(def);
	RegistryChanged("drop", def, NULL);
	if (drop_target)
	{
		Oid			nspid = get_namespace_oid(def->target_schema, true);

		if (OidIsValid(nspid) && OidIsValid(get_relname_relid(def->target_table, nspid)))
		{
			char	   *sql = psprintf("DROP TABLE %s RESTRICT",
									   quote_qualified_identifier(def->target_schema, def->target_table));

			if (SPI_execute(sql, false, 0) != SPI_OK_UTILITY)
				elog(ERROR, "could not drop target of pipeline \"%s\"", def->name);
		}
		else
			ereport(NOTICE,
					(errmsg("target %s of pipeline \"%s\" does not exist, skipping",
							quote_qualified_identifier(def->target_schema, def->target_table),
							def->name)));
	}
	UnpinSearchPath(nestlevel);
	SPI_finish();
	PG_RETURN_VOID();
}
