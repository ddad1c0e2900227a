/*-------------------------------------------------------------------------
 *
 * src/catalog/pipeline_store.c
 *
 * Reads and writes the registry: pipeline.pipeline and pipeline.watermark,
 * through SPI, and the identity of a definition. Callers must be
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
#include "utils/timestamp.h"

#include "pipeline/catalog.h"

static const char *const LoadPipelineQuery =
"SELECT p.pipeline_id, p.name, p.source_schema::text, p.source_table::text,"
"       p.target_schema::text, p.target_table::text, p.mode,"
"       p.unique_key::text[], p.incremental_column::text,"
"       p.delete_column::text, p.soft_delete, p.partition_column::text,"
"       p.lookback, p.batch_rows, p.description, p.metadata, p.active,"
"       p.owner::oid, p.target_created, w.value, p.schedule, p.max_retries,"
"       p.retry_delay, p.timeout, p.freshness, p.timeliness,"
"       p.freshness_muted, p.timeliness_muted, p.lineage_column::text"
"  FROM pipeline.pipeline p"
"  LEFT JOIN pipeline.watermark w ON w.pipeline_id = p.pipeline_id";

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
	int			nestlevel = PinSearchPath();

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

/* NameArrayDatum turns a list of column names into a text[] Datum */
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
	else
		return false;
	return true;
}

/*
 * LoadPipelineWhere reads the pipeline matched by a one-parameter condition,
 * or returns NULL when there is none.
 */
static PipelineDef *
LoadPipelineWhere(const char *condition, Oid type, Datum value)
{
	HeapTuple	tuple;
	TupleDesc	desc;
	PipelineDef *def;
	bool		isnull;
	Datum		d;
	char	   *mode;

	/* not read-only: a fresh snapshot sees what committed while we waited */
	ExecCatalog(psprintf("%s WHERE %s", LoadPipelineQuery, condition), 1, &type, &value, NULL, false);
	if (SPI_processed == 0)
		return NULL;

	tuple = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	def = palloc0(sizeof(PipelineDef));

	def->id = DatumGetInt64(SPI_getbinval(tuple, desc, Anum_pipeline_id, &isnull));
	def->name = GetTextColumn(tuple, desc, Anum_pipeline_name);
	def->source_schema = GetTextColumn(tuple, desc, Anum_pipeline_source_schema);
	def->source_table = GetTextColumn(tuple, desc, Anum_pipeline_source_table);
	def->target_schema = GetTextColumn(tuple, desc, Anum_pipeline_target_schema);
	def->target_table = GetTextColumn(tuple, desc, Anum_pipeline_target_table);
	mode = GetTextColumn(tuple, desc, Anum_pipeline_mode);
	if (!ParseLoadMode(mode, &def->mode))
		elog(ERROR, "pipeline \"%s\" has an invalid mode \"%s\"", def->name, mode);

	d = SPI_getbinval(tuple, desc, Anum_pipeline_unique_key, &isnull);
	if (!isnull)
	{
		Datum	   *elems;
		bool	   *elem_nulls;
		int			n;

		deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT,
						  &elems, &elem_nulls, &n);
		for (int i = 0; i < n; i++)
			def->unique_key = lappend(def->unique_key, TextDatumGetCString(elems[i]));
	}
	def->incremental_column = GetTextColumn(tuple, desc, Anum_pipeline_incremental);
	def->delete_column = GetTextColumn(tuple, desc, Anum_pipeline_delete_column);
	def->soft_delete = DatumGetBool(SPI_getbinval(tuple, desc, Anum_pipeline_soft_delete, &isnull));
	def->partition_column = GetTextColumn(tuple, desc, Anum_pipeline_partition_column);
	def->lookback = GetIntervalColumn(tuple, desc, Anum_pipeline_lookback);
	d = SPI_getbinval(tuple, desc, Anum_pipeline_batch_rows, &isnull);
	def->batch_rows = isnull ? 0 : DatumGetInt64(d);
	def->description = GetTextColumn(tuple, desc, Anum_pipeline_description);
	d = SPI_getbinval(tuple, desc, Anum_pipeline_metadata, &isnull);
	def->metadata = DatumGetJsonbPCopy(d);
	def->active = DatumGetBool(SPI_getbinval(tuple, desc, Anum_pipeline_active, &isnull));
	def->owner = DatumGetObjectId(SPI_getbinval(tuple, desc, Anum_pipeline_owner, &isnull));
	def->target_created = DatumGetBool(SPI_getbinval(tuple, desc, Anum_pipeline_target_created, &isnull));
	def->watermark = GetTextColumn(tuple, desc, Anum_pipeline_watermark);
	def->schedule = GetTextColumn(tuple, desc, Anum_pipeline_schedule);
	def->max_retries = DatumGetInt32(SPI_getbinval(tuple, desc, Anum_pipeline_max_retries, &isnull));
	def->retry_delay = GetIntervalColumn(tuple, desc, Anum_pipeline_retry_delay);
	def->timeout = GetIntervalColumn(tuple, desc, Anum_pipeline_timeout);
	def->freshness = GetIntervalColumn(tuple, desc, Anum_pipeline_freshness);
	def->timeliness = GetIntervalColumn(tuple, desc, Anum_pipeline_timeliness);
	def->freshness_muted = DatumGetBool(SPI_getbinval(tuple, desc, Anum_pipeline_freshness_muted, &isnull));
	def->timeliness_muted = DatumGetBool(SPI_getbinval(tuple, desc, Anum_pipeline_timeliness_muted, &isnull));
	def->lineage_column = GetTextColumn(tuple, desc, Anum_pipeline_lineage_column);

	SPI_freetuptable(SPI_tuptable);
	return def;
}

/* LoadPipelineById reads a pipeline by id, NULL if it does not exist */
PipelineDef *
LoadPipelineById(int64 pipeline_id)
{
	return LoadPipelineWhere("p.pipeline_id = $1", INT8OID, Int64GetDatum(pipeline_id));
}

/*
 * LoadPipelineByName reads one pipeline and its watermark into memory
 * allocated in the caller's context. Unknown names raise 42704 unless
 * missing_ok, in which case NULL is returned.
 */
PipelineDef *
LoadPipelineByName(const char *name, bool missing_ok)
{
	PipelineDef *def = LoadPipelineWhere("p.name = $1", TEXTOID, CStringGetTextDatum(name));

	if (def == NULL && !missing_ok)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("pipeline \"%s\" does not exist", name),
				 errhint("List the registered pipelines with SELECT name FROM pipeline.pipelines.")));
	return def;
}

/*
 * LockPipelineForRun locks the pipeline's watermark row for the rest of the
 * transaction, then reads the definition again. A registry change that was
 * in progress commits before the lock is granted, so the run always works
 * from the definition and watermark that are current once it holds the
 * lock, never from what it read before waiting. A pipeline dropped in the
 * meantime raises 42704.
 */
PipelineDef *
LockPipelineForRun(PipelineDef *def)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1];
	PipelineDef *current;

	values[0] = Int64GetDatum(def->id);
	ExecCatalog("SELECT 1 FROM pipeline.watermark WHERE pipeline_id = $1 FOR UPDATE",
				1, types, values, NULL, false);
	current = SPI_processed > 0
		? LoadPipelineWhere("p.pipeline_id = $1", INT8OID, Int64GetDatum(def->id))
		: NULL;
	if (current == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("pipeline \"%s\" was dropped before it could run", def->name)));
	return current;
}

/*
 * DefParams fills the parameters shared by the INSERT and UPDATE of a
 * pipeline definition, so both statements always write the same columns.
 */
#define NUM_DEF_PARAMS 25
static void
DefParams(PipelineDef *def, Oid *types, Datum *values, char *nulls)
{
	memset(nulls, ' ', NUM_DEF_PARAMS);
	types[0] = TEXTOID;
	values[0] = CStringGetTextDatum(def->name);
	types[1] = TEXTOID;
	values[1] = CStringGetTextDatum(def->source_schema);
	types[2] = TEXTOID;
	values[2] = CStringGetTextDatum(def->source_table);
	types[3] = TEXTOID;
	values[3] = CStringGetTextDatum(def->target_schema);
	types[4] = TEXTOID;
	values[4] = CStringGetTextDatum(def->target_table);
	types[5] = TEXTOID;
	values[5] = CStringGetTextDatum(LoadModeName(def->mode));
	types[6] = TEXTARRAYOID;
	values[6] = NameListToArray(def->unique_key, &nulls[6]);
	types[7] = TEXTOID;
	values[7] = TextOrNull(def->incremental_column, &nulls[7]);
	types[8] = TEXTOID;
	values[8] = TextOrNull(def->delete_column, &nulls[8]);
	types[9] = BOOLOID;
	values[9] = BoolGetDatum(def->soft_delete);
	types[10] = TEXTOID;
	values[10] = TextOrNull(def->partition_column, &nulls[10]);
	types[11] = INTERVALOID;
	values[11] = def->lookback ? IntervalPGetDatum(def->lookback) : (Datum) 0;
	nulls[11] = def->lookback ? ' ' : 'n';
	types[12] = INT8OID;
	values[12] = Int64GetDatum(def->batch_rows);
	nulls[12] = def->batch_rows > 0 ? ' ' : 'n';
	types[13] = TEXTOID;
	values[13] = TextOrNull(def->description, &nulls[13]);
	types[14] = JSONBOID;
	values[14] = JsonbPGetDatum(def->metadata);
	types[15] = OIDOID;
	values[15] = ObjectIdGetDatum(def->owner);
	types[16] = BOOLOID;
	values[16] = BoolGetDatum(def->target_created);
	types[17] = TEXTOID;
	values[17] = TextOrNull(def->schedule, &nulls[17]);
	types[18] = INT4OID;
	values[18] = Int32GetDatum(def->max_retries);
	types[19] = INTERVALOID;
	values[19] = IntervalOrNull(def->retry_delay, &nulls[19]);
	types[20] = INTERVALOID;
	values[20] = IntervalOrNull(def->timeout, &nulls[20]);
	types[21] = INTERVALOID;
	values[21] = IntervalOrNull(def->freshness, &nulls[21]);
	types[22] = INTERVALOID;
	values[22] = IntervalOrNull(def->timeliness, &nulls[22]);
	types[23] = BOOLOID;
	values[23] = BoolGetDatum(def->freshness_muted);
	types[24] = BOOLOID;
	values[24] = BoolGetDatum(def->timeliness_muted);
}

/* InsertPipelineDef stores a new definition and its empty watermark */
int64
InsertPipelineDef(PipelineDef *def)
{
	Oid			types[NUM_DEF_PARAMS];
	Datum		values[NUM_DEF_PARAMS];
	char		nulls[NUM_DEF_PARAMS];
	bool		isnull;
	Oid			wtypes[1] = {INT8OID};
	Datum		wvalues[1];

	DefParams(def, types, values, nulls);
	ExecCatalog("INSERT INTO pipeline.pipeline (name, source_schema, source_table,"
				" target_schema, target_table, mode, unique_key, incremental_column,"
				" delete_column, soft_delete, partition_column, lookback, batch_rows,"
				" description, metadata, owner, target_created, schedule, max_retries,"
				" retry_delay, timeout, freshness, timeliness, freshness_muted,"
				" timeliness_muted)"
				" VALUES ($1, $2, $3, $4, $5, $6, $7::name[], $8, $9, $10, $11, $12,"
				" $13, $14, $15, $16::regrole, $17, $18, $19,"
				" coalesce($20, '10 seconds'::interval), $21, $22, $23, $24, $25)"
				" RETURNING pipeline_id",
				NUM_DEF_PARAMS, types, values, nulls, false);
	def->id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

	wvalues[0] = Int64GetDatum(def->id);
	ExecCatalog("INSERT INTO pipeline.watermark (pipeline_id) VALUES ($1)",
				1, wtypes, wvalues, NULL, false);
	return def->id;
}

/* UpdatePipelineDef rewrites a definition; optionally forgets the watermark */
void
UpdatePipelineDef(PipelineDef *def, bool reset_watermark)
{
	Oid			types[NUM_DEF_PARAMS + 1];
	Datum		values[NUM_DEF_PARAMS + 1];
	char		nulls[NUM_DEF_PARAMS + 1];

	DefParams(def, types, values, nulls);
	types[NUM_DEF_PARAMS] = INT8OID;
	values[NUM_DEF_PARAMS] = Int64GetDatum(def->id);
	nulls[NUM_DEF_PARAMS] = ' ';
	ExecCatalog("UPDATE pipeline.pipeline SET name = $1, source_schema = $2,"
				" source_table = $3, target_schema = $4, target_table = $5, mode = $6,"
				" unique_key = $7::name[], incremental_column = $8, delete_column = $9,"
				" soft_delete = $10, partition_column = $11, lookback = $12,"
				" batch_rows = $13, description = $14, metadata = $15,"
				" owner = $16::regrole, target_created = $17, schedule = $18,"
				" max_retries = $19, retry_delay = coalesce($20, '10 seconds'::interval),"
				" timeout = $21, freshness = $22, timeliness = $23,"
				" freshness_muted = $24, timeliness_muted = $25, updated_at = now()"
				" WHERE pipeline_id = $26",
				NUM_DEF_PARAMS + 1, types, values, nulls, false);
	if (reset_watermark)
		StoreWatermark(def->id, NULL, 0);
}

/*
 * DeletePipelineDef removes a definition; its watermark goes by cascade. Its
 * owner is kept in pipeline.dropped_pipeline, so that the owner still sees
 * the runs, alerts, versions and audit entries that outlive it.
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
 * StoreWatermark sets a pipeline's watermark (NULL: load everything next
 * time) and, when run_id is given, the run that set it.
 */
void
StoreWatermark(int64 pipeline_id, const char *value, int64 run_id)
{
	Oid			types[3] = {INT8OID, TEXTOID, INT8OID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};

	values[0] = Int64GetDatum(pipeline_id);
	values[1] = TextOrNull(value, &nulls[1]);
	values[2] = Int64GetDatum(run_id);
	nulls[2] = run_id > 0 ? ' ' : 'n';
	ExecCatalog("UPDATE pipeline.watermark SET value = $2,"
				" last_run_id = coalesce($3, last_run_id), updated_at = now()"
				" WHERE pipeline_id = $1",
				3, types, values, nulls, false);
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
