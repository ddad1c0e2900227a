/*-------------------------------------------------------------------------
 *
 * src/engine/capture_setup.c
 *
 * Starting and stopping the capture of a table updated in place
 * (docs/capture.md). StartCapture checks the table (a permanent, plain
 * table with an immediate primary key and no column named like a capture
 * column), then, as the extension owner, creates in the table's schema its
 * capture table <table>__changes (a change id from its own identity
 * sequence, CACHE 1; the operation; when; the old key of a key-changing
 * update; the table's columns) and the feed <table>__changes_feed that
 * pipelines read, gives both to the table's owner with the table's SELECT
 * grants, and puts two triggers on the table (AFTER ROW for INSERT, UPDATE
 * and DELETE; BEFORE TRUNCATE; engine/capture_trigger.c), each recorded as
 * depending on the capture table and the feed, so that neither can be
 * dropped from under it. Everything happens in the caller's transaction,
 * under the SHARE ROW EXCLUSIVE lock that CREATE TRIGGER takes on the
 * table: no writer changes it between the snapshot of its rows (operation
 * S) and the first captured change. SyncCaptureObjects keeps the capture
 * table's columns and the feed in step with the table, at start and after
 * ALTER TABLE (capture_ddl.c); StopCapture undoes it all.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/xact.h"
#include "catalog/catalog.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_trigger.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/ruleutils.h"
#include "utils/syscache.h"

#include "capture_internal.h"

bool		capture_ddl_active = false;

static const char *const CaptureTriggers[] = {CAPTURE_ROW_TRIGGER, CAPTURE_TRUNCATE_TRIGGER};

/*
 * CheckCaptureIsolation refuses (25000) a transaction whose snapshot is
 * older than its statements: the snapshot of a table's rows must be taken
 * after the table's writers are locked out, or a change committed in
 * between would be neither in it nor captured.
 */
void
CheckCaptureIsolation(const char *what)
{
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
				 errmsg("%s needs a READ COMMITTED transaction", what),
				 errdetail("It copies the table's rows after locking out its writers; a REPEATABLE READ or SERIALIZABLE transaction would copy them as of its older snapshot."),
				 errhint("Call it outside an explicit transaction block, or in a READ COMMITTED one.")));
}

/* CaptureOwner returns the owner of a capture's table of changes, who writes it */
Oid
CaptureOwner(ChangeCapture *c)
{
	return RelationOwnerOf(c->capture_relid);
}

/* CaptureOldColumn names the column that keeps a key column's old value */
char *
CaptureOldColumn(const char *key_column)
{
	return CaptureObjectName(CAPTURE_OLD_PREFIX, key_column);
}

/*
 * CaptureColumns lists a table's columns as its capture table keeps them:
 * by name, with the base type of a domain (whose checks stay with the
 * table: a deleted row's old values must be kept even if the domain
 * changed since), and whether each is part of the key.
 */
List *
CaptureColumns(Oid relid, List *key_columns)
{
	Relation	rel = relation_open(relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	List	   *columns = NIL;

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		CaptureColumn *col;
		ListCell   *lc;

		if (att->attisdropped)
			continue;
		col = palloc0(sizeof(CaptureColumn));
		col->name = pstrdup(NameStr(att->attname));
		col->attnum = att->attnum;
		col->typmod = att->atttypmod;
		col->typid = getBaseTypeAndTypmod(att->atttypid, &col->typmod);
		col->collid = att->attcollation;
		foreach(lc, key_columns)
			col->is_key |= strcmp(lfirst(lc), col->name) == 0;
		columns = lappend(columns, col);
	}
	relation_close(rel, AccessShareLock);
	return columns;
}

/* CaptureColumnType spells a column's type, qualified, with its collation if not the type's */
char *
CaptureColumnType(CaptureColumn *col)
{
	char	   *type = format_type_extended(col->typid, col->typmod,
											FORMAT_TYPE_TYPEMOD_GIVEN | FORMAT_TYPE_FORCE_QUALIFY);

	if (OidIsValid(col->collid) && col->collid != get_typcollation(col->typid))
		return psprintf("%s COLLATE %s", type, generate_collation_name(col->collid));
	return type;
}

/*
 * PrimaryKeyColumns returns the columns of a table's primary key, refusing
 * (55000) a table without one or with a deferrable one: with checks
 * deferred, one statement may pass through states with two rows of a key,
 * and the order of its row changes would no longer replay to its result.
 */
static List *
PrimaryKeyColumns(Relation rel, const char *name)
{
	Oid			pk = RelationGetPrimaryKeyIndex(rel);
	HeapTuple	tuple;
	Form_pg_index index;
	List	   *key = NIL;
	ListCell   *lc;

	/* the relcache knows an immediate primary key only */
	foreach(lc, OidIsValid(pk) ? NIL : RelationGetIndexList(rel))
	{
		tuple = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(lfirst_oid(lc)));
		if (HeapTupleIsValid(tuple) && ((Form_pg_index) GETSTRUCT(tuple))->indisprimary)
			pk = lfirst_oid(lc);
		if (HeapTupleIsValid(tuple))
			ReleaseSysCache(tuple);
	}
	if (!OidIsValid(pk))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table %s has no primary key", name),
				 errdetail("A captured change names its row by the primary key; a key-changing update also records the old key."),
				 errhint("ALTER TABLE %s ADD PRIMARY KEY (...);", name)));
	tuple = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(pk));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for index %u", pk);
	index = (Form_pg_index) GETSTRUCT(tuple);
	if (!index->indimmediate)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the primary key of table %s is deferrable", name),
				 errdetail("With its check deferred, a statement's row changes (a swap of two keys) do not replay in order to its result."),
				 errhint("Make the primary key NOT DEFERRABLE to capture the table.")));
	for (int i = 0; i < index->indnkeyatts; i++)
		key = lappend(key, get_attname(RelationGetRelid(rel), index->indkey.values[i], false));
	ReleaseSysCache(tuple);
	return key;
}

/*
 * CheckCaptureTable refuses what cannot be captured, each with its own
 * SQLSTATE, and returns the table's key: it must be a permanent (or
 * unlogged) plain table, not a partitioned one nor one with inheritance
 * children (whose rows other tables' triggers see), not a catalog, not
 * already captured, not itself a capture.
 */
static List *
CheckCaptureTable(Oid relid)
{
	char		kind = get_rel_relkind(relid);
	char	   *name;
	Relation	rel;
	List	   *key;
	ChangeCapture *other;

	if (kind == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	name = RelationNameOf(relid);
	if (kind == RELKIND_PARTITIONED_TABLE || (kind == RELKIND_RELATION && has_subclass(relid)))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot capture table %s: it has partitions or inheritance children", name),
				 errdetail("Row triggers on %s do not see the rows of its partitions or children.", name),
				 errhint("Capture a table without partitions or children.")));
	if (kind != RELKIND_RELATION || get_rel_persistence(relid) == RELPERSISTENCE_TEMP ||
		IsCatalogRelationOid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("cannot capture %s", name),
				 errdetail("Only a permanent table of a user schema can be captured; \"%s\" is not one.", name),
				 errhint("Capture the table that holds the rows: a view's changes are the changes of its tables.")));
	if (get_rel_namespace(relid) == get_namespace_oid(PIPELINE_SCHEMA, false))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot capture %s: it belongs to pg_pipeline", name),
				 errhint("Capture a table of your own.")));
	if ((other = LookupCaptureOf(relid)) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("%s is the capture of table %s", name, RelationNameOf(other->relid)),
				 errhint("Capture the table itself; its capture already holds its changes.")));
	if ((other = LookupCapture(relid, false)) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("table %s is already captured", name),
				 errdetail("Its changes go to %s.", RelationNameOf(other->capture_relid)),
				 errhint("Read them through %s, or call pipeline.uncapture first.",
						 RelationNameOf(other->feed_relid))));
	rel = relation_open(relid, AccessShareLock);
	key = PrimaryKeyColumns(rel, name);
	relation_close(rel, AccessShareLock);
	return key;
}

/*
 * CheckCaptureColumnNames refuses (42701) a table column named like a column the
 * capture table or its feed adds, which the capture could not keep apart.
 */
static void
CheckCaptureColumnNames(Oid relid, List *columns, List *key_columns)
{
	static const char *const reserved[] = {CAPTURE_CHANGE_ID, CAPTURE_OP, CAPTURE_AT, CAPTURE_DELETED};
	ListCell   *lc;

	foreach(lc, columns)
	{
		CaptureColumn *col = lfirst(lc);
		bool		clash = false;
		ListCell   *kc;

		for (int i = 0; i < lengthof(reserved); i++)
			clash |= strcmp(col->name, reserved[i]) == 0;
		foreach(kc, key_columns)
			clash |= strcmp(col->name, CaptureOldColumn(lfirst(kc))) == 0;
		if (clash)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_COLUMN),
					 errmsg("column \"%s\" of table %s has the name of a capture column",
							col->name, RelationNameOf(relid)),
					 errdetail("A capture table adds %s, %s, %s, %s<key column>, and its feed %s.",
							   CAPTURE_CHANGE_ID, CAPTURE_OP, CAPTURE_AT, CAPTURE_OLD_PREFIX,
							   CAPTURE_DELETED),
					 errhint("ALTER TABLE %s RENAME COLUMN %s TO ...;", RelationNameOf(relid),
							 quote_identifier(col->name))));
	}
}

/* RefuseExisting refuses (42P07) a capture object whose name is taken */
static void
RefuseExisting(Oid nspid, const char *name, const char *table)
{
	if (OidIsValid(get_relname_relid(name, nspid)))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_TABLE),
				 errmsg("relation \"%s\" already exists", name),
				 errdetail("Capturing table %s creates %s in its schema.",
						   quote_identifier(table), quote_identifier(name)),
				 errhint("Drop or rename %s, then capture the table.",
						 quote_qualified_identifier(get_namespace_name(nspid), name))));
}

/* RunCaptureDdl runs one statement of capture's own DDL as the extension owner */
static void
RunCaptureDdl(const char *sql)
{
	ExecCatalog(sql, 0, NULL, NULL, NULL, false);
}

/*
 * SelectGrantees lists the roles (and PUBLIC) that have SELECT on relid,
 * but its owner, as GRANT spells them; NULL when there are none.
 */
static char *
SelectGrantees(Oid relid)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(relid)};
	StringInfoData roles;

	ExecCatalog("SELECT DISTINCT CASE WHEN a.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC'"
				"            ELSE pg_catalog.quote_ident(r.rolname) END"
				"  FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a"
				"  LEFT JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) a.grantee"
				" WHERE c.oid OPERATOR(pg_catalog.=) $1 AND a.privilege_type OPERATOR(pg_catalog.=) 'SELECT'"
				"   AND a.grantee OPERATOR(pg_catalog.<>) c.relowner",
				1, types, values, NULL, false);
	initStringInfo(&roles);
	for (uint64 i = 0; i < SPI_processed; i++)
		appendStringInfo(&roles, "%s%s", i ? ", " : "",
						 SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
	return roles.len > 0 ? roles.data : NULL;
}

/*
 * GrantSelect gives SELECT on objects (as SQL lists them) to roles: whoever
 * may read a table may read its changes, and a pipeline's owner needs to.
 */
static void
GrantSelect(const char *objects, const char *roles)
{
	if (roles)
		RunCaptureDdl(psprintf("GRANT SELECT ON %s TO %s", objects, roles));
}

/*
 * FeedQuery builds the feed's query: each change as one row (the change
 * id, whether it removes its key, the row's values), and for a
 * key-changing update a second row with the same change id that deletes
 * the old key: a merge pipeline then deletes the old key and writes the
 * new one, de-duplicating each key by change id.
 */
static char *
FeedQuery(ChangeCapture *c, List *columns)
{
	StringInfoData sql;
	char	   *cap = RelationNameOf(c->capture_relid);
	ListCell   *lc;

	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT c.%s, c.%s OPERATOR(pg_catalog.=) ANY (ARRAY['%s', '%s']::pg_catalog.text[]) AS %s",
					 CAPTURE_CHANGE_ID, CAPTURE_OP, CAPTURE_OP_DELETE, CAPTURE_OP_TRUNCATE, CAPTURE_DELETED);
	foreach(lc, columns)
		appendStringInfo(&sql, ", c.%s", quote_identifier(((CaptureColumn *) lfirst(lc))->name));
	appendStringInfo(&sql, " FROM %s c UNION ALL SELECT c.%s, true", cap, CAPTURE_CHANGE_ID);
	foreach(lc, columns)
	{
		CaptureColumn *col = lfirst(lc);

		if (col->is_key)
			appendStringInfo(&sql, ", c.%s", quote_identifier(CaptureOldColumn(col->name)));
		else
			appendStringInfo(&sql, ", NULL::%s", CaptureColumnType(col));
	}
	appendStringInfo(&sql, " FROM %s c WHERE c.%s OPERATOR(pg_catalog.=) '%s' AND c.%s IS NOT NULL",
					 cap, CAPTURE_OP, CAPTURE_OP_UPDATE,
					 quote_identifier(CaptureOldColumn(linitial(c->key_columns))));
	return sql.data;
}

/*
 * FeedFits tells whether the feed can be replaced in place by one with the
 * given columns: CREATE OR REPLACE VIEW may add columns at the end only.
 */
static bool
FeedFits(Oid feed_relid, List *columns)
{
	Relation	rel = relation_open(feed_relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	bool		fits = desc->natts <= list_length(columns) + 2;

	for (int i = 2; fits && i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		CaptureColumn *col = list_nth(columns, i - 2);

		fits = strcmp(NameStr(att->attname), col->name) == 0 && att->atttypid == col->typid &&
			att->atttypmod == col->typmod && att->attcollation == col->collid;
	}
	relation_close(rel, AccessShareLock);
	return fits;
}

/*
 * RecordTriggerDependencies makes the capture's triggers depend on its
 * capture table and feed (or forgets that they depend on the feed, to
 * replace it), so that DROP TABLE or DROP VIEW refuses while the table
 * is captured, and CASCADE takes the triggers too.
 */
static void
RecordTriggerDependencies(ChangeCapture *c, bool on_table, bool forget_feed)
{
	for (int i = 0; i < lengthof(CaptureTriggers); i++)
	{
		ObjectAddress trigger;
		ObjectAddress ref;

		ObjectAddressSet(trigger, TriggerRelationId, get_trigger_oid(c->relid, CaptureTriggers[i], false));
		if (forget_feed)
		{
			deleteDependencyRecordsForSpecific(TriggerRelationId, trigger.objectId, DEPENDENCY_NORMAL,
											   RelationRelationId, c->feed_relid);
			continue;
		}
		if (on_table)
		{
			ObjectAddressSet(ref, RelationRelationId, c->capture_relid);
			recordDependencyOn(&trigger, &ref, DEPENDENCY_NORMAL);
		}
		ObjectAddressSet(ref, RelationRelationId, c->feed_relid);
		recordDependencyOn(&trigger, &ref, DEPENDENCY_NORMAL);
	}
	CommandCounterIncrement();
}

/*
 * DropFeed drops a feed about to be made anew (its triggers' dependencies
 * on it forgotten first) and returns the roles that had SELECT on it.
 */
static char *
DropFeed(ChangeCapture *c)
{
	char	   *roles = SelectGrantees(c->feed_relid);

	if (OidIsValid(get_trigger_oid(c->relid, CAPTURE_ROW_TRIGGER, true)))
		RecordTriggerDependencies(c, false, true);
	RunCaptureDdl(psprintf("DROP VIEW %s", RelationNameOf(c->feed_relid)));
	return roles;
}

/*
 * CreateFeed creates the feed, gives it to the capture table's owner and
 * to the roles given, and records it (a feed made anew: its new OID, and
 * the triggers' dependencies on it).
 */
static void
CreateFeed(ChangeCapture *c, List *columns, const char *roles, bool anew)
{
	Oid			nspid = get_rel_namespace(c->relid);
	char	   *name = CaptureObjectName(get_rel_name(c->relid), CAPTURE_FEED_SUFFIX);
	char	   *feed = quote_qualified_identifier(get_namespace_name(nspid), name);

	RunCaptureDdl(psprintf("CREATE VIEW %s AS %s", feed, FeedQuery(c, columns)));
	RunCaptureDdl(psprintf("ALTER VIEW %s OWNER TO %s", feed,
						   quote_identifier(GetUserNameFromId(CaptureOwner(c), false))));
	c->feed_relid = get_relname_relid(name, nspid);
	GrantSelect(feed, roles);
	if (anew)
	{
		SetCaptureFeed(c->relid, c->feed_relid);
		RecordTriggerDependencies(c, false, false);
	}
}

/*
 * CaptureColumnDdl returns the ALTER TABLE that makes the capture table's
 * column name fit col (added, or converted to its type), NULL when it does.
 */
static char *
CaptureColumnDdl(ChangeCapture *c, CaptureColumn *col, const char *name, bool *retype)
{
	char	   *cap = RelationNameOf(c->capture_relid);
	AttrNumber	attnum = get_attnum(c->capture_relid, name);
	Oid			typid;
	int32		typmod;
	Oid			collid;

	if (attnum == InvalidAttrNumber)
		return psprintf("ALTER TABLE %s ADD COLUMN %s %s", cap, quote_identifier(name),
						CaptureColumnType(col));
	get_atttypetypmodcoll(c->capture_relid, attnum, &typid, &typmod, &collid);
	if (typid == col->typid && typmod == col->typmod && collid == col->collid)
		return NULL;
	*retype = true;
	return psprintf("ALTER TABLE %s ALTER COLUMN %s TYPE %s USING %s::%s", cap,
					quote_identifier(name), CaptureColumnType(col), quote_identifier(name),
					format_type_extended(col->typid, col->typmod,
										 FORMAT_TYPE_TYPEMOD_GIVEN | FORMAT_TYPE_FORCE_QUALIFY));
}

/*
 * SyncColumnsAndFeed brings a capture table and its feed in step with the
 * table's columns: a column the capture table lacks is added (a renamed
 * one under its new name: the old column keeps its history), a retyped
 * one converted (with the old key of a key column); the feed shows the
 * table's columns as they are now (a dropped column leaves the feed, and
 * stays in the capture table). The feed is replaced in place when it only
 * gains columns, else dropped (before a column it reads is converted) and
 * created again with the same grants.
 */
static void
SyncColumnsAndFeed(ChangeCapture *c)
{
	List	   *columns = CaptureColumns(c->relid, c->key_columns);
	List	   *ddl = NIL;
	char	   *roles = NULL;
	bool		retype = false;
	bool		anew = false;
	ListCell   *lc;

	CheckCaptureColumnNames(c->relid, columns, c->key_columns);
	foreach(lc, columns)
	{
		CaptureColumn *col = lfirst(lc);
		char	   *sql = CaptureColumnDdl(c, col, col->name, &retype);

		if (sql)
			ddl = lappend(ddl, sql);
		if (col->is_key && (sql = CaptureColumnDdl(c, col, CaptureOldColumn(col->name), &retype)) != NULL)
			ddl = lappend(ddl, sql);
	}
	if (OidIsValid(c->feed_relid) && !retype && FeedFits(c->feed_relid, columns))
	{
		foreach(lc, ddl)
			RunCaptureDdl(lfirst(lc));
		RunCaptureDdl(psprintf("CREATE OR REPLACE VIEW %s AS %s", RelationNameOf(c->feed_relid),
							   FeedQuery(c, columns)));
		return;
	}
	if (OidIsValid(c->feed_relid))
	{
		roles = DropFeed(c);
		anew = true;
	}
	foreach(lc, ddl)
		RunCaptureDdl(lfirst(lc));
	CreateFeed(c, columns, roles, anew);
}

/* SyncCaptureObjects is SyncColumnsAndFeed, its DDL unseen by the DDL trigger */
void
SyncCaptureObjects(ChangeCapture *c)
{
	bool		was_active = capture_ddl_active;

	capture_ddl_active = true;
	PG_TRY();
	{
		SyncColumnsAndFeed(c);
	}
	PG_FINALLY();
	{
		capture_ddl_active = was_active;
	}
	PG_END_TRY();
}

/* CreateCaptureTable creates the table of changes, empty but for its own columns */
static void
CreateCaptureTable(ChangeCapture *c, List *columns, const char *nspname, const char *name)
{
	StringInfoData sql;
	ListCell   *lc;

	initStringInfo(&sql);
	/*
	 * No CHECK on the operation: only the trigger writes it, and a CHECK
	 * is read from its stored text and planned again by every INSERT (a
	 * third of the trigger's cost in bench/capture.sh).
	 */
	appendStringInfo(&sql, "CREATE TABLE %s (%s pg_catalog.int8 GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
					 " %s pg_catalog.text NOT NULL,"
					 " %s pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now()",
					 quote_qualified_identifier(nspname, name), CAPTURE_CHANGE_ID, CAPTURE_OP, CAPTURE_AT);
	foreach(lc, columns)
	{
		CaptureColumn *col = lfirst(lc);

		if (col->is_key)
			appendStringInfo(&sql, ", %s %s", quote_identifier(CaptureOldColumn(col->name)),
							 CaptureColumnType(col));
	}
	appendStringInfoChar(&sql, ')');
	RunCaptureDdl(sql.data);
	c->capture_relid = get_relname_relid(name, get_namespace_oid(nspname, false));
	/*
	 * The key-changing updates, for the feed's second branch: without this
	 * index, the high-water mark of the feed (max over both branches) reads
	 * the whole capture table at every run; with it, one index entry.
	 */
	RunCaptureDdl(psprintf("CREATE INDEX ON %s (%s) WHERE %s OPERATOR(pg_catalog.=) '%s' AND %s IS NOT NULL",
						   quote_qualified_identifier(nspname, name), CAPTURE_CHANGE_ID, CAPTURE_OP,
						   CAPTURE_OP_UPDATE, quote_identifier(CaptureOldColumn(linitial(c->key_columns)))));
	RunCaptureDdl(psprintf("COMMENT ON TABLE %s IS %s", quote_qualified_identifier(nspname, name),
						   quote_literal_cstr(psprintf("changes of %s captured by pg_pipeline (docs/capture.md)",
													   RelationNameOf(c->relid)))));
	RunCaptureDdl(psprintf("ALTER TABLE %s OWNER TO %s", quote_qualified_identifier(nspname, name),
						   quote_identifier(GetUserNameFromId(RelationOwnerOf(c->relid), false))));
}

/* CreateCaptureTriggers puts the capture's two triggers on the table, fired even for replicas */
static void
CreateCaptureTriggers(ChangeCapture *c)
{
	char	   *table = RelationNameOf(c->relid);

	RunCaptureDdl(psprintf("CREATE TRIGGER %s AFTER INSERT OR UPDATE OR DELETE ON %s"
						   " FOR EACH ROW EXECUTE FUNCTION pipeline._capture_change()",
						   CAPTURE_ROW_TRIGGER, table));
	RunCaptureDdl(psprintf("CREATE TRIGGER %s BEFORE TRUNCATE ON %s"
						   " FOR EACH STATEMENT EXECUTE FUNCTION pipeline._capture_change()",
						   CAPTURE_TRUNCATE_TRIGGER, table));
	RunCaptureDdl(psprintf("ALTER TABLE %s ENABLE ALWAYS TRIGGER %s, ENABLE ALWAYS TRIGGER %s",
						   table, CAPTURE_ROW_TRIGGER, CAPTURE_TRUNCATE_TRIGGER));
	RecordTriggerDependencies(c, true, false);
}

/*
 * StartCapture starts capturing a table (the caller checked the privileges
 * and audits it): the capture table, the feed, the triggers, the catalog
 * row, and the snapshot of the rows the table holds now (how many:
 * snapshot_rows).
 */
ChangeCapture *
StartCapture(Oid relid, int64 *snapshot_rows)
{
	ChangeCapture *c = palloc0(sizeof(ChangeCapture));
	char	   *nspname;
	char	   *table;
	char	   *cap_name;
	List	   *columns;

	CheckCaptureIsolation("pipeline.capture");
	c->relid = relid;
	c->key_columns = CheckCaptureTable(relid);
	columns = CaptureColumns(relid, c->key_columns);
	CheckCaptureColumnNames(relid, columns, c->key_columns);
	DescribeRelation(relid, &nspname, &table);
	cap_name = CaptureObjectName(table, CAPTURE_TABLE_SUFFIX);
	RefuseExisting(get_rel_namespace(relid), cap_name, table);
	RefuseExisting(get_rel_namespace(relid), CaptureObjectName(table, CAPTURE_FEED_SUFFIX), table);

	/* writers wait from here until the caller commits */
	LockRelationOid(relid, ShareRowExclusiveLock);
	capture_ddl_active = true;
	PG_TRY();
	{
		CreateCaptureTable(c, columns, nspname, cap_name);
		SyncCaptureObjects(c);
		GrantSelect(psprintf("%s, %s", RelationNameOf(c->capture_relid), RelationNameOf(c->feed_relid)),
					SelectGrantees(relid));
		CreateCaptureTriggers(c);
	}
	PG_FINALLY();
	{
		capture_ddl_active = false;
	}
	PG_END_TRY();
	InsertCapture(c, GetUserNameFromId(GetUserId(), false));
	*snapshot_rows = SnapshotCapture(c);
	return c;
}

/*
 * SnapshotCapture writes every row the table holds now as a change of
 * operation S, as the capture table's owner, with its writers locked out
 * until the caller commits: a consumer that starts from these rows and the
 * changes after them sees the whole table. Returns how many rows.
 */
int64
SnapshotCapture(ChangeCapture *c)
{
	List	   *columns = CaptureColumns(c->relid, c->key_columns);
	StringInfoData list;
	OwnerContext ctx;
	ListCell   *lc;
	int			rc;

	CheckCaptureIsolation("a snapshot of a captured table");
	LockRelationOid(c->relid, ShareRowExclusiveLock);
	initStringInfo(&list);
	foreach(lc, columns)
		appendStringInfo(&list, ", %s", quote_identifier(((CaptureColumn *) lfirst(lc))->name));
	EnterOwnerContext(&ctx, CaptureOwner(c));
	rc = SPI_execute(psprintf("INSERT INTO %s (%s%s) SELECT '%s'%s FROM ONLY %s",
							  RelationNameOf(c->capture_relid), CAPTURE_OP, list.data,
							  CAPTURE_OP_SNAPSHOT, list.data, RelationNameOf(c->relid)),
					 false, 0);
	LeaveOwnerContext(&ctx);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "could not copy the rows of %s: %s", RelationNameOf(c->relid),
			 SPI_result_code_string(rc));
	return (int64) SPI_processed;
}

/*
 * StopCapture stops capturing a table (the caller checked that no pipeline
 * reads the capture): drops the triggers, the feed and the capture table,
 * and the catalog row.
 */
void
StopCapture(ChangeCapture *c)
{
	char	   *table = RelationNameOf(c->relid);

	capture_ddl_active = true;
	PG_TRY();
	{
		for (int i = 0; i < lengthof(CaptureTriggers); i++)
			RunCaptureDdl(psprintf("DROP TRIGGER IF EXISTS %s ON %s", CaptureTriggers[i], table));
		RunCaptureDdl(psprintf("DROP VIEW %s", RelationNameOf(c->feed_relid)));
		RunCaptureDdl(psprintf("DROP TABLE %s", RelationNameOf(c->capture_relid)));
	}
	PG_FINALLY();
	{
		capture_ddl_active = false;
	}
	PG_END_TRY();
	DeleteCapture(c->relid);
}
