/*-------------------------------------------------------------------------
 *
 * src/catalog/column_types.c
 *
 * The column_types option: an object of source column names to the SQL
 * type each has in the target, e.g. {"amount": "numeric(12,2)"}. A target
 * created for the pipeline takes these types instead of the source's (text
 * staging into a typed target); the load converts each value with the
 * type's input function (engine/typed_load.c). This file reads and checks
 * the option; its columns are checked against the source with the plan.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "parser/parse_type.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"

#include "pipeline/catalog.h"

/* BadColumnTypes raises the 22023 of a column_types option of the wrong shape */
static void
BadColumnTypes(const char *message, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s", message),
			 detail ? errdetail("%s", detail) : 0,
			 errhint("Pass an object of source column names to type names,"
					 " e.g. {\"amount\": \"numeric(12,2)\"}.")));
}

/*
 * ParseColumnTypes reads a column_types option into ColumnType entries in
 * key order, resolving each type name as a column definition would (the
 * parser's 42601 or 42704 when it is not a type); pseudo-types are refused.
 */
List *
ParseColumnTypes(Jsonb *column_types)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	List	   *out = NIL;
	ColumnType *ct = NULL;

	if (column_types == NULL)
		return NIL;
	if (!JB_ROOT_IS_OBJECT(column_types) || JB_ROOT_IS_SCALAR(column_types))
		BadColumnTypes("column_types must be a JSON object of column names to types", NULL);
	it = JsonbIteratorInit(&column_types->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			ct = palloc0(sizeof(ColumnType));
			ct->column = pnstrdup(v.val.string.val, v.val.string.len);
		}
		else if (tok == WJB_VALUE)
		{
			if (v.type != jbvString)
				BadColumnTypes(psprintf("the type of column \"%s\" must be a type name", ct->column),
							   "It is not a JSON string.");
			ct->type_name = pnstrdup(v.val.string.val, v.val.string.len);
			parseTypeString(ct->type_name, &ct->typid, &ct->typmod, false);
			if (get_typtype(ct->typid) == TYPTYPE_PSEUDO)
				BadColumnTypes(psprintf("column \"%s\" cannot have type %s", ct->column,
										format_type_be(ct->typid)),
							   "A pseudo-type cannot be a column's type.");
			out = lappend(out, ct);
		}
	}
	return out;
}

/* FindColumnType returns the declared type of a column, NULL if none */
ColumnType *
FindColumnType(List *column_types, const char *column)
{
	ListCell   *lc;

	foreach(lc, column_types)
	{
		ColumnType *ct = lfirst(lc);

		if (strcmp(ct->column, column) == 0)
			return ct;
	}
	return NULL;
}
