/*-------------------------------------------------------------------------
 *
 * src/recorders/versions.c
 *
 * Config versions. A pipeline's configuration has a
 * canonical form: a JSON object of every option a user sets (names quoted
 * and schema-qualified, the lookback in ISO 8601, the owner by name), in
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
 * CanonicalConfig returns a pipeline's configuration as JSON text: every
 * option a user sets, and nothing that a run or pause/resume changes
 * (watermark, active).
 */
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

char *
CanonicalConfig(PipelineDef *def)
{
	StringInfoData buf;
	ListCell   *lc;
	char	   *owner = GetUserNameFromId(def->owner, true);
	char	   *depends_on = DeclaredDependenciesJson(def->id);

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"format\":1");
	AppendJsonMember(&buf, "name", def->name, true);
	AppendJsonMember(&buf, "source", quote_qualified_identifier(def->source_schema, def->source_table), true);
	AppendJsonMember(&buf, "target", quote_qualified_identifier(def->target_schema, def->target_table), true);
	AppendJsonMember(&buf, "mode", LoadModeName(def->mode), true);
	appendStringInfoString(&buf, ",\"unique_key\":");
	if (def->unique_key == NIL)
		appendStringInfoString(&buf, "null");
	else
	{
		appendStringInfoChar(&buf, '[');
		foreach(lc, def->unique_key)
		{
			if (lc != list_head(def->unique_key))
				appendStringInfoChar(&buf, ',');
			escape_json(&buf, lfirst(lc));
		}
		appendStringInfoChar(&buf, ']');
	}
	AppendJsonMember(&buf, "incremental_column", def->incremental_column, true);
	AppendJsonMember(&buf, "delete_column", def->delete_column, true);
	appendStringInfo(&buf, ",\"soft_delete\":%s", def->soft_delete ? "true" : "false");
	AppendJsonMember(&buf, "partition_column", def->partition_column, true);
	AppendJsonMember(&buf, "lookback", def->lookback ? IsoInterval(def->lookback) : NULL, true);
	if (def->batch_rows > 0)
		appendStringInfo(&buf, ",\"batch_rows\":%lld", (long long) def->batch_rows);
	else
		appendStringInfoString(&buf, ",\"batch_rows\":null");
	AppendJsonMember(&buf, "description", def->description, true);
	appendStringInfoString(&buf, ",\"metadata\":");
	appendStringInfoString(&buf, def->metadata
						   ? JsonbToCString(NULL, &def->metadata->root, VARSIZE(def->metadata))
						   : "{}");
	AppendJsonMember(&buf, "lineage_column", def->lineage_column, true);
	AppendJsonMember(&buf, "owner", owner, true);
	AppendJsonMember(&buf, "schedule", def->schedule, true);
	appendStringInfoString(&buf, ",\"depends_on\":");
	appendStringInfoString(&buf, depends_on);
	appendStringInfo(&buf, ",\"max_retries\":%d", def->max_retries);
	AppendJsonMember(&buf, "retry_delay", def->retry_delay ? IsoInterval(def->retry_delay) : NULL, true);
	AppendJsonMember(&buf, "timeout", def->timeout ? IsoInterval(def->timeout) : NULL, true);
	AppendJsonMember(&buf, "freshness", def->freshness ? IsoInterval(def->freshness) : NULL, true);
	AppendJsonMember(&buf, "timeliness", def->timeliness ? IsoInterval(def->timeliness) : NULL, true);
	appendStringInfo(&buf, ",\"mute_freshness\":%s,\"mute_timeliness\":%s",
					 def->freshness_muted ? "true" : "false",
					 def->timeliness_muted ? "true" : "false");
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
	ExecCatalog("SELECT config_version FROM pipeline.pipeline WHERE pipeline_id = $1",
						 1, types, values, NULL, true);
	if (SPI_processed > 0)
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? 0 : DatumGetInt32(d);
}
