/*-------------------------------------------------------------------------
 *
 * src/catalog/snapshot_columns.c
 *
 * The history columns of a snapshot pipeline's target (docs/modeling.md):
 * valid_from, valid_to (NULL for the current version) and is_current, or
 * the names the snapshot_columns option gives them, e.g. {"valid_from":
 * "since", "valid_to": "until"}; and pipeline.as_of, which reads the
 * versions a history held at a point in time by those columns, as the
 * caller. Only the option's shape is checked here; that the target has
 * the columns is the load plan's check (engine/snapshot_target.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/tuplestore.h"

#include "pipeline/catalog.h"

PIPELINE_FUNCTION(pipeline_as_of);

/* BadSnapshotColumns raises the 22023 of a snapshot_columns option that cannot be */
static void
BadSnapshotColumns(const char *message, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s", message),
			 detail ? errdetail("%s", detail) : 0,
			 errhint("Pass an object whose keys are among valid_from, valid_to and is_current,"
					 " each naming a distinct column, e.g. {\"valid_from\": \"since\"}.")));
}

/* SnapshotColumnSlot returns the field of names a key of the option sets, or NULL */
static char **
SnapshotColumnSlot(SnapshotColumns *names, const char *key)
{
	if (strcmp(key, "valid_from") == 0)
		return &names->valid_from;
	if (strcmp(key, "valid_to") == 0)
		return &names->valid_to;
	if (strcmp(key, "is_current") == 0)
		return &names->is_current;
	return NULL;
}

/*
 * ParseSnapshotColumns reads a snapshot_columns option (NULL or {}: the
 * defaults) into names, refusing (22023) anything but an object of the
 * three keys to distinct, non-empty column names.
 */
void
ParseSnapshotColumns(Jsonb *option, SnapshotColumns *names)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *key = NULL;

	names->valid_from = "valid_from";
	names->valid_to = "valid_to";
	names->is_current = "is_current";
	if (option == NULL)
		return;
	if (!JB_ROOT_IS_OBJECT(option) || JB_ROOT_IS_SCALAR(option))
		BadSnapshotColumns("snapshot_columns must be a JSON object", NULL);
	it = JsonbIteratorInit(&option->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	  **slot;
		char	   *name;

		if (tok == WJB_KEY)
		{
			key = pnstrdup(v.val.string.val, v.val.string.len);
			continue;
		}
		if (tok != WJB_VALUE)
			continue;
		slot = SnapshotColumnSlot(names, key);
		if (slot == NULL)
			BadSnapshotColumns(psprintf("unknown key \"%s\" in snapshot_columns", key), NULL);
		if (v.type != jbvString || v.val.string.len == 0)
			BadSnapshotColumns(psprintf("snapshot_columns key \"%s\" must name a column", key),
							   "Its value must be a non-empty string.");
		name = pnstrdup(v.val.string.val, v.val.string.len);
		if (strlen(name) >= NAMEDATALEN)
			BadSnapshotColumns(psprintf("snapshot_columns key \"%s\" names a column too long", key),
							   psprintf("A column name has at most %d bytes.", NAMEDATALEN - 1));
		*slot = name;
	}
	if (strcmp(names->valid_from, names->valid_to) == 0 ||
		strcmp(names->valid_from, names->is_current) == 0 ||
		strcmp(names->valid_to, names->is_current) == 0)
		BadSnapshotColumns("snapshot_columns names one column twice",
						   psprintf("The history columns would be \"%s\", \"%s\" and \"%s\".",
									names->valid_from, names->valid_to, names->is_current));
}

/* IsSnapshotHistoryColumn tells whether a column is one of the history columns */
bool
IsSnapshotHistoryColumn(const SnapshotColumns *names, const char *column)
{
	return strcmp(column, names->valid_from) == 0 || strcmp(column, names->valid_to) == 0 ||
		strcmp(column, names->is_current) == 0;
}

/*
 * HistoryColumnsOf finds the history columns of a relation: those of the
 * snapshot pipeline that loads it, else the default names when it has
 * them; raises 22023 for a relation that keeps no history.
 */
static void
HistoryColumnsOf(Oid relid, SnapshotColumns *names)
{
	char	   *schema;
	char	   *table;
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2];
	bool		isnull;
	Jsonb	   *option = NULL;
	bool		found;

	DescribeRelation(relid, &schema, &table);
	values[0] = CStringGetTextDatum(schema);
	values[1] = CStringGetTextDatum(table);
	ExecCatalog("SELECT p.snapshot_columns FROM pipeline.pipeline p"
				" WHERE p.mode = 'snapshot' AND p.target_schema = $1::name AND p.target_table = $2::name"
				" ORDER BY p.pipeline_id LIMIT 1", 2, types, values, NULL, true);
	found = SPI_processed > 0;
	if (found)
		option = DatumGetJsonbPCopy(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	ParseSnapshotColumns(option, names);
	if (found || (get_attnum(relid, names->valid_from) > 0 && get_attnum(relid, names->valid_to) > 0))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("relation %s keeps no history", quote_qualified_identifier(schema, table)),
			 errdetail("It is not the target of a snapshot pipeline, and has no columns valid_from and valid_to."),
			 errhint("pipeline.as_of reads the targets of pipelines with mode => 'snapshot'.")));
}

/*
 * ValidityCast spells the cast of the point in time ($1, timestamptz) to
 * the type of a history's valid_from: timestamp in the session's time zone,
 * date, or none; raises 42804 for a history versioned by numbers.
 */
static const char *
ValidityCast(Oid relid, const SnapshotColumns *names)
{
	Oid			typid = getBaseType(get_atttype(relid, get_attnum(relid, names->valid_from)));
	const char *vf = quote_identifier(names->valid_from);
	const char *vt = quote_identifier(names->valid_to);

	if (typid == TIMESTAMPTZOID)
		return "";
	if (typid == TIMESTAMPOID)
		return "::pg_catalog.timestamp";
	if (typid == DATEOID)
		return "::pg_catalog.date";
	ereport(ERROR,
			(errcode(ERRCODE_DATATYPE_MISMATCH),
			 errmsg("the history of %s is versioned by %s, not by time", RelationNameOf(relid),
					format_type_be(typid)),
			 errdetail("Its column \"%s\" holds the values of the pipeline's incremental column.",
					   names->valid_from),
			 errhint("Select the versions valid at a value v with WHERE %s <= v AND (%s IS NULL OR %s > v).",
					 vf, vt, vt)));
	return NULL;				/* keep compiler quiet */
}

/*
 * AsOfQuery builds the SELECT of the columns the caller's column definition
 * list names (each a column of the relation, of the same type: 42703,
 * 42804) from the versions valid at $1.
 */
static char *
AsOfQuery(Oid relid, TupleDesc wanted, const SnapshotColumns *names)
{
	StringInfoData sql;
	const char *cast = ValidityCast(relid, names);
	const char *vf = quote_identifier(names->valid_from);
	const char *vt = quote_identifier(names->valid_to);

	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT ");
	for (int i = 0; i < wanted->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(wanted, i);
		AttrNumber	attnum = get_attnum(relid, NameStr(att->attname));
		Oid			typid;

		if (attnum <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" does not exist in %s", NameStr(att->attname), RelationNameOf(relid)),
					 errhint("Name columns of the history in the column definition list: AS h(id integer, ...).")));
		typid = get_atttype(relid, attnum);
		if (typid != att->atttypid)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column \"%s\" has type %s in %s but %s in the column definition list",
							NameStr(att->attname), format_type_be(typid), RelationNameOf(relid),
							format_type_be(att->atttypid)),
					 errhint("Declare it as %s.", format_type_be(typid))));
		appendStringInfo(&sql, "%sh.%s", i > 0 ? ", " : "", quote_identifier(NameStr(att->attname)));
	}
	appendStringInfo(&sql, " FROM %s AS h WHERE h.%s <= $1%s AND (h.%s IS NULL OR h.%s > $1%s)",
					 RelationNameOf(relid), vf, cast, vt, vt, cast);
	return sql.data;
}

/*
 * pipeline.as_of(target regclass, at timestamptz) returns the versions of
 * a history valid at a point in time, as SETOF record: the caller names
 * the columns it wants in a column definition list. The rows are read as
 * the caller (its privileges, row-level security), search_path pinned.
 */
Datum
pipeline_as_of(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			relid = PG_GETARG_OID(0);
	Datum		at = PG_GETARG_DATUM(1);
	Oid			types[1] = {TIMESTAMPTZOID};
	SnapshotColumns names;
	char	   *sql;
	int			nestlevel;
	int			rc;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	SPI_connect();
	if (get_rel_name(relid) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	HistoryColumnsOf(relid, &names);
	sql = AsOfQuery(relid, rsinfo->setDesc, &names);
	nestlevel = PinSearchPath();
	rc = SPI_execute_with_args(sql, 1, types, &at, NULL, true, 0);
	UnpinSearchPath(nestlevel);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "pipeline.as_of query failed: %s", SPI_result_code_string(rc));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		Datum	   *values = palloc(sizeof(Datum) * rsinfo->setDesc->natts);
		bool	   *nulls = palloc(sizeof(bool) * rsinfo->setDesc->natts);

		heap_deform_tuple(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, values, nulls);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();
	return (Datum) 0;
}
