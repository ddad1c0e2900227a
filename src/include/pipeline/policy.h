/*-------------------------------------------------------------------------
 *
 * src/include/pipeline/policy.h
 *
 * Layer 3, policy (src/policy/): who may do which action on a pipeline
 * (actions.c), and which privileges its owner needs on the source and the
 * target (privileges.c).
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
extern void CheckCapturePrivilege(Oid relid, const char *action, const char *verb);

/* policy/actions.c */
extern bool RoleMayAct(Oid role, Oid owner, const char *action);
extern const char *TeamRoleFor(const char *action);

#endif							/* PIPELINE_POLICY_H */
