/*-------------------------------------------------------------------------
 *
 * src/engine/planner_internal.h
 *
 * Private to src/engine/: the SQL spelling helpers of planner.c that
 * window_queries.c, backfill_sql.c, initial_load.c and snapshot_load.c
 * build their statements with, and what planner.c asks of backfill_sql.c
 * and initial_load.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_ENGINE_PLANNER_INTERNAL_H
#define PIPELINE_ENGINE_PLANNER_INTERNAL_H

#include "catalog/pg_index.h"
#include "lib/stringinfo.h"

#include "pipeline/engine.h"

/* The value a run writes into the pipeline's lineage column (recorders/lineage_store.c) */
#define LINEAGE_RUN_ID "pipeline._current_run_id()"

extern char *Col(const char *alias, const char *column);
extern char *EqualityOperator(LoadColumn *col);
extern char *KeepNewerGuard(LoadPlan *plan);
extern void AppendKeyJoin(StringInfo buf, LoadPlan *plan, const char *left, const char *right,
						  bool raw_left);
extern void AppendDistinct(StringInfo buf, LoadColumn *col, const char *t, const char *s);
extern void AppendWindowPredicate(StringInfo buf, LoadPlan *plan, const char *alias,
								  bool has_lower, bool has_upper, const char *upper_op);
extern void AppendSourceRows(StringInfo buf, LoadPlan *plan, bool has_lower, bool has_upper);
extern void AppendInsertHead(StringInfo buf, LoadPlan *plan);
extern void AppendInsertSelect(StringInfo buf, LoadPlan *plan, const char *alias);

/* window_queries.c */
extern char *InfinityLiteral(LoadPlan *plan);

/* parallel_part.c */
extern char *PartitionPredicate(Oid partition, const char *alias);
/* load_plan.c: a column of a plan by name; an index of the target on key columns alone */
extern LoadColumn *FindLoadColumn(List *columns, const char *name);
extern bool IndexColumnsAreKey(LoadPlan *plan, Form_pg_index index);

/* backfill_sql.c */
extern void AppendNewestRows(StringInfo buf, LoadPlan *plan, const char *alias);
extern void AppendPartitionPredicate(StringInfo buf, LoadPlan *plan, const char *alias);

#endif							/* PIPELINE_ENGINE_PLANNER_INTERNAL_H */
