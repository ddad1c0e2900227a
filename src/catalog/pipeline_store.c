/*-------------------------------------------------------------------------
 *
 * src/catalog/pipeline_store.c
 *
 * Reads and writes the registry: pipeline.pipeline and pipeline.watermark,
 * through SPI, and the identity of a definition. The columns of the options
 * and their statements follow the option table (catalog/options.c). Callers must be
 * connected to SPI; every statement here runs with search_path pinned and as
 * the extension owner, because the catalog tables are not writable by
 * ordinary roles. All values are passed as parameters.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "pipeline/catalog.h"

/*
 * The columns of a definition that are state, not options, selected first:
 * an option's columns follow, in the order of the option table.
 */
#define Anum_pipeline_id				1
#define Anum_pipeline_active			2
#define Anum_pipeline_target_created	3
#define Anum_pipeline_watermark			4
#define Anum_pipeline_row_version		5
#define Anum_pipeline_index_pending		6
#define Natts_pipeline_state			6

/* The versions of a pipeline's two rows, as text, that a definition was read from */
#define ROW_VERSION_SQL \
	"p.xmin::text || ',' || p.ctid::text || ',' || w.xmin::text || ',' || w.ctid::text"

/*
 * ExecCatalog runs one catalog statement as the extension owner, with
 * search_path pinned whatever the caller did, and checks that it succeeded.
 * JIT is off (PinSearchPath): catalog statements are small, and compiling
 * one (the dependency graph's estimated cost can cross jit_above_cost)
 * would take far longer than running it.
 */
int
ExecCatalog(const char *sql, int nargs, Oid *types, Datum *values,
			const char *nulls, bool read_only)
{
	RoleSwitch	sw;
	int			rc;
	int			nestlevel;

	RequireCatalogVersion();
	nestlevel = PinSearchPath();
	BecomeCatalogOwner(&sw);
	rc = SPI_execute_with_args(sql, nargs, types, values, nulls, read_only, 0);
	RestoreRole(&sw);
	UnpinSearchPath(nestlevel);
	if (rc < 0)
		elog(ERROR, "pg_pipeline catalog statement failed: %s", SPI_result_code_string(rc));
	return rc;
}

/* GetTextColumn copies a text column of the current SPI row, NULL if null */
static char *
GetTextColumn(HeapTuple tuple, TupleDesc desc, int attno)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tuple, desc, attno, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/* GetIntervalColumn copies an interval column of the current SPI row */
static Interval *
GetIntervalColumn(HeapTuple tuple, TupleDesc desc, int attno)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tuple, desc, attno, &isnull);
	Interval   *copy;

	if (isnull)
		return NULL;
	copy = palloc(sizeof(Interval));
	memcpy(copy, DatumGetIntervalP(d), sizeof(Interval));
	return copy;
}

/* IntervalOrNull returns an interval Datum and sets the null flag */
static Datum
IntervalOrNull(Interval *i, char *null)
{
	*null = i ? ' ' : 'n';
	return i ? IntervalPGetDatum(i) : (Datum) 0;
}

/* NameListToArray turns a list of column names into a text[] Datum */
static Datum
NameListToArray(List *names, char *null)
{
	Datum	   *elems;
	ListCell   *lc;
	int			i = 0;

	if (names == NIL)
	{
		*null = 'n';
		return (Datum) 0;
	}
	elems = palloc(sizeof(Datum) * list_length(names));
	foreach(lc, names)
		elems[i++] = CStringGetTextDatum((char *) lfirst(lc));
	*null = ' ';
	return PointerGetDatum(construct_array(elems, i, TEXTOID, -1, false, TYPALIGN_INT));
}

const char *
LoadModeName(LoadMode mode)
{
	switch (mode)
	{
		case LOAD_MODE_MERGE:
			return "merge";
		case LOAD_MODE_APPEND:
			return "append";
		case LOAD_MODE_FULL:
			return "full";
		case LOAD_MODE_SNAPSHOT:
			return "snapshot";
		case LOAD_MODE_ROLLUP:
			return "rollup";
	}
	return "unknown";
}

bool
ParseLoadMode(const char *text, LoadMode *mode)
{
	if (strcmp(text, "merge") == 0)
		*mode = LOAD_MODE_MERGE;
	else if (strcmp(text, "append") == 0)
		*mode = LOAD_MODE_APPEND;
	else if (strcmp(text, "full") == 0)
		*mode = LOAD_MODE_FULL;
	else if (strcmp(text, "snapshot") == 0)
		*mode = LOAD_MODE_SNAPSHOT;
	else if (strcmp(text, "rollup") == 0)
		*mode = LOAD_MODE_ROLLUP;
	else
		return false;
	return true;
}

/* SelectCast is what an option's column is read as (names as text, the owner as oid) */
static const char *
SelectCast(const PipelineOption *option)
{
	switch (option->storage)
	{
		case OPTION_STORE_TEXT:
		case OPTION_STORE_RELATION:
			return "::text";
		case OPTION_STORE_NAME_LIST:
			return "::text[]";
		case OPTION_STORE_ROLE:
			return "::oid";
		default:
			return "";
	}
}

/*
 * LoadPipelineQuery is the SELECT of a definition and its watermark: the
 * state columns, then every option's column(s) in table order. Built once
 * per backend.
 */
static const char *
LoadPipelineQuery(void)
{
	static char *query = NULL;

	if (query == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
		StringInfoData buf;

		initStringInfo(&buf);
		appendStringInfoString(&buf, "SELECT p.pipeline_id, p.active, p.target_created, w.value, "
							   ROW_VERSION_SQL ", coalesce(w.target_index_pending, false)");
		for (int i = 0; i < NumPipelineOptions; i++)
		{
			const PipelineOption *o = &PipelineOptions[i];

			if (o->column == NULL)
				continue;
			appendStringInfo(&buf, ", p.%s%s", quote_identifier(o->column), SelectCast(o));
			if (o->column2)
				appendStringInfo(&buf, ", p.%s%s", quote_identifier(o->column2), SelectCast(o));
		}
		appendStringInfoString(&buf, "  FROM pipeline.pipeline p"
							   "  LEFT JOIN pipeline.watermark w ON w.pipeline_id = p.pipeline_id");
		query = buf.data;
		MemoryContextSwitchTo(old);
	}
	return query;
}

/*
 * ReadOptionColumns sets an option's field(s) of def from its column(s) of
 * the current SPI row, starting at *attno, which it moves past them.
 */
static void
ReadOptionColumns(PipelineDef *def, const PipelineOption *o, HeapTuple tuple, TupleDesc desc,
				  int *attno)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tuple, desc, *attno, &isnull);

	switch (o->storage)
	{
		case OPTION_STORE_TEXT:
			*OPTION_FIELD(def, o->field, char *) = GetTextColumn(tuple, desc, *attno);
			break;
		case OPTION_STORE_RELATION:
			*OPTION_FIELD(def, o->field, char *) = GetTextColumn(tuple, desc, *attno);
			(*attno)++;
			*OPTION_FIELD(def, o->field2, char *) = GetTextColumn(tuple, desc, *attno);
			break;
		case OPTION_STORE_MODE:
			{
				char	   *mode = GetTextColumn(tuple, desc, *attno);

				if (!ParseLoadMode(mode, OPTION_FIELD(def, o->field, LoadMode)))
					elog(ERROR, "pipeline \"%s\" has an invalid mode \"%s\"", def->name, mode);
			}
			break;
		case OPTION_STORE_NAME_LIST:
			{
				List	  **list = OPTION_FIELD(def, o->field, List *);

				*list = NIL;
				if (!isnull)
				{
					Datum	   *elems;
					bool	   *elem_nulls;
					int			n;

					deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT,
									  &elems, &elem_nulls, &n);
					for (int i = 0; i < n; i++)
						*list = lappend(*list, TextDatumGetCString(elems[i]));
				}
			}
			break;
		case OPTION_STORE_BOOL:
			*OPTION_FIELD(def, o->field, bool) = DatumGetBool(d);
			break;
		case OPTION_STORE_INT32:
			*OPTION_FIELD(def, o->field, int32) = DatumGetInt32(d);
			break;
		case OPTION_STORE_COUNT:
			*OPTION_FIELD(def, o->field, int64) = isnull ? 0 : DatumGetInt64(d);
			break;
		case OPTION_STORE_INTERVAL:
			*OPTION_FIELD(def, o->field, Interval *) = GetIntervalColumn(tuple, desc, *attno);
			break;
		case OPTION_STORE_JSONB:
			*OPTION_FIELD(def, o->field, Jsonb *) = isnull ? NULL : DatumGetJsonbPCopy(d);
			break;
		case OPTION_STORE_FLOAT8:
			*OPTION_FIELD(def, o->field, double) = isnull ? 0 : DatumGetFloat8(d);
			break;
		case OPTION_STORE_ROLE:
			*OPTION_FIELD(def, o->field, Oid) = DatumGetObjectId(d);
			break;
		case OPTION_STORE_NONE:
		case OPTION_STORE_DEPENDENCIES:
		case OPTION_STORE_CHECKS:
			elog(ERROR, "option \"%s\" has no column", o->name);
	}
	(*attno)++;
}

/*
 * LoadPipelineWhere reads the pipeline matched by a one-parameter condition,
 * or returns NULL when there is none. Each condition's statement is
 * prepared once per backend (*plan): a run reads its definition twice.
 */
static PipelineDef *
LoadPipelineWhere(SPIPlanPtr *plan, const char *condition, Oid type, Datum value)
{
	HeapTuple	tuple;
	TupleDesc	desc;
	PipelineDef *def;
	bool		isnull;
	int			attno = Natts_pipeline_state + 1;

	/* not read-only: a fresh snapshot sees what committed while we waited */
	ExecKeptPlan(plan, psprintf("%s WHERE %s", LoadPipelineQuery(), condition), 1, &type, &value, NULL);
	if (SPI_processed == 0)
		return NULL;

	tuple = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	def = palloc0(sizeof(PipelineDef));

	def->id = DatumGetInt64(SPI_getbinval(tuple, desc, Anum_pipeline_id, &isnull));
	def->active = DatumGetBool(SPI_getbinval(tuple, desc, Anum_pipeline_active, &isnull));
	def->target_created = DatumGetBool(SPI_getbinval(tuple, desc, Anum_pipeline_target_created, &isnull));
	def->watermark = GetTextColumn(tuple, desc, Anum_pipeline_watermark);
	def->row_version = GetTextColumn(tuple, desc, Anum_pipeline_row_version);
	def->target_index_pending = DatumGetBool(SPI_getbinval(tuple, desc, Anum_pipeline_index_pending, &isnull));
	for (int i = 0; i < NumPipelineOptions; i++)
		if (PipelineOptions[i].column)
			ReadOptionColumns(def, &PipelineOptions[i], tuple, desc, &attno);

	SPI_freetuptable(SPI_tuptable);
	return def;
}

static SPIPlanPtr load_by_id_plan = NULL;
static SPIPlanPtr load_by_name_plan = NULL;
static SPIPlanPtr lock_for_run_plan = NULL;
static SPIPlanPtr lock_wait_plan = NULL;
static SPIPlanPtr store_watermark_plan = NULL;

/* LoadPipelineById reads a pipeline by id, NULL if it does not exist */
PipelineDef *
LoadPipelineById(int64 pipeline_id)
{
	return LoadPipelineWhere(&load_by_id_plan, "p.pipeline_id = $1", INT8OID, Int64GetDatum(pipeline_id));
}

/*
 * LoadPipelineByName reads one pipeline and its watermark into memory
 * allocated in the caller's context. Unknown names raise 42704 unless
 * missing_ok, in which case NULL is returned.
 */
PipelineDef *
LoadPipelineByName(const char *name, bool missing_ok)
{
	PipelineDef *def = LoadPipelineWhere(&load_by_name_plan, "p.name = $1", TEXTOID,
										 CStringGetTextDatum(name));

	if (def == NULL && !missing_ok)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("pipeline \"%s\" does not exist", name),
				 errhint("List the registered pipelines with SELECT name FROM pipeline.pipelines.")));
	return def;
}

/*
 * LockPipelineForRun locks the pipeline's watermark row for the rest of the
 * transaction, then makes sure the definition is the one current once it
 * holds the lock: a registry change that was in progress commits before the
 * lock is granted, so the run never works from what it read before
 * waiting. When the lock is free it is taken at once, and the versions of
 * the pipeline's two rows are compared with those def was read from: the
 * same, def is current and is returned (the common case: no second read);
 * otherwise, or after waiting for the lock, the definition is read again
 * with a fresh snapshot. A pipeline dropped in the meantime raises 42704.
 */
PipelineDef *
LockPipelineForRun(PipelineDef *def)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1];
	PipelineDef *current = NULL;

	values[0] = Int64GetDatum(def->id);
	ExecKeptPlan(&lock_for_run_plan,
				 "SELECT " ROW_VERSION_SQL
				 " FROM pipeline.watermark w JOIN pipeline.pipeline p ON p.pipeline_id = w.pipeline_id"
				 " WHERE w.pipeline_id = $1 FOR UPDATE OF w SKIP LOCKED",
				 1, types, values, NULL);
	if (SPI_processed > 0)
	{
		char	   *version = GetTextColumn(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		if (def->row_version != NULL && strcmp(version, def->row_version) == 0)
			return def;
		current = LoadPipelineById(def->id);
	}
	else
	{
		ExecKeptPlan(&lock_wait_plan,
					 "SELECT 1 FROM pipeline.watermark WHERE pipeline_id = $1 FOR UPDATE",
					 1, types, values, NULL);
		if (SPI_processed > 0)
			current = LoadPipelineById(def->id);
	}
	if (current == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("pipeline \"%s\" was dropped before it could run", def->name)));
	return current;
}

/*
 * The INSERT and UPDATE of a definition write the same columns from the
 * same parameters: every option column the store writes, in table order,
 * then target_created. Built once per backend by BuildDefStatements.
 */
static char *InsertDefSql = NULL;
static char *UpdateDefSql = NULL;
static int	NumDefParams = 0;

/*
 * ParamExpr is how parameter n is written to an option's column: cast where
 * the column's type is not the parameter's, and an option that is none is
 * stored as its default when it has one (retry_delay).
 */
static char *
ParamExpr(const PipelineOption *o, int n)
{
	const char *dflt = PipelineOptionDefaultSql(o);

	if (o->storage == OPTION_STORE_NAME_LIST)
		return psprintf("$%d::name[]", n);
	if (o->storage == OPTION_STORE_ROLE)
		return psprintf("$%d::regrole", n);
	if (o->storage == OPTION_STORE_INTERVAL && o->default_value != NULL)
		return psprintf("coalesce($%d, %s)", n, dflt);
	return psprintf("$%d", n);
}

/* AddDefColumn adds one column and its parameter to both statements */
static void
AddDefColumn(StringInfo cols, StringInfo params, StringInfo sets, const char *column,
			 const char *expr)
{
	bool		first = cols->len == 0;

	appendStringInfo(cols, "%s%s", first ? "" : ", ", quote_identifier(column));
	appendStringInfo(params, "%s%s", first ? "" : ", ", expr);
	appendStringInfo(sets, "%s%s = %s", first ? "" : ", ", quote_identifier(column), expr);
}

static void
BuildDefStatements(void)
{
	MemoryContext old;
	StringInfoData cols;
	StringInfoData params;
	StringInfoData sets;
	int			n = 0;

	if (InsertDefSql)
		return;
	old = MemoryContextSwitchTo(TopMemoryContext);
	initStringInfo(&cols);
	initStringInfo(&params);
	initStringInfo(&sets);
	for (int i = 0; i < NumPipelineOptions; i++)
	{
		const PipelineOption *o = &PipelineOptions[i];

		if (o->column == NULL || !o->written)
			continue;
		AddDefColumn(&cols, &params, &sets, o->column, ParamExpr(o, ++n));
		if (o->column2)
			AddDefColumn(&cols, &params, &sets, o->column2, ParamExpr(o, ++n));
	}
	AddDefColumn(&cols, &params, &sets, "target_created", psprintf("$%d", ++n));
	InsertDefSql = psprintf("INSERT INTO pipeline.pipeline (%s) VALUES (%s) RETURNING pipeline_id",
							cols.data, params.data);
	UpdateDefSql = psprintf("UPDATE pipeline.pipeline SET %s, updated_at = now()"
							" WHERE pipeline_id = $%d", sets.data, n + 1);
	NumDefParams = n;
	MemoryContextSwitchTo(old);
}

/* OptionParams fills the parameter(s) of one option's column(s) from def */
static void
OptionParams(PipelineDef *def, const PipelineOption *o, Oid *types, Datum *values, char *nulls,
			 int *n)
{
	int			i = *n;

	nulls[i] = ' ';
	switch (o->storage)
	{
		case OPTION_STORE_TEXT:
			types[i] = TEXTOID;
			values[i] = TextOrNull(*OPTION_FIELD(def, o->field, char *), &nulls[i]);
			break;
		case OPTION_STORE_RELATION:
			types[i] = TEXTOID;
			values[i] = CStringGetTextDatum(*OPTION_FIELD(def, o->field, char *));
			i++;
			nulls[i] = ' ';
			types[i] = TEXTOID;
			values[i] = CStringGetTextDatum(*OPTION_FIELD(def, o->field2, char *));
			break;
		case OPTION_STORE_MODE:
			types[i] = TEXTOID;
			values[i] = CStringGetTextDatum(LoadModeName(*OPTION_FIELD(def, o->field, LoadMode)));
			break;
		case OPTION_STORE_NAME_LIST:
			types[i] = TEXTARRAYOID;
			values[i] = NameListToArray(*OPTION_FIELD(def, o->field, List *), &nulls[i]);
			break;
		case OPTION_STORE_BOOL:
			types[i] = BOOLOID;
			values[i] = BoolGetDatum(*OPTION_FIELD(def, o->field, bool));
			break;
		case OPTION_STORE_INT32:
			types[i] = INT4OID;
			values[i] = Int32GetDatum(*OPTION_FIELD(def, o->field, int32));
			break;
		case OPTION_STORE_COUNT:
			types[i] = INT8OID;
			values[i] = Int64GetDatum(*OPTION_FIELD(def, o->field, int64));
			nulls[i] = *OPTION_FIELD(def, o->field, int64) > 0 ? ' ' : 'n';
			break;
		case OPTION_STORE_INTERVAL:
			types[i] = INTERVALOID;
			values[i] = IntervalOrNull(*OPTION_FIELD(def, o->field, Interval *), &nulls[i]);
			break;
		case OPTION_STORE_JSONB:
			types[i] = JSONBOID;
			values[i] = JsonbPGetDatum(*OPTION_FIELD(def, o->field, Jsonb *));
			nulls[i] = *OPTION_FIELD(def, o->field, Jsonb *) ? ' ' : 'n';
			break;
		case OPTION_STORE_FLOAT8:
			types[i] = FLOAT8OID;
			values[i] = Float8GetDatum(*OPTION_FIELD(def, o->field, double));
			nulls[i] = *OPTION_FIELD(def, o->field, double) > 0 ? ' ' : 'n';
			break;
		case OPTION_STORE_ROLE:
			types[i] = OIDOID;
			values[i] = ObjectIdGetDatum(*OPTION_FIELD(def, o->field, Oid));
			break;
		case OPTION_STORE_NONE:
		case OPTION_STORE_DEPENDENCIES:
		case OPTION_STORE_CHECKS:
			elog(ERROR, "option \"%s\" has no column", o->name);
	}
	*n = i + 1;
}

/*
 * DefParams fills the parameters shared by the INSERT and UPDATE of a
 * pipeline definition, so both statements always write the same columns.
 * The arrays have room for NumDefParams + 1.
 */
static void
DefParams(PipelineDef *def, Oid *types, Datum *values, char *nulls)
{
	int			n = 0;

	for (int i = 0; i < NumPipelineOptions; i++)
	{
		const PipelineOption *o = &PipelineOptions[i];

		if (o->column != NULL && o->written)
			OptionParams(def, o, types, values, nulls, &n);
	}
	types[n] = BOOLOID;
	values[n] = BoolGetDatum(def->target_created);
	nulls[n] = ' ';
	Assert(n + 1 == NumDefParams);
}

/* InsertPipelineDef stores a new definition and its empty watermark */
int64
InsertPipelineDef(PipelineDef *def)
{
	Oid		   *types;
	Datum	   *values;
	char	   *nulls;
	bool		isnull;
	Oid			wtypes[2] = {INT8OID, BOOLOID};
	Datum		wvalues[2];

	BuildDefStatements();
	types = palloc(sizeof(Oid) * (NumDefParams + 1));
	values = palloc(sizeof(Datum) * (NumDefParams + 1));
	nulls = palloc(NumDefParams + 1);
	DefParams(def, types, values, nulls);
	ExecCatalog(InsertDefSql, NumDefParams, types, values, nulls, false);
	def->id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

	wvalues[0] = Int64GetDatum(def->id);
	wvalues[1] = BoolGetDatum(def->target_index_pending);
	ExecCatalog("INSERT INTO pipeline.watermark (pipeline_id, target_index_pending) VALUES ($1, $2)",
				2, wtypes, wvalues, NULL, false);
	return def->id;
}

/*
 * UpdatePipelineDef rewrites a definition; optionally forgets the watermark,
 * and with it what the runs read (a new source or incremental column)
 */
void
UpdatePipelineDef(PipelineDef *def, bool reset_watermark)
{
	Oid		   *types;
	Datum	   *values;
	char	   *nulls;

	BuildDefStatements();
	types = palloc(sizeof(Oid) * (NumDefParams + 1));
	values = palloc(sizeof(Datum) * (NumDefParams + 1));
	nulls = palloc(NumDefParams + 1);
	DefParams(def, types, values, nulls);
	types[NumDefParams] = INT8OID;
	values[NumDefParams] = Int64GetDatum(def->id);
	nulls[NumDefParams] = ' ';
	ExecCatalog(UpdateDefSql, NumDefParams + 1, types, values, nulls, false);
	if (reset_watermark)
	{
		StoreWatermark(def->id, NULL, 0);
		ForgetReadWindows(def->id);
	}
}

/*
 * DeletePipelineDef removes a definition; its watermark goes by cascade,
 * what its runs read (catalog/read_windows.c) with it. Its owner is kept in
 * pipeline.dropped_pipeline, so that the owner still sees the runs, alerts,
 * versions and audit entries that outlive it.
 */
void
DeletePipelineDef(int64 pipeline_id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1];

	values[0] = Int64GetDatum(pipeline_id);
	ExecCatalog("WITH d AS (DELETE FROM pipeline.pipeline WHERE pipeline_id = $1"
				"           RETURNING pipeline_id, name, owner)"
				" INSERT INTO pipeline.dropped_pipeline (pipeline_id, name, owner)"
				" SELECT pipeline_id, name, owner FROM d ON CONFLICT DO NOTHING",
				1, types, values, NULL, false);
	ForgetReadWindows(pipeline_id);
}

void
SetPipelineActive(int64 pipeline_id, bool active)
{
	Oid			types[2] = {INT8OID, BOOLOID};
	Datum		values[2];

	values[0] = Int64GetDatum(pipeline_id);
	values[1] = BoolGetDatum(active);
	ExecCatalog("UPDATE pipeline.pipeline SET active = $2, updated_at = now()"
				" WHERE pipeline_id = $1",
				2, types, values, NULL, false);
}

/*
 * WriteWatermark sets a pipeline's watermark and, when run_id is given, the
 * run that set it, and, when pending is not NULL, whether the pipeline
 * still owes its target an index: one update of the watermark row.
 */
static void
WriteWatermark(int64 pipeline_id, const char *value, int64 run_id, const bool *pending)
{
	Oid			types[4] = {INT8OID, TEXTOID, INT8OID, BOOLOID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};

	values[0] = Int64GetDatum(pipeline_id);
	values[1] = TextOrNull(value, &nulls[1]);
	values[2] = Int64GetDatum(run_id);
	nulls[2] = run_id > 0 ? ' ' : 'n';
	values[3] = BoolGetDatum(pending && *pending);
	nulls[3] = pending ? ' ' : 'n';
	ExecKeptPlan(&store_watermark_plan,
				 "UPDATE pipeline.watermark SET value = $2,"
				 " last_run_id = coalesce($3, last_run_id), updated_at = now(),"
				 " target_index_pending = coalesce($4, target_index_pending)"
				 " WHERE pipeline_id = $1",
				 4, types, values, nulls);
}

/*
 * StoreWatermark sets a pipeline's watermark (NULL: load everything next
 * time) and, when run_id is given, the run that set it.
 */
void
StoreWatermark(int64 pipeline_id, const char *value, int64 run_id)
{
	WriteWatermark(pipeline_id, value, run_id, NULL);
}

/*
 * StoreRunWatermark sets the watermark a run of def leaves, with the run
 * that set it and whether the pipeline still owes its target an index, in
 * one update of the watermark row: a second one in the same transaction
 * would check its foreign key, and wait for a registry change of the
 * pipeline in progress.
 */
void
StoreRunWatermark(PipelineDef *def, const char *value, int64 run_id)
{
	WriteWatermark(def->id, value, run_id, &def->target_index_pending);
}

/*
 * StoreTargetIndexPending records whether the pipeline still owes the
 * target it created the index on its incremental column
 * (engine/initial_load.c).
 */
void
StoreTargetIndexPending(int64 pipeline_id, bool pending)
{
	Oid			types[2] = {INT8OID, BOOLOID};
	Datum		values[2];

	values[0] = Int64GetDatum(pipeline_id);
	values[1] = BoolGetDatum(pending);
	ExecCatalog("UPDATE pipeline.watermark SET target_index_pending = $2 WHERE pipeline_id = $1",
				2, types, values, NULL, false);
}

/*
 * TargetIndexOwed tells whether a pipeline owes the table relid, a target
 * it created, an index on column: its first load will build it.
 */
bool
TargetIndexOwed(Oid relid, const char *column)
{
	Oid			types[3] = {TEXTOID, TEXTOID, TEXTOID};
	Datum		values[3];
	bool		isnull;

	values[0] = CStringGetTextDatum(column);
	values[1] = CStringGetTextDatum(get_namespace_name(get_rel_namespace(relid)));
	values[2] = CStringGetTextDatum(get_rel_name(relid));
	ExecCatalog("SELECT EXISTS (SELECT 1 FROM pipeline.pipeline p"
				"  JOIN pipeline.watermark w ON w.pipeline_id = p.pipeline_id"
				" WHERE w.target_index_pending AND p.incremental_column = $1::name"
				"   AND p.target_schema = $2::name AND p.target_table = $3::name)",
				3, types, values, NULL, true);
	return DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * CopyDefIdentity copies what records of a run need of its pipeline (id,
 * name, source, target, lineage column) into the current memory context.
 */
PipelineDef *
CopyDefIdentity(PipelineDef *def)
{
	PipelineDef *copy = palloc0(sizeof(PipelineDef));

	copy->id = def->id;
	copy->name = pstrdup(def->name);
	copy->source_schema = pstrdup(def->source_schema);
	copy->source_table = pstrdup(def->source_table);
	copy->target_schema = pstrdup(def->target_schema);
	copy->target_table = pstrdup(def->target_table);
	copy->lineage_column = def->lineage_column ? pstrdup(def->lineage_column) : NULL;
	return copy;
}

/* ExecKeptPlan runs a statement through a plan prepared once per backend */
void
ExecKeptPlan(SPIPlanPtr *plan, const char *sql, int nargs, Oid *types,
			 Datum *values, const char *nulls)
{
	RoleSwitch	sw;
	int			rc;
	int			nestlevel;

	RequireCatalogVersion();
	nestlevel = PinSearchPath();
	BecomeCatalogOwner(&sw);
	if (*plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(sql, nargs, types);

		if (p == NULL)
			elog(ERROR, "pg_pipeline could not prepare: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(p);
		*plan = p;
	}
	rc = SPI_execute_plan(*plan, values, nulls, false, 0);
	RestoreRole(&sw);
	UnpinSearchPath(nestlevel);
	if (rc < 0)
		elog(ERROR, "pg_pipeline catalog statement failed: %s", SPI_result_code_string(rc));
}
