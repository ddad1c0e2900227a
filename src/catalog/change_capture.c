/*-------------------------------------------------------------------------
 *
 * src/catalog/change_capture.c
 *
 * The captures of tables updated in place: the rows of
 * pipeline.change_capture, one per captured table (its capture table, the
 * feed view pipelines read, its key, what was purged), read and written as
 * the extension owner with fixed, parameterised statements; and the names
 * of the objects a capture creates. The callers are connected to SPI. No
 * statement here is read-only: a read-only SPI query sees the catalog as
 * of its statement's start, and a capture started earlier in the same
 * statement (create_pipeline with capture, whose lineage then asks for
 * it) must be seen. What the objects are and how they are kept up is the
 * engine's (engine/capture_setup.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "pipeline/catalog.h"

#define CAPTURE_COLUMNS \
	"relation::pg_catalog.oid, capture_table::pg_catalog.oid, feed::pg_catalog.oid," \
	" key_columns::pg_catalog.text[], purged_through"

/* CaptureFromRow reads the current SPI row of a CAPTURE_COLUMNS query */
static ChangeCapture *
CaptureFromRow(int row)
{
	HeapTuple	tuple = SPI_tuptable->vals[row];
	TupleDesc	desc = SPI_tuptable->tupdesc;
	ChangeCapture *c = palloc0(sizeof(ChangeCapture));
	bool		isnull;
	Datum	   *elems;
	int			n;

	c->relid = DatumGetObjectId(SPI_getbinval(tuple, desc, 1, &isnull));
	c->capture_relid = DatumGetObjectId(SPI_getbinval(tuple, desc, 2, &isnull));
	c->feed_relid = DatumGetObjectId(SPI_getbinval(tuple, desc, 3, &isnull));
	deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(tuple, desc, 4, &isnull)),
					  TEXTOID, -1, false, TYPALIGN_INT, &elems, NULL, &n);
	for (int i = 0; i < n; i++)
		c->key_columns = lappend(c->key_columns, TextDatumGetCString(elems[i]));
	c->purged_through = DatumGetInt64(SPI_getbinval(tuple, desc, 5, &isnull));
	return c;
}

/*
 * LookupCapture returns the capture of a table, or NULL when it is not
 * captured; with lock, its row is locked FOR UPDATE, which serialises a
 * purge with a new consumer (engine/capture_purge.c).
 */
ChangeCapture *
LookupCapture(Oid relid, bool lock)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(relid)};

	ExecCatalog(lock
				? "SELECT " CAPTURE_COLUMNS " FROM pipeline.change_capture"
				"  WHERE relation OPERATOR(pg_catalog.=) $1::pg_catalog.regclass FOR UPDATE"
				: "SELECT " CAPTURE_COLUMNS " FROM pipeline.change_capture"
				"  WHERE relation OPERATOR(pg_catalog.=) $1::pg_catalog.regclass",
				1, types, values, NULL, false);
	return SPI_processed == 0 ? NULL : CaptureFromRow(0);
}

/* LookupCaptureOf returns the capture whose capture table or feed relid is, or NULL */
ChangeCapture *
LookupCaptureOf(Oid relid)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(relid)};

	ExecCatalog("SELECT " CAPTURE_COLUMNS " FROM pipeline.change_capture"
				" WHERE capture_table OPERATOR(pg_catalog.=) $1::pg_catalog.regclass"
				"    OR feed OPERATOR(pg_catalog.=) $1::pg_catalog.regclass",
				1, types, values, NULL, false);
	return SPI_processed == 0 ? NULL : CaptureFromRow(0);
}

/* InsertCapture writes the row of a new capture */
void
InsertCapture(ChangeCapture *c, const char *started_by)
{
	Oid			types[5] = {OIDOID, OIDOID, OIDOID, TEXTARRAYOID, TEXTOID};
	Datum		values[5];
	Datum	   *keys = palloc(sizeof(Datum) * list_length(c->key_columns));
	ListCell   *lc;
	int			n = 0;

	foreach(lc, c->key_columns)
		keys[n++] = CStringGetTextDatum(lfirst(lc));
	values[0] = ObjectIdGetDatum(c->relid);
	values[1] = ObjectIdGetDatum(c->capture_relid);
	values[2] = ObjectIdGetDatum(c->feed_relid);
	values[3] = PointerGetDatum(construct_array(keys, n, TEXTOID, -1, false, TYPALIGN_INT));
	values[4] = CStringGetTextDatum(started_by);
	ExecCatalog("INSERT INTO pipeline.change_capture (relation, capture_table, feed, key_columns,"
				" started_by) VALUES ($1, $2, $3, $4::pg_catalog.name[], $5)",
				5, types, values, NULL, false);
}

/* DeleteCapture removes the row of a table's capture */
void
DeleteCapture(Oid relid)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(relid)};

	ExecCatalog("DELETE FROM pipeline.change_capture"
				" WHERE relation OPERATOR(pg_catalog.=) $1::pg_catalog.regclass",
				1, types, values, NULL, false);
}

/* SetCaptureFeed records a feed view made anew (engine/capture_setup.c) */
void
SetCaptureFeed(Oid relid, Oid feed_relid)
{
	Oid			types[2] = {OIDOID, OIDOID};
	Datum		values[2] = {ObjectIdGetDatum(relid), ObjectIdGetDatum(feed_relid)};

	ExecCatalog("UPDATE pipeline.change_capture SET feed = $2"
				" WHERE relation OPERATOR(pg_catalog.=) $1::pg_catalog.regclass",
				2, types, values, NULL, false);
}

/* RecordCapturePurge counts a purge of changes up to change id through */
void
RecordCapturePurge(Oid relid, int64 changes, int64 through)
{
	Oid			types[3] = {OIDOID, INT8OID, INT8OID};
	Datum		values[3] = {ObjectIdGetDatum(relid), Int64GetDatum(changes), Int64GetDatum(through)};

	ExecCatalog("UPDATE pipeline.change_capture"
				"   SET purged_changes = purged_changes OPERATOR(pg_catalog.+) $2,"
				"       purged_through = GREATEST(purged_through, $3),"
				"       purges = purges OPERATOR(pg_catalog.+) 1, last_purge_at = pg_catalog.now()"
				" WHERE relation OPERATOR(pg_catalog.=) $1::pg_catalog.regclass",
				3, types, values, NULL, false);
}

/*
 * ForgetVanishedCaptures removes the rows of captures whose table, capture
 * table or feed no longer exists (dropped, or dropped with CASCADE), and
 * returns what each was, as "table -> capture table" text, for the audit.
 */
List *
ForgetVanishedCaptures(void)
{
	List	   *gone = NIL;

	ExecCatalog("DELETE FROM pipeline.change_capture c"
				" WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class r"
				"                    WHERE r.oid OPERATOR(pg_catalog.=) c.relation::pg_catalog.oid)"
				"    OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class r"
				"                    WHERE r.oid OPERATOR(pg_catalog.=) c.capture_table::pg_catalog.oid)"
				"    OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class r"
				"                    WHERE r.oid OPERATOR(pg_catalog.=) c.feed::pg_catalog.oid)"
				" RETURNING c.relation::pg_catalog.text OPERATOR(pg_catalog.||) ' -> '"
				"           OPERATOR(pg_catalog.||) c.capture_table::pg_catalog.text",
				0, NULL, NULL, NULL, false);
	for (uint64 i = 0; i < SPI_processed; i++)
		gone = lappend(gone, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
	return gone;
}

/*
 * CaptureObjectName spells the name of a capture's table or feed: the
 * table's name and the suffix, refused (42622) when longer than a name may
 * be, rather than truncated into something that might name another object.
 */
char *
CaptureObjectName(const char *table, const char *suffix)
{
	char	   *name = psprintf("%s%s", table, suffix);

	if (strlen(name) >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("capture name \"%s\" is too long", name),
				 errdetail("The capture of table \"%s\" is named after it with \"%s\"; a name has at most %d bytes.",
						   table, suffix, NAMEDATALEN - 1),
				 errhint("Rename the table to a shorter name before capturing it.")));
	return name;
}
