/*-------------------------------------------------------------------------
 *
 * src/api/apply.c
 *
 * Declarative specs. pipeline.apply(spec) creates or updates pipelines from
 * a spec (one object or an array of them) through create_pipeline and
 * alter_pipeline, so it validates exactly as they do. An update runs in a
 * subtransaction that is rolled back when the config version did not move:
 * applying the same spec twice writes nothing, and says so.
 * pipeline.config_of(name) shows a pipeline's canonical configuration
 * (recorders/versions.c) to those who may see it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/resowner.h"

#include "pipeline/policy.h"

PIPELINE_FUNCTION(pipeline_config_of);
PIPELINE_FUNCTION(pipeline_apply);

/*
 * pipeline.config_of(name): the canonical configuration of a pipeline now,
 * for a role that may see the pipeline (42501 for the others).
 */
Datum
pipeline_config_of(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	PipelineDef *def;
	char	   *config;
	int			nestlevel;
	MemoryContext caller = CurrentMemoryContext;
	Datum		result;

	SPI_connect();
	nestlevel = PinSearchPath();
	def = LoadPipelineByName(name, false);
	/* a definition is shown to those who may see the pipeline (docs/security.md) */
	CheckPipelineOwner(def, "read");
	config = CanonicalConfig(def);
	UnpinSearchPath(nestlevel);
	/* the config is built in SPI's memory, which SPI_finish releases */
	{
		MemoryContext spi = MemoryContextSwitchTo(caller);

		result = DirectFunctionCall1(jsonb_in, CStringGetDatum(config));
		MemoryContextSwitchTo(spi);
	}
	SPI_finish();
	PG_RETURN_DATUM(result);
}

/* ---- pipeline.apply ---------------------------------------------------- */

/* The keys a spec may hold, in create_pipeline's argument order */
static const char *const SpecKeys[] = {
	"name", "source", "target", "unique_key", "incremental_column", "mode",
	"delete_column", "soft_delete", "partition_column", "lookback",
	"batch_rows", "create_target", "description", "metadata", "lineage_column",
	"schedule", "depends_on", "max_retries", "retry_delay", "timeout",
	"freshness", "timeliness", "mute_freshness", "mute_timeliness"
};
#define NUM_SPEC_KEYS lengthof(SpecKeys)
#define NUM_CALL_ARGS 23		/* all but lineage_column */

enum
{
	SK_NAME, SK_SOURCE, SK_TARGET, SK_UNIQUE_KEY, SK_INCREMENTAL, SK_MODE,
	SK_DELETE, SK_SOFT_DELETE, SK_PARTITION, SK_LOOKBACK, SK_BATCH_ROWS,
	SK_CREATE_TARGET, SK_DESCRIPTION, SK_METADATA, SK_LINEAGE_COLUMN,
	SK_SCHEDULE, SK_DEPENDS_ON, SK_MAX_RETRIES, SK_RETRY_DELAY, SK_TIMEOUT,
	SK_FRESHNESS, SK_TIMELINESS, SK_MUTE_FRESHNESS, SK_MUTE_TIMELINESS
};

/* One spec object, decoded */
typedef struct PipelineSpec
{
	JsonbValue *v[NUM_SPEC_KEYS];	/* NULL when absent or JSON null */
	char	   *name;
} PipelineSpec;

static void
SpecError(int index, const char *message, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("malformed pipeline spec: %s", message),
			 errdetail("The problem is in spec element %d (counting from 1).", index),
			 hint ? errhint("%s", hint) : 0));
}

/* SpecString returns a string member, checking its JSON type */
static char *
SpecString(PipelineSpec *spec, int key, int index)
{
	JsonbValue *v = spec->v[key];

	if (v == NULL)
		return NULL;
	if (v->type != jbvString)
		SpecError(index, psprintf("\"%s\" must be a string", SpecKeys[key]), NULL);
	return pnstrdup(v->val.string.val, v->val.string.len);
}

static bool
SpecBool(PipelineSpec *spec, int key, int index, bool dflt)
{
	JsonbValue *v = spec->v[key];

	if (v == NULL)
		return dflt;
	if (v->type != jbvBool)
		SpecError(index, psprintf("\"%s\" must be true or false", SpecKeys[key]), NULL);
	return v->val.boolean;
}

/*
 * DecodeSpec checks one spec object: an object, known keys only, the
 * required ones present, each of the right JSON type.
 */
static void
DecodeSpec(JsonbValue *obj, int index, PipelineSpec *spec)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	bool		key_next = false;
	int			current = -1;

	memset(spec, 0, sizeof(*spec));
	if (obj->type != jbvBinary || !JsonContainerIsObject(obj->val.binary.data))
		SpecError(index, "each spec must be a JSON object",
				  "Pass {\"name\": ..., \"source\": ..., \"target\": ...} or an array of such objects.");
	it = JsonbIteratorInit(obj->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			char	   *key = pnstrdup(v.val.string.val, v.val.string.len);

			current = -1;
			for (int k = 0; k < NUM_SPEC_KEYS; k++)
				if (strcmp(key, SpecKeys[k]) == 0)
					current = k;
			if (current < 0)
				SpecError(index, psprintf("unknown key \"%s\"", key),
						  "The keys are name, source, target, unique_key, incremental_column, mode, delete_column, soft_delete, partition_column, lookback, batch_rows, create_target, description, metadata, lineage_column, schedule, depends_on, max_retries, retry_delay, timeout, freshness, timeliness, mute_freshness and mute_timeliness.");
			key_next = true;
		}
		else if (tok == WJB_VALUE && key_next)
		{
			if (v.type != jbvNull)
			{
				spec->v[current] = palloc(sizeof(JsonbValue));
				*spec->v[current] = v;
			}
			key_next = false;
		}
	}
	spec->name = SpecString(spec, SK_NAME, index);
	if (spec->name == NULL)
		SpecError(index, "\"name\" is missing", "Every spec names its pipeline.");
	if (spec->v[SK_SOURCE] == NULL)
		SpecError(index, "\"source\" is missing", "Name the source table or view, e.g. \"staging.orders\".");
	if (spec->v[SK_TARGET] == NULL)
		SpecError(index, "\"target\" is missing", "Name the target table, e.g. \"core.orders\".");
	(void) SpecString(spec, SK_SOURCE, index);
	(void) SpecString(spec, SK_TARGET, index);
	if (spec->v[SK_UNIQUE_KEY])
	{
		JsonbValue *u = spec->v[SK_UNIQUE_KEY];

		if (u->type != jbvBinary || !JsonContainerIsArray(u->val.binary.data))
			SpecError(index, "\"unique_key\" must be an array of column names", NULL);
	}
	if (spec->v[SK_BATCH_ROWS] && spec->v[SK_BATCH_ROWS]->type != jbvNumeric)
		SpecError(index, "\"batch_rows\" must be a number", NULL);
	if (spec->v[SK_METADATA])
	{
		JsonbValue *m = spec->v[SK_METADATA];

		if (m->type != jbvBinary || !JsonContainerIsObject(m->val.binary.data))
			SpecError(index, "\"metadata\" must be a JSON object", NULL);
	}
	for (int k = 0; k < NUM_SPEC_KEYS; k++)
		if (k == SK_INCREMENTAL || k == SK_MODE || k == SK_DELETE || k == SK_PARTITION ||
			k == SK_LOOKBACK || k == SK_DESCRIPTION || k == SK_LINEAGE_COLUMN)
			(void) SpecString(spec, k, index);
	(void) SpecBool(spec, SK_SOFT_DELETE, index, false);
	(void) SpecBool(spec, SK_CREATE_TARGET, index, true);
}

/* NameArrayDatum turns a spec's array of names (unique_key, depends_on) into a text[] */
static Datum
NameArrayDatum(JsonbValue *u, int index, const char *key)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	List	   *elems = NIL;
	Datum	   *d;
	int			n = 0;
	ListCell   *lc;

	if (u->type != jbvBinary || !JsonContainerIsArray(u->val.binary.data))
		SpecError(index, psprintf("\"%s\" must be an array of names", key), NULL);
	it = JsonbIteratorInit(u->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok != WJB_ELEM)
			continue;
		if (v.type != jbvString)
			SpecError(index, psprintf("\"%s\" must be an array of names", key), NULL);
		elems = lappend(elems, pnstrdup(v.val.string.val, v.val.string.len));
	}
	d = palloc(sizeof(Datum) * (list_length(elems) + 1));
	foreach(lc, elems)
		d[n++] = CStringGetTextDatum(lfirst(lc));
	return PointerGetDatum(construct_array(d, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/*
 * SpecCallArgs fills the arguments of create_pipeline/alter_pipeline.
 * For an update, an absent option means its default, so the values that
 * clear an option in alter_pipeline are passed.
 */
static void
SpecCallArgs(PipelineSpec *spec, int index, bool update, Oid *types, Datum *values, char *nulls)
{
	char	   *s;
	RangeVar   *rv;

	memset(nulls, ' ', NUM_CALL_ARGS);
	types[0] = TEXTOID;
	values[0] = CStringGetTextDatum(spec->name);
	/* the source is resolved on the caller's search_path: 42P01 if missing */
	rv = makeRangeVarFromNameList(stringToQualifiedNameList(SpecString(spec, SK_SOURCE, index)));
	types[1] = REGCLASSOID;
	values[1] = ObjectIdGetDatum(RangeVarGetRelid(rv, NoLock, false));
	types[2] = TEXTOID;
	values[2] = CStringGetTextDatum(SpecString(spec, SK_TARGET, index));
	types[3] = TEXTARRAYOID;
	if (spec->v[SK_UNIQUE_KEY])
		values[3] = NameArrayDatum(spec->v[SK_UNIQUE_KEY], index, "unique_key");
	else if (update)
		values[3] = PointerGetDatum(construct_empty_array(TEXTOID));
	else
		nulls[3] = 'n';

	{
		static const int text_keys[] = {SK_INCREMENTAL, SK_DELETE, SK_PARTITION, SK_DESCRIPTION};
		static const int text_args[] = {4, 6, 8, 12};

		for (int i = 0; i < lengthof(text_keys); i++)
		{
			s = SpecString(spec, text_keys[i], index);
			types[text_args[i]] = TEXTOID;
			if (s == NULL && update)
				s = "";
			values[text_args[i]] = s ? CStringGetTextDatum(s) : (Datum) 0;
			nulls[text_args[i]] = s ? ' ' : 'n';
		}
	}
	s = SpecString(spec, SK_MODE, index);
	types[5] = TEXTOID;
	values[5] = CStringGetTextDatum(s ? s : "merge");
	types[7] = BOOLOID;
	values[7] = BoolGetDatum(SpecBool(spec, SK_SOFT_DELETE, index, false));
	s = SpecString(spec, SK_LOOKBACK, index);
	types[9] = INTERVALOID;
	if (s == NULL && update)
		s = "0";
	values[9] = s ? DirectFunctionCall3(interval_in, CStringGetDatum(s), ObjectIdGetDatum(InvalidOid),
										Int32GetDatum(-1)) : (Datum) 0;
	nulls[9] = s ? ' ' : 'n';
	types[10] = INT8OID;
	if (spec->v[SK_BATCH_ROWS])
		values[10] = DirectFunctionCall1(numeric_int8, NumericGetDatum(spec->v[SK_BATCH_ROWS]->val.numeric));
	else if (update)
		values[10] = Int64GetDatum(0);
	else
		nulls[10] = 'n';
	types[11] = BOOLOID;
	values[11] = BoolGetDatum(SpecBool(spec, SK_CREATE_TARGET, index, true));
	types[13] = JSONBOID;
	if (spec->v[SK_METADATA])
		values[13] = JsonbPGetDatum(JsonbValueToJsonb(spec->v[SK_METADATA]));
	else
		values[13] = DirectFunctionCall1(jsonb_in, CStringGetDatum("{}"));

	/* scheduling: for an update, an absent option clears it or restores its default */
	s = SpecString(spec, SK_SCHEDULE, index);
	types[14] = TEXTOID;
	if (s == NULL && update)
		s = "";
	values[14] = s ? CStringGetTextDatum(s) : (Datum) 0;
	nulls[14] = s ? ' ' : 'n';
	types[15] = TEXTARRAYOID;
	if (spec->v[SK_DEPENDS_ON])
		values[15] = NameArrayDatum(spec->v[SK_DEPENDS_ON], index, "depends_on");
	else if (update)
		values[15] = PointerGetDatum(construct_empty_array(TEXTOID));
	else
		nulls[15] = 'n';
	types[16] = INT4OID;
	if (spec->v[SK_MAX_RETRIES])
	{
		if (spec->v[SK_MAX_RETRIES]->type != jbvNumeric)
			SpecError(index, "\"max_retries\" must be a number", NULL);
		values[16] = DirectFunctionCall1(numeric_int4, NumericGetDatum(spec->v[SK_MAX_RETRIES]->val.numeric));
	}
	else
		values[16] = Int32GetDatum(0);
	{
		static const int interval_keys[] = {SK_RETRY_DELAY, SK_TIMEOUT, SK_FRESHNESS, SK_TIMELINESS};
		static const char *const absent[] = {"10 seconds", "0", "0", "0"};

		for (int i = 0; i < lengthof(interval_keys); i++)
		{
			s = SpecString(spec, interval_keys[i], index);
			types[17 + i] = INTERVALOID;
			if (s == NULL && (update || i == 0))
				s = (char *) absent[i];
			values[17 + i] = s ? DirectFunctionCall3(interval_in, CStringGetDatum(s),
													 ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)) : (Datum) 0;
			nulls[17 + i] = s ? ' ' : 'n';
		}
	}
	types[21] = BOOLOID;
	values[21] = BoolGetDatum(SpecBool(spec, SK_MUTE_FRESHNESS, index, false));
	types[22] = BOOLOID;
	values[22] = BoolGetDatum(SpecBool(spec, SK_MUTE_TIMELINESS, index, false));
}

/* CallRegistry runs create_pipeline or alter_pipeline as the caller */
static void
CallRegistry(const char *function, Oid *types, Datum *values, char *nulls)
{
	char	   *sql = psprintf("SELECT pipeline.%s(name => $1, source => $2, target => $3,"
							   " unique_key => $4, incremental_column => $5, mode => $6,"
							   " delete_column => $7, soft_delete => $8, partition_column => $9,"
							   " lookback => $10, batch_rows => $11, create_target => $12,"
							   " description => $13, metadata => $14, schedule => $15,"
							   " depends_on => $16, max_retries => $17, retry_delay => $18,"
							   " timeout => $19, freshness => $20, timeliness => $21,"
							   " mute_freshness => $22, mute_timeliness => $23)", function);

	if (SPI_execute_with_args(sql, NUM_CALL_ARGS, types, values, nulls, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "pipeline.%s failed", function);
}

/* SetLineageColumnCall runs pipeline.set_lineage_column as the caller */
static void
SetLineageColumnCall(const char *name, const char *column)
{
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2];
	char		nulls[2] = {' ', column ? ' ' : 'n'};

	values[0] = CStringGetTextDatum(name);
	values[1] = column ? CStringGetTextDatum(column) : (Datum) 0;
	if (SPI_execute_with_args("SELECT pipeline.set_lineage_column($1, $2)", 2, types, values,
							  nulls, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "pipeline.set_lineage_column failed");
}

/* PipelineVersion reads a pipeline's current config version, 0 if none */
static int
PipelineVersion(const char *name)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	bool		isnull = true;
	Datum		d = (Datum) 0;

	values[0] = CStringGetTextDatum(name);
	ExecCatalog("SELECT config_version FROM pipeline.pipeline WHERE name = $1",
						 1, types, values, NULL, false);
	if (SPI_processed > 0)
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? 0 : DatumGetInt32(d);
}

/*
 * ApplyOne creates or updates one pipeline from its spec and returns what
 * it did: created, updated or unchanged.
 */
static const char *
ApplyOne(PipelineSpec *spec, int index, int *version)
{
	Oid			types[NUM_CALL_ARGS];
	Datum		values[NUM_CALL_ARGS];
	char		nulls[NUM_CALL_ARGS];
	PipelineDef *existing;
	char	   *lineage_column = SpecString(spec, SK_LINEAGE_COLUMN, index);
	int			before;
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	bool		changed;

	{
		int			nestlevel = PinSearchPath();

		existing = LoadPipelineByName(spec->name, true);
		UnpinSearchPath(nestlevel);
	}
	if (existing == NULL)
	{
		SpecCallArgs(spec, index, false, types, values, nulls);
		CallRegistry("create_pipeline", types, values, nulls);
		if (lineage_column)
			SetLineageColumnCall(spec->name, lineage_column);
		*version = PipelineVersion(spec->name);
		return "created";
	}

	before = PipelineVersion(spec->name);
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		SpecCallArgs(spec, index, true, types, values, nulls);
		CallRegistry("alter_pipeline", types, values, nulls);
		if (lineage_column || existing->lineage_column)
			SetLineageColumnCall(spec->name, lineage_column);
		*version = PipelineVersion(spec->name);
	}
	PG_CATCH();
	{
		/*
		 * Close the subtransaction before the error leaves: an internal
		 * subtransaction left open under a failed call would leave the
		 * session unable to roll back cleanly.
		 */
		MemoryContextSwitchTo(oldcontext);
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
		PG_RE_THROW();
	}
	PG_END_TRY();
	changed = *version != before;
	if (changed)
		ReleaseCurrentSubTransaction();
	else
		RollbackAndReleaseCurrentSubTransaction();
	MemoryContextSwitchTo(oldcontext);
	CurrentResourceOwner = oldowner;
	if (!changed)
		*version = before;
	return changed ? "updated" : "unchanged";
}

/*
 * pipeline.apply(spec jsonb) creates or updates the pipelines a spec
 * describes, in order, and returns one row per pipeline: its name, what
 * happened (created, updated, unchanged) and its config version.
 */
Datum
pipeline_apply(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Jsonb	   *spec;
	List	   *objs = NIL;
	List	   *names = NIL;
	ListCell   *lc;
	int			index = 0;
	int			changed = 0;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("spec must not be NULL")));
	InitMaterializedSRF(fcinfo, 0);
	spec = PG_GETARG_JSONB_P(0);

	if (JB_ROOT_IS_SCALAR(spec))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("malformed pipeline spec: a spec is a JSON object or an array of objects"),
				 errhint("Pass {\"name\": ..., \"source\": ..., \"target\": ...} or an array of such objects.")));
	if (JB_ROOT_IS_OBJECT(spec))
	{
		JsonbValue *v = palloc(sizeof(JsonbValue));

		v->type = jbvBinary;
		v->val.binary.data = &spec->root;
		v->val.binary.len = VARSIZE(spec) - VARHDRSZ;
		objs = lappend(objs, v);
	}
	else
	{
		JsonbIterator *it = JsonbIteratorInit(&spec->root);
		JsonbValue	v;
		JsonbIteratorToken tok;

		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		{
			if (tok == WJB_ELEM)
			{
				JsonbValue *copy = palloc(sizeof(JsonbValue));

				*copy = v;
				objs = lappend(objs, copy);
			}
		}
		if (objs == NIL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("malformed pipeline spec: the array is empty")));
	}

	/* check every spec before applying any */
	foreach(lc, objs)
	{
		PipelineSpec *ps = palloc(sizeof(PipelineSpec));
		ListCell   *nc;

		DecodeSpec(lfirst(lc), ++index, ps);
		foreach(nc, names)
			if (strcmp(((PipelineSpec *) lfirst(nc))->name, ps->name) == 0)
				SpecError(index, psprintf("pipeline \"%s\" appears twice", ps->name), NULL);
		names = lappend(names, ps);
	}

	SPI_connect();
	index = 0;
	foreach(lc, names)
	{
		PipelineSpec *ps = lfirst(lc);
		int			version = 0;
		const char *action = ApplyOne(ps, ++index, &version);
		Datum		values[3];
		bool		nulls[3] = {false, false, version == 0};

		if (strcmp(action, "unchanged") != 0)
			changed++;
		values[0] = CStringGetTextDatum(ps->name);
		values[1] = CStringGetTextDatum(action);
		values[2] = Int32GetDatum(version);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();
	if (changed == 0)
		ereport(NOTICE,
				(errmsg("nothing changed: every pipeline in the spec is already as described")));
	return (Datum) 0;
}
