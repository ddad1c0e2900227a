/*-------------------------------------------------------------------------
 *
 * src/api/registry_internal.h
 *
 * Private to src/api/: the readers and validators of the registry
 * functions' arguments (registry_args.c) that registry.c and
 * pipeline_actions.c share; the arguments of create_pipeline and
 * alter_pipeline are read as the option table (catalog/options.c) lists them.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_API_REGISTRY_INTERNAL_H
#define PIPELINE_API_REGISTRY_INTERNAL_H

#include "pipeline/workers.h"

#include "utils/jsonb.h"

/*
 * What ReadOptionArgs reads of create_pipeline's or alter_pipeline's
 * arguments besides the fields of the definition.
 */
typedef struct OptionArgs
{
	Oid			source_relid;	/* the source, InvalidOid if not given */
	char	   *target;			/* the target as given, NULL if not */
	bool		create_target;	/* create the target if it is missing */
	List	   *depends_on;		/* create_pipeline's depends_on */
	bool		reset_watermark;	/* alter_pipeline changed the source or column */
} OptionArgs;

extern void ValidateName(const char *name);
extern void CheckNameIsFree(const char *name);
extern char *OptionalText(FunctionCallInfo fcinfo, int argno);
extern char *EmptyToNull(char *s);
extern List *DependsOnArg(FunctionCallInfo fcinfo, int argno);
extern void RequireOptionArgs(FunctionCallInfo fcinfo);
extern void ReadOptionArgs(FunctionCallInfo fcinfo, PipelineDef *def, bool alter, OptionArgs *args);
extern void OptionError(PipelineDef *def, const char *message, const char *hint);
extern void ValidateOptions(PipelineDef *def);

/* capture_api.c: the capture option of create_pipeline and alter_pipeline */
extern void SetUpCaptureSource(FunctionCallInfo fcinfo, PipelineDef *def, OptionArgs *args,
							   bool alter, bool was_capture);

/* checks_api.c: the "checks" key of apply() */
extern bool ApplyChecks(const char *pipeline, JsonbValue *checks, int index);

#endif							/* PIPELINE_API_REGISTRY_INTERNAL_H */
