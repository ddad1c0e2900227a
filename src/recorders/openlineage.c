/*-------------------------------------------------------------------------
 *
 * src/recorders/openlineage.c
 *
 * pipeline.openlineage_events(run_id, namespace) returns a run's events in
 * the shape of OpenLineage 2-0-2 RunEvents, ready to POST to a collector
 * such as Marquez: a START event at the run's start and a COMPLETE or FAIL
 * event at its end; a run still in progress has only its START, and a
 * skipped run (another run of the pipeline was in progress) has none. Each
 * event names the run (a UUIDv7: its time part the run's start, the rest
 * derived from the cluster, the database and the run id, so it is stable
 * and time-ordered), the job (the pipeline), the input datasets (the
 * source, and the base relations its columns come from through views) and
 * the output dataset (the target) with the schema, dataSource (the
 * server), tags (the columns holding personal data), columnLineage and
 * outputStatistics facets, plus a pg_pipeline
 * run facet with the run id, window and config version, jobDependencies
 * for a run an upstream run triggered, and errorMessage for a failed run
 * (ErrorText); the facets
 * that describe the pipeline and the server (sql, documentation,
 * ownership, tags, processing_engine, nominalTime) are built by
 * openlineage_facets.c.
 *
 * Datasets follow OpenLineage's naming for PostgreSQL: namespace
 * postgres://host:port (pipeline.openlineage_namespace), name
 * database.schema.table, a part double-quoted when it holds a dot, a
 * double quote or white space, so that distinct relations get distinct
 * names. Jobs are in pipeline.openlineage_job_namespace. The names and
 * the two settings are in openlineage_names.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "common/sha2.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"

#include "pipeline/recorders.h"

PIPELINE_FUNCTION(pipeline_openlineage_events);

#define OL_PRODUCER "https://github.com/pg-pipeline/pg_pipeline/tree/v0.2.0"
#define OL_EVENT_SCHEMA "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
#define OL_SCHEMA_FACET "https://openlineage.io/spec/facets/1-1-1/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet"
#define OL_COLUMN_FACET "https://openlineage.io/spec/facets/1-2-0/ColumnLineageDatasetFacet.json#/$defs/ColumnLineageDatasetFacet"
#define OL_STATS_FACET "https://openlineage.io/spec/facets/1-0-2/OutputStatisticsOutputDatasetFacet.json#/$defs/OutputStatisticsOutputDatasetFacet"
#define OL_INPUT_STATS_FACET "https://openlineage.io/spec/facets/1-0-0/InputStatisticsInputDatasetFacet.json#/$defs/InputStatisticsInputDatasetFacet"
#define OL_DATASOURCE_FACET "https://openlineage.io/spec/facets/1-0-1/DatasourceDatasetFacet.json#/$defs/DatasourceDatasetFacet"
#define OL_TAGS_DATASET_FACET "https://openlineage.io/spec/facets/1-0-0/TagsDatasetFacet.json#/$defs/TagsDatasetFacet"
#define OL_ERROR_FACET "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet"
#define OL_DEPENDENCIES_FACET "https://openlineage.io/spec/facets/1-0-1/JobDependenciesRunFacet.json#/$defs/JobDependenciesRunFacet"
#define OL_JOBTYPE_FACET "https://openlineage.io/spec/facets/2-0-3/JobTypeJobFacet.json#/$defs/JobTypeJobFacet"
#define PP_RUN_FACET "https://github.com/pg-pipeline/pg_pipeline/blob/v0.2.0/docs/openlineage/PipelineRunFacet.json#/$defs/PipelineRunFacet"


/* What a run's events are built from */
typedef struct RunFacts
{
	RunRecord	run;			/* the run as recorded; its def has id and name */
	char	   *started_at;		/* the event times: ISO 8601, UTC */
	char	   *finished_at;	/* NULL while running */
	char	   *parent_pipeline;
	int64		started_ms;		/* the run's start, Unix milliseconds */
	int64		parent_started_ms;
	List	   *indirect;		/* IndirectInput *: the INDIRECT lineage */
	char	   *source;			/* stored relation names, quoted */
	char	   *target;
	/* what a run's events share, built once for both (BuildEvent) */
	char	   *run_facets;		/* the run facets after pg_pipeline_run */
	char	   *job_facets;		/* the job facets after jobType */
	List	   *dataset_heads;	/* DatasetHead *: name and facets per relation */
} RunFacts;

/* queries run for every event, prepared once per backend */
static SPIPlanPtr run_facts_plan = NULL;
static SPIPlanPtr schema_facet_plan = NULL;
static SPIPlanPtr pii_tags_plan = NULL;

/* The part of a dataset object that both events of a run share */
typedef struct DatasetHead
{
	const char *relation;
	char	   *json;			/* namespace, name, and the facets before columnLineage */
} DatasetHead;

/* Val returns column n of an SPI row as text, NULL for NULL */
static char *
Val(HeapTuple t, TupleDesc d, int n)
{
	return SPI_getvalue(t, d, n);
}

/* Int8Val returns column n of an SPI row as a bigint, 0 for NULL */
static int64
Int8Val(HeapTuple t, TupleDesc d, int n)
{
	char	   *s = SPI_getvalue(t, d, n);

	return s ? strtoll(s, NULL, 10) : 0;
}

/*
 * LoadRunFacts reads a run, raising 42704 when there is none or, as_caller,
 * when the caller may not see it: the run must show in pipeline.runs read
 * as the caller, so that a run's error and counts reach only those who may
 * see its pipeline. (The recorders build the events of the run they record
 * as the extension.)
 */
static RunFacts *
LoadRunFacts(int64 run_id, bool as_caller)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1];
	RunFacts   *f;
	PipelineDef *def;
	HeapTuple	t;
	TupleDesc	d;
	bool		visible;
	char	   *sqlstate;

	values[0] = Int64GetDatum(run_id);
	visible = !as_caller;
	if (as_caller)
	{
		if (SPI_execute_with_args("SELECT 1 FROM pipeline.runs WHERE run_id = $1",
								  1, types, values, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not look up run %lld", (long long) run_id);
		visible = SPI_processed > 0;
	}
	ExecKeptPlan(&run_facts_plan, "SELECT h.run_id, h.pipeline_id, h.pipeline_name, h.status,"
				" to_char(h.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
				" to_char(h.finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
				" h.error_sqlstate, h.error_message, h.parent_run_id,"
				" (SELECT ph.pipeline_name FROM pipeline.run_history ph WHERE ph.run_id = h.parent_run_id),"
				" h.triggered_by,"
				" floor(extract(epoch FROM h.started_at) * 1000)::bigint,"
				" (SELECT floor(extract(epoch FROM ph.started_at) * 1000)::bigint"
				"    FROM pipeline.run_history ph WHERE ph.run_id = h.parent_run_id),"
				" coalesce(i.source_relation, v.config->>'source',"
				"          quote_ident(p.source_schema) || '.' || quote_ident(p.source_table)),"
				" coalesce(i.target_relation, v.config->>'target',"
				"          quote_ident(p.target_schema) || '.' || quote_ident(p.target_table)),"
				" coalesce(i.config_version, 0), h.watermark_from, h.watermark_to,"
				" h.rows_read, h.rows_inserted, h.rows_updated, h.rows_deleted,"
				" h.error_detail, h.error_hint"
				" FROM pipeline.run_history h"
				" LEFT JOIN pipeline.run_io i ON i.run_id = h.run_id"
				" LEFT JOIN pipeline.pipeline_versions v"
				"   ON v.pipeline_id = h.pipeline_id AND v.version = i.config_version"
				" LEFT JOIN pipeline.pipeline p ON p.pipeline_id = h.pipeline_id"
				" WHERE h.run_id = $1",
				 1, types, values, NULL);
	if (SPI_processed == 0 || !visible)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("run %lld does not exist", (long long) run_id),
				 errhint("List runs with SELECT run_id, pipeline_name FROM pipeline.runs.")));
	t = SPI_tuptable->vals[0];
	d = SPI_tuptable->tupdesc;
	f = palloc0(sizeof(RunFacts));
	def = palloc0(sizeof(PipelineDef));
	f->run.def = def;
	f->run.run_id = Int8Val(t, d, 1);
	def->id = Int8Val(t, d, 2);
	def->name = Val(t, d, 3);
	f->run.status = RunStatusFromName(Val(t, d, 4));
	f->started_at = Val(t, d, 5);
	f->finished_at = Val(t, d, 6);
	sqlstate = Val(t, d, 7);
	if (sqlstate)
		f->run.sqlerrcode = MAKE_SQLSTATE(sqlstate[0], sqlstate[1], sqlstate[2],
										  sqlstate[3], sqlstate[4]);
	f->run.message = Val(t, d, 8);
	f->run.parent_run_id = Int8Val(t, d, 9);
	f->parent_pipeline = Val(t, d, 10);
	f->run.triggered_by = Val(t, d, 11);
	f->started_ms = Int8Val(t, d, 12);
	f->parent_started_ms = Int8Val(t, d, 13);
	f->source = Val(t, d, 14);
	f->target = Val(t, d, 15);
	f->run.config_version = (int) Int8Val(t, d, 16);
	f->run.wm_from = Val(t, d, 17);
	f->run.wm_to = Val(t, d, 18);
	f->run.counts.read = Int8Val(t, d, 19);
	f->run.counts.inserted = Int8Val(t, d, 20);
	f->run.counts.updated = Int8Val(t, d, 21);
	f->run.counts.deleted = Int8Val(t, d, 22);
	f->run.detail = Val(t, d, 23);
	f->run.hint = Val(t, d, 24);
	return f;
}



/*
 * AppendSchemaFacet appends the schema facet of a relation as a run that
 * ended at `at` (NULL: still running) saw it, and returns the relation's
 * comment then (NULL if none): the latest record of pipeline.relation_schema
 * made before `at` (the first record, for a run older than every record;
 * the catalog now, for a relation never recorded). A relation dropped
 * since keeps the columns it had.
 */
static char *
AppendSchemaFacet(StringInfo buf, const char *relation, const char *at)
{
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2];
	char		nulls[2] = {' ', at ? ' ' : 'n'};
	char	   *comment = NULL;

	values[0] = CStringGetTextDatum(relation);
	values[1] = at ? CStringGetTextDatum(at) : (Datum) 0;
	ExecKeptPlan(&schema_facet_plan, "WITH seen AS ("
				"  SELECT s.fields, s.description FROM ("
				"    (SELECT fields, description, 0 AS o FROM pipeline.relation_schema"
				"      WHERE relation = $1 AND recorded_at <= coalesce($2::timestamptz, 'infinity')"
				"      ORDER BY recorded_at DESC, schema_id DESC LIMIT 1)"
				"    UNION ALL"
				"    (SELECT fields, description, 1 FROM pipeline.relation_schema"
				"      WHERE relation = $1 ORDER BY recorded_at, schema_id LIMIT 1)) s"
				"  ORDER BY s.o LIMIT 1)"
				" SELECT f->>'name', f->>'type', f->>'description', seen.description, n"
				"   FROM seen, jsonb_array_elements(seen.fields) WITH ORDINALITY AS e(f, n)"
				" UNION ALL"
				" SELECT NULL, NULL, NULL, seen.description, 0 FROM seen"
				" UNION ALL"
				" SELECT a.attname::text, format_type(a.atttypid, a.atttypmod),"
				"        col_description(a.attrelid, a.attnum), obj_description(a.attrelid, 'pg_class'), a.attnum"
				"   FROM pg_attribute a WHERE a.attrelid = to_regclass($1)"
				"    AND a.attnum > 0 AND NOT a.attisdropped AND NOT EXISTS (SELECT 1 FROM seen)"
				" ORDER BY 5",
				 2, types, values, nulls);
	appendStringInfo(buf, "\"schema\":{\"_producer\":\"%s\",\"_schemaURL\":\"%s\",\"fields\":[",
					 OL_PRODUCER, OL_SCHEMA_FACET);
	for (uint64 i = 0, n = 0; i < SPI_processed; i++)
	{
		comment = Val(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 4);
		if (Val(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1) == NULL)
			continue;			/* the comment of a relation without columns */
		appendStringInfoString(buf, n++ ? ",{\"name\":" : "{\"name\":");
		escape_json(buf, Val(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
		appendStringInfoString(buf, ",\"type\":");
		escape_json(buf, Val(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2));
		if (Val(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3))
			AppendJsonMember(buf, "description", Val(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3), true);
		appendStringInfoChar(buf, '}');
	}
	appendStringInfoString(buf, "]}");
	return comment;
}

/*
 * RunUuid gives a run's runId: a UUIDv7 (RFC 9562) whose 48-bit time is the
 * run's start in Unix milliseconds, so that runIds sort by start as the
 * OpenLineage spec recommends, and whose other 74 bits come from a SHA-256
 * of the cluster's system identifier, the database and the run id, so that
 * the same run always gets the same runId and two runs never share one.
 */
static char *
RunUuid(int64 run_id, int64 started_ms)
{
	char	   *seed = psprintf("pg_pipeline run %llu/%u/%lld",
								(unsigned long long) GetSystemIdentifier(), MyDatabaseId,
								(long long) run_id);
	uint8		d[PG_SHA256_DIGEST_LENGTH];
	char	   *hex;

	Sha256(seed, strlen(seed), d);
	for (int i = 0; i < 6; i++)
		d[i] = (uint8) (((uint64) started_ms >> (8 * (5 - i))) & 0xff);
	d[6] = (d[6] & 0x0f) | 0x70;	/* version 7: Unix time ordered */
	d[8] = (d[8] & 0x3f) | 0x80;	/* RFC 9562 variant */
	hex = HexString(d, 16);
	return psprintf("%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

/*
 * AppendInputField appends one input field of the columnLineage facet with
 * its one transformation
 */
static void
AppendInputField(StringInfo buf, const char *ns, const char *relation, const char *column,
				 const char *type, const char *subtype, const char *description)
{
	appendStringInfoChar(buf, '{');
	AppendJsonMember(buf, "namespace", ns, false);
	AppendJsonMember(buf, "name", OpenLineageDatasetName(relation), true);
	AppendJsonMember(buf, "field", column, true);
	appendStringInfo(buf, ",\"transformations\":[{\"type\":\"%s\",\"subtype\":\"%s\"", type, subtype);
	AppendJsonMember(buf, "description", description, true);
	appendStringInfoString(buf, "}]}");
}

/*
 * AppendColumnLineage appends the columnLineage facet: per output field its
 * DIRECT inputs, with the older transformationDescription and
 * transformationType that Marquez still reads (IDENTITY when every input is
 * copied, TRANSFORMATION otherwise), and the dataset-level INDIRECT inputs.
 */
static void
AppendColumnLineage(StringInfo buf, const char *ns, List *columns, List *indirect)
{
	ListCell   *lc;
	char	   *current = NULL;
	bool		identity = true;
	int			n = 0;
	ListCell   *ic;
	StringInfoData hows;

	initStringInfo(&hows);
	appendStringInfo(buf, ",\"columnLineage\":{\"_producer\":\"%s\",\"_schemaURL\":\"%s\",\"fields\":{",
					 OL_PRODUCER, OL_COLUMN_FACET);
	foreach(lc, columns)
	{
		ColumnInput *c = lfirst(lc);

		if (current == NULL || strcmp(current, c->target_column) != 0)
		{
			if (current)
			{
				appendStringInfoChar(buf, ']');
				AppendJsonMember(buf, "transformationDescription", hows.data, true);
				AppendJsonMember(buf, "transformationType", identity ? "IDENTITY" : "TRANSFORMATION", true);
				appendStringInfoString(buf, "},");
			}
			escape_json(buf, c->target_column);
			appendStringInfoString(buf, ":{\"inputFields\":[");
			current = c->target_column;
			identity = true;
			n = 0;
			resetStringInfo(&hows);
		}
		if (strcmp(c->column, "*") == 0)
		{
			/* count(*): the rows it counts, i.e. the columns that decide which */
			foreach(ic, indirect)
			{
				IndirectInput *in = lfirst(ic);

				if (strcmp(in->relation, c->relation) != 0)
					continue;
				if (n++)
					appendStringInfoChar(buf, ',');
				AppendInputField(buf, ns, in->relation, in->column, "INDIRECT", in->subtype,
								 in->description);
			}
		}
		else
		{
			bool		cond = strcmp(c->how, "condition") == 0;

			if (n++)
				appendStringInfoChar(buf, ',');
			AppendInputField(buf, ns, c->relation, c->column, cond ? "INDIRECT" : "DIRECT",
							 !c->transformed ? "IDENTITY" : cond ? "CONDITIONAL"
							 : strcmp(c->how, "aggregate") == 0 ? "AGGREGATION" : "TRANSFORMATION",
							 c->how);
		}
		identity = identity && !c->transformed;
		if (strstr(hows.data, c->how) == NULL)
			appendStringInfo(&hows, "%s%s", hows.len ? ", " : "", c->how);
	}
	if (current)
	{
		appendStringInfoChar(buf, ']');
		AppendJsonMember(buf, "transformationDescription", hows.data, true);
		AppendJsonMember(buf, "transformationType", identity ? "IDENTITY" : "TRANSFORMATION", true);
		appendStringInfoChar(buf, '}');
	}
	appendStringInfoString(buf, "},\"dataset\":[");
	foreach(lc, indirect)
	{
		IndirectInput *in = lfirst(lc);

		if (foreach_current_index(lc) > 0)
			appendStringInfoChar(buf, ',');
		AppendInputField(buf, ns, in->relation, in->column, "INDIRECT", in->subtype,
						 in->description);
	}
	appendStringInfoString(buf, "]}");
}

/*
 * AppendPiiTags appends the tags facet of a relation's columns that hold
 * personal data (pipeline.pii_columns): key "pii", the class as value, the
 * column as field, source PG_PIPELINE_DECLARED or PG_PIPELINE_LINEAGE.
 */
static void
AppendPiiTags(StringInfo buf, const char *relation)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1];

	values[0] = CStringGetTextDatum(relation);
	ExecKeptPlan(&pii_tags_plan,
				 "SELECT DISTINCT column_name::text, class, origin FROM pipeline.pii_columns"
				 " WHERE relation = to_regclass($1) ORDER BY 1, 2, 3",
				 1, types, values, NULL);
	if (SPI_processed == 0)
		return;
	appendStringInfo(buf, ",\"tags\":{\"_producer\":\"%s\",\"_schemaURL\":\"%s\",\"tags\":[",
					 OL_PRODUCER, OL_TAGS_DATASET_FACET);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		appendStringInfoString(buf, i ? ",{" : "{");
		AppendJsonMember(buf, "key", "pii", false);
		AppendJsonMember(buf, "value", Val(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2), true);
		AppendJsonMember(buf, "source",
						 strcmp(Val(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3), "declared") == 0
						 ? "PG_PIPELINE_DECLARED" : "PG_PIPELINE_LINEAGE", true);
		AppendJsonMember(buf, "field", Val(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1), true);
		appendStringInfoChar(buf, '}');
	}
	appendStringInfoString(buf, "]}");
}

/*
 * DatasetHeadJson returns the start of a relation's dataset object, up to
 * its columnLineage facet: namespace, name, and the schema, dataSource and
 * documentation facets. Built once per relation for both events of a run.
 */
static const char *
DatasetHeadJson(RunFacts *f, const char *ns, const char *relation)
{
	ListCell   *lc;
	StringInfoData buf;
	char	   *comment;
	DatasetHead *head;

	foreach(lc, f->dataset_heads)
	{
		head = lfirst(lc);
		if (strcmp(head->relation, relation) == 0)
			return head->json;
	}
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	AppendJsonMember(&buf, "namespace", ns, false);
	AppendJsonMember(&buf, "name", OpenLineageDatasetName(relation), true);
	appendStringInfoString(&buf, ",\"facets\":{");
	comment = AppendSchemaFacet(&buf, relation, f->finished_at);
	/* the data source is the server, named by the namespace */
	appendStringInfo(&buf, ",\"dataSource\":{\"_producer\":\"%s\",\"_schemaURL\":\"%s\"",
					 OL_PRODUCER, OL_DATASOURCE_FACET);
	AppendJsonMember(&buf, "name", ns, true);
	AppendJsonMember(&buf, "uri", ns, true);
	appendStringInfoChar(&buf, '}');
	AppendOpenLineageDatasetDocumentation(&buf, comment, OL_PRODUCER);
	AppendPiiTags(&buf, relation);
	head = palloc(sizeof(DatasetHead));
	head->relation = relation;
	head->json = buf.data;
	f->dataset_heads = lappend(f->dataset_heads, head);
	return head->json;
}

/* AppendDataset appends one dataset object of an event */
static void
AppendDataset(StringInfo buf, const char *ns, const char *relation, List *columns,
			  RunFacts *f, bool output, bool final)
{
	appendStringInfoString(buf, DatasetHeadJson(f, ns, relation));
	if (output && (columns != NIL || (final && f->indirect != NIL)))
		AppendColumnLineage(buf, ns, columns, final ? f->indirect : NIL);
	appendStringInfoChar(buf, '}');
	if (!output && final && f->source && strcmp(relation, f->source) == 0)
		appendStringInfo(buf, ",\"inputFacets\":{\"inputStatistics\":{\"_producer\":\"%s\","
						 "\"_schemaURL\":\"%s\",\"rowCount\":%lld}}",
						 OL_PRODUCER, OL_INPUT_STATS_FACET, (long long) f->run.counts.read);
	if (output && final)
		appendStringInfo(buf, ",\"outputFacets\":{\"outputStatistics\":{\"_producer\":\"%s\","
						 "\"_schemaURL\":\"%s\",\"rowCount\":%lld}}",
						 OL_PRODUCER, OL_STATS_FACET,
						 (long long) (f->run.counts.inserted + f->run.counts.updated +
									  f->run.counts.deleted));
	appendStringInfoChar(buf, '}');
}

/*
 * ErrorText gives the errorMessage of a failed run: its SQLSTATE, message,
 * DETAIL and HINT. Events leave the database, and PostgreSQL quotes row
 * values in the message and detail of data exceptions (class 22: "invalid
 * input syntax for type integer: \"x1\"") and integrity constraint
 * violations (class 23: "Key (id)=(7) already exists."): for those two
 * classes the message and detail are withheld, the hint kept.
 */
static char *
ErrorText(RunRecord *run)
{
	const char *state = run->sqlerrcode ? unpack_sql_state(run->sqlerrcode) : "XX000";
	bool		withheld = strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0;
	StringInfoData buf;

	initStringInfo(&buf);
	if (withheld)
		appendStringInfo(&buf, "SQLSTATE %s: message withheld (a data error quotes row values; see pipeline.runs)",
						 state);
	else
	{
		appendStringInfo(&buf, "SQLSTATE %s: %s", state, run->message ? run->message : "");
		if (run->detail)
			appendStringInfo(&buf, "\nDETAIL: %s", run->detail);
	}
	if (run->hint)
		appendStringInfo(&buf, "\nHINT: %s", run->hint);
	return buf.data;
}

/* BuildEvent builds one event as JSON text */
static char *
BuildEvent(RunFacts *f, const char *ns, const char *job_ns, const char *type, const char *time, List *columns)
{
	StringInfoData buf;
	bool		final = strcmp(type, "START") != 0;
	List	   *inputs = NIL;
	ListCell   *lc;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	AppendJsonMember(&buf, "eventType", type, false);
	AppendJsonMember(&buf, "eventTime", time, true);
	AppendJsonMember(&buf, "producer", OL_PRODUCER, true);
	AppendJsonMember(&buf, "schemaURL", OL_EVENT_SCHEMA, true);

	/* run */
	appendStringInfoString(&buf, ",\"run\":{");
	AppendJsonMember(&buf, "runId", RunUuid(f->run.run_id, f->started_ms), false);
	appendStringInfo(&buf, ",\"facets\":{\"pg_pipeline_run\":{\"_producer\":\"%s\",\"_schemaURL\":\"%s\","
					 "\"runId\":%lld", OL_PRODUCER, PP_RUN_FACET, (long long) f->run.run_id);
	AppendJsonMember(&buf, "triggeredBy", f->run.triggered_by, true);
	AppendJsonMember(&buf, "watermarkFrom", f->run.wm_from, true);
	AppendJsonMember(&buf, "watermarkTo", f->run.wm_to, true);
	appendStringInfo(&buf, ",\"configVersion\":%d,\"rowsRead\":%lld}", f->run.config_version,
					 (long long) f->run.counts.read);
	if (f->run_facets == NULL)
	{
		StringInfoData facets;

		initStringInfo(&facets);
		AppendOpenLineageRunFacets(&facets, f->run.run_id, OL_PRODUCER);
		f->run_facets = facets.data;
	}
	appendStringInfoString(&buf, f->run_facets);
	if (f->run.parent_run_id > 0 && f->parent_pipeline)
	{
		/* an upstream run triggered this one: a dependency, not nesting */
		appendStringInfo(&buf, ",\"jobDependencies\":{\"_producer\":\"%s\",\"_schemaURL\":\"%s\","
						 "\"upstream\":[{\"job\":{", OL_PRODUCER, OL_DEPENDENCIES_FACET);
		AppendJsonMember(&buf, "namespace", job_ns, false);
		AppendJsonMember(&buf, "name", f->parent_pipeline, true);
		appendStringInfoString(&buf, "},\"run\":{");
		AppendJsonMember(&buf, "runId", RunUuid(f->run.parent_run_id, f->parent_started_ms), false);
		appendStringInfoString(&buf, "},\"dependency_type\":\"DIRECT_INVOCATION\","
							   "\"sequence_trigger_rule\":\"FINISH_TO_START\","
							   "\"status_trigger_rule\":\"EXECUTE_ON_SUCCESS\"}]}");
	}
	if (strcmp(type, "FAIL") == 0)
	{
		appendStringInfo(&buf, ",\"errorMessage\":{\"_producer\":\"%s\",\"_schemaURL\":\"%s\"",
						 OL_PRODUCER, OL_ERROR_FACET);
		AppendJsonMember(&buf, "message", ErrorText(&f->run), true);
		AppendJsonMember(&buf, "programmingLanguage", "SQL", true);
		appendStringInfoChar(&buf, '}');
	}
	appendStringInfoString(&buf, "}}");

	/* job */
	appendStringInfoString(&buf, ",\"job\":{");
	AppendJsonMember(&buf, "namespace", job_ns, false);
	AppendJsonMember(&buf, "name", f->run.def->name, true);
	appendStringInfo(&buf, ",\"facets\":{\"jobType\":{\"_producer\":\"%s\",\"_schemaURL\":\"%s\","
					 "\"processingType\":\"BATCH\",\"integration\":\"PG_PIPELINE\",\"jobType\":\"PIPELINE\"}",
					 OL_PRODUCER, OL_JOBTYPE_FACET);
	if (f->job_facets == NULL)
	{
		StringInfoData facets;

		initStringInfo(&facets);
		AppendOpenLineageJobFacets(&facets, f->run.def->id, OL_PRODUCER);
		f->job_facets = facets.data;
	}
	appendStringInfoString(&buf, f->job_facets);
	appendStringInfoString(&buf, "}}");

	/* inputs: the source, and every relation a target column comes from */
	if (f->source)
		inputs = lappend(inputs, f->source);
	foreach(lc, columns)
	{
		ColumnInput *c = lfirst(lc);
		ListCell   *ic;
		bool		have = false;

		foreach(ic, inputs)
			if (strcmp(lfirst(ic), c->relation) == 0)
				have = true;
		if (!have)
			inputs = lappend(inputs, c->relation);
	}
	foreach(lc, f->indirect)
	{
		IndirectInput *in = lfirst(lc);

		ListCell   *ic;
		bool		have = false;

		foreach(ic, inputs)
			if (strcmp(lfirst(ic), in->relation) == 0)
				have = true;
		if (!have)
			inputs = lappend(inputs, in->relation);
	}
	appendStringInfoString(&buf, ",\"inputs\":[");
	foreach(lc, inputs)
	{
		if (foreach_current_index(lc) > 0)
			appendStringInfoChar(&buf, ',');
		AppendDataset(&buf, ns, lfirst(lc), NIL, f, false, final);
	}
	appendStringInfoString(&buf, "],\"outputs\":[");
	if (f->target)
		AppendDataset(&buf, ns, f->target, columns, f, true, final);
	appendStringInfoString(&buf, "]}");
	return buf.data;
}

/* MakeEvent wraps an event's text with its type */
static OpenLineageEvent *
MakeEvent(const char *type, char *json)
{
	OpenLineageEvent *e = palloc(sizeof(OpenLineageEvent));

	e->type = type;
	e->json = json;
	return e;
}

/*
 * BuildRunEvents builds a run's events from its facts: START, and COMPLETE
 * or FAIL once it has ended; none for a skipped run, which did nothing (see
 * docs/lineage.md).
 */
static List *
BuildRunEvents(RunFacts *f, const char *ns_arg)
{
	List	   *columns;
	List	   *events = NIL;
	char	   *ns;
	char	   *job_ns;
	const char *final;

	if (f->run.status == RUN_SKIPPED)
		return NIL;
	OpenLineageNamespaces(ns_arg, &ns, &job_ns);
	columns = LoadColumnInputs(f->run.def->id, f->target, f->finished_at);
	f->indirect = LoadIndirectInputs(f->run.def->id, f->source, f->finished_at);
	events = lappend(events, MakeEvent("START", BuildEvent(f, ns, job_ns, "START", f->started_at, NIL)));
	if (f->run.status == RUN_RUNNING)
		return events;
	final = f->run.status == RUN_SUCCEEDED ? "COMPLETE" : "FAIL";
	events = lappend(events,
					 MakeEvent(final, BuildEvent(f, ns, job_ns, final,
												 f->finished_at ? f->finished_at : f->started_at,
												 columns)));
	return events;
}

/*
 * BuildOpenLineageEvents builds the events of a run as the catalog
 * describes it now, in the namespace ns_arg (NULL: the settings'). With
 * as_caller, the caller must see the run (42704 otherwise). The caller has
 * SPI connected and search_path pinned.
 */
List *
BuildOpenLineageEvents(int64 run_id, const char *ns_arg, bool as_caller)
{
	return BuildRunEvents(LoadRunFacts(run_id, as_caller), ns_arg);
}

/*
 * pipeline.openlineage_events(run_id, namespace): the run's OpenLineage
 * events, START first; none for a skipped run. The events the outbox holds
 * (written when the run started and ended, openlineage_outbox.c) describe
 * the catalog as the run saw it, and are returned as they were written
 * when they are all the run has; otherwise, and when namespace is given
 * (it overrides pipeline.openlineage_namespace), the events are built now.
 */
Datum
pipeline_openlineage_events(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	RunFacts   *f;
	char	   *arg = NULL;
	List	   *events = NIL;
	ListCell   *lc;
	int			nestlevel;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("run_id must not be NULL")));
	/* SETOF jsonb has no row type: the executor's expected one describes it */
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC | MAT_SRF_BLESS);
	if (!PG_ARGISNULL(1))
	{
		arg = text_to_cstring(PG_GETARG_TEXT_PP(1));
		if (*arg == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("namespace must not be empty"),
					 errhint("Pass something like 'postgres://db.example.com:5432', or leave it out.")));
		if (!OpenLineageValidDatasetNamespace(arg))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("namespace must be postgres://host:port"),
					 errdetail("\"%s\" is not.", arg),
					 errhint("Pass something like 'postgres://db.example.com:5432', or leave it out.")));
	}

	SPI_connect();
	nestlevel = PinSearchPath();
	f = LoadRunFacts(PG_GETARG_INT64(0), true);
	if (arg == NULL && f->run.status != RUN_SKIPPED)
	{
		events = LoadStoredOpenLineageEvents(f->run.run_id);
		if (list_length(events) != (f->run.status == RUN_RUNNING ? 1 : 2))
			events = NIL;
	}
	if (events == NIL)
		events = BuildRunEvents(f, arg);
	UnpinSearchPath(nestlevel);

	foreach(lc, events)
	{
		OpenLineageEvent *e = lfirst(lc);
		Datum		value = DirectFunctionCall1(jsonb_in, CStringGetDatum(e->json));
		bool		isnull = false;

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &value, &isnull);
	}
	SPI_finish();
	return (Datum) 0;
}
