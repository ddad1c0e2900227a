/*-------------------------------------------------------------------------
 *
 * src/include/pipeline/recorders/schema_history.h
 *
 * Layer 2, the recorders: what is written down of schema drift
 * (src/recorders/schema_history.c): each pipeline's snapshot of its
 * source's columns (pipeline.source_snapshot), the changes a run or the DDL
 * trigger found and what was done about them (pipeline.schema_change,
 * shown by the pipeline.schema_history view), and their audit entries.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_RECORDERS_SCHEMA_HISTORY_H
#define PIPELINE_RECORDERS_SCHEMA_HISTORY_H

#include "pipeline/recorders/runs.h"

/* A pipeline's snapshot of its source */
typedef struct SourceSnapshot
{
	char	   *relation;		/* the source it was taken of, "schema"."table" */
	List	   *columns;		/* at the last successful run (or registration) */
	List	   *seen;			/* as last seen by a run, the registry or the DDL trigger */
} SourceSnapshot;

extern SourceSnapshot *LoadSourceSnapshot(int64 pipeline_id);
extern void StoreSourceSnapshot(int64 pipeline_id, const char *relation, Oid relid,
								int64 run_id);
extern void SnapshotRegisteredSource(PipelineDef *def);
extern void WriteSchemaChanges(PipelineDef *def, int64 run_id, const char *changes,
							   bool run_failed);
extern void RecordRunSchemaChanges(RunRecord *run);
extern void RecordSourceDdl(Datum relids);

#endif							/* PIPELINE_RECORDERS_SCHEMA_HISTORY_H */
