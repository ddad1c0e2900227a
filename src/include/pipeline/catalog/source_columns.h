/*-------------------------------------------------------------------------
 *
 * src/include/pipeline/catalog/source_columns.h
 *
 * Layer 1, the catalog store: the columns of a pipeline's source as schema
 * drift compares them (src/catalog/source_columns.c): read from the
 * catalogs of now, or from a snapshot's JSON, and the changes between two
 * such lists. What a run does about a change is the engine's
 * (engine/schema_drift.c); what is written down of it, the recorders'
 * (recorders/schema_history.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_CATALOG_SOURCE_COLUMNS_H
#define PIPELINE_CATALOG_SOURCE_COLUMNS_H

#include "nodes/pg_list.h"
#include "utils/jsonb.h"

/* One column of a source: from the catalogs (typid valid) or a snapshot */
typedef struct SourceColumn
{
	char	   *name;
	char	   *type;			/* format_type with typmod, e.g. character varying(10) */
	int			attnum;
	Oid			typid;			/* InvalidOid when read from a snapshot */
	int32		typmod;
	Oid			collid;
} SourceColumn;

typedef enum ColumnChangeKind
{
	COLUMN_ADDED,
	COLUMN_DROPPED,
	COLUMN_RETYPED,
	COLUMN_RENAMED
} ColumnChangeKind;

/*
 * One change of a source's columns, and what a run (or the DDL trigger)
 * did about it: applied, ignored, failed or detected.
 */
typedef struct ColumnChange
{
	ColumnChangeKind kind;
	char	   *column;			/* the name now (dropped: the name it had) */
	char	   *old_column;		/* renamed: the name it had, else NULL */
	char	   *old_type;		/* NULL for added */
	char	   *new_type;		/* NULL for dropped */
	SourceColumn *now;			/* the column now, NULL for dropped */
	const char *action;
} ColumnChange;

extern List *RelationColumns(Oid relid);
extern List *ColumnsFromJson(Jsonb *columns);
extern List *DiffColumns(List *before, List *now);
extern const char *ColumnChangeName(ColumnChangeKind kind);
extern char *ColumnChangesJson(List *changes, const char *policy);

#endif							/* PIPELINE_CATALOG_SOURCE_COLUMNS_H */
