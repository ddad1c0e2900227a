/*-------------------------------------------------------------------------
 *
 * src/engine/capture_trigger.c
 *
 * The trigger that writes a captured table's changes,
 * pipeline._capture_change(): AFTER INSERT, UPDATE or DELETE FOR EACH ROW,
 * and BEFORE TRUNCATE FOR EACH STATEMENT, on a table that capture() set up
 * (capture_setup.c). It runs in the writer's transaction, so a change is
 * in the capture table exactly when the writer's change is in the table:
 * both commit or neither does.
 *
 * Each row change is one INSERT into the capture table, through a plan
 * prepared once per backend and table (and again after either table
 * changes: a relcache callback), run as the capture table's owner through
 * EnterOwnerContext: the writer needs no privilege on the capture table,
 * and whatever the owner put there runs as the owner. The INSERT takes the
 * capture table's lock before its identity default draws the change id,
 * so a run that waits for the capture table's writers (engine/load_step.c)
 * waits for every change whose id is at or below the high-water mark it
 * read; a change drawn later gets a greater id (the sequence has CACHE 1),
 * and belongs to a later window. An update that changes the key (by the
 * key type's equality, not its bytes) also records the old key. A TRUNCATE
 * writes every row it removes as a change of operation T, before they go.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/typcache.h"

#include "capture_internal.h"

PIPELINE_FUNCTION(pipeline_capture_change);

/* What this backend keeps to write one captured table's changes */
typedef struct CaptureWriter
{
	Oid			relid;			/* hash key: the captured table */
	bool		valid;
	Oid			capture_relid;
	Oid			owner;			/* the capture table's */
	int			ncolumns;		/* parameters: op, the old keys, the columns */
	int			nkeys;
	AttrNumber *attnums;		/* the table's columns, in parameter order */
	AttrNumber *key_attnums;	/* the key columns, in key order */
	FmgrInfo   *key_eq;			/* the equality of each key column's type */
	Oid		   *key_collids;
	SPIPlanPtr	plan;			/* INSERT of one change */
	char	   *truncate_sql;	/* INSERT of every row, operation T */
} CaptureWriter;

static HTAB *writers = NULL;

/* InvalidateWriters forgets the writers of a table or capture table that changed */
static void
InvalidateWriters(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS status;
	CaptureWriter *w;

	hash_seq_init(&status, writers);
	while ((w = hash_seq_search(&status)) != NULL)
		if (!OidIsValid(relid) || w->relid == relid || w->capture_relid == relid)
			w->valid = false;
}

/* FreeWriter releases what a writer built, before it is built again */
static void
FreeWriter(CaptureWriter *w)
{
	if (w->plan)
		SPI_freeplan(w->plan);
	if (w->attnums)
		pfree(w->attnums);
	if (w->key_attnums)
		pfree(w->key_attnums);
	if (w->key_eq)
		pfree(w->key_eq);
	if (w->key_collids)
		pfree(w->key_collids);
	if (w->truncate_sql)
		pfree(w->truncate_sql);
	w->plan = NULL;
	w->attnums = w->key_attnums = NULL;
	w->key_eq = NULL;
	w->key_collids = NULL;
	w->truncate_sql = NULL;
}

/*
 * BuildWriter reads a table's capture and prepares the statements that
 * write its changes; the capture table must have every column the table
 * has (the DDL trigger sees to it: capture_ddl.c).
 */
static void
BuildWriter(CaptureWriter *w, Relation rel)
{
	ChangeCapture *c = LookupCapture(w->relid, false);
	List	   *columns;
	StringInfoData names;
	StringInfoData params;
	StringInfoData list;
	Oid		   *types;
	MemoryContext old;
	ListCell   *lc;
	int			n = 0;
	int			k = 0;

	if (c == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table %s has a capture trigger but is not captured", RelationNameOf(w->relid)),
				 errhint("DROP TRIGGER %s ON %s; or capture the table with pipeline.capture.",
						 CAPTURE_ROW_TRIGGER, RelationNameOf(w->relid))));
	columns = CaptureColumns(w->relid, c->key_columns);
	old = MemoryContextSwitchTo(CacheMemoryContext);
	w->capture_relid = c->capture_relid;
	w->owner = CaptureOwner(c);
	w->nkeys = list_length(c->key_columns);
	w->ncolumns = list_length(columns);
	w->attnums = palloc(sizeof(AttrNumber) * w->ncolumns);
	w->key_attnums = palloc(sizeof(AttrNumber) * w->nkeys);
	w->key_eq = palloc0(sizeof(FmgrInfo) * w->nkeys);
	w->key_collids = palloc(sizeof(Oid) * w->nkeys);
	MemoryContextSwitchTo(old);

	types = palloc(sizeof(Oid) * (1 + w->nkeys + w->ncolumns));
	types[0] = TEXTOID;
	initStringInfo(&names);
	initStringInfo(&params);
	initStringInfo(&list);
	appendStringInfo(&names, "%s", CAPTURE_OP);
	appendStringInfoString(&params, "$1");
	foreach(lc, c->key_columns)
	{
		CaptureColumn *col = NULL;
		ListCell   *cc;

		foreach(cc, columns)
			if (strcmp(((CaptureColumn *) lfirst(cc))->name, lfirst(lc)) == 0)
				col = lfirst(cc);
		if (col == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("key column \"%s\" of captured table %s no longer exists",
							(char *) lfirst(lc), RelationNameOf(w->relid)),
					 errhint("Stop the capture (pipeline.uncapture) and start it again.")));
		w->key_attnums[k] = col->attnum;
		w->key_collids[k] = col->collid;
		fmgr_info_cxt(get_opcode(lookup_type_cache(col->typid, TYPECACHE_EQ_OPR)->eq_opr),
					  &w->key_eq[k], CacheMemoryContext);
		types[1 + k] = col->typid;
		appendStringInfo(&names, ", %s", quote_identifier(CaptureOldColumn(col->name)));
		appendStringInfo(&params, ", $%d", 2 + k);
		k++;
	}
	foreach(lc, columns)
	{
		CaptureColumn *col = lfirst(lc);

		if (get_attnum(c->capture_relid, col->name) == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("capture table %s has no column \"%s\"", RelationNameOf(c->capture_relid),
							col->name),
					 errdetail("The column was added to %s while the capture's DDL trigger was not running.",
							   RelationNameOf(w->relid)),
					 errhint("ALTER TABLE %s ADD COLUMN %s %s;", RelationNameOf(c->capture_relid),
							 quote_identifier(col->name), CaptureColumnType(col))));
		w->attnums[n] = col->attnum;
		types[1 + w->nkeys + n] = col->typid;
		appendStringInfo(&names, ", %s", quote_identifier(col->name));
		appendStringInfo(&params, ", $%d", 2 + w->nkeys + n);
		appendStringInfo(&list, ", %s", quote_identifier(col->name));
		n++;
	}
	w->plan = SPI_prepare(psprintf("INSERT INTO %s (%s) VALUES (%s)", RelationNameOf(c->capture_relid),
								   names.data, params.data),
						  1 + w->nkeys + w->ncolumns, types);
	if (w->plan == NULL)
		elog(ERROR, "could not prepare the capture of %s: %s", RelationNameOf(w->relid),
			 SPI_result_code_string(SPI_result));
	SPI_keepplan(w->plan);
	w->truncate_sql = MemoryContextStrdup(CacheMemoryContext,
										  psprintf("INSERT INTO %s (%s%s) SELECT '%s'%s FROM ONLY %s",
												   RelationNameOf(c->capture_relid), CAPTURE_OP,
												   list.data, CAPTURE_OP_TRUNCATE, list.data,
												   RelationNameOf(w->relid)));
	w->valid = true;
}

/* WriterFor returns the (valid) writer of a captured table */
static CaptureWriter *
WriterFor(Relation rel)
{
	Oid			relid = RelationGetRelid(rel);
	CaptureWriter *w;
	bool		found;

	if (writers == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(CaptureWriter);
		ctl.hcxt = CacheMemoryContext;
		writers = hash_create("pg_pipeline capture writers", 16, &ctl,
							  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		CacheRegisterRelcacheCallback(InvalidateWriters, (Datum) 0);
	}
	w = hash_search(writers, &relid, HASH_ENTER, &found);
	if (!found)
		memset(((char *) w) + sizeof(Oid), 0, sizeof(CaptureWriter) - sizeof(Oid));
	if (!w->valid)
	{
		FreeWriter(w);
		BuildWriter(w, rel);
	}
	return w;
}

/* KeyChanged tells whether an update gave the row another key */
static bool
KeyChanged(CaptureWriter *w, HeapTuple oldtup, HeapTuple newtup, TupleDesc desc)
{
	for (int k = 0; k < w->nkeys; k++)
	{
		bool		oldnull;
		bool		newnull;
		Datum		a = heap_getattr(oldtup, w->key_attnums[k], desc, &oldnull);
		Datum		b = heap_getattr(newtup, w->key_attnums[k], desc, &newnull);

		if (oldnull != newnull)
			return true;
		if (!oldnull && !DatumGetBool(FunctionCall2Coll(&w->key_eq[k], w->key_collids[k], a, b)))
			return true;
	}
	return false;
}

/*
 * WriteChange inserts one change: its operation, the old key when
 * old_key_from is given, and the values of row.
 */
static void
WriteChange(CaptureWriter *w, const char *op, HeapTuple row, HeapTuple old_key_from, TupleDesc desc)
{
	int			nargs = 1 + w->nkeys + w->ncolumns;
	Datum	   *values = palloc(sizeof(Datum) * nargs);
	char	   *nulls = palloc(nargs);
	OwnerContext ctx;
	int			rc;

	values[0] = CStringGetTextDatum(op);
	nulls[0] = ' ';
	for (int k = 0; k < w->nkeys; k++)
	{
		bool		isnull = true;

		values[1 + k] = old_key_from ? heap_getattr(old_key_from, w->key_attnums[k], desc, &isnull) : (Datum) 0;
		nulls[1 + k] = isnull ? 'n' : ' ';
	}
	for (int i = 0; i < w->ncolumns; i++)
	{
		bool		isnull;

		values[1 + w->nkeys + i] = heap_getattr(row, w->attnums[i], desc, &isnull);
		nulls[1 + w->nkeys + i] = isnull ? 'n' : ' ';
	}
	EnterOwnerContext(&ctx, w->owner);
	rc = SPI_execute_plan(w->plan, values, nulls, false, 0);
	LeaveOwnerContext(&ctx);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "could not capture a change of %s: %s", RelationNameOf(w->relid),
			 SPI_result_code_string(rc));
}

/* WriteTruncate writes every row of the table as a change of operation T */
static void
WriteTruncate(CaptureWriter *w)
{
	OwnerContext ctx;
	int			rc;

	EnterOwnerContext(&ctx, w->owner);
	rc = SPI_execute(w->truncate_sql, false, 0);
	LeaveOwnerContext(&ctx);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "could not capture the TRUNCATE of %s: %s", RelationNameOf(w->relid),
			 SPI_result_code_string(rc));
}

/* pipeline._capture_change(): the trigger of a captured table */
Datum
pipeline_capture_change(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	CaptureWriter *w;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!((TRIGGER_FIRED_AFTER(td->tg_event) && TRIGGER_FIRED_FOR_ROW(td->tg_event)) ||
		  (TRIGGER_FIRED_BY_TRUNCATE(td->tg_event) && TRIGGER_FIRED_BEFORE(td->tg_event))))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("pipeline._capture_change must be fired AFTER each row, or BEFORE TRUNCATE"),
				 errhint("Let pipeline.capture create its triggers.")));
	desc = RelationGetDescr(td->tg_relation);
	SPI_connect();
	w = WriterFor(td->tg_relation);
	if (TRIGGER_FIRED_BY_TRUNCATE(td->tg_event))
		WriteTruncate(w);
	else if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
		WriteChange(w, CAPTURE_OP_INSERT, td->tg_trigtuple, NULL, desc);
	else if (TRIGGER_FIRED_BY_DELETE(td->tg_event))
		WriteChange(w, CAPTURE_OP_DELETE, td->tg_trigtuple, NULL, desc);
	else
		WriteChange(w, CAPTURE_OP_UPDATE, td->tg_newtuple,
					KeyChanged(w, td->tg_trigtuple, td->tg_newtuple, desc) ? td->tg_trigtuple : NULL,
					desc);
	SPI_finish();
	return PointerGetDatum(NULL);
}
