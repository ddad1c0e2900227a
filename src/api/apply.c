/*-------------------------------------------------------------------------
 *
 * src/api/apply.c
 *
 * Declarative specs. pipeline.apply(spec) creates or updates pipelines from
 * a spec (one object or an array of them) through create_pipeline and
 * alter_pipeline, so it validates exactly as they do; its keys and the
 * arguments it passes are the options of the option table
 * (catalog/options.c). An update runs in a subtransaction that is rolled
 * back when neither the config version nor the checks moved: applying the
 * same spec twice writes nothing, and says so. The "checks" key replaces
 * the pipeline's data checks (api/checks_api.c, ApplyChecks).
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
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/resowner.h"

#include "pipeline/policy.h"
#include "registry_internal.h"

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

/*
 * One spec object, decoded. The keys a spec may hold are the options of
 * the option table that are in_spec, named as the arguments of
 * create_pipeline; a spec's values are kept by the option's index in the
 * table.
 */
typedef struct PipelineSpec
{
	JsonbValue **v;				/* by option, NULL when absent or JSON null */
	char	   *name;
} PipelineSpec;

/*
 * The JSON type of a spec's value, in the order in which DecodeSpec reports
 * wrong ones (after the keys a spec must have).
 */
typedef enum SpecType
{
	SPEC_ARRAY,
	SPEC_NUMBER,
	SPEC_OBJECT,
	SPEC_STRING,
	SPEC_BOOL
} SpecType;

/* The hint of a missing key that a spec must have */
static const struct
{
	const char *key;
	const char *hint;
}			MissingKeyHints[] = {
	{"name", "Every spec names its pipeline."},
	{"source", "Name the source table or view, e.g. \"staging.orders\"."},
	{"target", "Name the target table, e.g. \"core.orders\"."},
};

static void
SpecError(int index, const char *message, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("malformed pipeline spec: %s", message),
			 errdetail("The problem is in spec element %d (counting from 1).", index),
			 hint ? errhint("%s", hint) : 0));
}

/* SpecKey is the index of the option named key in the option table */
static int
SpecKey(const char *key)
{
	return PipelineOptionIndex(PipelineOptionByName(key));
}

/* SpecKeysHint lists the keys a spec may hold: "The keys are a, b and c." */
static const char *
SpecKeysHint(void)
{
	StringInfoData buf;
	int			last = -1;

	for (int k = 0; k < NumPipelineOptions; k++)
		if (PipelineOptions[k].in_spec)
			last = k;
	initStringInfo(&buf);
	appendStringInfoString(&buf, "The keys are");
	for (int k = 0, n = 0; k < NumPipelineOptions; k++)
	{
		if (!PipelineOptions[k].in_spec)
			continue;
		appendStringInfo(&buf, "%s%s", n++ == 0 ? " " : k == last ? " and " : ", ",
						 PipelineOptions[k].name);
	}
	appendStringInfoChar(&buf, '.');
	return buf.data;
}

/* SpecMustHave says whether a spec must hold an option: an argument without default */
static bool
SpecMustHave(const PipelineOption *o)
{
	return OidIsValid(o->sql_type) && !o->has_default;
}

/* SpecTypeOf is the JSON type of an option's value in a spec */
static SpecType
SpecTypeOf(const PipelineOption *o)
{
	if (o->storage == OPTION_STORE_CHECKS)
		return SPEC_ARRAY;
	switch (o->sql_type)
	{
		case TEXTARRAYOID:
			return SPEC_ARRAY;
		case INT4OID:
		case INT8OID:
		case FLOAT8OID:
			return SPEC_NUMBER;
		case JSONBOID:
			return SPEC_OBJECT;
		case BOOLOID:
			return SPEC_BOOL;
		default:
			return SPEC_STRING; /* text, regclass, an interval as text, no argument */
	}
}

/* SpecString returns a string member, checking its JSON type */
static char *
SpecString(PipelineSpec *spec, int key, int index)
{
	JsonbValue *v = spec->v[key];

	if (v == NULL)
		return NULL;
	if (v->type != jbvString)
		SpecError(index, psprintf("\"%s\" must be a string", PipelineOptions[key].name), NULL);
	return pnstrdup(v->val.string.val, v->val.string.len);
}

static bool
SpecBool(PipelineSpec *spec, int key, int index, bool dflt)
{
	JsonbValue *v = spec->v[key];

	if (v == NULL)
		return dflt;
	if (v->type != jbvBool)
		SpecError(index, psprintf("\"%s\" must be true or false", PipelineOptions[key].name), NULL);
	return v->val.boolean;
}

/* CheckSpecType checks the JSON type of one member of a spec, when present */
static void
CheckSpecType(PipelineSpec *spec, int key, int index)
{
	const PipelineOption *o = &PipelineOptions[key];
	JsonbValue *v = spec->v[key];

	if (v == NULL)
		return;
	switch (SpecTypeOf(o))
	{
		case SPEC_ARRAY:
			if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
				SpecError(index, psprintf("\"%s\" must be an array of %s", o->name,
										  o->check == OPTION_CHECK_COLUMN_LIST ? "column names" :
										  o->storage == OPTION_STORE_CHECKS ? "check objects" : "names"),
						  NULL);
			break;
		case SPEC_NUMBER:
			if (v->type != jbvNumeric)
				SpecError(index, psprintf("\"%s\" must be a number", o->name), NULL);
			break;
		case SPEC_OBJECT:
			if (v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
				SpecError(index, psprintf("\"%s\" must be a JSON object", o->name), NULL);
			break;
		case SPEC_STRING:
			(void) SpecString(spec, key, index);
			break;
		case SPEC_BOOL:
			(void) SpecBool(spec, key, index, false);
			break;
	}
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
	spec->v = palloc0(sizeof(JsonbValue *) * NumPipelineOptions);
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
			for (int k = 0; k < NumPipelineOptions; k++)
				if (PipelineOptions[k].in_spec && strcmp(key, PipelineOptions[k].name) == 0)
					current = k;
			if (current < 0)
				SpecError(index, psprintf("unknown key \"%s\"", key), SpecKeysHint());
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
	spec->name = SpecString(spec, SpecKey("name"), index);
	for (int k = 0; k < NumPipelineOptions; k++)
		if (PipelineOptions[k].in_spec && SpecMustHave(&PipelineOptions[k]) && spec->v[k] == NULL)
		{
			const char *hint = NULL;

			for (int h = 0; h < lengthof(MissingKeyHints); h++)
				if (strcmp(MissingKeyHints[h].key, PipelineOptions[k].name) == 0)
					hint = MissingKeyHints[h].hint;
			SpecError(index, psprintf("\"%s\" is missing", PipelineOptions[k].name), hint);
		}
	for (int k = 0; k < NumPipelineOptions; k++)
		if (PipelineOptions[k].in_spec && SpecMustHave(&PipelineOptions[k]))
			CheckSpecType(spec, k, index);
	for (SpecType t = SPEC_ARRAY; t <= SPEC_BOOL; t++)
		for (int k = 0; k < NumPipelineOptions; k++)
			if (PipelineOptions[k].in_spec && !SpecMustHave(&PipelineOptions[k]) &&
				SpecTypeOf(&PipelineOptions[k]) == t)
				CheckSpecType(spec, k, index);
}

/*
 * NameArrayDatum turns a spec's array of names (unique_key, depends_on)
 * into a text[], refusing anything but strings in it.
 */
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

/* IntervalDatum reads an interval spelled as text (22007 when it is not one) */
static Datum
IntervalDatum(const char *s)
{
	return DirectFunctionCall3(interval_in, CStringGetDatum(s), ObjectIdGetDatum(InvalidOid),
							   Int32GetDatum(-1));
}

/* SpecValue converts the spec's value of an option to its argument's type */
static Datum
SpecValue(PipelineSpec *spec, int key, int index)
{
	const PipelineOption *o = &PipelineOptions[key];
	JsonbValue *v = spec->v[key];

	switch (o->sql_type)
	{
		case REGCLASSOID:
			{
				/* the source is resolved on the caller's search_path: 42P01 if missing */
				List	   *names = stringToQualifiedNameList(SpecString(spec, key, index));

				return ObjectIdGetDatum(RangeVarGetRelid(makeRangeVarFromNameList(names), NoLock, false));
			}
		case TEXTOID:
			return CStringGetTextDatum(SpecString(spec, key, index));
		case TEXTARRAYOID:
			return NameArrayDatum(v, index, o->name);
		case BOOLOID:
			return BoolGetDatum(SpecBool(spec, key, index, false));
		case INT4OID:
			return DirectFunctionCall1(numeric_int4, NumericGetDatum(v->val.numeric));
		case INT8OID:
			return DirectFunctionCall1(numeric_int8, NumericGetDatum(v->val.numeric));
		case FLOAT8OID:
			return DirectFunctionCall1(numeric_float8, NumericGetDatum(v->val.numeric));
		case INTERVALOID:
			return IntervalDatum(SpecString(spec, key, index));
		case JSONBOID:
			return JsonbPGetDatum(JsonbValueToJsonb(v));
		default:
			elog(ERROR, "option \"%s\" has no spec value", o->name);
	}
	return (Datum) 0;			/* keep compiler quiet */
}

/* DefaultDatum is the default of an option's argument (not NULL), as a value */
static Datum
DefaultDatum(const PipelineOption *o)
{
	Oid			typinput;
	Oid			typioparam;

	getTypeInputInfo(o->sql_type, &typinput, &typioparam);
	return OidInputFunctionCall(typinput, (char *) o->default_value, typioparam, -1);
}

/* ClearDatum is the value that clears an option in alter_pipeline */
static Datum
ClearDatum(const PipelineOption *o)
{
	switch (o->sql_type)
	{
		case TEXTOID:
			return CStringGetTextDatum("");
		case TEXTARRAYOID:
			return PointerGetDatum(construct_empty_array(TEXTOID));
		case INTERVALOID:
			return IntervalDatum("0");
		case INT8OID:
			return Int64GetDatum(0);
		case FLOAT8OID:
			return Float8GetDatum(0);
		default:
			elog(ERROR, "option \"%s\" cannot be cleared", o->name);
	}
	return (Datum) 0;			/* keep compiler quiet */
}

/* NumCallArgs is the number of arguments of create_pipeline */
static int
NumCallArgs(void)
{
	int			n = 0;

	for (int k = 0; k < NumPipelineOptions; k++)
		if (OidIsValid(PipelineOptions[k].sql_type))
			n++;
	return n;
}

/*
 * SpecCallArgs fills the arguments of create_pipeline/alter_pipeline, one
 * per option with an argument, numbered as create_pipeline's. An absent
 * option means its default: for a create, the argument's default (NULL
 * included); for an update, the default too when it is not NULL, and
 * otherwise the value that clears the option in alter_pipeline ('', an
 * empty array, '0', 0), so that the spec is the whole truth; but rollup,
 * which only a pipeline in mode rollup has and always has, is left as it is.
 */
static void
SpecCallArgs(PipelineSpec *spec, int index, bool update, Oid *types, Datum *values, char *nulls)
{
	for (int k = 0; k < NumPipelineOptions; k++)
	{
		const PipelineOption *o = &PipelineOptions[k];
		int			n = PipelineOptionArgno(o, false);

		if (n < 0)
			continue;
		types[n] = o->sql_type;
		nulls[n] = ' ';
		if (spec->v[k] != NULL)
			values[n] = SpecValue(spec, k, index);
		else if (o->default_value != NULL)
			values[n] = DefaultDatum(o);
		else if (update && o->sql_type == JSONBOID)
			nulls[n] = 'n';		/* rollup goes with its mode, which an update keeps */
		else if (update)
			values[n] = ClearDatum(o);
		else
		{
			values[n] = (Datum) 0;
			nulls[n] = 'n';
		}
	}
}

/*
 * CallRegistry runs create_pipeline or alter_pipeline as the caller, each
 * argument passed by name: "name => $1, source => $2, ...".
 */
static void
CallRegistry(const char *function, Oid *types, Datum *values, char *nulls)
{
	StringInfoData sql;
	int			n = 0;

	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT pipeline.%s(", function);
	for (int k = 0; k < NumPipelineOptions; k++)
		if (OidIsValid(PipelineOptions[k].sql_type))
		{
			appendStringInfo(&sql, "%s%s => $%d", n == 0 ? "" : ", ", PipelineOptions[k].name, n + 1);
			n++;
		}
	appendStringInfoChar(&sql, ')');

	if (SPI_execute_with_args(sql.data, n, types, values, nulls, false, 0) != SPI_OK_SELECT)
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
	int			nargs = NumCallArgs();
	Oid		   *types = palloc(sizeof(Oid) * nargs);
	Datum	   *values = palloc(sizeof(Datum) * nargs);
	char	   *nulls = palloc(nargs);
	PipelineDef *existing;
	/* lineage_column has no argument: set by set_lineage_column after the call */
	char	   *lineage_column = SpecString(spec, SpecKey("lineage_column"), index);
	int			before;
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	bool		changed;
	volatile bool checks_changed = false;

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
		(void) ApplyChecks(spec->name, spec->v[SpecKey("checks")], index);
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
		checks_changed = ApplyChecks(spec->name, spec->v[SpecKey("checks")], index);
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
	changed = *version != before || checks_changed;
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
