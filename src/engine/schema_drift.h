/*-------------------------------------------------------------------------
 *
 * src/engine/schema_drift.h
 *
 * Private to src/engine/: schema drift in a run (schema_drift.c), the one
 * hook of the run path (engine.c) and of the load plan (load_plan.c), the
 * types a target column may safely widen to (type_widening.c), and the
 * load plan's comparison test that drift shares.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_ENGINE_SCHEMA_DRIFT_H
#define PIPELINE_ENGINE_SCHEMA_DRIFT_H

#include "pipeline/engine.h"

extern void HandleSchemaDrift(RunRecord *rec);
extern bool SchemaDriftSkipsColumn(PipelineDef *def, const char *column);
extern bool TypeWidens(Oid from, int32 from_mod, Oid to, int32 to_mod);

/* load_plan.c: whether the load can compare a target type with a column */
extern bool ColumnComparable(LoadColumn *col, Oid target_type);

#endif							/* PIPELINE_ENGINE_SCHEMA_DRIFT_H */
