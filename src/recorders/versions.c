/*-------------------------------------------------------------------------
 *
 * src/recorders/versions.c
 *
 * Config versions. A pipeline's configuration has a
 * canonical form: a JSON object of every option a user sets, the options
 * of the option table that are in_config (names quoted and
 * schema-qualified, intervals in ISO 8601, the owner by name), in
 * jsonb's own key order, so that the same configuration always has the
 * same text and the same SHA-256. pipeline.pipeline_versions gets a new
 * row only when that hash changes; pipeline.pipeline.config_version points
 * at the current one, and every run records the version it ran with.
 * (pipeline.config_of and pipeline.apply are in api/apply.c.)
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
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "pipeline/recorders.h"


/* IsoInterval spells an interval in ISO 8601, whatever the session's IntervalStyle */
static char *
IsoInterval(Interval *iv)
{
	int			nestlevel = NewGUCNestLevel();
	char	   *s;

	(void) set_config_option("intervalstyle", "iso_8601", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	s = DatumGetCString(DirectFunctionCall1(interval_out, IntervalPGetDatum(iv)));
	AtEOXact_GUC(true, nestlevel);
	return s;
}

/*
 * DeclaredDependenciesJson returns the names of the pipelines a pipeline
 * declares it depends on, as a sorted JSON array (they are part of its
 * configuration; inferred dependencies follow from source and target).
 */
static char *
DeclaredDependenciesJson(int64 pipeline_id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1];
	bool		isnull;
	Datum		d;
	SPITupleTable *saved = SPI_tuptable;
	uint64		saved_processed = SPI_processed;
	char	   *result;

	values[0] = Int64GetDatum(pipeline_id);
	ExecCatalog("SELECT coalesce(json_agg(u.name ORDER BY u.name), '[]')::text"
				"  FROM pipeline.dependency d"
				"  JOIN pipeline.pipeline u ON u.pipeline_id = d.upstream_id"
				" WHERE d.pipeline_id = $1",
				1, types, values, NULL, false);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	result = isnull ? pstrdup("[]") : TextDatumGetCString(d);
	SPI_freetuptable(SPI_tuptable);
	SPI_tuptable = saved;
	SPI_processed = saved_processed;
	return result;
}

/*
 * OptionIsDefault says whether def holds an option's default: {} for an
 * object, the default text, none (0) for a number without default, the
 * default integer, none for an interval or a list without default, the
 * default boolean. Options added after 0.1.0 are left out of the config
 * while they hold it, so that an older pipeline keeps its config and hash.
 */
static bool
OptionIsDefault(PipelineDef *def, const PipelineOption *o)
{
	switch (o->storage)
	{
		case OPTION_STORE_JSONB:
			{
				Jsonb	   *jb = *OPTION_FIELD(def, o->field, Jsonb *);

				return jb == NULL || JB_ROOT_COUNT(jb) == 0;
			}
		case OPTION_STORE_TEXT:
			{
				char	   *s = *OPTION_FIELD(def, o->field, char *);

				return s == NULL || (o->default_value && strcmp(s, o->default_value) == 0);
			}
		case OPTION_STORE_FLOAT8:
			return *OPTION_FIELD(def, o->field, double) <= 0;
		case OPTION_STORE_INT32:
			return o->default_value &&
				*OPTION_FIELD(def, o->field, int32) == pg_strtoint32(o->default_value);
		case OPTION_STORE_BOOL:
			return *OPTION_FIELD(def, o->field, bool) ==
				(o->default_value && strcmp(o->default_value, "true") == 0);
		case OPTION_STORE_INTERVAL:
			/* an interval whose default is none (raw_retention, capture_retention) */
			return o->default_value == NULL && *OPTION_FIELD(def, o->field, Interval *) == NULL;
		case OPTION_STORE_NAME_LIST:
			/* a list whose default is none (snapshot_check_columns) */
			return o->default_value == NULL && *OPTION_FIELD(def, o->field, List *) == NIL;
		default:
			elog(ERROR, "option \"%s\" has no default to leave out", o->name);
	}
	return false;				/* keep compiler quiet */
}

/*
 * AppendConfigMember appends one option of def to the config: text and
 * names as JSON strings, the source and target quoted and qualified,
 * intervals in ISO 8601, the owner by name, none as null.
 */
static void
AppendConfigMember(StringInfo buf, PipelineDef *def, const PipelineOption *o)
{
	ListCell   *lc;
	List	   *names;
	Interval   *iv;
	Jsonb	   *jb;

	if (o->omit_default_in_config && OptionIsDefault(def, o))
		return;
	if (o->storage == OPTION_STORE_TEXT)
	{
		AppendJsonMember(buf, o->name, *OPTION_FIELD(def, o->field, char *), true);
		return;
	}
	appendStringInfoChar(buf, ',');
	escape_json(buf, o->name);
	appendStringInfoChar(buf, ':');
	switch (o->storage)
	{
		case OPTION_STORE_RELATION:
			escape_json(buf, quote_qualified_identifier(*OPTION_FIELD(def, o->field, char *),
														*OPTION_FIELD(def, o->field2, char *)));
			break;
		case OPTION_STORE_MODE:
			escape_json(buf, LoadModeName(*OPTION_FIELD(def, o->field, LoadMode)));
			break;
		case OPTION_STORE_NAME_LIST:
			names = *OPTION_FIELD(def, o->field, List *);
			if (names == NIL)
			{
				appendStringInfoString(buf, "null");
				break;
			}
			appendStringInfoChar(buf, '[');
			foreach(lc, names)
			{
				if (lc != list_head(names))
					appendStringInfoChar(buf, ',');
				escape_json(buf, lfirst(lc));
			}
			appendStringInfoChar(buf, ']');
			break;
		case OPTION_STORE_BOOL:
			appendStringInfoString(buf, *OPTION_FIELD(def, o->field, bool) ? "true" : "false");
			break;
		case OPTION_STORE_INT32:
			appendStringInfo(buf, "%d", *OPTION_FIELD(def, o->field, int32));
			break;
		case OPTION_STORE_COUNT:
			if (*OPTION_FIELD(def, o->field, int64) > 0)
				appendStringInfo(buf, "%lld", (long long) *OPTION_FIELD(def, o->field, int64));
			else
				appendStringInfoString(buf, "null");
			break;
		case OPTION_STORE_INTERVAL:
			iv = *OPTION_FIELD(def, o->field, Interval *);
			AppendJsonMember(buf, NULL, iv ? IsoInterval(iv) : NULL, false);
			break;
		case OPTION_STORE_JSONB:
			jb = *OPTION_FIELD(def, o->field, Jsonb *);
			appendStringInfoString(buf, jb ? JsonbToCString(NULL, &jb->root, VARSIZE(jb)) : "{}");
			break;
		case OPTION_STORE_FLOAT8:
			if (*OPTION_FIELD(def, o->field, double) > 0)
				appendStringInfoString(buf, float8out_internal(*OPTION_FIELD(def, o->field, double)));
			else
				appendStringInfoString(buf, "null");
			break;
		case OPTION_STORE_ROLE:
			AppendJsonMember(buf, NULL, GetUserNameFromId(*OPTION_FIELD(def, o->field, Oid), true), false);
			break;
		case OPTION_STORE_DEPENDENCIES:
			appendStringInfoString(buf, DeclaredDependenciesJson(def->id));
			break;
		case OPTION_STORE_TEXT:
		case OPTION_STORE_NONE:
		case OPTION_STORE_CHECKS:
			elog(ERROR, "option \"%s\" cannot be in the config", o->name);
	}
}

/*
 * CanonicalConfig returns a pipeline's configuration as JSON text: "format"
 * and every option of the option table that is in_config (each option a
 * user sets, the owner, the declared dependencies), and nothing that a run
 * or pause/resume changes (watermark, active). The text goes through jsonb,
 * whose key order and spacing are the canonical ones, so the order of the
 * table does not matter; a new option changes the text of every pipeline
 * (and so makes a new version of each) only if it is added to the config.
 */
char *
CanonicalConfig(PipelineDef *def)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"format\":1");
	for (int i = 0; i < NumPipelineOptions; i++)
		if (PipelineOptions[i].in_config)
			AppendConfigMember(&buf, def, &PipelineOptions[i]);
	appendStringInfoChar(&buf, '}');

	/* through jsonb: its key order and spacing are the canonical ones */
	{
		Jsonb	   *jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)));

		return JsonbToCString(NULL, &jb->root, VARSIZE(jb));
	}
}

/*
 * RecordConfigVersion makes sure the pipeline's current configuration is a
 * version: when its hash differs from the latest version's, it writes the
 * next version and points the pipeline at it. Returns the version now
 * current; *previous_config is the latest version's config before the call
 * (NULL for a new pipeline), *config the current one.
 */
int
RecordConfigVersion(PipelineDef *def, char **previous_config, char **config)
{
	char	   *canonical = CanonicalConfig(def);
	char	   *hash = Sha256Hex(canonical, strlen(canonical));
	Oid			types[5] = {INT8OID, INT4OID, JSONBOID, TEXTOID, TEXTOID};
	Datum		values[5];
	int			version = 0;

	*config = canonical;
	*previous_config = NULL;
	values[0] = Int64GetDatum(def->id);
	ExecCatalog("SELECT version, config::text, config_hash FROM pipeline.pipeline_versions"
						 " WHERE pipeline_id = $1 ORDER BY version DESC LIMIT 1",
						 1, types, values, NULL, false);
	if (SPI_processed > 0)
	{
		bool		isnull;
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;

		version = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
		*previous_config = SPI_getvalue(tup, desc, 2);
		if (strcmp(SPI_getvalue(tup, desc, 3), hash) == 0)
			return version;
	}
	version++;
	values[1] = Int32GetDatum(version);
	values[2] = DirectFunctionCall1(jsonb_in, CStringGetDatum(canonical));
	values[3] = CStringGetTextDatum(hash);
	values[4] = CStringGetTextDatum(GetUserNameFromId(GetUserId(), false));
	ExecCatalog("INSERT INTO pipeline.pipeline_versions"
						 " (pipeline_id, version, config, config_hash, created_by)"
						 " VALUES ($1, $2, $3, $4, $5)",
						 5, types, values, NULL, false);
	ExecCatalog("UPDATE pipeline.pipeline SET config_version = $2 WHERE pipeline_id = $1",
						 2, types, values, NULL, false);
	return version;
}

static SPIPlanPtr config_version_plan = NULL;

/*
 * CurrentConfigVersion reads the config version a pipeline is at now, so
 * that a run's lineage row and audit entries record the version it ran
 * with (0: none).
 */
int
CurrentConfigVersion(int64 pipeline_id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1];
	bool		isnull = true;
	Datum		d = (Datum) 0;

	values[0] = Int64GetDatum(pipeline_id);
	ExecKeptPlan(&config_version_plan,
				 "SELECT config_version FROM pipeline.pipeline WHERE pipeline_id = $1",
				 1, types, values, NULL);
	if (SPI_processed > 0)
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? 0 : DatumGetInt32(d);
}
