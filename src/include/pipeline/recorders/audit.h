/*-------------------------------------------------------------------------
 *
 * src/include/pipeline/recorders/audit.h
 *
 * Layer 2, the recorders: the append-only, hash-chained audit log
 * (src/recorders/audit_*.c): entries for registry changes, runs and
 * refusals, the coalescing of refusals, retention with a kept anchor.
 * The audit log calls neither config versions nor lineage: callers pass
 * the config version an entry records (RegistryChanged, in
 * registry_changes.c, computes it for a registry change).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_RECORDERS_AUDIT_H
#define PIPELINE_RECORDERS_AUDIT_H

#include "pipeline/recorders/runs.h"

/* recorders/audit_refusals.c */
extern void AuditInit(void);
extern void AuditRefusal(const char *action, const char *object_type,
						 const char *object_name, int64 pipeline_id, const char *message);

/* recorders/audit_retention.c */
extern bool AuditLauncherPass(int check_interval);

/*
 * recorders/audit_entries.c (config versions are read by the callers); the
 * run entries are queued by the writer of a run's records (run_outcome.c)
 */
extern void AuditRegistryChange(const char *action, PipelineDef *def, const char *value,
								int config_version, const char *config_before,
								const char *config_after);
extern void AuditObjectChange(const char *action, const char *object_type,
							  const char *object_name, const char *before, const char *after);
extern void AuditRunStart(RunRecord *run);
extern void AuditRunEnd(RunRecord *run);
extern void AuditSkippedRun(RunRecord *run);
extern void AuditQualityChange(const char *action, PipelineDef *def, int64 run_id,
							   const char *before, const char *after);
extern void AuditSchemaChange(PipelineDef *def, int64 run_id, const char *column,
							  const char *outcome, const char *before, const char *after,
							  const char *details);
extern void AuditRawPurge(PipelineDef *def, const char *relation, const char *details);

#endif							/* PIPELINE_RECORDERS_AUDIT_H */
