/*-------------------------------------------------------------------------
 *
 * src/api/registry_args.c
 *
 * The arguments of the registry's SQL functions: reading each one (22004
 * for a required NULL) as the option table (catalog/options.c) describes
 * it, the name rules, and the validation of a whole definition's options,
 * each mistake with its own SQLSTATE, before anything is written.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
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

/* ValidateName checks a new pipeline name: not empty, at most 63 characters */
void
ValidateName(const char *name)
{
	if (name[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pipeline name must not be empty")));
	if (pg_mbstrlen(name) > PIPELINE_NAME_MAXLEN)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("pipeline name is too long"),
				 errdetail("The name has %d characters; the limit is %d.",
						   pg_mbstrlen(name), PIPELINE_NAME_MAXLEN),
				 errhint("Choose a shorter name.")));
}

/* CheckNameIsFree raises 42710 when a pipeline already has the name */
void
CheckNameIsFree(const char *name)
{
	if (LoadPipelineByName(name, true) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("pipeline \"%s\" already exists", name),
				 errhint("Choose another name, or change it with pipeline.alter_pipeline.")));
}

/* OptionalText reads a text argument, NULL when it is NULL ('' stays: see EmptyToNull) */
char *
OptionalText(FunctionCallInfo fcinfo, int argno)
{
	if (PG_ARGISNULL(argno))
		return NULL;
	return text_to_cstring(PG_GETARG_TEXT_PP(argno));
}

/* EmptyToNull maps the '' that clears an option in alter_pipeline to NULL */
char *
EmptyToNull(char *s)
{
	return (s && s[0] == '\0') ? NULL : s;
}

/*
 * ColumnListArg turns a text[] of column names (unique_key,
 * snapshot_check_columns: what) into a list, refusing NULL elements, empty
 * names and repeated columns.
 */
static List *
ColumnListArg(FunctionCallInfo fcinfo, int argno, const char *what)
{
	ArrayType  *arr;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	List	   *key = NIL;

	if (PG_ARGISNULL(argno))
		return NIL;
	arr = PG_GETARG_ARRAYTYPE_P(argno);
	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a one-dimensional array of column names", what)));
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
	{
		char	   *col;
		ListCell   *lc;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not contain NULL", what)));
		col = TextDatumGetCString(elems[i]);
		if (col[0] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s must not contain an empty column name", what)));
		foreach(lc, key)
			if (strcmp(lfirst(lc), col) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("column \"%s\" appears twice in the %s", col, what)));
		key = lappend(key, col);
	}
	return key;
}

/* ModeArg parses a mode name, raising 22023 for an unknown one */
static LoadMode
ModeArg(const char *text)
{
	LoadMode	mode;

	if (!ParseLoadMode(text, &mode))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown mode \"%s\"", text),
				 errhint("The modes are merge, append, full, snapshot and rollup.")));
	return mode;
}

/* LookbackArg reads a lookback: negative is refused, zero means none */
static Interval *
LookbackArg(Interval *lookback)
{
	Interval	zero = {0};

	if (lookback == NULL)
		return NULL;
	if (DatumGetInt32(DirectFunctionCall2(interval_cmp, IntervalPGetDatum(lookback),
										  IntervalPGetDatum(&zero))) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("lookback must not be negative"),
				 errdetail("The lookback given is %s.",
						   DatumGetCString(DirectFunctionCall1(interval_out, IntervalPGetDatum(lookback))))));
	if (DatumGetInt32(DirectFunctionCall2(interval_cmp, IntervalPGetDatum(lookback),
										  IntervalPGetDatum(&zero))) == 0)
		return NULL;
	return lookback;
}

/* MetadataArg checks that metadata is a JSON object */
static Jsonb *
MetadataArg(Jsonb *metadata)
{
	if (!JB_ROOT_IS_OBJECT(metadata) || JB_ROOT_IS_SCALAR(metadata))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("metadata must be a JSON object"),
				 errhint("Pass something like '{\"team\": \"finance\"}'.")));
	return metadata;
}

/*
 * PositiveIntervalArg reads a limit that must be longer than zero (a
 * timeout, a freshness or timeliness limit, a retry delay). With allow_zero
 * a zero removes the limit (NULL).
 */
static Interval *
PositiveIntervalArg(FunctionCallInfo fcinfo, int argno, const char *what, bool allow_zero)
{
	Interval   *value;
	Interval	zero = {0};
	int			cmp;

	if (PG_ARGISNULL(argno))
		return NULL;
	value = PG_GETARG_INTERVAL_P(argno);
	cmp = DatumGetInt32(DirectFunctionCall2(interval_cmp, IntervalPGetDatum(value),
											IntervalPGetDatum(&zero)));
	if (cmp == 0 && allow_zero)
		return NULL;
	if (cmp <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be positive", what),
				 errdetail("The value given is %s.",
						   DatumGetCString(DirectFunctionCall1(interval_out, IntervalPGetDatum(value)))),
				 errhint("%s", allow_zero ? "Pass '0' to remove it." : "Pass a positive interval.")));
	return value;
}

/* NotNegativeArg reads a count that may be zero (max_retries), refusing a negative one */
static int32
NotNegativeArg(FunctionCallInfo fcinfo, int argno, const char *what)
{
	int32		n = PG_GETARG_INT32(argno);

	if (n < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be negative", what),
				 errdetail("The value given is %d.", n)));
	return n;
}

/*
 * CountArg reads a count (batch_rows): create_pipeline wants it positive,
 * alter_pipeline also takes 0, which removes it.
 */
static int64
CountArg(FunctionCallInfo fcinfo, int argno, const char *what, bool alter)
{
	int64		n = PG_GETARG_INT64(argno);

	if (!alter && n <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be positive", what),
				 errdetail("The value given is %lld.", (long long) n)));
	if (alter && n < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be negative", what),
				 errhint("Pass 0 to remove the batch size.")));
	return n;
}

/* ChoiceArg reads a text option that must be one of its choices (22023 otherwise) */
static char *
ChoiceArg(FunctionCallInfo fcinfo, int argno, const PipelineOption *o)
{
	char	   *s = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	StringInfoData list;

	initStringInfo(&list);
	for (const char *const *c = o->choices; *c; c++)
	{
		if (strcmp(s, *c) == 0)
			return s;
		appendStringInfo(&list, "%s%s", list.len ? ", " : "", *c);
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid %s \"%s\"", o->name, s),
			 errdetail("The value of %s must be one of: %s.", o->name, list.data),
			 errhint("Pass one of those values, or leave %s out for its default, %s.",
					 o->name, o->default_value)));
	return NULL;				/* keep compiler quiet */
}

/*
 * SensitivityArg reads a z-score threshold: a finite number above zero; in
 * alter_pipeline 0 removes it.
 */
static double
SensitivityArg(FunctionCallInfo fcinfo, int argno, const char *what, bool alter)
{
	double		z = PG_GETARG_FLOAT8(argno);

	if (isnan(z) || isinf(z) || z < 0 || (z == 0 && !alter))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a finite number above zero", what),
				 errdetail("The value given is %g.", z),
				 errhint("3 flags a run about three times further from the median than usual;"
						 " pass 0 to alter_pipeline to turn the check off.")));
	return z;
}

/* HistoryArg reads a number of runs, from 3 to 1000 */
static int32
HistoryArg(FunctionCallInfo fcinfo, int argno, const char *what)
{
	int32		n = PG_GETARG_INT32(argno);

	if (n < 3 || n > 1000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be from 3 to 1000", what),
				 errdetail("The value given is %d.", n),
				 errhint("A baseline needs a few runs to be one; 10 is the default.")));
	return n;
}

/*
 * ParallelWorkersArg reads parallel_workers, from 1 to 32 (22023); more
 * than 1 needs as many prepared transactions (55000, engine/parallel_load.c)
 */
static int32
ParallelWorkersArg(FunctionCallInfo fcinfo, int argno, const char *what)
{
	int32		n = PG_GETARG_INT32(argno);

	if (n < 1 || n > PIPELINE_MAX_PARALLEL_WORKERS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be from 1 to %d", what, PIPELINE_MAX_PARALLEL_WORKERS),
				 errdetail("The value given is %d.", n),
				 errhint("1 loads serially; a run starts one part worker per unit above that, up to the target's partitions.")));
	RequirePreparedTransactions(NULL, n);
	return n;
}

/* DependsOnArg turns depends_on text[] into a list of pipeline names */
List *
DependsOnArg(FunctionCallInfo fcinfo, int argno)
{
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(argno);
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	List	   *names = NIL;

	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("depends_on must not contain NULL")));
		names = lappend(names, TextDatumGetCString(elems[i]));
	}
	return names;
}

/* ValidateSchedule checks a cron schedule when one is given */
static void
ValidateSchedule(const char *schedule)
{
	CronSchedule cs;

	if (schedule)
		ParseCronSchedule(schedule, &cs);
}

/* SameText compares two optional strings */
static bool
SameText(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/*
 * RequireOptionArgs raises 22004 for the first argument of create_pipeline
 * that the option table marks required and that is NULL, in argument
 * order; the pipeline name, read first, says so itself (PipelineNameArg).
 */
void
RequireOptionArgs(FunctionCallInfo fcinfo)
{
	for (int i = 0; i < NumPipelineOptions; i++)
	{
		const PipelineOption *o = &PipelineOptions[i];

		if (o->required && o->check != OPTION_CHECK_PIPELINE_NAME)
			RequireArg(fcinfo, PipelineOptionArgno(o, false), o->name);
	}
}

/*
 * ReadValueArg reads the non-NULL argument of an option kept in def, with
 * the option's check, into its field(s). In alter_pipeline '' clears a
 * text option, and a change to an option that resets the watermark says so.
 */
static void
ReadValueArg(FunctionCallInfo fcinfo, int argno, const PipelineOption *o, PipelineDef *def,
			 bool alter, OptionArgs *args)
{
	switch (o->check)
	{
		case OPTION_CHECK_SOURCE:
			{
				Oid			relid = PG_GETARG_OID(argno);
				char	  **schema = OPTION_FIELD(def, o->field, char *);
				char	  **table = OPTION_FIELD(def, o->field2, char *);
				char	   *new_schema;
				char	   *new_table;

				DescribeRelation(relid, &new_schema, &new_table);
				if (alter && o->resets_watermark &&
					(strcmp(new_schema, *schema) != 0 || strcmp(new_table, *table) != 0))
					args->reset_watermark = true;
				*schema = new_schema;
				*table = new_table;
				args->source_relid = relid;
			}
			return;
		case OPTION_CHECK_COLUMN_LIST:
			*OPTION_FIELD(def, o->field, List *) =
				ColumnListArg(fcinfo, argno, strcmp(o->name, "unique_key") == 0 ? "unique key" : o->name);
			return;
		case OPTION_CHECK_MODE:
			*OPTION_FIELD(def, o->field, LoadMode) = ModeArg(text_to_cstring(PG_GETARG_TEXT_PP(argno)));
			return;
		case OPTION_CHECK_LOOKBACK:
			*OPTION_FIELD(def, o->field, Interval *) = LookbackArg(PG_GETARG_INTERVAL_P(argno));
			return;
		case OPTION_CHECK_COUNT:
			*OPTION_FIELD(def, o->field, int64) = CountArg(fcinfo, argno, o->name, alter);
			return;
		case OPTION_CHECK_JSON_OBJECT:
			*OPTION_FIELD(def, o->field, Jsonb *) = MetadataArg(PG_GETARG_JSONB_P(argno));
			return;
		case OPTION_CHECK_MASKS:
			(void) ParseMasks(PG_GETARG_JSONB_P(argno));	/* its shape; its columns later */
			*OPTION_FIELD(def, o->field, Jsonb *) = PG_GETARG_JSONB_P_COPY(argno);
			return;
		case OPTION_CHECK_ROLLUP:
			(void) ParseRollupSpec(PG_GETARG_JSONB_P(argno));	/* its shape; its columns later */
			*OPTION_FIELD(def, o->field, Jsonb *) = PG_GETARG_JSONB_P_COPY(argno);
			return;
		case OPTION_CHECK_COLUMN_TYPES:
			(void) ParseColumnTypes(PG_GETARG_JSONB_P(argno));	/* the types; the columns later */
			*OPTION_FIELD(def, o->field, Jsonb *) = PG_GETARG_JSONB_P_COPY(argno);
			return;
		case OPTION_CHECK_SNAPSHOT_COLUMNS:
			{
				SnapshotColumns names;	/* the shape; the target's columns later */

				ParseSnapshotColumns(PG_GETARG_JSONB_P(argno), &names);
				*OPTION_FIELD(def, o->field, Jsonb *) = PG_GETARG_JSONB_P_COPY(argno);
			}
			return;
		case OPTION_CHECK_CHOICE:
			*OPTION_FIELD(def, o->field, char *) = ChoiceArg(fcinfo, argno, o);
			return;
		case OPTION_CHECK_SENSITIVITY:
			*OPTION_FIELD(def, o->field, double) = SensitivityArg(fcinfo, argno, o->name, alter);
			return;
		case OPTION_CHECK_HISTORY:
			*OPTION_FIELD(def, o->field, int32) = HistoryArg(fcinfo, argno, o->name);
			return;
		case OPTION_CHECK_NOT_NEGATIVE:
			*OPTION_FIELD(def, o->field, int32) = NotNegativeArg(fcinfo, argno, o->name);
			return;
		case OPTION_CHECK_WORKERS:
			*OPTION_FIELD(def, o->field, int32) = ParallelWorkersArg(fcinfo, argno, o->name);
			return;
		case OPTION_CHECK_POSITIVE:
		case OPTION_CHECK_LIMIT:
			*OPTION_FIELD(def, o->field, Interval *) =
				PositiveIntervalArg(fcinfo, argno, o->name, alter && o->check == OPTION_CHECK_LIMIT);
			return;
		default:
			break;
	}
	switch (o->storage)
	{
		case OPTION_STORE_TEXT:
			{
				char	  **field = OPTION_FIELD(def, o->field, char *);
				char	   *s = OptionalText(fcinfo, argno);

				if (alter)
					s = EmptyToNull(s);
				if (alter && o->resets_watermark && !SameText(s, *field))
					args->reset_watermark = true;
				*field = s;
			}
			break;
		case OPTION_STORE_BOOL:
			*OPTION_FIELD(def, o->field, bool) = PG_GETARG_BOOL(argno);
			break;
		default:
			elog(ERROR, "option \"%s\" has no reader", o->name);
	}
}

/*
 * ReadOptionArgs reads the arguments of create_pipeline or alter_pipeline
 * into def, in argument order, each with its option's check, so that the
 * first mistake is the one reported. A NULL argument leaves an option as it
 * is (in create_pipeline: none, 0 or false, or the column's default). The
 * name (and new_name) is read by the caller; target, create_target and
 * depends_on, which are not fields of def, go to args; alter_pipeline reads
 * depends_on itself once the definition is written.
 */
void
ReadOptionArgs(FunctionCallInfo fcinfo, PipelineDef *def, bool alter, OptionArgs *args)
{
	memset(args, 0, sizeof(*args));
	for (int i = 0; i < NumPipelineOptions; i++)
	{
		const PipelineOption *o = &PipelineOptions[i];
		int			argno = PipelineOptionArgno(o, alter);

		if (argno < 0 || o->check == OPTION_CHECK_PIPELINE_NAME)
			continue;
		if (o->check == OPTION_CHECK_TARGET)
			args->target = OptionalText(fcinfo, argno);
		else if (o->storage == OPTION_STORE_NONE)
			args->create_target = !PG_ARGISNULL(argno) && PG_GETARG_BOOL(argno);
		else if (o->storage == OPTION_STORE_DEPENDENCIES)
		{
			if (!alter && !PG_ARGISNULL(argno))
				args->depends_on = DependsOnArg(fcinfo, argno);
		}
		else if (!PG_ARGISNULL(argno))
			ReadValueArg(fcinfo, argno, o, def, alter, args);
		/* a schedule is checked whether given or kept */
		if (o->check == OPTION_CHECK_SCHEDULE)
			ValidateSchedule(*OPTION_FIELD(def, o->field, char *));
	}
}

/* OptionError raises the 22023 of an option combination that cannot work */
void
OptionError(PipelineDef *def, const char *message, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s", message),
			 errdetail("Pipeline \"%s\" has mode %s.", def->name, LoadModeName(def->mode)),
			 errhint("%s", hint)));
}

/*
 * ValidateSnapshotOptions checks the options of snapshot mode: a history
 * keeps deleted versions, so soft_delete does not apply (22023), and the
 * snapshot options apply to snapshot mode only (22023), so that a
 * pipeline's definition never holds an option it ignores.
 */
static void
ValidateSnapshotOptions(PipelineDef *def)
{
	const char *given = NULL;

	if (def->mode == LOAD_MODE_SNAPSHOT && def->soft_delete)
		OptionError(def, "mode snapshot takes no soft_delete",
					"A delete closes the key's current version; snapshot_keep_deleted => true keeps it open instead.");
	if (def->mode == LOAD_MODE_SNAPSHOT)
		return;
	if (def->snapshot_columns && JB_ROOT_COUNT(def->snapshot_columns) > 0)
		given = "snapshot_columns";
	else if (def->snapshot_check_columns != NIL)
		given = "snapshot_check_columns";
	else if (def->snapshot_keep_deleted)
		given = "snapshot_keep_deleted";
	if (given)
		OptionError(def, psprintf("%s applies to mode snapshot only", given),
					psprintf("Use mode snapshot, or leave out %s.", given));
}

/*
 * ValidateRollupOptions checks the options of a definition against its
 * mode: rollup and allowed_lateness belong to mode rollup, which needs
 * rollup and takes none of the options of a keyed load (its key is its
 * bucket and groups, its changes come from its dirty-cells table).
 */
static void
ValidateRollupOptions(PipelineDef *def)
{
	if (def->mode != LOAD_MODE_ROLLUP)
	{
		if (def->rollup)
			OptionError(def, "rollup needs mode rollup", "Pass mode => 'rollup', or leave out rollup.");
		if (def->allowed_lateness)
			OptionError(def, "allowed_lateness needs mode rollup", "Leave out allowed_lateness.");
		return;
	}
	if (def->rollup == NULL)
		OptionError(def, "mode rollup needs rollup",
						  "Pass rollup => '" ROLLUP_EXAMPLE "'.");
	if (def->unique_key != NIL)
		OptionError(def, "mode rollup takes no unique key",
						  "A rollup's key is its bucket and its group_by columns; leave out unique_key.");
	if (def->incremental_column || def->lookback || def->batch_rows > 0)
		OptionError(def, "mode rollup takes no incremental column, lookback or batch_rows",
						  "A rollup finds its changes in its dirty-cells table; leave them out.");
	if (def->delete_column || def->partition_column)
		OptionError(def, "mode rollup takes no delete or partition column",
						  "Rows deleted from the source leave their cells by themselves; leave them out.");
	if (def->raw_retention)
		OptionError(def, "mode rollup takes no raw_retention",
						  "A rollup recomputes cells from the source's rows: purging them would change its target.");
	if ((def->masks && JB_ROOT_COUNT(def->masks) > 0) ||
		(def->column_types && JB_ROOT_COUNT(def->column_types) > 0))
		OptionError(def, "mode rollup takes no masks or column_types",
						  "Mask or type the detail rows in the pipeline that loads the source.");
	if (def->on_schema_change && strcmp(def->on_schema_change, "fail") != 0)
		OptionError(def, "mode rollup takes no on_schema_change",
						  "A rollup checks the columns its rollup names at every run; leave out on_schema_change.");
	if (def->capture)
		OptionError(def, "mode rollup takes no capture",
						  "A rollup finds its changes with triggers of its own; leave out capture.");
}

/*
 * ValidateOptions checks that the options of a definition fit together, before
 * any relation is looked at.
 */
void
ValidateOptions(PipelineDef *def)
{
	ValidateSnapshotOptions(def);
	ValidateRollupOptions(def);
	if (def->parallel_workers > 1 &&
		(def->mode == LOAD_MODE_FULL || def->mode == LOAD_MODE_SNAPSHOT ||
		 def->mode == LOAD_MODE_ROLLUP))
		OptionError(def, psprintf("mode %s cannot load in parallel", LoadModeName(def->mode)),
					"Leave out parallel_workers, or use mode merge or append.");
	if (def->parallel_workers > 1 && (def->partition_column == NULL || def->incremental_column == NULL))
		OptionError(def, "parallel_workers needs a partition column and an incremental column",
					"Pass partition_column (the target's partition key) and incremental_column, or leave out parallel_workers.");
	if (def->mode == LOAD_MODE_ROLLUP)
		return;
	if (def->mode != LOAD_MODE_APPEND && def->unique_key == NIL)
		OptionError(def, psprintf("mode %s needs a unique key", LoadModeName(def->mode)),
					"Pass unique_key, or use mode append.");
	if (def->soft_delete && def->delete_column == NULL)
		OptionError(def, "soft_delete needs a delete column",
					"Pass delete_column: the boolean source column that flags deleted rows.");
	if (def->mode == LOAD_MODE_APPEND && def->delete_column)
		OptionError(def, "mode append does not delete",
					"Use mode merge to apply deletes, or leave out delete_column.");
	if (def->lookback && def->incremental_column == NULL)
		OptionError(def, "lookback needs an incremental column",
					"Pass incremental_column, or leave out lookback.");
	if (def->batch_rows > 0 && def->incremental_column == NULL)
		OptionError(def, "batch_rows needs an incremental column",
					"Batches are cut along the incremental column.");
	if (def->mode == LOAD_MODE_FULL && def->lookback)
		OptionError(def, "mode full reads the whole source and takes no lookback",
					"Leave out lookback.");
	if (def->mode == LOAD_MODE_FULL && def->batch_rows > 0)
		OptionError(def, "mode full cannot run in batches",
					"Leave out batch_rows, or use mode merge.");
	if (def->mode == LOAD_MODE_APPEND && def->unique_key == NIL)
	{
		if (def->incremental_column == NULL)
			OptionError(def, "mode append without a unique key needs an incremental column",
						"Without either, every run would append the whole source again.");
		if (def->lookback)
			OptionError(def, "mode append without a unique key cannot re-read a lookback",
						"Pass unique_key so that re-read rows are skipped, or leave out lookback.");
	}
}
