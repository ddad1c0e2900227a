/*-------------------------------------------------------------------------
 *
 * src/include/pipeline/catalog/checks.h
 *
 * Layer 1, the catalog store: a pipeline's data checks (contracts), the
 * rows of pipeline.data_check (src/catalog/check_store.c), read and
 * written as the extension owner. What a check means when a run evaluates
 * it is the engine's (engine/check_sql.c, engine/row_checks.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_CATALOG_CHECKS_H
#define PIPELINE_CATALOG_CHECKS_H

#include "utils/jsonb.h"
#include "nodes/pg_list.h"

typedef enum CheckKind
{
	CHECK_NOT_NULL,
	CHECK_ACCEPTED_VALUES,
	CHECK_RANGE,
	CHECK_REGEX,
	CHECK_RELATIONSHIPS,
	CHECK_EXPRESSION,
	/* set-level kinds, from here on */
	CHECK_UNIQUE,
	CHECK_ROW_COUNT,
	CHECK_QUERY
} CheckKind;

#define CHECK_IS_ROW_LEVEL(kind)	((kind) < CHECK_UNIQUE)

/* What a failure does, mildest first */
typedef enum CheckSeverity
{
	SEVERITY_WARN,				/* load the row, record the failure */
	SEVERITY_BLOCK,				/* load; downstream waits for an acknowledgement */
	SEVERITY_QUARANTINE,		/* the row goes to quarantine, the rest loads */
	SEVERITY_ERROR				/* the run fails and nothing loads */
} CheckSeverity;

/* One check of a pipeline, as pipeline.data_check keeps it */
typedef struct CheckDef
{
	int64		check_id;
	char	   *name;
	CheckKind	kind;
	Jsonb	   *args;
	CheckSeverity severity;
	/* filled by a run: the failures it counted */
	int64		failed_rows;
} CheckDef;

/* catalog/check_store.c */
extern const char *CheckKindName(CheckKind kind);
extern bool ParseCheckKind(const char *text, CheckKind *kind);
extern const char *CheckSeverityName(CheckSeverity severity);
extern bool ParseCheckSeverity(const char *text, CheckSeverity *severity);
extern List *LoadChecks(int64 pipeline_id);
extern CheckDef *FindCheck(List *checks, const char *name);
extern int64 InsertCheck(int64 pipeline_id, CheckDef *check);
extern bool DeleteCheck(int64 pipeline_id, const char *name);

#endif							/* PIPELINE_CATALOG_CHECKS_H */
