/*-------------------------------------------------------------------------
 *
 * src/engine/capture_internal.h
 *
 * Private to src/engine/: what the files of change capture share (setup,
 * trigger, DDL, purge): a captured table's columns as its capture table
 * holds them, the statements over them, and the switch that keeps the DDL
 * event trigger out of capture's own DDL.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_ENGINE_CAPTURE_INTERNAL_H
#define PIPELINE_ENGINE_CAPTURE_INTERNAL_H

#include "pipeline/engine.h"

/* One column of a captured table, as its capture table keeps it */
typedef struct CaptureColumn
{
	char	   *name;
	AttrNumber	attnum;			/* in the captured table */
	Oid			typid;			/* the base type (a domain's checks stay with the table) */
	int32		typmod;
	Oid			collid;
	bool		is_key;
} CaptureColumn;

extern List *CaptureColumns(Oid relid, List *key_columns);
extern char *CaptureColumnType(CaptureColumn *col);
extern char *CaptureOldColumn(const char *key_column);
extern Oid	CaptureOwner(ChangeCapture *c);
extern void SyncCaptureObjects(ChangeCapture *c);

/* true while capture's own DDL runs: the DDL trigger leaves it alone */
extern bool capture_ddl_active;

#endif							/* PIPELINE_ENGINE_CAPTURE_INTERNAL_H */
