/*-------------------------------------------------------------------------
 *
 * src/engine/check_sql.c
 *
 * What a data check means as SQL. Each row-level kind is a predicate over
 * the bare names of the source's columns that is true (or NULL) when a row
 * passes, as a CHECK constraint is: the planner (planner.c) puts the
 * predicates into the load statement, and a row fails a check when its
 * predicate IS FALSE. Each set-level kind is a query counting failures,
 * which set_checks.c runs after the load.
 *
 * ValidateCheck refuses a check before it is stored: its arguments' shape
 * (22023), then its SQL, parsed and analysed against the source (or the
 * target, for unique) as the pipeline owner through EnterOwnerContext, so
 * that bad SQL fails at add_check with the parser's SQLSTATE (42601,
 * 42703, 42804 ...). User-written SQL (expression, query) is first parsed
 * alone and must be one expression, or one SELECT: it is spliced into the
 * statements between newlines, inside parentheses, so that neither a
 * comment nor an unbalanced parenthesis can reach outside it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"

#include "pipeline/engine.h"

/* The argument keys each kind takes, the first ones required */
static const struct
{
	CheckKind	kind;
	const char *keys[4];
	int			required;
	const char *example;
}			KindArgs[] = {
	{CHECK_NOT_NULL, {"columns"}, 1, "{\"columns\": [\"id\", \"amount\"]}"},
	{CHECK_ACCEPTED_VALUES, {"column", "values"}, 2, "{\"column\": \"status\", \"values\": [\"new\", \"paid\"]}"},
	{CHECK_RANGE, {"column", "min", "max"}, 1, "{\"column\": \"amount\", \"min\": 0, \"max\": 1000}"},
	{CHECK_REGEX, {"column", "pattern"}, 2, "{\"column\": \"email\", \"pattern\": \"^[^@]+@[^@]+$\"}"},
	{CHECK_RELATIONSHIPS, {"column", "to", "field"}, 3, "{\"column\": \"customer_id\", \"to\": \"core.customers\", \"field\": \"id\"}"},
	{CHECK_EXPRESSION, {"sql"}, 1, "{\"sql\": \"amount >= 0\"}"},
	{CHECK_UNIQUE, {"columns"}, 1, "{\"columns\": [\"email\"]}"},
	{CHECK_ROW_COUNT, {"min", "max"}, 0, "{\"min\": 1, \"max\": 1000000}"},
	{CHECK_QUERY, {"sql"}, 1, "{\"sql\": \"SELECT * FROM core.orders WHERE amount < 0\"}"},
};

/* CheckArgError raises 22023 about a check's arguments */
static void
CheckArgError(PipelineDef *def, CheckDef *check, const char *problem)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid arguments for check \"%s\": %s", check->name, problem),
			 errdetail("Check \"%s\" of pipeline \"%s\" is of kind %s, with arguments %s.",
					   check->name, def->name, CheckKindName(check->kind),
					   JsonbToCString(NULL, &check->args->root, VARSIZE(check->args))),
			 errhint("Give a %s check arguments like %s.", CheckKindName(check->kind),
					 KindArgs[check->kind].example)));
}

/* Arg returns the value of a key of the check's arguments, NULL if absent or null */
static JsonbValue *
Arg(CheckDef *check, const char *key)
{
	JsonbValue *v = getKeyJsonValueFromContainer(&check->args->root, key, strlen(key), NULL);

	return (v == NULL || v->type == jbvNull) ? NULL : v;
}

/* ArgString returns a string argument, NULL if absent */
static char *
ArgString(PipelineDef *def, CheckDef *check, const char *key)
{
	JsonbValue *v = Arg(check, key);

	if (v == NULL)
		return NULL;
	if (v->type != jbvString || v->val.string.len == 0)
		CheckArgError(def, check, psprintf("\"%s\" must be a non-empty string", key));
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/* ScalarLiteral spells a JSON scalar as an SQL literal of unknown type */
static char *
ScalarLiteral(PipelineDef *def, CheckDef *check, JsonbValue *v, const char *key)
{
	switch (v->type)
	{
		case jbvString:
			return quote_literal_cstr(pnstrdup(v->val.string.val, v->val.string.len));
		case jbvNumeric:
			return quote_literal_cstr(DatumGetCString(DirectFunctionCall1(numeric_out,
																		  NumericGetDatum(v->val.numeric))));
		case jbvBool:
			return v->val.boolean ? "'true'" : "'false'";
		default:
			CheckArgError(def, check, psprintf("\"%s\" must hold strings, numbers or booleans", key));
	}
	return NULL;
}

/* ArgList returns the elements of an array argument, refusing an empty one */
static List *
ArgList(PipelineDef *def, CheckDef *check, const char *key)
{
	JsonbValue *v = Arg(check, key);
	JsonbIterator *it;
	JsonbValue	e;
	JsonbIteratorToken tok;
	List	   *elems = NIL;

	if (v == NULL || v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
		CheckArgError(def, check, psprintf("\"%s\" must be an array", key));
	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
		if (tok == WJB_ELEM)
		{
			JsonbValue *copy = palloc(sizeof(JsonbValue));

			*copy = e;
			elems = lappend(elems, copy);
		}
	if (elems == NIL)
		CheckArgError(def, check, psprintf("\"%s\" must not be empty", key));
	return elems;
}

/* ColumnList spells an array of column names as "a", "b" */
static char *
ColumnList(PipelineDef *def, CheckDef *check, const char *sep, const char *suffix)
{
	StringInfoData buf;
	ListCell   *lc;
	List	   *cols = ArgList(def, check, "columns");

	initStringInfo(&buf);
	foreach(lc, cols)
	{
		JsonbValue *e = lfirst(lc);

		if (e->type != jbvString || e->val.string.len == 0)
			CheckArgError(def, check, "\"columns\" must hold column names");
		appendStringInfo(&buf, "%s%s%s", lc == list_head(cols) ? "" : sep,
						 quote_identifier(pnstrdup(e->val.string.val, e->val.string.len)), suffix);
	}
	return buf.data;
}

/* CheckKeys refuses unknown keys and missing required ones */
static void
CheckKeys(PipelineDef *def, CheckDef *check)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (!JB_ROOT_IS_OBJECT(check->args) || JB_ROOT_IS_SCALAR(check->args))
		CheckArgError(def, check, "the arguments must be a JSON object");
	it = JsonbIteratorInit(&check->args->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		bool		known = false;

		if (tok != WJB_KEY)
			continue;
		for (int k = 0; k < 4 && KindArgs[check->kind].keys[k]; k++)
			known |= strlen(KindArgs[check->kind].keys[k]) == v.val.string.len &&
				strncmp(KindArgs[check->kind].keys[k], v.val.string.val, v.val.string.len) == 0;
		if (!known)
			CheckArgError(def, check, psprintf("unknown key \"%s\"",
											   pnstrdup(v.val.string.val, v.val.string.len)));
	}
	for (int k = 0; k < KindArgs[check->kind].required; k++)
		if (Arg(check, KindArgs[check->kind].keys[k]) == NULL)
			CheckArgError(def, check, psprintf("\"%s\" is missing", KindArgs[check->kind].keys[k]));
}

/*
 * UserSqlErrorCallback reports a syntax error's position in a user's SQL
 * (arg: the text parsed, a check's SQL or a rollup's measure), not in the
 * statement that called add_check or create_pipeline.
 */
void
UserSqlErrorCallback(void *arg)
{
	int			pos = geterrposition();

	if (pos <= 0)
		return;
	errposition(0);
	internalerrposition(pos);
	internalerrquery((const char *) arg);
}

/*
 * UserSql returns the "sql" argument after checking that it is, alone, one
 * expression (expression) or one SELECT (query), so that it can be put
 * inside parentheses in a statement and stay there.
 */
static char *
UserSql(PipelineDef *def, CheckDef *check)
{
	char	   *sql = ArgString(def, check, "sql");
	bool		expression = check->kind == CHECK_EXPRESSION;
	char	   *text = expression ? psprintf("SELECT (\n%s\n)", sql) : sql;
	ErrorContextCallback errcb;
	List	   *raw;
	SelectStmt *s;

	errcb.callback = UserSqlErrorCallback;
	errcb.arg = text;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;
	raw = raw_parser(text, RAW_PARSE_DEFAULT);
	error_context_stack = errcb.previous;

	if (list_length(raw) != 1 || !IsA(((RawStmt *) linitial(raw))->stmt, SelectStmt))
		CheckArgError(def, check, expression ? "\"sql\" must be one boolean expression"
					  : "\"sql\" must be one SELECT statement");
	s = (SelectStmt *) ((RawStmt *) linitial(raw))->stmt;
	if (s->intoClause || s->lockingClause)
		CheckArgError(def, check, "\"sql\" must not select INTO or lock rows");
	if (expression &&
		(list_length(s->targetList) != 1 || s->fromClause || s->whereClause || s->groupClause ||
		 s->havingClause || s->windowClause || s->distinctClause || s->sortClause ||
		 s->limitCount || s->limitOffset || s->withClause || s->valuesLists || s->op != SETOP_NONE))
		CheckArgError(def, check, "\"sql\" must be one boolean expression");
	return sql;
}

/*
 * QualifiedTable resolves the "to" table of a relationships check on the
 * caller's search_path (42P01 if missing) and returns it quoted and
 * qualified, which is how the check stores it.
 */
static char *
QualifiedTable(const char *name)
{
	Oid			relid = RangeVarGetRelid(makeRangeVarFromNameList(stringToQualifiedNameList(name)),
										 NoLock, false);

	return RelationNameOf(relid);
}

/*
 * RowCheckPredicate returns the predicate of a row-level check: true or
 * NULL when a row passes, false when it fails. Column names are bare, so
 * that it reads the row of whatever relation the statement puts in scope.
 */
char *
RowCheckPredicate(PipelineDef *def, CheckDef *check)
{
	StringInfoData buf;
	const char *col = NULL;
	ListCell   *lc;

	initStringInfo(&buf);
	if (check->kind != CHECK_NOT_NULL && check->kind != CHECK_EXPRESSION)
		col = quote_identifier(ArgString(def, check, "column"));
	switch (check->kind)
	{
		case CHECK_NOT_NULL:
			appendStringInfo(&buf, "(%s)", ColumnList(def, check, " AND ", " IS NOT NULL"));
			break;
		case CHECK_ACCEPTED_VALUES:
			{
				List	   *values = ArgList(def, check, "values");

				appendStringInfo(&buf, "(%s IN (", col);
				foreach(lc, values)
					appendStringInfo(&buf, "%s%s", lc == list_head(values) ? "" : ", ",
									 ScalarLiteral(def, check, lfirst(lc), "values"));
				appendStringInfoString(&buf, "))");
				break;
			}
		case CHECK_RANGE:
			{
				JsonbValue *min = Arg(check, "min");
				JsonbValue *max = Arg(check, "max");

				if (min == NULL && max == NULL)
					CheckArgError(def, check, "give \"min\", \"max\" or both");
				appendStringInfo(&buf, "(%s%s%s%s%s%s%s)",
								 min ? col : "", min ? " >= " : "",
								 min ? ScalarLiteral(def, check, min, "min") : "",
								 min && max ? " AND " : "",
								 max ? col : "", max ? " <= " : "",
								 max ? ScalarLiteral(def, check, max, "max") : "");
				break;
			}
		case CHECK_REGEX:
			appendStringInfo(&buf, "(%s::pg_catalog.text OPERATOR(pg_catalog.~) %s)", col,
							 quote_literal_cstr(ArgString(def, check, "pattern")));
			break;
		case CHECK_RELATIONSHIPS:
			{
				const char *field = quote_identifier(ArgString(def, check, "field"));

				appendStringInfo(&buf, "(%s IN (SELECT r.%s FROM %s AS r WHERE r.%s IS NOT NULL))",
								 col, field, QualifiedTable(ArgString(def, check, "to")), field);
				break;
			}
		case CHECK_EXPRESSION:
			appendStringInfo(&buf, "(\n%s\n)", UserSql(def, check));
			break;
		default:
			elog(ERROR, "check \"%s\" is not a row check", check->name);
	}
	return buf.data;
}

/* RowCountBound reads the min or max of a row_count check, -1 if absent */
int64
RowCountBound(PipelineDef *def, CheckDef *check, const char *key)
{
	JsonbValue *v = Arg(check, key);
	int64		n;

	if (v == NULL)
		return -1;
	if (v->type != jbvNumeric)
		CheckArgError(def, check, psprintf("\"%s\" must be a number of rows", key));
	n = DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(v->val.numeric)));
	if (n < 0)
		CheckArgError(def, check, psprintf("\"%s\" must not be negative", key));
	return n;
}

/*
 * SetCheckQuery returns the query that counts a set-level check's failures
 * (NULL for row_count, which needs none): rows in groups of duplicates in
 * the target for unique (which, after the load, holds the window's rows),
 * the rows the user's query returns for query.
 */
char *
SetCheckQuery(LoadPlan *plan, CheckDef *check)
{
	PipelineDef *def = plan->def;

	switch (check->kind)
	{
		case CHECK_UNIQUE:
			return psprintf("SELECT COALESCE(pg_catalog.sum(d.n), 0)::pg_catalog.int8"
							" FROM (SELECT pg_catalog.count(*) AS n FROM %s AS t"
							" WHERE (%s) GROUP BY %s HAVING pg_catalog.count(*) > 1) AS d",
							plan->target_ident, ColumnList(def, check, " AND ", " IS NOT NULL"),
							ColumnList(def, check, ", ", ""));
		case CHECK_QUERY:
			return psprintf("SELECT pg_catalog.count(*) FROM (\n%s\n) AS q", UserSql(def, check));
		case CHECK_ROW_COUNT:
			return NULL;
		default:
			elog(ERROR, "check \"%s\" is not a set check", check->name);
	}
	return NULL;
}

/*
 * PrepareAsOwner parses, analyses and starts a statement as the pipeline
 * owner, reading no row (LIMIT 0), so that bad SQL and missing privileges
 * fail now with their own SQLSTATE.
 */
static void
PrepareAsOwner(PipelineDef *def, const char *sql)
{
	OwnerContext ctx;
	int			rc;

	EnterOwnerContext(&ctx, def->owner);
	rc = SPI_execute(psprintf("SELECT 1 FROM (%s) AS v LIMIT 0", sql), true, 0);
	LeaveOwnerContext(&ctx);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "pg_pipeline could not check a check: %s", SPI_result_code_string(rc));
}

/*
 * NormalizeCheckArgs returns the arguments as stored: the "to" table of a
 * relationships check resolved now and spelled quoted and qualified, so
 * that runs (with search_path pinned) find the same table.
 */
static Jsonb *
NormalizeCheckArgs(CheckDef *check, PipelineDef *def)
{
	StringInfoData v;
	Datum		path;
	Datum		elem = CStringGetTextDatum("to");

	if (check->kind != CHECK_RELATIONSHIPS)
		return check->args;
	initStringInfo(&v);
	escape_json(&v, QualifiedTable(ArgString(def, check, "to")));
	path = PointerGetDatum(construct_array(&elem, 1, TEXTOID, -1, false, TYPALIGN_INT));
	return DatumGetJsonbP(DirectFunctionCall4(jsonb_set, JsonbPGetDatum(check->args), path,
											  DirectFunctionCall1(jsonb_in, CStringGetDatum(v.data)),
											  BoolGetDatum(false)));
}

/*
 * ValidateCheck refuses a check whose arguments or SQL are wrong, before
 * it is stored: the shape of its arguments (22023), then its predicate or
 * query parsed and analysed as the owner against the source (the target
 * for unique), with the parser's SQLSTATE. A regex is compiled (2201B).
 * The arguments are normalized in place (NormalizeCheckArgs), on the
 * caller's search_path: call it before pinning it.
 */
void
ValidateCheck(PipelineDef *def, CheckDef *check)
{
	LoadPlan   *plan = BuildLoadPlan(def);

	RefuseRowCheck(def, check);
	CheckKeys(def, check);
	check->args = NormalizeCheckArgs(check, def);
	if (CHECK_IS_ROW_LEVEL(check->kind))
	{
		char	   *pred = RowCheckPredicate(def, check);

		/* on the rows as the gate sees them: converted (typed_load.c) */
		PrepareAsOwner(def, psprintf("SELECT 1 FROM %s AS s WHERE (%s) IS FALSE", TypedSourceRows(plan), pred));
		if (check->kind == CHECK_REGEX)
			(void) DirectFunctionCall2Coll(textregexeq, DEFAULT_COLLATION_OID, CStringGetTextDatum(""),
										   CStringGetTextDatum(ArgString(def, check, "pattern")));
	}
	else if (check->kind == CHECK_ROW_COUNT)
	{
		int64		min = RowCountBound(def, check, "min");
		int64		max = RowCountBound(def, check, "max");

		if (min < 0 && max < 0)
			CheckArgError(def, check, "give \"min\", \"max\" or both");
		if (min >= 0 && max >= 0 && min > max)
			CheckArgError(def, check, "\"min\" must not be greater than \"max\"");
	}
	else
		PrepareAsOwner(def, SetCheckQuery(plan, check));
}
