/*-------------------------------------------------------------------------
 *
 * src/api/erasure.c
 *
 * Erasing a person on request: pipeline.forget(subject, value, dry_run).
 * In the caller's transaction, one request:
 *
 *   1. the relations that hold the subject: every column of
 *      pipeline._subject_columns for it (declared with declare_subject,
 *      privacy.c, and followed through column lineage), with the forms
 *      the value takes there: the value, or its tokens or hashes under
 *      every version of the key of the mask on the way (catalog/masks.c);
 *   2. wait for the run lock of every pipeline that reads or writes one of
 *      them (a run in progress ends first; one that starts meanwhile is
 *      skipped), so that no run loads a row it read before the erasure;
 *   3. in each table, delete the rows whose subject columns hold one of
 *      those forms, as the table's owner (EnterOwnerContext: its triggers
 *      run as for a run), or count them in a dry run; views hold no rows,
 *      materialized views and foreign tables are listed, not erased;
 *   4. in the quarantine, the rows of pipelines reading those relations
 *      whose row holds the value, open or closed;
 *   5. keep the tombstones of every form (catalog/tombstones.c), so that a
 *      later run, replay or batch skips a row that brings the subject back
 *      (engine/erasure_gate.c), and the request, with the value's keyed
 *      hash and what was erased per relation (pipeline.erasure_requests);
 *      an audit entry for the request and one for each relation erased,
 *      naming the request and the keyed hash, never the value.
 *
 * Only the extension's owner, superusers and members of pipeline_admin may
 * (the "forget" action of policy/actions.c): a request erases rows of every
 * owner's relations.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/lsyscache.h"

#include "pipeline/engine.h"

PIPELINE_FUNCTION(pipeline_forget);

/* What the quarantine is called in a request's relations */
#define QUARANTINE_NAME "pipeline.quarantine"

/* A subject column of a relation, and the forms of the value it may hold */
typedef struct ErasedColumn
{
	char	   *name;
	List	   *forms;			/* char * */
} ErasedColumn;

/* A relation that holds the subject, and what a request erased of it */
typedef struct ErasedRelation
{
	Oid			relid;
	char	   *name;
	char		kind;
	List	   *columns;		/* ErasedColumn * */
	int64		rows;			/* -1: not erased (materialized view, foreign table) */
} ErasedRelation;

/* CheckMayForget refuses (42501, audited) anyone the policy does not let forget */
static void
CheckMayForget(const char *subject)
{
	Oid			owner = ExtensionOwner();

	if (RoleMayAct(GetUserId(), owner, "forget"))
		return;
	AuditRefusal("forget", "subject", subject, 0,
				 psprintf("permission denied to forget subject \"%s\"", subject));
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied to forget subject \"%s\"", subject),
			 errdetail("pipeline.forget erases rows of every relation that holds the subject, whoever owns it: only a superuser, the owner of extension pg_pipeline (role \"%s\") or a member of pipeline_admin may.",
					   GetUserNameFromId(owner, false)),
			 errhint("Ask an administrator, or GRANT pipeline_admin to this role.")));
}

/* ValueForms returns the forms of value a column holds as held_as, with key */
static List *
ValueForms(const char *value, const char *held_as, const char *key)
{
	if (strcmp(held_as, "token") == 0)
		return MaskedForms(value, MASK_TOKENIZE, key);
	if (strcmp(held_as, "hash") == 0)
		return MaskedForms(value, MASK_HASH, key);
	return list_make1(pstrdup(value));
}

/*
 * SubjectRelations returns the relations that hold the subject (by name),
 * each with its subject columns and the forms of value in them; 42704 when
 * no column identifies the subject.
 */
static List *
SubjectRelations(const char *subject, const char *value)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	List	   *out = NIL;
	ErasedRelation *rel = NULL;
	SPITupleTable *rows;
	uint64		n;

	values[0] = CStringGetTextDatum(subject);
	ExecCatalog("SELECT s.relation::oid, s.column_name::text, s.held_as, s.key"
				"  FROM pipeline._subject_columns s WHERE s.subject = $1"
				" ORDER BY s.relation::text, 2, 3, 4",
				1, types, values, NULL, false);
	rows = SPI_tuptable;
	n = SPI_processed;
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("no column identifies subject \"%s\"", subject),
				 errdetail("pipeline.forget erases the rows of the relations whose columns identify the subject (pipeline.subject_columns)."),
				 errhint("Declare one with pipeline.declare_subject(relation, column_name, '%s').",
						 subject)));
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	t = rows->vals[i];
		bool		isnull;
		Oid			relid = DatumGetObjectId(SPI_getbinval(t, rows->tupdesc, 1, &isnull));
		ErasedColumn *col = palloc(sizeof(ErasedColumn));

		if (rel == NULL || rel->relid != relid)
		{
			rel = palloc0(sizeof(ErasedRelation));
			rel->relid = relid;
			rel->name = RelationNameOf(relid);
			rel->kind = get_rel_relkind(relid);
			out = lappend(out, rel);
		}
		col->name = SPI_getvalue(t, rows->tupdesc, 2);
		col->forms = ValueForms(value, SPI_getvalue(t, rows->tupdesc, 3),
								SPI_getvalue(t, rows->tupdesc, 4));
		rel->columns = lappend(rel->columns, col);
	}
	return out;
}

/*
 * WaitForRuns takes the run lock of every pipeline whose source or target
 * is one of the relations, in pipeline order, waiting for runs in progress.
 */
static void
WaitForRuns(List *relations)
{
	Datum	   *relids = palloc(sizeof(Datum) * list_length(relations));
	Oid			types[1] = {OIDARRAYOID};
	Datum		values[1];
	List	   *ids = NIL;
	ListCell   *lc;

	foreach(lc, relations)
		relids[foreach_current_index(lc)] = ObjectIdGetDatum(((ErasedRelation *) lfirst(lc))->relid);
	values[0] = PointerGetDatum(construct_array(relids, list_length(relations), OIDOID,
												sizeof(Oid), true, TYPALIGN_INT));
	ExecCatalog("SELECT p.pipeline_id FROM pipeline.pipeline p"
				" WHERE to_regclass(quote_ident(p.source_schema) || '.' || quote_ident(p.source_table))::oid = ANY ($1)"
				"    OR to_regclass(quote_ident(p.target_schema) || '.' || quote_ident(p.target_table))::oid = ANY ($1)"
				" ORDER BY 1",
				1, types, values, NULL, false);
	for (uint64 i = 0; i < SPI_processed; i++)
		ids = lappend(ids, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
	foreach(lc, ids)
		WaitForPipelineLock(strtoll(lfirst(lc), NULL, 10));
}

/*
 * AppendMatch appends the condition that a row holds one of the value's
 * forms in a subject column of rel: column::text = ANY ($n), or, in the
 * quarantine, "row" ->> column; the forms are parameters from first on,
 * one text[] per column (MatchParams).
 */
static void
AppendMatch(StringInfo buf, ErasedRelation *rel, bool quarantine, int first)
{
	ListCell   *lc;

	appendStringInfoChar(buf, '(');
	foreach(lc, rel->columns)
	{
		ErasedColumn *col = lfirst(lc);

		appendStringInfoString(buf, foreach_current_index(lc) > 0 ? " OR " : "");
		if (quarantine)
			appendStringInfo(buf, "q.\"row\" OPERATOR(pg_catalog.->>) %s", quote_literal_cstr(col->name));
		else
			appendStringInfo(buf, "%s::pg_catalog.text", quote_identifier(col->name));
		appendStringInfo(buf, " OPERATOR(pg_catalog.=) ANY ($%d)",
						 first + foreach_current_index(lc));
	}
	appendStringInfoChar(buf, ')');
}

/* MatchParams fills the text[] parameters of AppendMatch from index first on */
static void
MatchParams(ErasedRelation *rel, Oid *types, Datum *values, int first)
{
	ListCell   *lc;

	foreach(lc, rel->columns)
	{
		ErasedColumn *col = lfirst(lc);
		Datum	   *forms = palloc(sizeof(Datum) * Max(list_length(col->forms), 1));
		ListCell   *fc;

		foreach(fc, col->forms)
			forms[foreach_current_index(fc)] = CStringGetTextDatum(lfirst(fc));
		types[first + foreach_current_index(lc)] = TEXTARRAYOID;
		values[first + foreach_current_index(lc)] =
			PointerGetDatum(construct_array(forms, list_length(col->forms), TEXTOID, -1, false,
											TYPALIGN_INT));
	}
}

/* Affected returns the rows a DELETE removed, or a dry run's count */
static int64
Affected(bool dry_run)
{
	bool		isnull;

	if (!dry_run)
		return (int64) SPI_processed;
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * EraseRows deletes (or, dry, counts) the subject's rows of a table, as
 * the table's owner, restricted, search_path pinned.
 */
static int64
EraseRows(ErasedRelation *rel, bool dry_run)
{
	int			n = list_length(rel->columns);
	Oid		   *types = palloc(sizeof(Oid) * n);
	Datum	   *values = palloc(sizeof(Datum) * n);
	StringInfoData sql;
	OwnerContext ctx;
	int			rc;

	initStringInfo(&sql);
	appendStringInfo(&sql, "%s %s WHERE ", dry_run ? "SELECT pg_catalog.count(*) FROM" : "DELETE FROM",
					 rel->name);
	AppendMatch(&sql, rel, false, 1);
	MatchParams(rel, types, values, 0);
	EnterOwnerContext(&ctx, RelationOwnerOf(rel->relid));
	rc = SPI_execute_with_args(sql.data, n, types, values, NULL, false, 0);
	LeaveOwnerContext(&ctx);
	if (rc != (dry_run ? SPI_OK_SELECT : SPI_OK_DELETE))
		elog(ERROR, "pg_pipeline could not erase from %s: %s", rel->name, SPI_result_code_string(rc));
	return Affected(dry_run);
}

/*
 * EraseQuarantined deletes (or, dry, counts) the quarantine rows, open or
 * closed, of the pipelines that read rel, whose row holds the value in one
 * of its subject columns.
 */
static int64
EraseQuarantined(ErasedRelation *rel, bool dry_run)
{
	int			n = list_length(rel->columns) + 1;
	Oid		   *types = palloc(sizeof(Oid) * n);
	Datum	   *values = palloc(sizeof(Datum) * n);
	StringInfoData sql;

	initStringInfo(&sql);
	appendStringInfo(&sql, "%s pipeline.quarantine_row q"
					 " WHERE q.pipeline_id IN (SELECT p.pipeline_id FROM pipeline.pipeline p"
					 "   WHERE to_regclass(quote_ident(p.source_schema) || '.'"
					 "                     || quote_ident(p.source_table))::oid = $1) AND ",
					 dry_run ? "SELECT count(*) FROM" : "DELETE FROM");
	AppendMatch(&sql, rel, true, 2);
	types[0] = OIDOID;
	values[0] = ObjectIdGetDatum(rel->relid);
	MatchParams(rel, types, values, 1);
	ExecCatalog(sql.data, n, types, values, NULL, false);
	return Affected(dry_run);
}

/* AllForms returns every form of the value in the relations, for the tombstones */
static List *
AllForms(List *relations)
{
	List	   *forms = NIL;
	ListCell   *lc;

	foreach(lc, relations)
	{
		ListCell   *cc;

		foreach(cc, ((ErasedRelation *) lfirst(lc))->columns)
			forms = list_concat(forms, ((ErasedColumn *) lfirst(cc))->forms);
	}
	return forms;
}

/* AppendCount appends "name": rows (null when not erased) to a JSON object */
static void
AppendCount(StringInfo buf, const char *name, int64 rows)
{
	if (buf->len > 1)
		appendStringInfoString(buf, ", ");
	escape_json(buf, name);
	if (rows < 0)
		appendStringInfoString(buf, ": null");
	else
		appendStringInfo(buf, ": %lld", (long long) rows);
}

/* RecordRequest writes the request and returns its id */
static int64
RecordRequest(const char *subject, const char *value_hash, bool dry_run, const char *relations,
			  int64 total)
{
	Oid			types[6] = {TEXTOID, TEXTOID, TEXTOID, JSONBOID, INT8OID, TEXTOID};
	Datum		values[6];
	bool		isnull;

	values[0] = CStringGetTextDatum(subject);
	values[1] = CStringGetTextDatum(value_hash);
	values[2] = CStringGetTextDatum(dry_run ? "dry_run" : "erased");
	values[3] = DirectFunctionCall1(jsonb_in, CStringGetDatum(relations));
	values[4] = Int64GetDatum(total);
	values[5] = CStringGetTextDatum(GetUserNameFromId(GetUserId(), false));
	ExecCatalog("INSERT INTO pipeline.erasure_request"
				" (subject, value_hash, status, relations, rows_erased, requested_by)"
				" VALUES ($1, $2, $3, $4, $5, $6) RETURNING request_id",
				6, types, values, NULL, false);
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * AuditErasure writes the audit entry of one relation erased (or, with
 * name NULL, of the request itself): the request, the subject and the
 * value's keyed hash, never the value.
 */
static void
AuditErasure(int64 request_id, const char *subject, const char *value_hash, const char *name,
			 int64 rows, bool dry_run)
{
	StringInfoData after;

	initStringInfo(&after);
	appendStringInfo(&after, "{\"request_id\": %lld, ", (long long) request_id);
	AppendJsonMember(&after, "subject", subject, false);
	AppendJsonMember(&after, "value_hash", value_hash, true);
	appendStringInfo(&after, ", \"rows_erased\": %lld", (long long) rows);
	if (name == NULL)
		appendStringInfo(&after, ", \"dry_run\": %s", dry_run ? "true" : "false");
	appendStringInfoChar(&after, '}');
	if (name)
		AuditObjectChange("forget", "relation", name, NULL, after.data);
	else
		AuditObjectChange("forget", "erasure_request", psprintf("%lld", (long long) request_id),
						  NULL, after.data);
}

/* ForgetArgs reads and checks forget's arguments */
static void
ForgetArgs(FunctionCallInfo fcinfo, char **subject, char **value, bool *dry_run)
{
	RequireArg(fcinfo, 0, "subject");
	RequireArg(fcinfo, 1, "value");
	RequireArg(fcinfo, 2, "dry_run");
	*subject = text_to_cstring(PG_GETARG_TEXT_PP(0));
	*value = text_to_cstring(PG_GETARG_TEXT_PP(1));
	*dry_run = PG_GETARG_BOOL(2);
	CheckMayForget(*subject);
	if (**value == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the value to forget must not be empty"),
				 errdetail("pipeline.forget erases the rows whose subject columns hold the value."),
				 errhint("Give the subject's identifier as the relations hold it, e.g. a customer id or an e-mail.")));
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
				 errmsg("pipeline.forget cannot run in a %s transaction",
						IsolationIsSerializable() ? "SERIALIZABLE" : "REPEATABLE READ"),
				 errdetail("It waits for the runs of the relations it erases, then must see what they loaded."),
				 errhint("Forget in a READ COMMITTED transaction.")));
}

/*
 * pipeline.forget(subject, value, dry_run DEFAULT false) RETURNS TABLE
 * (relation text, rows_erased bigint): erases the subject's rows wherever
 * lineage says they are (see the header), one row per relation, the
 * quarantine last; a dry run counts, erases nothing and keeps no
 * tombstone, and is recorded as a request too.
 */
Datum
pipeline_forget(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *subject;
	char	   *value;
	bool		dry_run;
	List	   *relations;
	uint8	   *key;
	char	   *value_hash;
	StringInfoData counts;
	int64		total = 0;
	int64		quarantined = 0;
	int64		request_id;
	int			nestlevel;
	ListCell   *lc;

	ForgetArgs(fcinfo, &subject, &value, &dry_run);
	InitMaterializedSRF(fcinfo, 0);
	SPI_connect();
	nestlevel = PinSearchPath();
	relations = SubjectRelations(subject, value);
	WaitForRuns(relations);
	key = ErasureKey(true);
	value_hash = ErasureDigestHex(key, subject, value);
	initStringInfo(&counts);
	appendStringInfoChar(&counts, '{');
	foreach(lc, relations)
	{
		ErasedRelation *rel = lfirst(lc);

		quarantined += EraseQuarantined(rel, dry_run);
		if (rel->kind == RELKIND_VIEW)
			continue;
		rel->rows = rel->kind == RELKIND_RELATION || rel->kind == RELKIND_PARTITIONED_TABLE ?
			EraseRows(rel, dry_run) : -1;
		total += Max(rel->rows, 0);
		AppendCount(&counts, rel->name, rel->rows);
	}
	AppendCount(&counts, QUARANTINE_NAME, quarantined);
	appendStringInfoChar(&counts, '}');
	request_id = RecordRequest(subject, value_hash, dry_run, counts.data, total + quarantined);
	if (!dry_run)
		StoreTombstones(key, subject, AllForms(relations), request_id);
	AuditErasure(request_id, subject, value_hash, NULL, total + quarantined, dry_run);
	foreach(lc, relations)
	{
		ErasedRelation *rel = lfirst(lc);
		Datum		row[2] = {CStringGetTextDatum(rel->name), Int64GetDatum(rel->rows)};
		bool		nulls[2] = {false, rel->rows < 0};

		if (rel->kind == RELKIND_VIEW)
			continue;
		if (!dry_run && rel->rows > 0)
			AuditErasure(request_id, subject, value_hash, rel->name, rel->rows, false);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, row, nulls);
	}
	if (!dry_run && quarantined > 0)
		AuditErasure(request_id, subject, value_hash, QUARANTINE_NAME, quarantined, false);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc,
						 (Datum[2]) {CStringGetTextDatum(QUARANTINE_NAME), Int64GetDatum(quarantined)},
						 (bool[2]) {false, false});
	UnpinSearchPath(nestlevel);
	SPI_finish();
	return (Datum) 0;
}
