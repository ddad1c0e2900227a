/*-------------------------------------------------------------------------
 *
 * src/catalog/options.c
 *
 * The one table of a pipeline's options. Each entry is an option as the
 * user spells it: the argument of create_pipeline and alter_pipeline, the
 * key of apply() and of the canonical config (one name for all four), its
 * SQL type and default, how its argument is validated, where it is kept
 * (PipelineDef field, pipeline.pipeline column), whether alter_pipeline may
 * change it and whether changing it resets the watermark. The entries are
 * in create_pipeline's argument order; the options without an argument
 * (lineage_column, owner) sit where apply() lists them, so the position of
 * an argument is the number of argument entries before it. Nothing checks
 * that order at compile time: pipeline._options() shows the table to SQL,
 * and sql/14_options.sql compares it with pg_proc and the catalog's
 * columns. test/options/check_apply_doc.sh reads the ".name" and
 * ".in_spec" lines of the entries below to check docs/reference/apply.md.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stddef.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"

#include "pipeline/catalog.h"

PIPELINE_FUNCTION(pipeline_options);

#define FIELD(f)	offsetof(PipelineDef, f)
#define NO_FIELD	(-1)

/* The choices of the options checked with OPTION_CHECK_CHOICE */
static const char *const ConversionErrorChoices[] = {"quarantine", "error", NULL};
static const char *const SchemaChangeChoices[] = {
	"fail", "ignore", "append_new_columns", "sync_all_columns", NULL
};

const PipelineOption PipelineOptions[] = {
	{
		.name = "name",
		.sql_type = TEXTOID, .has_default = false, .required = true,
		.check = OPTION_CHECK_PIPELINE_NAME,
		.storage = OPTION_STORE_TEXT, .column = "name", .written = true,
		.field = FIELD(name), .field2 = NO_FIELD,
		.alterable = true,		/* through alter_pipeline's new_name */
		.in_config = true,
		.in_spec = true,
	},
	{
		.name = "source",
		.sql_type = REGCLASSOID, .has_default = false, .required = true,
		.check = OPTION_CHECK_SOURCE,
		.storage = OPTION_STORE_RELATION,
		.column = "source_schema", .column2 = "source_table", .written = true,
		.field = FIELD(source_schema), .field2 = FIELD(source_table),
		.alterable = true, .resets_watermark = true,
		.in_config = true,
		.in_spec = true,
	},
	{
		.name = "target",
		.sql_type = TEXTOID, .has_default = false, .required = true,
		.check = OPTION_CHECK_TARGET,
		.storage = OPTION_STORE_RELATION,
		.column = "target_schema", .column2 = "target_table", .written = true,
		.field = FIELD(target_schema), .field2 = FIELD(target_table),
		.alterable = true,
		.in_config = true,
		.in_spec = true,
	},
	{
		.name = "unique_key",
		.sql_type = TEXTARRAYOID, .has_default = true, .default_value = NULL,
		.check = OPTION_CHECK_COLUMN_LIST,
		.storage = OPTION_STORE_NAME_LIST, .column = "unique_key", .written = true,
		.field = FIELD(unique_key), .field2 = NO_FIELD,
		.alterable = true,
		.in_config = true,
		.in_spec = true,
	},
	{
		.name = "incremental_column",
		.sql_type = TEXTOID, .has_default = true, .default_value = NULL,
		.check = OPTION_CHECK_COLUMN,
		.storage = OPTION_STORE_TEXT, .column = "incremental_column", .written = true,
		.field = FIELD(incremental_column), .field2 = NO_FIELD,
		.alterable = true, .resets_watermark = true,
		.in_config = true,
		.in_spec = true,
	},
	{
		.name = "mode",
		.sql_type = TEXTOID, .has_default = true, .default_value = "merge", .required = true,
		.check = OPTION_CHECK_MODE,
		.storage = OPTION_STORE_MODE, .column = "mode", .written = true,
		.field = FIELD(mode), .field2 = NO_FIELD,
		.alterable = true,
		.in_config = true,
		.in_spec = true,
	},
	{
		.name = "delete_column",
		.sql_type = TEXTOID, .has_default = true, .default_value = NULL,
		.check = OPTION_CHECK_COLUMN,
		.storage = OPTION_STORE_TEXT, .column = "delete_column", .written = true,
		.field = FIELD(delete_column), .field2 = NO_FIELD,
		.alterable = true,
		.in_config = true,
		.in_spec = true,
	},
	{
		.name = "soft_delete",
		.sql_type = BOOLOID, .has_default = true, .default_value = "false", .required = true,
		.check = OPTION_CHECK_NONE,
		.storage = OPTION_STORE_BOOL, .column = "soft_delete", .written = true,
		.field = FIELD(soft_delete), .field2 = NO_FIELD,
		.alterable = true,
		.in_config = true,
		.in_spec = true,
	},
	{
		.name = "partition_column",
		.sql_type = TEXTOID, .has_default = true, .default_value = NULL,
		.check = OPTION_CHECK_COLUMN,
		.storage = OPTION_STORE_TEXT, .column = "partition_column", .written = true,
		.field = FIELD(partition_column), .field2 = NO_FIELD,
		.alterable = true,
		.in_config = true,
		.in_spec = true,
	},
	{
		.name = "lookback",
		.sql_type = INTERVALOID, .has_default = true, .default_value = NULL,
		.check = OPTION_CHECK_LOOKBACK,
		.storage = OPTION_STORE_INTERVAL, .column = "lookback", .written = true,
		.field = FIELD(lookback), .field2 = NO_FIELD,
		.alterable = true,
		.in_config = true,
		.in_spec = true,
	},
	{
		.name = "batch_rows",
		.sql_type = INT8OID, .has_default = true, .default_value = NULL,
		.check = OPTION_CHECK_COUNT,
		.storage = OPTION_STORE_COUNT, .column = "batch_rows", .written = true,
		.field = FIELD(batch_rows), .field2 = NO_FIELD,
		.alterable = true,
		.in_config = true,
		.in_spec = true,
	},
	{
		/* how a missing target is handled, not kept: used with target */
		.name = "create_target",
		.sql_type = BOOLOID, .has_default = true, .default_value = "true", .required = true,
		.check = OPTION_CHECK_NONE,
		.storage = OPTION_STORE_NONE,
		.field = NO_FIELD, .field2 = NO_FIELD,
		.alterable = true,		/* alter_pipeline takes it, with target */
		.in_config = false,
		.in_spec = true,
	},
	{
		.name = "description",
		.sql_type = TEXTOID, .has_default = true, .default_value = NULL,
		.check = OPTION_CHECK_NONE,
		.storage = OPTION_STORE_TEXT, .column = "description", .written = true,
		.field = FIELD(description), .field2 = NO_FIELD,
		.alterable = true,
		.in_config = true,
		.in_spec = true,
	},
	{
		.name = "metadata",
		.sql_type = JSONBOID, .has_default = true, .default_value = "{}", .required = true,
		.check = OPTION_CHECK_JSON_OBJECT,
		.storage = OPTION_STORE_JSONB, .column = "metadata", .written = true,
		.field = FIELD(metadata), .field2 = NO_FIELD,
		.alterable = true,
		.in_config = true,
		.in_spec = true,
	},
	{
		/* no argument: set by pipeline.set_lineage_column (api/lineage_api.c) */
		.name = "lineage_column",
		.sql_type = InvalidOid,
		.check = OPTION_CHECK_COLUMN,
		.storage = OPTION_STORE_TEXT, .column = "lineage_column", .written = false,
		.field = FIELD(lineage_column), .field2 = NO_FIELD,
		.alterable = false,
		.in_config = true,
		.in_spec = true,
	},
	{
		/* no argument: the role that created the pipeline */
		.name = "owner",
		.sql_type = InvalidOid,
		.check = OPTION_CHECK_NONE,
		.storage = OPTION_STORE_ROLE, .column = "owner", .written = true,
		.field = FIELD(owner), .field2 = NO_FIELD,
		.alterable = false,
		.in_config = true,
		.in_spec = false,
	},
	{
		/* the pg_cron job follows it (api/registry.c, FinishGraph) */
		.name = "schedule",
		.sql_type = TEXTOID, .has_default = true, .default_value = NULL,
		.check = OPTION_CHECK_SCHEDULE,
		.storage = OPTION_STORE_TEXT, .column = "schedule", .written = true,
		.field = FIELD(schedule), .field2 = NO_FIELD,
		.alterable = true,
		.in_config = true,
		.in_spec = true,
	},
	{
		/* kept as rows of pipeline.dependency (SetDeclaredDependencies) */
		.name = "depends_on",
		.sql_type = TEXTARRAYOID, .has_default = true, .default_value = NULL,
		.check = OPTION_CHECK_PIPELINE_NAMES,
		.storage = OPTION_STORE_DEPENDENCIES,
		.field = NO_FIELD, .field2 = NO_FIELD,
		.alterable = true,
		.in_config = true,
		.in_spec = true,
	},
	{
		.name = "max_retries",
		.sql_type = INT4OID, .has_default = true, .default_value = "0",
		.check = OPTION_CHECK_NOT_NEGATIVE,
		.storage = OPTION_STORE_INT32, .column = "max_retries", .written = true,
		.field = FIELD(max_retries), .field2 = NO_FIELD,
		.alterable = true,
		.in_config = true,
		.in_spec = true,
	},
	{
		.name = "retry_delay",
		.sql_type = INTERVALOID, .has_default = true, .default_value = "10 seconds",
		.check = OPTION_CHECK_POSITIVE,
		.storage = OPTION_STORE_INTERVAL, .column = "retry_delay", .written = true,
		.field = FIELD(retry_delay), .field2 = NO_FIELD,
		.alterable = true,
		.in_config = true,
		.in_spec = true,
	},
	{
		.name = "timeout",
		.sql_type = INTERVALOID, .has_default = true, .default_value = NULL,
		.check = OPTION_CHECK_LIMIT,
		.storage = OPTION_STORE_INTERVAL, .column = "timeout", .written = true,
		.field = FIELD(timeout), .field2 = NO_FIELD,
		.alterable = true,
		.in_config = true,
		.in_spec = true,
	},
	{
		.name = "freshness",
		.sql_type = INTERVALOID, .has_default = true, .default_value = NULL,
		.check = OPTION_CHECK_LIMIT,
		.storage = OPTION_STORE_INTERVAL, .column = "freshness", .written = true,
		.field = FIELD(freshness), .field2 = NO_FIELD,
		.alterable = true,
		.in_config = true,
		.in_spec = true,
	},
	{
		.name = "timeliness",
		.sql_type = INTERVALOID, .has_default = true, .default_value = NULL,
		.check = OPTION_CHECK_LIMIT,
		.storage = OPTION_STORE_INTERVAL, .column = "timeliness", .written = true,
		.field = FIELD(timeliness), .field2 = NO_FIELD,
		.alterable = true,
		.in_config = true,
		.in_spec = true,
	},
	{
		.name = "mute_freshness",
		.sql_type = BOOLOID, .has_default = true, .default_value = "false",
		.check = OPTION_CHECK_NONE,
		.storage = OPTION_STORE_BOOL, .column = "freshness_muted", .written = true,
		.field = FIELD(freshness_muted), .field2 = NO_FIELD,
		.alterable = true,
		.in_config = true,
		.in_spec = true,
	},
	{
		.name = "mute_timeliness",
		.sql_type = BOOLOID, .has_default = true, .default_value = "false",
		.check = OPTION_CHECK_NONE,
		.storage = OPTION_STORE_BOOL, .column = "timeliness_muted", .written = true,
		.field = FIELD(timeliness_muted), .field2 = NO_FIELD,
		.alterable = true,
		.in_config = true,
		.in_spec = true,
	},
	{
		/*
		 * masks at load (catalog/masks.c); not resetting the watermark: a
		 * change applies to the rows loaded from then on (reset to reload)
		 */
		.name = "masks",
		.sql_type = JSONBOID, .has_default = true, .default_value = "{}", .required = true,
		.check = OPTION_CHECK_MASKS,
		.storage = OPTION_STORE_JSONB, .column = "masks", .written = true,
		.field = FIELD(masks), .field2 = NO_FIELD,
		.alterable = true,
		.in_config = true, .omit_default_in_config = true,
		.in_spec = true,
	},
	{
		/*
		 * the types of a target created from text staging (engine/
		 * typed_load.c); a change applies to the rows loaded from then on
		 */
		.name = "column_types",
		.sql_type = JSONBOID, .has_default = true, .default_value = "{}", .required = true,
		.check = OPTION_CHECK_COLUMN_TYPES,
		.storage = OPTION_STORE_JSONB, .column = "column_types", .written = true,
		.field = FIELD(column_types), .field2 = NO_FIELD,
		.alterable = true,
		.in_config = true, .omit_default_in_config = true,
		.in_spec = true,
	},
	{
		/* a value that does not convert to its target type: quarantine the row, or fail */
		.name = "on_conversion_error",
		.sql_type = TEXTOID, .has_default = true, .default_value = "quarantine", .required = true,
		.check = OPTION_CHECK_CHOICE, .choices = ConversionErrorChoices,
		.storage = OPTION_STORE_TEXT, .column = "on_conversion_error", .written = true,
		.field = FIELD(on_conversion_error), .field2 = NO_FIELD,
		.alterable = true,
		.in_config = true, .omit_default_in_config = true,
		.in_spec = true,
	},
	{
		/* what a run does when the source's columns changed (engine/schema_drift.c) */
		.name = "on_schema_change",
		.sql_type = TEXTOID, .has_default = true, .default_value = "fail", .required = true,
		.check = OPTION_CHECK_CHOICE, .choices = SchemaChangeChoices,
		.storage = OPTION_STORE_TEXT, .column = "on_schema_change", .written = true,
		.field = FIELD(on_schema_change), .field2 = NO_FIELD,
		.alterable = true,
		.in_config = true, .omit_default_in_config = true,
		.in_spec = true,
	},
	{
		/* the robust z-score above which a run's metric is an anomaly (recorders/anomaly.c) */
		.name = "anomaly_sensitivity",
		.sql_type = FLOAT8OID, .has_default = true, .default_value = NULL,
		.check = OPTION_CHECK_SENSITIVITY,
		.storage = OPTION_STORE_FLOAT8, .column = "anomaly_sensitivity", .written = true,
		.field = FIELD(anomaly_sensitivity), .field2 = NO_FIELD,
		.alterable = true,
		.in_config = true, .omit_default_in_config = true,
		.in_spec = true,
	},
	{
		/* the successful runs needed before anomalies are looked for */
		.name = "anomaly_min_runs",
		.sql_type = INT4OID, .has_default = true, .default_value = "10", .required = true,
		.check = OPTION_CHECK_HISTORY,
		.storage = OPTION_STORE_INT32, .column = "anomaly_min_runs", .written = true,
		.field = FIELD(anomaly_min_runs), .field2 = NO_FIELD,
		.alterable = true,
		.in_config = true, .omit_default_in_config = true,
		.in_spec = true,
	},
	{
		/*
		 * how long raw source rows are kept once every pipeline reading the
		 * source has loaded them (engine/retention.c); 0 in alter_pipeline
		 * removes it, and with it the purges
		 */
		.name = "raw_retention",
		.sql_type = INTERVALOID, .has_default = true, .default_value = NULL,
		.check = OPTION_CHECK_LIMIT,
		.storage = OPTION_STORE_INTERVAL, .column = "raw_retention", .written = true,
		.field = FIELD(raw_retention), .field2 = NO_FIELD,
		.alterable = true,
		.in_config = true, .omit_default_in_config = true,
		.in_spec = true,
	},
	{
		/*
		 * the source is a captured table's feed (api/capture_api.c sets it
		 * up, with the change id and _deleted as incremental and delete
		 * columns); switching it on or off changes the source
		 */
		.name = "capture",
		.sql_type = BOOLOID, .has_default = true, .default_value = "false", .required = true,
		.check = OPTION_CHECK_NONE,
		.storage = OPTION_STORE_BOOL, .column = "capture", .written = true,
		.field = FIELD(capture), .field2 = NO_FIELD,
		.alterable = true,
		.in_config = true, .omit_default_in_config = true,
		.in_spec = true,
	},
	{
		/* how long loaded changes stay in the capture table (engine/capture_purge.c) */
		.name = "capture_retention",
		.sql_type = INTERVALOID, .has_default = true, .default_value = NULL,
		.check = OPTION_CHECK_LIMIT,
		.storage = OPTION_STORE_INTERVAL, .column = "capture_retention", .written = true,
		.field = FIELD(capture_retention), .field2 = NO_FIELD,
		.alterable = true,
		.in_config = true, .omit_default_in_config = true,
		.in_spec = true,
	},
	{
		/*
		 * mode snapshot: the names of the history columns, e.g.
		 * {"valid_from": "since"} (catalog/snapshot_columns.c); {} keeps
		 * valid_from, valid_to and is_current
		 */
		.name = "snapshot_columns",
		.sql_type = JSONBOID, .has_default = true, .default_value = "{}", .required = true,
		.check = OPTION_CHECK_SNAPSHOT_COLUMNS,
		.storage = OPTION_STORE_JSONB, .column = "snapshot_columns", .written = true,
		.field = FIELD(snapshot_columns), .field2 = NO_FIELD,
		.alterable = true,
		.in_config = true, .omit_default_in_config = true,
		.in_spec = true,
	},
	{
		/* mode snapshot: the columns whose change makes a new version; NULL: every one */
		.name = "snapshot_check_columns",
		.sql_type = TEXTARRAYOID, .has_default = true, .default_value = NULL,
		.check = OPTION_CHECK_COLUMN_LIST,
		.storage = OPTION_STORE_NAME_LIST, .column = "snapshot_check_columns", .written = true,
		.field = FIELD(snapshot_check_columns), .field2 = NO_FIELD,
		.alterable = true,
		.in_config = true, .omit_default_in_config = true,
		.in_spec = true,
	},
	{
		/* mode snapshot: a deleted key keeps its current version open */
		.name = "snapshot_keep_deleted",
		.sql_type = BOOLOID, .has_default = true, .default_value = "false", .required = true,
		.check = OPTION_CHECK_NONE,
		.storage = OPTION_STORE_BOOL, .column = "snapshot_keep_deleted", .written = true,
		.field = FIELD(snapshot_keep_deleted), .field2 = NO_FIELD,
		.alterable = true,
		.in_config = true, .omit_default_in_config = true,
		.in_spec = true,
	},
	{
		/*
		 * mode rollup: what it aggregates (catalog/rollup_spec.c); a change
		 * recomputes every cell (engine/rollup_run.c)
		 */
		.name = "rollup",
		.sql_type = JSONBOID, .has_default = true, .default_value = NULL,
		.check = OPTION_CHECK_ROLLUP,
		.storage = OPTION_STORE_JSONB, .column = "rollup", .written = true,
		.field = FIELD(rollup), .field2 = NO_FIELD,
		.alterable = true, .resets_watermark = true,
		.in_config = true, .omit_default_in_config = true,
		.in_spec = true,
	},
	{
		/* mode rollup: buckets older than the high-water time minus it are closed */
		.name = "allowed_lateness",
		.sql_type = INTERVALOID, .has_default = true, .default_value = NULL,
		.check = OPTION_CHECK_LIMIT,
		.storage = OPTION_STORE_INTERVAL, .column = "allowed_lateness", .written = true,
		.field = FIELD(allowed_lateness), .field2 = NO_FIELD,
		.alterable = true,
		.in_config = true, .omit_default_in_config = true,
		.in_spec = true,
	},
	/* ---- Citus (docs/citus.md) ---- */
	{
		/*
		 * the distribution column of a target create_target creates over a
		 * Citus table (engine/distributed_load.c); NULL: the source's, when
		 * it is a key column
		 */
		.name = "distribution_column",
		.sql_type = TEXTOID, .has_default = true, .default_value = NULL,
		.check = OPTION_CHECK_COLUMN,
		.storage = OPTION_STORE_TEXT, .column = "distribution_column", .written = true,
		.field = FIELD(distribution_column), .field2 = NO_FIELD,
		.alterable = true,
		.in_config = true, .omit_default_in_config = true,
		.in_spec = true,
	},
	/* ---- end of Citus ---- */
	{
		/*
		 * how many part workers load a run into a target partitioned by
		 * partition_column, each its partitions, committed together by
		 * two-phase commit (engine/parallel_load.c); 1 loads serially
		 */
		.name = "parallel_workers",
		.sql_type = INT4OID, .has_default = true, .default_value = "1", .required = true,
		.check = OPTION_CHECK_WORKERS,
		.storage = OPTION_STORE_INT32, .column = "parallel_workers", .written = true,
		.field = FIELD(parallel_workers), .field2 = NO_FIELD,
		.alterable = true,
		.in_config = true, .omit_default_in_config = true,
		.in_spec = true,
	},
	{
		/*
		 * no argument: rows of pipeline.data_check, changed by add_check and
		 * drop_check (api/checks_api.c), which audit each change; not in the
		 * config, so that a pipeline's config versions are its options'
		 */
		.name = "checks",
		.sql_type = InvalidOid,
		.check = OPTION_CHECK_NONE,
		.storage = OPTION_STORE_CHECKS,
		.field = NO_FIELD, .field2 = NO_FIELD,
		.alterable = false,
		.in_config = false,
		.in_spec = true,
	},
};

const int	NumPipelineOptions = lengthof(PipelineOptions);

/* PipelineOptionByName finds an option by name; an unknown one is a bug */
const PipelineOption *
PipelineOptionByName(const char *name)
{
	for (int i = 0; i < NumPipelineOptions; i++)
		if (strcmp(PipelineOptions[i].name, name) == 0)
			return &PipelineOptions[i];
	elog(ERROR, "pg_pipeline has no option \"%s\"", name);
	return NULL;				/* keep compiler quiet */
}

/* PipelineOptionIndex is an option's position in the table */
int
PipelineOptionIndex(const PipelineOption *option)
{
	return (int) (option - PipelineOptions);
}

/*
 * PipelineOptionArgno returns the position of an option's argument in
 * create_pipeline, or in alter_pipeline (which has new_name after name),
 * counting from 0; -1 when the option has no argument.
 */
int
PipelineOptionArgno(const PipelineOption *option, bool alter)
{
	int			argno = 0;

	if (!OidIsValid(option->sql_type))
		return -1;
	for (const PipelineOption *o = PipelineOptions; o < option; o++)
		if (OidIsValid(o->sql_type))
			argno++;
	if (alter && argno >= ALTER_NEW_NAME_ARGNO)
		argno++;
	return argno;
}

/*
 * PipelineOptionDefaultSql spells the default of an option's argument as a
 * SQL expression ('merge'::text), "NULL" for DEFAULT NULL, and NULL when the
 * argument has no default.
 */
const char *
PipelineOptionDefaultSql(const PipelineOption *option)
{
	if (!option->has_default)
		return NULL;
	if (option->default_value == NULL)
		return "NULL";
	return psprintf("%s::%s", quote_literal_cstr(option->default_value),
					format_type_be(option->sql_type));
}

/*
 * pipeline._options() shows the table to SQL, so that sql/14_options.sql
 * can compare it with the functions' signatures and the catalog's columns.
 */
Datum
pipeline_options(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < NumPipelineOptions; i++)
	{
		const PipelineOption *o = &PipelineOptions[i];
		Datum		values[7];
		bool		nulls[7] = {false};
		const char *dflt = PipelineOptionDefaultSql(o);

		values[0] = CStringGetTextDatum(o->name);
		nulls[1] = !OidIsValid(o->sql_type);
		if (!nulls[1])
			values[1] = CStringGetTextDatum(format_type_be(o->sql_type));
		nulls[2] = dflt == NULL;
		if (dflt)
			values[2] = CStringGetTextDatum(dflt);
		nulls[3] = o->column == NULL;
		if (o->column)
			values[3] = CStringGetTextDatum(o->column2
											? psprintf("%s,%s", o->column, o->column2)
											: o->column);
		values[4] = BoolGetDatum(o->alterable);
		values[5] = BoolGetDatum(o->in_config);
		values[6] = BoolGetDatum(o->in_spec);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
