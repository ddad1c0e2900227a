/*-------------------------------------------------------------------------
 *
 * src/include/pipeline/recorders/lineage.h
 *
 * Layer 2, the recorders: table and column lineage derived from
 * definitions and view query trees (src/recorders/lineage_analysis.c),
 * stored per pipeline (lineage_store.c), kept current by DDL
 * (lineage_ddl.c), walked for impact analysis (lineage_graph.c), drawn as
 * DOT or Mermaid (lineage_picture.c), and told as OpenLineage events
 * (openlineage.c, their names in openlineage_names.c, the facets of the
 * pipeline and the server in openlineage_facets.c). The SQL functions that need an ownership check live in
 * src/api/lineage_api.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_RECORDERS_LINEAGE_H
#define PIPELINE_RECORDERS_LINEAGE_H

#include "pipeline/catalog.h"

/* recorders/lineage_store.c */
extern void RefreshPipelineLineage(PipelineDef *def);
extern int	RefreshPipelinesWhere(const char *sql, int nargs, Oid *types, Datum *values);
extern void SetLineageRunId(int64 run_id);

/* recorders/lineage_ddl.c: DDL of a run's own that is not lineage */
extern void RunIndexDdl(const char *sql);

/* recorders/lineage_indirect.c: columns a view uses without passing them on */
typedef struct IndirectInput
{
	char	   *relation;		/* "schema"."table", as lineage stores it */
	char	   *column;
	const char *subtype;		/* FILTER, JOIN, GROUP_BY, SORT, WINDOW, CONDITIONAL */
	const char *description;	/* what uses it, in words */
} IndirectInput;
extern List *IndirectLineage(Oid relid);

/* recorders/openlineage_inputs.c: the inputs of a pipeline's events, as a run had them */
typedef struct ColumnInput
{
	char	   *target_column;
	char	   *relation;
	char	   *column;
	bool		transformed;
	char	   *how;
} ColumnInput;
extern void RecordLineageSnapshot(PipelineDef *def);
extern List *LoadColumnInputs(int64 pipeline_id, const char *target, const char *at);
extern List *LoadIndirectInputs(int64 pipeline_id, const char *source, const char *at);

/* recorders/openlineage.c: a run's events */
typedef struct OpenLineageEvent
{
	const char *type;			/* START, COMPLETE or FAIL */
	char	   *json;
} OpenLineageEvent;
extern List *BuildOpenLineageEvents(int64 run_id, const char *ns_arg, bool as_caller);

/* recorders/openlineage_outbox.c: events kept and handed to the sender */
extern char *openlineage_url;
extern char *openlineage_api_key;
extern int	openlineage_timeout_ms;
extern int	openlineage_max_attempts;
extern int	openlineage_retry_max_s;
extern void OpenLineageOutboxInit(void);
extern bool OpenLineageDeliveryOn(void);
struct RunRecord;
extern void EnqueueOpenLineageEvents(struct RunRecord *run);
extern List *LoadStoredOpenLineageEvents(int64 run_id);

/* recorders/openlineage_names.c: the names in OpenLineage events */
extern void OpenLineageInit(void);
extern char *OpenLineageDatasetName(const char *relation);
extern bool OpenLineageValidDatasetNamespace(const char *ns);
extern void OpenLineageNamespaces(const char *arg, char **ns, char **job_ns);

/* recorders/openlineage_facets.c: facets of the pipeline and the server */
extern void AppendOpenLineageJobFacets(StringInfo buf, int64 pipeline_id, const char *producer);
extern void AppendOpenLineageRunFacets(StringInfo buf, int64 run_id, const char *producer);
extern void AppendOpenLineageDatasetDocumentation(StringInfo buf, const char *comment,
												  const char *producer);

#endif							/* PIPELINE_RECORDERS_LINEAGE_H */
