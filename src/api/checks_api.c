/*-------------------------------------------------------------------------
 *
 * src/api/checks_api.c
 *
 * The SQL functions of data contracts and quarantine that change the
 * registry or the quarantine without running a load: add_check and
 * drop_check (a pipeline's checks, validated by engine/check_sql.c before
 * they are stored), acknowledge (a run's failed blocking checks, which
 * releases the downstream pipelines), discard_quarantine (closes open
 * quarantine rows without loading them), and the "checks" key of apply()
 * (ApplyChecks: the spec's list replaces the pipeline's checks, through
 * add_check and drop_check as the caller). Each checks that the caller may
 * act on the pipeline (CheckPipelineOwner, 42501) and is audited.
 * replay_quarantine runs a load, so it lives in the engine (replay.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"

#include "registry_internal.h"

PIPELINE_FUNCTION(pipeline_add_check);
PIPELINE_FUNCTION(pipeline_drop_check);
PIPELINE_FUNCTION(pipeline_acknowledge);
PIPELINE_FUNCTION(pipeline_discard_quarantine);

/* CheckJson spells a check for its audit entries */
static char *
CheckJson(CheckDef *c)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"check_name\":");
	escape_json(&buf, c->name);
	appendStringInfo(&buf, ",\"kind\":\"%s\",\"severity\":\"%s\",\"args\":%s}",
					 CheckKindName(c->kind), CheckSeverityName(c->severity),
					 JsonbToCString(NULL, &c->args->root, VARSIZE(c->args)));
	return buf.data;
}

/* ValidateCheckName refuses an empty or too long check name (22023, 42622) */
static void
ValidateCheckName(const char *name)
{
	if (name[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("check name must not be empty")));
	if (pg_mbstrlen(name) > PIPELINE_NAME_MAXLEN)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("check name is too long"),
				 errdetail("The name has %d characters; the limit is %d.",
						   pg_mbstrlen(name), PIPELINE_NAME_MAXLEN),
				 errhint("Choose a shorter name.")));
}

/* ReadKindAndSeverity reads a check's kind and severity, 22023 when unknown */
static void
ReadKindAndSeverity(CheckDef *c, const char *kind, const char *severity)
{
	if (!ParseCheckKind(kind, &c->kind))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown check kind \"%s\"", kind),
				 errdetail("Check \"%s\" names a kind pg_pipeline does not have.", c->name),
				 errhint("The row kinds are not_null, accepted_values, range, regex, relationships and expression; the set kinds are unique, row_count and query.")));
	if (!ParseCheckSeverity(severity, &c->severity))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown check severity \"%s\"", severity),
				 errdetail("Check \"%s\" names a severity pg_pipeline does not have.", c->name),
				 errhint("The severities are warn, quarantine, error and block.")));
	if (c->severity == SEVERITY_QUARANTINE && !CHECK_IS_ROW_LEVEL(c->kind))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a %s check cannot quarantine rows", CheckKindName(c->kind)),
				 errdetail("Check \"%s\" is a set-level check: it judges the run's rows together, not one row.", c->name),
				 errhint("Give it the severity warn, error or block.")));
}

/*
 * AddCheck validates and stores one check of a pipeline the caller may
 * alter, and returns its id: the name is free (42710), kind and severity
 * exist (22023), the arguments and the SQL are right (check_sql.c,
 * as the owner, before the search_path is pinned, so that a relationships
 * check's table is found as the caller names it).
 */
static int64
AddCheck(const char *pipeline, CheckDef *c, const char *kind, const char *severity)
{
	PipelineDef *def = LoadPipelineByName(pipeline, false);
	int			nestlevel;

	CheckPipelineOwner(def, "alter");
	ValidateCheckName(c->name);
	ReadKindAndSeverity(c, kind, severity);
	if (FindCheck(LoadChecks(def->id), c->name) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("check \"%s\" of pipeline \"%s\" already exists", c->name, def->name),
				 errhint("Drop it first with SELECT pipeline.drop_check(%s, %s);, or choose another name.",
						 quote_literal_cstr(def->name), quote_literal_cstr(c->name))));
	ValidateCheck(def, c);
	nestlevel = PinSearchPath();
	(void) InsertCheck(def->id, c);
	AuditQualityChange("add_check", def, 0, NULL, CheckJson(c));
	UnpinSearchPath(nestlevel);
	return c->check_id;
}

/* pipeline.add_check(pipeline, check_name, kind, args, severity) */
Datum
pipeline_add_check(PG_FUNCTION_ARGS)
{
	char	   *pipeline = PipelineNameArg(fcinfo, 0);
	CheckDef	c;
	int64		id;

	RequireArg(fcinfo, 1, "check name");
	RequireArg(fcinfo, 2, "check kind");
	RequireArg(fcinfo, 4, "check severity");
	memset(&c, 0, sizeof(c));
	c.name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	c.args = PG_ARGISNULL(3) ? DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")))
		: PG_GETARG_JSONB_P(3);
	SPI_connect();
	id = AddCheck(pipeline, &c, text_to_cstring(PG_GETARG_TEXT_PP(2)),
				  text_to_cstring(PG_GETARG_TEXT_PP(4)));
	SPI_finish();
	PG_RETURN_INT64(id);
}

/* DropCheck removes a check of a pipeline the caller may alter (42704 if none) */
static void
DropCheck(const char *pipeline, const char *name)
{
	PipelineDef *def = LoadPipelineByName(pipeline, false);
	CheckDef   *c;

	CheckPipelineOwner(def, "alter");
	c = FindCheck(LoadChecks(def->id), name);
	if (c == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("check \"%s\" of pipeline \"%s\" does not exist", name, def->name),
				 errhint("SELECT check_name FROM pipeline.checks WHERE pipeline = %s; lists its checks.",
						 quote_literal_cstr(def->name))));
	(void) DeleteCheck(def->id, name);
	AuditQualityChange("drop_check", def, 0, CheckJson(c), NULL);
}

/* pipeline.drop_check(pipeline, check_name) */
Datum
pipeline_drop_check(PG_FUNCTION_ARGS)
{
	char	   *pipeline = PipelineNameArg(fcinfo, 0);
	int			nestlevel;

	RequireArg(fcinfo, 1, "check name");
	SPI_connect();
	nestlevel = PinSearchPath();
	DropCheck(pipeline, text_to_cstring(PG_GETARG_TEXT_PP(1)));
	UnpinSearchPath(nestlevel);
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * pipeline.acknowledge(pipeline, run_id) acknowledges the failed blocking
 * checks of a run and returns how many; when the pipeline has no other
 * unacknowledged one, its downstream pipelines are queued (55000 when the
 * run has none to acknowledge).
 */
Datum
pipeline_acknowledge(PG_FUNCTION_ARGS)
{
	char	   *pipeline = PipelineNameArg(fcinfo, 0);
	PipelineDef *def;
	int64		run_id;
	int64		n;
	int			nestlevel;

	RequireArg(fcinfo, 1, "run id");
	run_id = PG_GETARG_INT64(1);
	SPI_connect();
	nestlevel = PinSearchPath();
	def = LoadPipelineByName(pipeline, false);
	CheckPipelineOwner(def, "acknowledge");
	n = AcknowledgeRun(def, run_id);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("run %lld of pipeline \"%s\" has no blocking check to acknowledge",
						(long long) run_id, def->name),
				 errdetail("Only a run whose block-severity check failed, and that nobody acknowledged yet, holds its downstream pipelines."),
				 errhint("SELECT * FROM pipeline.check_results WHERE outcome = 'blocked'; lists them.")));
	if (!PipelineBlocked(def->id))
		EnqueueDownstream(def->id, run_id);
	AuditQualityChange("acknowledge", def, run_id, "{\"outcome\":\"blocked\"}",
					   psprintf("{\"outcome\":\"acknowledged\",\"checks\":%lld}", (long long) n));
	UnpinSearchPath(nestlevel);
	SPI_finish();
	PG_RETURN_INT64(n);
}

/*
 * pipeline.discard_quarantine(pipeline, ids) closes open quarantine rows
 * (those of ids, or all the pipeline's when NULL) without loading them and
 * returns how many it closed.
 */
Datum
pipeline_discard_quarantine(PG_FUNCTION_ARGS)
{
	char	   *pipeline = PipelineNameArg(fcinfo, 0);
	ArrayType  *ids = PG_ARGISNULL(1) ? NULL : PG_GETARG_ARRAYTYPE_P(1);
	PipelineDef *def;
	int64		n;
	int			nestlevel;

	SPI_connect();
	nestlevel = PinSearchPath();
	def = LoadPipelineByName(pipeline, false);
	CheckPipelineOwner(def, "discard");
	n = ResolveQuarantine(def, ids, "discarded");
	AuditQualityChange("discard_quarantine", def, 0, NULL,
					   psprintf("{\"rows_discarded\":%lld}", (long long) n));
	UnpinSearchPath(nestlevel);
	SPI_finish();
	PG_RETURN_INT64(n);
}

/* ---- the "checks" key of apply() ------------------------------------------ */

static void
ChecksSpecError(int index, const char *message)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("malformed pipeline spec: %s", message),
			 errdetail("The problem is in spec element %d (counting from 1).", index),
			 errhint("\"checks\" is an array of objects with the keys check_name, kind, args and severity, as pipeline.add_check takes them.")));
}

/* SpecMember returns a member of a check object, NULL if absent */
static JsonbValue *
SpecMember(JsonbValue *obj, const char *key)
{
	JsonbValue *v = getKeyJsonValueFromContainer(obj->val.binary.data, key, strlen(key), NULL);

	return (v == NULL || v->type == jbvNull) ? NULL : v;
}

/* SpecText returns a string member of a check object */
static char *
SpecText(JsonbValue *obj, const char *key, const char *dflt, int index)
{
	JsonbValue *v = SpecMember(obj, key);

	if (v == NULL && dflt == NULL)
		ChecksSpecError(index, psprintf("a check has no \"%s\"", key));
	if (v == NULL)
		return pstrdup(dflt);
	if (v->type != jbvString)
		ChecksSpecError(index, psprintf("\"%s\" of a check must be a string", key));
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/* DecodeCheckSpecs reads the checks of a spec into CheckDefs with their kind and severity text */
static List *
DecodeCheckSpecs(JsonbValue *checks, int index, List **kinds, List **severities)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	List	   *result = NIL;

	if (checks == NULL)
		return NIL;
	it = JsonbIteratorInit(checks->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		CheckDef   *c;
		JsonbValue *args;
		JsonbIterator *kit;
		JsonbValue	k;

		if (tok != WJB_ELEM)
			continue;
		if (v.type != jbvBinary || !JsonContainerIsObject(v.val.binary.data))
			ChecksSpecError(index, "each check must be a JSON object");
		kit = JsonbIteratorInit(v.val.binary.data);
		while ((tok = JsonbIteratorNext(&kit, &k, true)) != WJB_DONE)
		{
			char	   *key;

			if (tok != WJB_KEY)
				continue;
			key = pnstrdup(k.val.string.val, k.val.string.len);
			if (strcmp(key, "check_name") != 0 && strcmp(key, "kind") != 0 &&
				strcmp(key, "args") != 0 && strcmp(key, "severity") != 0)
				ChecksSpecError(index, psprintf("unknown key \"%s\" in a check", key));
		}
		c = palloc0(sizeof(CheckDef));
		c->name = SpecText(&v, "check_name", NULL, index);
		*kinds = lappend(*kinds, SpecText(&v, "kind", NULL, index));
		*severities = lappend(*severities, SpecText(&v, "severity", "error", index));
		args = SpecMember(&v, "args");
		if (args && (args->type != jbvBinary || !JsonContainerIsObject(args->val.binary.data)))
			ChecksSpecError(index, "\"args\" of a check must be a JSON object");
		c->args = args ? JsonbValueToJsonb(args)
			: DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
		if (FindCheck(result, c->name))
			ChecksSpecError(index, psprintf("check \"%s\" appears twice", c->name));
		result = lappend(result, c);
	}
	return result;
}

/* SameCheck: a stored check is the one a spec describes */
static bool
SameCheck(CheckDef *stored, CheckDef *spec, const char *kind, const char *severity)
{
	return strcmp(CheckKindName(stored->kind), kind) == 0 &&
		strcmp(CheckSeverityName(stored->severity), severity) == 0 &&
		DatumGetBool(DirectFunctionCall2(jsonb_eq, JsonbPGetDatum(stored->args),
										 JsonbPGetDatum(spec->args)));
}

/*
 * ApplyChecks makes a pipeline's checks those of a spec's "checks" (none
 * when absent): it drops the checks the spec does not describe as they
 * are, and adds those it describes anew, as the caller, with the checks
 * and audit entries of add_check and drop_check. Returns whether anything
 * changed.
 */
bool
ApplyChecks(const char *pipeline, JsonbValue *checks, int index)
{
	List	   *kinds = NIL;
	List	   *severities = NIL;
	List	   *wanted = DecodeCheckSpecs(checks, index, &kinds, &severities);
	PipelineDef *def = LoadPipelineByName(pipeline, false);
	List	   *stored = LoadChecks(def->id);
	ListCell   *lc;
	bool		changed = false;
	int			i = 0;

	foreach(lc, stored)
	{
		CheckDef   *s = lfirst(lc);
		int			wi = -1;

		for (int k = 0; k < list_length(wanted); k++)
			if (strcmp(((CheckDef *) list_nth(wanted, k))->name, s->name) == 0)
				wi = k;
		if (wi < 0 || !SameCheck(s, list_nth(wanted, wi), list_nth(kinds, wi), list_nth(severities, wi)))
		{
			DropCheck(pipeline, s->name);
			changed = true;
		}
	}
	stored = LoadChecks(def->id);
	foreach(lc, wanted)
	{
		CheckDef   *w = lfirst(lc);

		if (FindCheck(stored, w->name) == NULL)
		{
			(void) AddCheck(pipeline, w, list_nth(kinds, i), list_nth(severities, i));
			changed = true;
		}
		i++;
	}
	return changed;
}
