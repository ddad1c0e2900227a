/*-------------------------------------------------------------------------
 *
 * src/recorders/openlineage_facets.c
 *
 * The facets of pg_pipeline's OpenLineage events (openlineage.c) that
 * describe the pipeline and the server rather than the run's data: job
 * facets (sql: the statements pipeline.explain shows; documentation: the
 * pipeline's description; ownership: its owner role; tags: its metadata),
 * run facets (processing_engine; nominalTime for a scheduled run) and the
 * documentation facet of a dataset (its COMMENT ON).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/json.h"

#include "pipeline/recorders.h"

#define OL_SQL_FACET "https://openlineage.io/spec/facets/1-1-0/SQLJobFacet.json#/$defs/SQLJobFacet"
#define OL_JOB_DOC_FACET "https://openlineage.io/spec/facets/1-1-0/DocumentationJobFacet.json#/$defs/DocumentationJobFacet"
#define OL_DATASET_DOC_FACET "https://openlineage.io/spec/facets/1-1-0/DocumentationDatasetFacet.json#/$defs/DocumentationDatasetFacet"
#define OL_OWNERSHIP_FACET "https://openlineage.io/spec/facets/1-0-1/OwnershipJobFacet.json#/$defs/OwnershipJobFacet"
#define OL_TAGS_FACET "https://openlineage.io/spec/facets/1-0-0/TagsJobFacet.json#/$defs/TagsJobFacet"
#define OL_ENGINE_FACET "https://openlineage.io/spec/facets/1-1-1/ProcessingEngineRunFacet.json#/$defs/ProcessingEngineRunFacet"
#define OL_NOMINAL_FACET "https://openlineage.io/spec/facets/1-0-1/NominalTimeRunFacet.json#/$defs/NominalTimeRunFacet"

/* AppendFacetHead opens facet name with its _producer and _schemaURL */
static void
AppendFacetHead(StringInfo buf, const char *name, const char *producer, const char *url)
{
	appendStringInfoChar(buf, ',');
	escape_json(buf, name);
	appendStringInfoString(buf, ":{");
	AppendJsonMember(buf, "_producer", producer, false);
	AppendJsonMember(buf, "_schemaURL", url, true);
}

/* The pipeline ExplainQuery explains, and the statements it found */
typedef struct ExplainTry
{
	const char *pipeline_name;
	char	   *result;
} ExplainTry;

/* ExplainQuery reads pipeline.explain's statements (arg is an ExplainTry) */
static void
ExplainQuery(void *arg)
{
	ExplainTry *t = (ExplainTry *) arg;
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	StringInfoData buf;

	values[0] = CStringGetTextDatum(t->pipeline_name);
	if (SPI_execute_with_args("SELECT s FROM pipeline.explain($1) AS s WHERE s NOT LIKE '--%'",
							  1, types, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not explain pipeline \"%s\"", t->pipeline_name);
	initStringInfo(&buf);
	for (uint64 i = 0; i < SPI_processed; i++)
		appendStringInfo(&buf, "%s%s", i ? ";\n" : "",
						 SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
	t->result = SPI_processed > 0 ? buf.data : NULL;
}

/*
 * ExplainStatements returns the statements pipeline.explain shows for a
 * pipeline (its comment row left out), joined by ";\n", or NULL when explain
 * fails (a source dropped since, a pipeline renamed): the sql facet is then
 * left out rather than the events refused. It runs as the caller, who sees
 * the run, hence the pipeline, so explain's ownership check passes.
 */
static char *
ExplainStatements(const char *pipeline_name)
{
	ExplainTry	t = {pipeline_name, NULL};

	if (TryInSubtransaction(ExplainQuery, &t) != 0)
		return NULL;
	return t.result;
}

/*
 * AppendOpenLineageJobFacets appends the job facets that describe the pipeline as it
 * is now: sql, documentation (its description), ownership (its owner role,
 * as user:<role>) and tags (each top-level key of its metadata). Nothing for
 * a pipeline dropped since the run.
 */
void
AppendOpenLineageJobFacets(StringInfo buf, int64 pipeline_id, const char *producer)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1];
	char	   *name;
	char	   *description;
	char	   *owner;
	char	   *sql;

	values[0] = Int64GetDatum(pipeline_id);
	ExecCatalog("SELECT name, description, owner::text FROM pipeline.pipeline WHERE pipeline_id = $1",
				1, types, values, NULL, true);
	if (SPI_processed == 0)
		return;
	name = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	description = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	owner = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);

	sql = ExplainStatements(name);
	if (sql)
	{
		AppendFacetHead(buf, "sql", producer, OL_SQL_FACET);
		AppendJsonMember(buf, "query", sql, true);
		AppendJsonMember(buf, "dialect", "postgres", true);
		appendStringInfoChar(buf, '}');
	}
	if (description && *description)
	{
		AppendFacetHead(buf, "documentation", producer, OL_JOB_DOC_FACET);
		AppendJsonMember(buf, "description", description, true);
		AppendJsonMember(buf, "contentType", "text/plain", true);
		appendStringInfoChar(buf, '}');
	}
	AppendFacetHead(buf, "ownership", producer, OL_OWNERSHIP_FACET);
	appendStringInfoString(buf, ",\"owners\":[{");
	AppendJsonMember(buf, "name", psprintf("user:%s", owner), false);
	AppendJsonMember(buf, "type", "OWNER", true);
	appendStringInfoString(buf, "}]}");

	ExecCatalog("SELECT m.key, m.value #>> '{}' FROM pipeline.pipeline p,"
				" jsonb_each(p.metadata) AS m WHERE p.pipeline_id = $1 ORDER BY m.key",
				1, types, values, NULL, true);
	if (SPI_processed > 0)
	{
		AppendFacetHead(buf, "tags", producer, OL_TAGS_FACET);
		appendStringInfoString(buf, ",\"tags\":[");
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			char	   *value = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);

			appendStringInfoString(buf, i ? ",{" : "{");
			AppendJsonMember(buf, "key", SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1), false);
			AppendJsonMember(buf, "value", value ? value : "null", true);
			AppendJsonMember(buf, "source", "PG_PIPELINE_METADATA", true);
			appendStringInfoChar(buf, '}');
		}
		appendStringInfoString(buf, "]}");
	}
}

/*
 * AppendOpenLineageRunFacets appends processing_engine (pg_pipeline, its
 * installed version, the PostgreSQL version as the adapter's) and, for a
 * run its schedule started, nominalTime: the minute pg_cron fired it in,
 * to the next time of the pipeline's schedule when it has one.
 */
void
AppendOpenLineageRunFacets(StringInfo buf, int64 run_id, const char *producer)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1];
	char	   *start;
	char	   *end;

	ExecCatalog("SELECT extversion, split_part(current_setting('server_version'), ' ', 1)"
				" FROM pg_extension WHERE extname = 'pg_pipeline'",
				0, NULL, NULL, NULL, true);
	AppendFacetHead(buf, "processing_engine", producer, OL_ENGINE_FACET);
	AppendJsonMember(buf, "version", SPI_processed ? SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1) : "unknown", true);
	AppendJsonMember(buf, "name", "pg_pipeline", true);
	if (SPI_processed)
		AppendJsonMember(buf, "openlineageAdapterVersion",
						 SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2), true);
	appendStringInfoChar(buf, '}');

	values[0] = Int64GetDatum(run_id);
	ExecCatalog("SELECT to_char(date_trunc('minute', h.started_at) AT TIME ZONE 'UTC',"
				"               'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
				"       to_char(pipeline.next_run_time(p.schedule, date_trunc('minute', h.started_at))"
				"               AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
				"  FROM pipeline.run_history h"
				"  LEFT JOIN pipeline.pipeline p ON p.pipeline_id = h.pipeline_id AND p.schedule IS NOT NULL"
				" WHERE h.run_id = $1 AND h.triggered_by = 'schedule'",
				1, types, values, NULL, true);
	if (SPI_processed == 0)
		return;
	start = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	end = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	AppendFacetHead(buf, "nominalTime", producer, OL_NOMINAL_FACET);
	AppendJsonMember(buf, "nominalStartTime", start, true);
	if (end)
		AppendJsonMember(buf, "nominalEndTime", end, true);
	appendStringInfoChar(buf, '}');
}

/*
 * AppendOpenLineageDatasetDocumentation appends the documentation facet of
 * a relation: its COMMENT ON as the run saw it, when it had one.
 */
void
AppendOpenLineageDatasetDocumentation(StringInfo buf, const char *comment, const char *producer)
{
	if (comment == NULL || *comment == '\0')
		return;
	AppendFacetHead(buf, "documentation", producer, OL_DATASET_DOC_FACET);
	AppendJsonMember(buf, "description", comment, true);
	AppendJsonMember(buf, "contentType", "text/plain", true);
	appendStringInfoChar(buf, '}');
}
