/*-------------------------------------------------------------------------
 *
 * src/include/pipeline/recorders/versions.h
 *
 * Layer 2, the recorders: a pipeline's canonical configuration and its
 * versions (src/recorders/versions.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_RECORDERS_VERSIONS_H
#define PIPELINE_RECORDERS_VERSIONS_H

#include "pipeline/catalog.h"

extern char *CanonicalConfig(PipelineDef *def);
extern int	RecordConfigVersion(PipelineDef *def, char **previous_config, char **config);
extern int	CurrentConfigVersion(int64 pipeline_id);

#endif							/* PIPELINE_RECORDERS_VERSIONS_H */
