/*-------------------------------------------------------------------------
 *
 * src/include/pipeline/recorders.h
 *
 * Layer 2, the recorders (src/recorders/): everything pg_pipeline writes
 * down about what happened, each in its own header: runs and alerts, the
 * audit log, config versions, lineage, data quality, purges of raw rows. RegistryChanged records one change
 * of the registry in all of them.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_RECORDERS_H
#define PIPELINE_RECORDERS_H

#include "pipeline/recorders/runs.h"
#include "pipeline/recorders/audit.h"
#include "pipeline/recorders/versions.h"
#include "pipeline/recorders/lineage.h"
#include "pipeline/recorders/quality.h"
#include "pipeline/recorders/retention.h"

/* recorders/registry_changes.c */
extern void RegistryChanged(const char *action, PipelineDef *def, const char *value);

#endif							/* PIPELINE_RECORDERS_H */
