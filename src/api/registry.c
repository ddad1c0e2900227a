/*-------------------------------------------------------------------------
 *
 * src/api/registry.c
 *
 * The SQL API that manages pipeline definitions: create_pipeline,
 * alter_pipeline and drop_pipeline (pause, resume, reset and explain are in
 * pipeline_actions.c, the arguments in registry_args.c). Input is
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
 * and the owner's privileges, and advises on a missing index.
 */
static void
FinishDefinition(PipelineDef *def)
{
	LoadPlan   *plan;

	ValidateOptions(def);
	plan = BuildLoadPlan(def);
	CheckPipelinePrivileges(def, plan->source_relid, plan->target_relid, def->owner);
	if (plan->incremental && !SourceHasIndexOn(plan->source_relid, plan->incremental->name))
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

/* pipeline.create_pipeline(...) registers a pipeline and returns its id */
Datum
pipeline_create_pipeline(PG_FUNCTION_ARGS)
{
	PipelineDef *def = palloc0(sizeof(PipelineDef));
	Oid			source_relid;
	char	   *target;
	int			nestlevel;
	List	   *depends_on;

	def->name = PipelineNameArg(fcinfo, ARG_NAME);
	RequireArg(fcinfo, ARG_SOURCE, "source");
	RequireArg(fcinfo, ARG_TARGET, "target");
	RequireArg(fcinfo, ARG_MODE, "mode");
	RequireArg(fcinfo, ARG_SOFT_DELETE, "soft_delete");
	RequireArg(fcinfo, ARG_CREATE_TARGET, "create_target");
	RequireArg(fcinfo, ARG_METADATA, "metadata");
	ValidateName(def->name);

	source_relid = PG_GETARG_OID(ARG_SOURCE);
	DescribeRelation(source_relid, &def->source_schema, &def->source_table);
	target = text_to_cstring(PG_GETARG_TEXT_PP(ARG_TARGET));
	def->unique_key = UniqueKeyArg(fcinfo, ARG_UNIQUE_KEY);
	def->incremental_column = OptionalText(fcinfo, ARG_INCREMENTAL);
	def->mode = ModeArg(text_to_cstring(PG_GETARG_TEXT_PP(ARG_MODE)));
	def->delete_column = OptionalText(fcinfo, ARG_DELETE_COLUMN);
	def->soft_delete = PG_GETARG_BOOL(ARG_SOFT_DELETE);
	def->partition_column = OptionalText(fcinfo, ARG_PARTITION_COLUMN);
	def->lookback = LookbackArg(PG_ARGISNULL(ARG_LOOKBACK) ? NULL : PG_GETARG_INTERVAL_P(ARG_LOOKBACK));
	if (!PG_ARGISNULL(ARG_BATCH_ROWS))
	{
		def->batch_rows = PG_GETARG_INT64(ARG_BATCH_ROWS);
		if (def->batch_rows <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("batch_rows must be positive"),
					 errdetail("The value given is %lld.", (long long) def->batch_rows)));
	}
	def->description = OptionalText(fcinfo, ARG_DESCRIPTION);
	def->metadata = MetadataArg(PG_GETARG_JSONB_P(ARG_METADATA));
	def->active = true;
	def->owner = GetUserId();
	def->schedule = OptionalText(fcinfo, ARG_SCHEDULE);
	ValidateSchedule(def->schedule);
	depends_on = PG_ARGISNULL(ARG_DEPENDS_ON) ? NIL : DependsOnArg(fcinfo, ARG_DEPENDS_ON);
	def->max_retries = PG_ARGISNULL(ARG_MAX_RETRIES) ? 0 : MaxRetriesArg(fcinfo, ARG_MAX_RETRIES);
	def->retry_delay = PositiveIntervalArg(fcinfo, ARG_RETRY_DELAY, "retry_delay", false);
	def->timeout = PositiveIntervalArg(fcinfo, ARG_TIMEOUT, "timeout", false);
	def->freshness = PositiveIntervalArg(fcinfo, ARG_FRESHNESS, "freshness", false);
	def->timeliness = PositiveIntervalArg(fcinfo, ARG_TIMELINESS, "timeliness", false);
	def->freshness_muted = !PG_ARGISNULL(ARG_MUTE_FRESHNESS) && PG_GETARG_BOOL(ARG_MUTE_FRESHNESS);
	def->timeliness_muted = !PG_ARGISNULL(ARG_MUTE_TIMELINESS) && PG_GETARG_BOOL(ARG_MUTE_TIMELINESS);
	ValidateOptions(def);

	SPI_connect();
	CheckNameIsFree(def->name);
	/* the target's name is resolved on the caller's search_path */
	ResolveTarget(def, target, PG_GETARG_BOOL(ARG_CREATE_TARGET), source_relid);
	nestlevel = PinSearchPath();
	FinishDefinition(def);
	InsertPipelineDef(def);
	FinishGraph(def, source_relid, depends_on, true, def->name, NULL);
	RegistryChanged("create", def, NULL);
	UnpinSearchPath(nestlevel);
	SPI_finish();
	PG_RETURN_INT64(def->id);
}

/* Argument positions of alter_pipeline */
enum
{
	ALTER_NAME,
	ALTER_NEW_NAME,
	ALTER_SOURCE,
	ALTER_TARGET,
	ALTER_UNIQUE_KEY,
	ALTER_INCREMENTAL,
	ALTER_MODE,
	ALTER_DELETE_COLUMN,
	ALTER_SOFT_DELETE,
	ALTER_PARTITION_COLUMN,
	ALTER_LOOKBACK,
	ALTER_BATCH_ROWS,
	ALTER_CREATE_TARGET,
	ALTER_DESCRIPTION,
	ALTER_METADATA,
	ALTER_SCHEDULE,
	ALTER_DEPENDS_ON,
	ALTER_MAX_RETRIES,
	ALTER_RETRY_DELAY,
	ALTER_TIMEOUT,
	ALTER_FRESHNESS,
	ALTER_TIMELINESS,
	ALTER_MUTE_FRESHNESS,
	ALTER_MUTE_TIMELINESS
};

/* SameText compares two optional strings */
static bool
SameText(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/*
 * pipeline.alter_pipeline(name, ...) changes the options given (NULL leaves
 * one as it is; '' clears an optional text option). A new source or
 * incremental column resets the watermark.
 */
Datum
pipeline_alter_pipeline(PG_FUNCTION_ARGS)
{
	char	   *name = PipelineNameArg(fcinfo, ALTER_NAME);
	PipelineDef *def;
	bool		reset_watermark = false;
	int			nestlevel;
	char	   *s;
	char	   *old_name;
	char	   *old_schedule;
	Oid			source_relid;

	SPI_connect();
	nestlevel = PinSearchPath();
	def = LoadPipelineByName(name, false);
	CheckPipelineOwner(def, "alter");
	UnpinSearchPath(nestlevel);
	old_name = def->name;
	old_schedule = def->schedule;

	if (!PG_ARGISNULL(ALTER_NEW_NAME))
	{
		char	   *new_name = text_to_cstring(PG_GETARG_TEXT_PP(ALTER_NEW_NAME));

		ValidateName(new_name);
		if (strcmp(new_name, def->name) != 0)
			CheckNameIsFree(new_name);
		def->name = new_name;
	}
	if (!PG_ARGISNULL(ALTER_SOURCE))
	{
		char	   *schema;
		char	   *table;

		DescribeRelation(PG_GETARG_OID(ALTER_SOURCE), &schema, &table);
		if (strcmp(schema, def->source_schema) != 0 || strcmp(table, def->source_table) != 0)
			reset_watermark = true;
		def->source_schema = schema;
		def->source_table = table;
	}
	if (!PG_ARGISNULL(ALTER_UNIQUE_KEY))
		def->unique_key = UniqueKeyArg(fcinfo, ALTER_UNIQUE_KEY);
	if (!PG_ARGISNULL(ALTER_INCREMENTAL))
	{
		s = EmptyToNull(OptionalText(fcinfo, ALTER_INCREMENTAL));
		if (!SameText(s, def->incremental_column))
			reset_watermark = true;
		def->incremental_column = s;
	}
	if (!PG_ARGISNULL(ALTER_MODE))
		def->mode = ModeArg(text_to_cstring(PG_GETARG_TEXT_PP(ALTER_MODE)));
	if (!PG_ARGISNULL(ALTER_DELETE_COLUMN))
		def->delete_column = EmptyToNull(OptionalText(fcinfo, ALTER_DELETE_COLUMN));
	if (!PG_ARGISNULL(ALTER_SOFT_DELETE))
		def->soft_delete = PG_GETARG_BOOL(ALTER_SOFT_DELETE);
	if (!PG_ARGISNULL(ALTER_PARTITION_COLUMN))
		def->partition_column = EmptyToNull(OptionalText(fcinfo, ALTER_PARTITION_COLUMN));
	if (!PG_ARGISNULL(ALTER_LOOKBACK))
		def->lookback = LookbackArg(PG_GETARG_INTERVAL_P(ALTER_LOOKBACK));
	if (!PG_ARGISNULL(ALTER_BATCH_ROWS))
	{
		def->batch_rows = PG_GETARG_INT64(ALTER_BATCH_ROWS);
		if (def->batch_rows < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("batch_rows must not be negative"),
					 errhint("Pass 0 to remove the batch size.")));
	}
	if (!PG_ARGISNULL(ALTER_DESCRIPTION))
		def->description = EmptyToNull(OptionalText(fcinfo, ALTER_DESCRIPTION));
	if (!PG_ARGISNULL(ALTER_METADATA))
		def->metadata = MetadataArg(PG_GETARG_JSONB_P(ALTER_METADATA));
	if (!PG_ARGISNULL(ALTER_SCHEDULE))
		def->schedule = EmptyToNull(OptionalText(fcinfo, ALTER_SCHEDULE));
	ValidateSchedule(def->schedule);
	if (!PG_ARGISNULL(ALTER_MAX_RETRIES))
		def->max_retries = MaxRetriesArg(fcinfo, ALTER_MAX_RETRIES);
	if (!PG_ARGISNULL(ALTER_RETRY_DELAY))
		def->retry_delay = PositiveIntervalArg(fcinfo, ALTER_RETRY_DELAY, "retry_delay", false);
	if (!PG_ARGISNULL(ALTER_TIMEOUT))
		def->timeout = PositiveIntervalArg(fcinfo, ALTER_TIMEOUT, "timeout", true);
	if (!PG_ARGISNULL(ALTER_FRESHNESS))
		def->freshness = PositiveIntervalArg(fcinfo, ALTER_FRESHNESS, "freshness", true);
	if (!PG_ARGISNULL(ALTER_TIMELINESS))
		def->timeliness = PositiveIntervalArg(fcinfo, ALTER_TIMELINESS, "timeliness", true);
	if (!PG_ARGISNULL(ALTER_MUTE_FRESHNESS))
		def->freshness_muted = PG_GETARG_BOOL(ALTER_MUTE_FRESHNESS);
	if (!PG_ARGISNULL(ALTER_MUTE_TIMELINESS))
		def->timeliness_muted = PG_GETARG_BOOL(ALTER_MUTE_TIMELINESS);
	ValidateOptions(def);

	if (!PG_ARGISNULL(ALTER_TARGET))
	{
		bool		create = !PG_ARGISNULL(ALTER_CREATE_TARGET) && PG_GETARG_BOOL(ALTER_CREATE_TARGET);
		Oid			source_relid = ResolveRelationName(def->source_schema, def->source_table, "source");

		ResolveTarget(def, text_to_cstring(PG_GETARG_TEXT_PP(ALTER_TARGET)), create, source_relid);
	}

	nestlevel = PinSearchPath();
	FinishDefinition(def);
	UpdatePipelineDef(def, reset_watermark);
	source_relid = ResolveRelationName(def->source_schema, def->source_table, "source");
	FinishGraph(def, source_relid,
				PG_ARGISNULL(ALTER_DEPENDS_ON) ? NIL : DependsOnArg(fcinfo, ALTER_DEPENDS_ON),
				!PG_ARGISNULL(ALTER_DEPENDS_ON), old_name, old_schedule);
	RegistryChanged("alter", def, NULL);
	if (reset_watermark)
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
