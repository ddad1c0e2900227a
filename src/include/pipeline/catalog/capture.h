/*-------------------------------------------------------------------------
 *
 * src/include/pipeline/catalog/capture.h
 *
 * Layer 1, the catalog store: the captures of tables updated in place, the
 * rows of pipeline.change_capture (src/catalog/change_capture.c), read and
 * written as the extension owner, and the names of what a capture creates.
 * How a change is written, followed and purged is the engine's
 * (engine/capture_*.c); docs/capture.md says why.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_CATALOG_CAPTURE_H
#define PIPELINE_CATALOG_CAPTURE_H

#include "nodes/pg_list.h"

/* the columns a capture table and its feed add to the table's own */
#define CAPTURE_CHANGE_ID		"_change_id"
#define CAPTURE_OP				"_op"
#define CAPTURE_AT				"_captured_at"
#define CAPTURE_DELETED			"_deleted"
#define CAPTURE_OLD_PREFIX		"_old_"

/* <table>__changes and <table>__changes_feed, in the table's schema */
#define CAPTURE_TABLE_SUFFIX	"__changes"
#define CAPTURE_FEED_SUFFIX		"__changes_feed"

/* the operations of a change (the _op column) */
#define CAPTURE_OP_INSERT		"I"
#define CAPTURE_OP_UPDATE		"U"
#define CAPTURE_OP_DELETE		"D"
#define CAPTURE_OP_TRUNCATE		"T"
#define CAPTURE_OP_SNAPSHOT		"S"

/* the triggers capture() puts on the table */
#define CAPTURE_ROW_TRIGGER		"pipeline_capture"
#define CAPTURE_TRUNCATE_TRIGGER "pipeline_capture_truncate"

/* A row of pipeline.change_capture */
typedef struct ChangeCapture
{
	Oid			relid;			/* the captured table */
	Oid			capture_relid;	/* <table>__changes */
	Oid			feed_relid;		/* <table>__changes_feed */
	List	   *key_columns;	/* char *: the primary key at capture time */
	int64		purged_through; /* the greatest change id purged, 0: none */
} ChangeCapture;

extern ChangeCapture *LookupCapture(Oid relid, bool lock);
extern ChangeCapture *LookupCaptureOf(Oid relid);
extern void InsertCapture(ChangeCapture *c, const char *started_by);
extern void DeleteCapture(Oid relid);
extern void SetCaptureFeed(Oid relid, Oid feed_relid);
extern void RecordCapturePurge(Oid relid, int64 changes, int64 through);
extern List *ForgetVanishedCaptures(void);
extern char *CaptureObjectName(const char *table, const char *suffix);

#endif							/* PIPELINE_CATALOG_CAPTURE_H */
