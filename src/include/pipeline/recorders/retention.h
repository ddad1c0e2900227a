/*-------------------------------------------------------------------------
 *
 * src/include/pipeline/recorders/retention.h
 *
 * Layer 2, the recorders: pipeline.retention_log, what each purge of raw
 * source rows deleted (with its audit entry) and why a purge could not
 * run (src/recorders/retention_log.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_RECORDERS_RETENTION_H
#define PIPELINE_RECORDERS_RETENTION_H

#include "pipeline/recorders/audit.h"

extern int64 RecordRawPurge(PipelineDef *def, const char *relation, List *readers,
							int64 rows_deleted, const char *bound, const char *triggered_by);
extern bool RecordRawPurgeSkipped(PipelineDef *def, const char *relation, const char *reason,
								  const char *triggered_by);

#endif							/* PIPELINE_RECORDERS_RETENTION_H */
