/*-------------------------------------------------------------------------
 *
 * src/api/registry_internal.h
 *
 * Private to src/api/: the argument positions of create_pipeline, and the
 * readers and validators of the registry functions' arguments
 * (registry_args.c) that registry.c and pipeline_actions.c share.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_API_REGISTRY_INTERNAL_H
#define PIPELINE_API_REGISTRY_INTERNAL_H

#include "pipeline/workers.h"

#include "utils/jsonb.h"

/* Argument positions of create_pipeline; alter_pipeline adds new_name at 1 */
enum
{
	ARG_NAME,
	ARG_SOURCE,
	ARG_TARGET,
	ARG_UNIQUE_KEY,
	ARG_INCREMENTAL,
	ARG_MODE,
	ARG_DELETE_COLUMN,
	ARG_SOFT_DELETE,
	ARG_PARTITION_COLUMN,
	ARG_LOOKBACK,
	ARG_BATCH_ROWS,
	ARG_CREATE_TARGET,
	ARG_DESCRIPTION,
	ARG_METADATA,
	ARG_SCHEDULE,
	ARG_DEPENDS_ON,
	ARG_MAX_RETRIES,
	ARG_RETRY_DELAY,
	ARG_TIMEOUT,
	ARG_FRESHNESS,
	ARG_TIMELINESS,
	ARG_MUTE_FRESHNESS,
	ARG_MUTE_TIMELINESS
};

extern void RequireArg(FunctionCallInfo fcinfo, int argno, const char *argname);
extern char *PipelineNameArg(FunctionCallInfo fcinfo, int argno);
extern void ValidateName(const char *name);
extern void CheckNameIsFree(const char *name);
extern char *OptionalText(FunctionCallInfo fcinfo, int argno);
extern char *EmptyToNull(char *s);
extern List *UniqueKeyArg(FunctionCallInfo fcinfo, int argno);
extern LoadMode ModeArg(const char *text);
extern Interval *LookbackArg(Interval *lookback);
extern Jsonb *MetadataArg(Jsonb *metadata);
extern Interval *PositiveIntervalArg(FunctionCallInfo fcinfo, int argno, const char *what, bool allow_zero);
extern int32 MaxRetriesArg(FunctionCallInfo fcinfo, int argno);
extern List *DependsOnArg(FunctionCallInfo fcinfo, int argno);
extern void ValidateSchedule(const char *schedule);
extern void OptionError(PipelineDef *def, const char *message, const char *hint);
extern void ValidateOptions(PipelineDef *def);

#endif							/* PIPELINE_API_REGISTRY_INTERNAL_H */
