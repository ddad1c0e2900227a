/*-------------------------------------------------------------------------
 *
 * src/include/pipeline/policy.h
 *
 * Layer 3, policy (src/policy/): who may act on a pipeline, and which
 * privileges its owner needs on the source and the target.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_POLICY_H
#define PIPELINE_POLICY_H

#include "pipeline/recorders.h"

#include "utils/acl.h"

/* policy/privileges.c */
extern void CheckPipelineOwner(PipelineDef *def, const char *action);
extern void CheckRelationAccess(Oid relid, Oid role, AclMode mode, const char *what);
extern void CheckPipelinePrivileges(PipelineDef *def, Oid source_relid, Oid target_relid, Oid role);

#endif							/* PIPELINE_POLICY_H */
