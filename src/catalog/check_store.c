/*-------------------------------------------------------------------------
 *
 * src/catalog/check_store.c
 *
 * A pipeline's data checks as pipeline.data_check keeps them: their kinds
 * and severities spelled as SQL spells them, and the statements that read,
 * add and remove them, as the extension owner (ExecCatalog). Validating a
 * check's arguments against the source is the engine's (check_sql.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "storage/bufmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "pipeline/catalog.h"

static const char *const KindNames[] = {
	"not_null", "accepted_values", "range", "regex", "relationships", "expression",
	"unique", "row_count", "query"
};

static const char *const SeverityNames[] = {"warn", "block", "quarantine", "error"};

const char *
CheckKindName(CheckKind kind)
{
	return KindNames[kind];
}

/* ParseCheckKind reads a kind's name; false when it is none */
bool
ParseCheckKind(const char *text, CheckKind *kind)
{
	for (int i = 0; i < lengthof(KindNames); i++)
		if (strcmp(text, KindNames[i]) == 0)
		{
			*kind = (CheckKind) i;
			return true;
		}
	return false;
}

const char *
CheckSeverityName(CheckSeverity severity)
{
	return SeverityNames[severity];
}

/* ParseCheckSeverity reads a severity's name; false when it is none */
bool
ParseCheckSeverity(const char *text, CheckSeverity *severity)
{
	for (int i = 0; i < lengthof(SeverityNames); i++)
		if (strcmp(text, SeverityNames[i]) == 0)
		{
			*severity = (CheckSeverity) i;
			return true;
		}
	return false;
}

static SPIPlanPtr load_checks_plan = NULL;

/*
 * AnyChecksStored is false when pipeline.data_check has never held a row
 * (no pages): then no pipeline has checks, and a run need not ask.
 */
static bool
AnyChecksStored(void)
{
	Oid			relid = get_relname_relid("data_check", get_namespace_oid(PIPELINE_SCHEMA, false));
	Relation	rel;
	BlockNumber nblocks;

	if (!OidIsValid(relid))
		return true;			/* let the statement report it */
	rel = table_open(relid, AccessShareLock);
	nblocks = RelationGetNumberOfBlocks(rel);
	table_close(rel, AccessShareLock);
	return nblocks > 0;
}

/*
 * LoadChecks reads a pipeline's checks in the order of their names, so that
 * a run evaluates and reports them in an order that does not depend on
 * when they were added.
 */
List *
LoadChecks(int64 pipeline_id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1];
	List	   *checks = NIL;
	SPITupleTable *tt;

	if (!AnyChecksStored())
		return NIL;
	values[0] = Int64GetDatum(pipeline_id);
	/* every run reads its checks: one statement prepared per backend */
	ExecKeptPlan(&load_checks_plan,
				 "SELECT check_id, check_name, kind, args, severity FROM pipeline.data_check"
				 " WHERE pipeline_id = $1 ORDER BY check_name COLLATE \"C\"",
				 1, types, values, NULL);
	tt = SPI_tuptable;
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = tt->vals[i];
		CheckDef   *c = palloc0(sizeof(CheckDef));
		bool		isnull;

		c->check_id = DatumGetInt64(SPI_getbinval(tup, tt->tupdesc, 1, &isnull));
		c->name = SPI_getvalue(tup, tt->tupdesc, 2);
		if (!ParseCheckKind(SPI_getvalue(tup, tt->tupdesc, 3), &c->kind) ||
			!ParseCheckSeverity(SPI_getvalue(tup, tt->tupdesc, 5), &c->severity))
			elog(ERROR, "pipeline.data_check holds an unknown kind or severity");
		c->args = DatumGetJsonbPCopy(SPI_getbinval(tup, tt->tupdesc, 4, &isnull));
		checks = lappend(checks, c);
	}
	return checks;
}

/* FindCheck returns the check of that name, or NULL */
CheckDef *
FindCheck(List *checks, const char *name)
{
	ListCell   *lc;

	foreach(lc, checks)
		if (strcmp(((CheckDef *) lfirst(lc))->name, name) == 0)
			return lfirst(lc);
	return NULL;
}

/* InsertCheck adds a check to a pipeline and returns its id */
int64
InsertCheck(int64 pipeline_id, CheckDef *check)
{
	Oid			types[5] = {INT8OID, TEXTOID, TEXTOID, JSONBOID, TEXTOID};
	Datum		values[5];
	bool		isnull;

	values[0] = Int64GetDatum(pipeline_id);
	values[1] = CStringGetTextDatum(check->name);
	values[2] = CStringGetTextDatum(CheckKindName(check->kind));
	values[3] = JsonbPGetDatum(check->args);
	values[4] = CStringGetTextDatum(CheckSeverityName(check->severity));
	ExecCatalog("INSERT INTO pipeline.data_check (pipeline_id, check_name, kind, args, severity)"
				" VALUES ($1, $2, $3, $4, $5) RETURNING check_id",
				5, types, values, NULL, false);
	check->check_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	return check->check_id;
}

/* DeleteCheck removes a check; false when the pipeline has none of that name */
bool
DeleteCheck(int64 pipeline_id, const char *name)
{
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2];

	values[0] = Int64GetDatum(pipeline_id);
	values[1] = CStringGetTextDatum(name);
	ExecCatalog("DELETE FROM pipeline.data_check WHERE pipeline_id = $1 AND check_name = $2",
				2, types, values, NULL, false);
	return SPI_processed > 0;
}
