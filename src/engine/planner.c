/*-------------------------------------------------------------------------
 *
 * src/engine/planner.c
 *
 * Turns a resolved load plan into the SQL a run executes: the one
 * set-based load statement per step (MERGE, or INSERT for keyless appends, plus the delete
 * of vanished keys in full mode), with the gate of the pipeline's row
 * checks inside it (AppendCheckGate), and the same statement over the rows
 * of a quarantine replay ($1 quarantine ids, $2 rows), and the erasure
 * gate (erasure_gate.c) when its source holds a forgotten subject. The
 * queries around it (high-water mark, batch bounds, Citus counts) are
 * window_queries.c's.
 * Pure string building: nothing here runs a statement, so
 * pipeline.explain shows exactly what a run would execute.
 *
 * Every identifier is quoted, every value is a parameter ($1 = lower bound
 * of the window, $2 = upper bound; in a backfill's batch of one partition,
 * $4 = its value: backfill_sql.c), and operators that do not live in
 * pg_catalog are schema-qualified, because runs pin search_path to
 * pg_catalog, pg_temp.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_operator.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "pipeline/engine.h"
#include "planner_internal.h"

/* The name of the de-duplication counter's column, unless a source column has it */
#define KEPT_COLUMN "__pipeline_kept"

/* LineageColumn returns the quoted lineage column of the target, or NULL */
static const char *
LineageColumn(LoadPlan *plan)
{
	return plan->def->lineage_column ? quote_identifier(plan->def->lineage_column) : NULL;
}

/*
 * InternalColumnName returns a name for a column the generated SQL adds,
 * based on base and distinct from every column the plan loads, so that no
 * user column name, whatever it is, can make a reference ambiguous.
 */
static char *
InternalColumnName(LoadPlan *plan, const char *base)
{
	char	   *name = pstrdup(base);

	for (int n = 1;; n++)
	{
		if (FindLoadColumn(plan->columns, name) == NULL)
			return name;
		name = psprintf("%s_%d", base, n);
	}
}


/* QuarantineIdColumn names the column a replay carries each row's quarantine id in */
static const char *
QuarantineIdColumn(LoadPlan *plan)
{
	return quote_identifier(InternalColumnName(plan, "__pipeline_quarantine_id"));
}

/*
 * KeepNewerGuard returns the condition that keeps a replayed or backfilled
 * row (keep_newer) from overwriting a newer version of its key in the
 * target: the incremental value decides.
 */
char *
KeepNewerGuard(LoadPlan *plan)
{
	if (!plan->keep_newer || plan->incremental == NULL)
		return "";
	return psprintf(" AND (%s IS NULL OR %s <= %s)", Col("t", plan->incremental->name),
					Col("t", plan->incremental->name), Col("s", plan->incremental->name));
}

/* Col returns alias."column" */
char *
Col(const char *alias, const char *column)
{
	return psprintf("%s.%s", alias, quote_identifier(column));
}

/*
 * SourceValue is what the load writes for a column read from alias: the
 * value, or its mask's expression (catalog/masks.c)
 */
static char *
SourceValue(LoadColumn *col, const char *alias)
{
	if (col->mask == NULL)
		return Col(alias, col->name);
	return MaskExpression(col->mask, Col(alias, col->name), col->source_typid, col->source_typmod);
}

/* AppendMaskedColumns appends the columns read from alias, masked, under their names */
static void
AppendMaskedColumns(StringInfo buf, List *columns, const char *alias)
{
	ListCell   *lc;

	foreach(lc, columns)
	{
		LoadColumn *col = lfirst(lc);

		if (foreach_current_index(lc) > 0)
			appendStringInfoString(buf, ", ");
		if (col->mask)
			appendStringInfo(buf, "%s AS %s", SourceValue(col, alias), quote_identifier(col->name));
		else
			appendStringInfoString(buf, Col(alias, col->name));
	}
}

/* AppendConvertedColumns appends the columns read from alias, converted, under their names */
static void
AppendConvertedColumns(StringInfo buf, LoadPlan *plan, const char *alias)
{
	ListCell   *lc;

	foreach(lc, plan->columns)
	{
		LoadColumn *col = lfirst(lc);

		if (foreach_current_index(lc) > 0)
			appendStringInfoString(buf, ", ");
		appendStringInfo(buf, "%s AS %s", ConvertedValue(col, Col(alias, col->name)),
						 quote_identifier(col->name));
	}
}

/* AppendColumns appends alias."c1", alias."c2", ... (bare names if alias NULL) */
static void
AppendColumns(StringInfo buf, List *columns, const char *alias)
{
	ListCell   *lc;
	bool		first = true;

	foreach(lc, columns)
	{
		LoadColumn *col = lfirst(lc);

		appendStringInfo(buf, "%s%s", first ? "" : ", ",
						 alias ? Col(alias, col->name) : quote_identifier(col->name));
		first = false;
	}
}

/* OperatorNamespace returns the schema an operator lives in */
static Oid
OperatorNamespace(Oid opr)
{
	HeapTuple	tup = SearchSysCache1(OPEROID, ObjectIdGetDatum(opr));
	Oid			nsp;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for operator %u", opr);
	nsp = ((Form_pg_operator) GETSTRUCT(tup))->oprnamespace;
	ReleaseSysCache(tup);
	return nsp;
}

/* EqualityOperator spells a column's equality operator, qualified if needed */
char *
EqualityOperator(LoadColumn *col)
{
	if (OperatorNamespace(col->eq_opr) == PG_CATALOG_NAMESPACE)
		return "=";
	return psprintf("OPERATOR(%s.%s)",
					quote_identifier(get_namespace_name(OperatorNamespace(col->eq_opr))),
					get_opname(col->eq_opr));
}

/*
 * AppendKeyJoin appends t."k1" = s."k1" AND ... for the unique key; with
 * raw_left, the left side is read from the source, so a masked key is
 * masked there first (catalog/masks.c)
 */
void
AppendKeyJoin(StringInfo buf, LoadPlan *plan, const char *left, const char *right, bool raw_left)
{
	ListCell   *lc;
	bool		first = true;

	foreach(lc, plan->columns)
	{
		LoadColumn *col = lfirst(lc);

		if (!col->is_key)
			continue;
		appendStringInfo(buf, "%s%s %s %s", first ? "" : " AND ",
						 raw_left ? SourceValue(col, left) : Col(left, col->name),
						 EqualityOperator(col), Col(right, col->name));
		first = false;
	}
}

/*
 * AppendDistinct appends a test that a column differs between two values of
 * its type (NULL t and s: the column of target t and source s), NULLs
 * included; types without equality compare as text.
 */
void
AppendDistinct(StringInfo buf, LoadColumn *col, const char *t, const char *s)
{
	t = t ? t : Col("t", col->name);
	s = s ? s : Col("s", col->name);
	if (!OidIsValid(col->eq_opr))
		appendStringInfo(buf, "%s::pg_catalog.text IS DISTINCT FROM %s::pg_catalog.text", t, s);
	else if (OperatorNamespace(col->eq_opr) == PG_CATALOG_NAMESPACE)
		appendStringInfo(buf, "%s IS DISTINCT FROM %s", t, s);
	else
		appendStringInfo(buf, "NOT ((%s %s %s) IS TRUE OR (%s IS NULL AND %s IS NULL))",
						 t, EqualityOperator(col), s, t, s);
}

/* AppendWindowPredicate appends the incremental window condition, if any */
void
AppendWindowPredicate(StringInfo buf, LoadPlan *plan, const char *alias,
					  bool has_lower, bool has_upper, const char *upper_op)
{
	char	   *inc;

	if (plan->incremental == NULL || (!has_lower && !has_upper))
		return;
	inc = Col(alias, plan->incremental->name);
	appendStringInfoString(buf, " WHERE ");

	/*
	 * a part of a parallel run: the rows of its partition (parallel_part.c).
	 * Tested first: it rejects most of the window's rows (the other
	 * partitions'), each read only up to the partition key.
	 */
	if (OidIsValid(plan->part_relid) && plan->part_marked)
		appendStringInfo(buf, "pipeline._partition_rows((%s), %s) AND ",
						 PartitionPredicate(plan->part_relid, alias),
						 OidIsValid(plan->part_next_relid) ?
						 psprintf("(%s)", PartitionPredicate(plan->part_next_relid, alias)) : "NULL");
	else if (OidIsValid(plan->part_relid))
		appendStringInfo(buf, "(%s) AND ", PartitionPredicate(plan->part_relid, alias));
	if (has_lower)
		appendStringInfo(buf, "%s %s $1", inc, plan->lower_inclusive ? ">=" : ">");
	if (has_lower && has_upper)
		appendStringInfoString(buf, " AND ");
	if (has_upper)
		appendStringInfo(buf, "%s %s $2", inc, upper_op);
	if (plan->partition)
		AppendPartitionPredicate(buf, plan, alias);
}

static void AppendCheckGate(StringInfo buf, LoadPlan *plan, const char *alias);
static void AppendRowIdentity(StringInfo buf, LoadPlan *plan, const char *alias);

/*
 * WithErasureGate returns the gate of the window's filter on alias: the
 * erasure gate first (erasure_gate.c: a row of a forgotten subject goes
 * nowhere, not even to quarantine), then the other gate, or the other
 * gate alone (NULL: none) when the plan has no subject to skip.
 */
static char *
WithErasureGate(LoadPlan *plan, const char *alias, char *other)
{
	StringInfoData buf;

	if (plan->erasure == NIL)
		return other;
	initStringInfo(&buf);
	if (other)
		appendStringInfoString(&buf, "CASE WHEN ");
	AppendErasureGate(&buf, plan, alias,
					  plan->replay ? psprintf("%s.%s", alias, QuarantineIdColumn(plan)) : NULL);
	if (other)
		appendStringInfo(&buf, " THEN %s ELSE false END", other);
	return buf.data;
}

/* AppendWindowFrom appends the FROM of the window's rows: the source, or a replay's rows */
static void
AppendWindowFrom(StringInfo buf, LoadPlan *plan, const char *alias)
{
	if (plan->replay)
	{
		const char *qid = QuarantineIdColumn(plan);

		appendStringInfo(buf, " FROM (SELECT j.q AS %s, r.* FROM"
						 " ROWS FROM (pg_catalog.unnest($1::pg_catalog.int8[]), pg_catalog.unnest($2::pg_catalog.jsonb[])) AS j (q, v)"
						 " CROSS JOIN LATERAL pg_catalog.jsonb_populate_record(NULL::%s, j.v) AS r) AS %s",
						 qid, plan->source_ident, alias);
	}
	else if (plan->newest_only)
		AppendNewestRows(buf, plan, alias);
	else
		appendStringInfo(buf, " FROM %s AS %s", plan->source_ident, alias);
}

/*
 * AppendWindowFilter appends the window predicate and the row counter on
 * alias, and after the counter, when gate is not NULL, that gate (see
 * AppendWindowRows).
 */
static void
AppendWindowFilter(StringInfo buf, LoadPlan *plan, const char *alias, bool has_lower,
				   bool has_upper, const char *gate)
{
	ListCell   *lc;
	bool		first = true;

	AppendWindowPredicate(buf, plan, alias, has_lower, has_upper, "<=");
	appendStringInfoString(buf, (plan->incremental && (has_lower || has_upper)) ? " AND " : " WHERE ");
	if (gate)
		appendStringInfoString(buf, "pipeline._checked_row(CASE WHEN ");
	appendStringInfoString(buf, plan->distributed ? "NOT (" : "pipeline._window_row(");
	foreach(lc, plan->columns)
	{
		LoadColumn *col = lfirst(lc);

		if (!col->is_key)
			continue;
		appendStringInfo(buf, "%s%s IS NULL", first ? "" : " OR ", Col(alias, col->name));
		first = false;
	}
	if (first)
		appendStringInfoString(buf, "false");
	appendStringInfoChar(buf, ')');
	if (gate)
		appendStringInfo(buf, " THEN %s ELSE false END)", gate);
}

/*
 * AppendWindowRows appends the query of the source rows in the window. Each
 * row that passes the window predicate is counted by pipeline._window_row,
 * which also counts and filters out rows with a NULL key column. The
 * counter is a filter, not an output column, so the planner can still
 * flatten the query into the load and keep its best join; its high COST
 * makes it the last filter evaluated. With gated, the row checks' gate
 * is evaluated in the same filter, right after the counter kept a row
 * (CASE WHEN counter THEN gate ELSE false END), so that it sees each row
 * the counter kept once, and no other; pipeline._checked_row around both
 * tells the planner that the filter keeps every row, so that the checks
 * change neither its estimates nor its choice of plan. The erasure gate,
 * when the source holds a forgotten subject, comes first in that filter
 * (WithErasureGate), before de-duplication. With masked, the
 * select list writes masked columns masked (the checks, in the filter, see
 * the values as read).
 *
 * With conversions (typed_load.c), the counter's filter is in a subquery
 * that converts the columns and, when converting safely, gates each row's
 * conversions; the checks gate the converted rows above it, with OFFSET 0
 * keeping the subquery one, so that no check is evaluated before the
 * counter. Without that gate the subquery is flattened, and the planner
 * estimates the converted columns (a fence would hide their statistics:
 * DISTINCT ON a converted key would be estimated at 200 rows).
 */
static void
AppendWindowRows(StringInfo buf, LoadPlan *plan, const char *alias,
				 bool has_lower, bool has_upper, bool gated, bool masked)
{
	StringInfoData gate;

	appendStringInfoString(buf, "SELECT ");
	if (masked)
		AppendMaskedColumns(buf, plan->columns, alias);
	else
		AppendColumns(buf, plan->columns, alias);
	if (plan->replay)
		appendStringInfo(buf, ", %s.%s", alias, QuarantineIdColumn(plan));
	initStringInfo(&gate);
	if (!plan->has_conversions)
	{
		AppendWindowFrom(buf, plan, alias);
		if (gated)
			AppendCheckGate(&gate, plan, alias);
		AppendWindowFilter(buf, plan, alias, has_lower, has_upper,
						   WithErasureGate(plan, alias, gated ? gate.data : NULL));
		return;
	}
	appendStringInfoString(buf, " FROM (SELECT ");
	AppendConvertedColumns(buf, plan, "raw");
	if (plan->replay)
		appendStringInfo(buf, ", raw.%s", QuarantineIdColumn(plan));
	AppendWindowFrom(buf, plan, "raw");
	if (plan->convert_safely)
	{
		StringInfoData identity;

		initStringInfo(&identity);
		AppendRowIdentity(&identity, plan, "raw");
		AppendConversionGate(&gate, plan, "raw", identity.data);
	}
	AppendWindowFilter(buf, plan, "raw", has_lower, has_upper,
					   WithErasureGate(plan, "raw", plan->convert_safely ? gate.data : NULL));
	/* a fence only under a gate: a flattened query keeps its estimates */
	appendStringInfo(buf, "%s) AS %s", gated ? " OFFSET 0" : "", alias);
	if (gated)
	{
		appendStringInfoString(buf, " WHERE pipeline._checked_row(");
		AppendCheckGate(buf, plan, alias);
		appendStringInfoChar(buf, ')');
	}
}

/*
 * AppendCheckGate appends the expression that evaluates the row checks on
 * the rows of alias (whose columns the checks name bare): a row that passes
 * them all costs the predicates and nothing else; a row that fails one is
 * handed, with which checks it failed, its whole row, key and incremental
 * value, to pipeline._check_row (row_checks.c), which counts it, keeps it
 * for quarantine or fails the run. It is true when the row goes on to the
 * load; the callers wrap it in pipeline._checked_row, whose selectivity
 * is 1 (the filter the planner sees keeps every row).
 */
static void
AppendCheckGate(StringInfo buf, LoadPlan *plan, const char *alias)
{
	ListCell   *lc;
	List	   *preds = NIL;

	foreach(lc, plan->row_checks)
		preds = lappend(preds, RowCheckPredicate(plan->def, lfirst(lc)));
	appendStringInfoString(buf, "CASE WHEN ");
	foreach(lc, preds)
		appendStringInfo(buf, "%s(%s) IS FALSE", lc == list_head(preds) ? "" : " OR ", (char *) lfirst(lc));
	appendStringInfoString(buf, " THEN pipeline._check_row(ARRAY[");
	foreach(lc, preds)
		appendStringInfo(buf, "%s(%s) IS FALSE", lc == list_head(preds) ? "" : ", ", (char *) lfirst(lc));
	appendStringInfoString(buf, "], ");
	AppendRowIdentity(buf, plan, alias);
	appendStringInfoString(buf, ") ELSE true END");
}

/*
 * AppendRowIdentity appends what a gate keeps of a row of alias for
 * quarantine: the row as read (without a replay's quarantine id), its key
 * as jsonb, its incremental value as text, and a replay's quarantine id.
 */
static void
AppendRowIdentity(StringInfo buf, LoadPlan *plan, const char *alias)
{
	ListCell   *lc;
	bool		first = true;

	appendStringInfo(buf, "pg_catalog.to_jsonb(%s)", alias);
	if (plan->replay)
		appendStringInfo(buf, " OPERATOR(pg_catalog.-) %s", quote_literal_cstr(QuarantineIdColumn(plan)));
	appendStringInfoString(buf, ", ");
	foreach(lc, plan->columns)
	{
		LoadColumn *col = lfirst(lc);

		if (!col->is_key)
			continue;
		appendStringInfo(buf, "%s%s, %s", first ? "pg_catalog.jsonb_build_object(" : ", ",
						 quote_literal_cstr(col->name), Col(alias, col->name));
		first = false;
	}
	appendStringInfoString(buf, first ? "NULL::pg_catalog.jsonb, " : "), ");
	if (plan->incremental)
		appendStringInfo(buf, "%s::pg_catalog.text, ", Col(alias, plan->incremental->name));
	else
		appendStringInfoString(buf, "NULL::pg_catalog.text, ");
	if (plan->replay)
		appendStringInfo(buf, "%s.%s", alias, QuarantineIdColumn(plan));
	else
		appendStringInfoString(buf, "NULL::pg_catalog.int8");
}

/*
 * AppendDedupOrder appends the ORDER BY that makes DISTINCT ON keep, for each
 * key, the row with the greatest incremental value; on a tie a row flagged
 * deleted, then the row whose other columns are greater in column order
 * (NULLs lose), so the choice never depends on physical order.
 */
static void
AppendDedupOrder(StringInfo buf, LoadPlan *plan)
{
	ListCell   *lc;
	bool		first = true;

	appendStringInfoString(buf, " ORDER BY ");
	foreach(lc, plan->columns)
	{
		LoadColumn *col = lfirst(lc);

		if (!col->is_key)
			continue;
		appendStringInfo(buf, "%s%s", first ? "" : ", ", Col("w", col->name));
		first = false;
	}
	if (plan->incremental)
		appendStringInfo(buf, ", %s DESC NULLS LAST", Col("w", plan->incremental->name));
	if (plan->delete_flag)
		appendStringInfo(buf, ", %s DESC NULLS LAST", Col("w", plan->delete_flag->name));
	foreach(lc, plan->columns)
	{
		LoadColumn *col = lfirst(lc);

		if (col->is_key || col == plan->incremental || col == plan->delete_flag)
			continue;
		if (col->sortable)
			appendStringInfo(buf, ", %s DESC NULLS LAST", Col("w", col->name));
		else
			appendStringInfo(buf, ", %s::pg_catalog.text DESC NULLS LAST", Col("w", col->name));
	}
}

/*
 * AppendSourceRows appends the USING query of the load: the window rows,
 * reduced to one row per key when the source may hold several, in which
 * case each row kept is counted by pipeline._kept_row. Without
 * de-duplication every row read and not rejected is kept.
 */
void
AppendSourceRows(StringInfo buf, LoadPlan *plan, bool has_lower, bool has_upper)
{
	ListCell   *lc;
	bool		first = true;

	if (!plan->needs_dedup)
	{
		AppendWindowRows(buf, plan, "s", has_lower, has_upper, plan->row_checks != NIL, true);
		return;
	}
	appendStringInfoString(buf, "SELECT ");
	AppendMaskedColumns(buf, plan->columns, "d");
	appendStringInfo(buf, ", %s AS %s FROM (SELECT DISTINCT ON (",
					 plan->distributed ? "true" : "pipeline._kept_row()",
					 quote_identifier(InternalColumnName(plan, KEPT_COLUMN)));
	foreach(lc, plan->columns)
	{
		LoadColumn *col = lfirst(lc);

		if (!col->is_key)
			continue;
		appendStringInfo(buf, "%s%s", first ? "" : ", ", Col("w", col->name));
		first = false;
	}
	/* a history keeps a version per key and incremental value (snapshot_load.c) */
	if (plan->snapshot && plan->incremental)
		appendStringInfo(buf, ", %s", Col("w", plan->incremental->name));
	appendStringInfoString(buf, ") * FROM (");
	/*
	 * A replay checks every row it reads, then keeps the newest of those
	 * that pass, so that a version that still fails never hides an older one
	 * that passes now; a run checks the row it keeps of each key (one row
	 * per key per window).
	 */
	AppendWindowRows(buf, plan, "s", has_lower, has_upper, plan->replay && plan->row_checks != NIL, false);
	appendStringInfoString(buf, ") AS w");
	AppendDedupOrder(buf, plan);
	appendStringInfoString(buf, ") AS d");
	if (plan->row_checks != NIL && !plan->replay)
	{
		appendStringInfoString(buf, " WHERE pipeline._checked_row(");
		AppendCheckGate(buf, plan, "d");
		appendStringInfoChar(buf, ')');
	}
}

/* AppendInsertAction appends the INSERT of a new key */
static void
AppendInsertAction(StringInfo buf, LoadPlan *plan)
{
	ListCell   *lc;
	bool		override = false;

	foreach(lc, plan->columns)
		override |= ((LoadColumn *) lfirst(lc))->identity_always;
	appendStringInfoString(buf, " INSERT (");
	AppendColumns(buf, plan->columns, NULL);
	if (LineageColumn(plan))
		appendStringInfo(buf, ", %s", LineageColumn(plan));
	appendStringInfoString(buf, override ? ") OVERRIDING SYSTEM VALUE VALUES (" : ") VALUES (");
	AppendColumns(buf, plan->columns, "s");
	if (LineageColumn(plan))
		appendStringInfoString(buf, ", " LINEAGE_RUN_ID);
	appendStringInfoChar(buf, ')');
}

/* AppendSetList appends the SET list of an update: every non-key column */
static void
AppendSetList(StringInfo buf, LoadPlan *plan)
{
	ListCell   *lc;
	bool		first = true;

	foreach(lc, plan->columns)
	{
		LoadColumn *col = lfirst(lc);

		if (col->is_key)
			continue;
		appendStringInfo(buf, "%s%s = %s", first ? "" : ", ", quote_identifier(col->name),
						 Col("s", col->name));
		first = false;
	}
	if (LineageColumn(plan))
		appendStringInfo(buf, ", %s = " LINEAGE_RUN_ID, LineageColumn(plan));
}

/*
 * AppendUpdateAction appends the update of a changed row: only when some
 * column other than the key and the incremental column differs, so that
 * unchanged rows, including rows delivered again with nothing but a newer
 * incremental value, are never rewritten.
 */
static void
AppendUpdateAction(StringInfo buf, LoadPlan *plan)
{
	ListCell   *lc;
	bool		first = true;

	foreach(lc, plan->columns)
	{
		LoadColumn *col = lfirst(lc);

		if (col->is_key || col == plan->incremental)
			continue;
		if (first)
			appendStringInfo(buf, "\nWHEN MATCHED%s AND (", KeepNewerGuard(plan));
		else
			appendStringInfoString(buf, " OR ");
		AppendDistinct(buf, col, NULL, NULL);
		first = false;
	}
	if (first)
		return;					/* nothing but key and watermark: nothing to update */
	appendStringInfoString(buf, ") THEN UPDATE SET ");
	AppendSetList(buf, plan);
}

/* BuildMerge builds the MERGE of merge, full and keyed append modes */
static char *
BuildMerge(LoadPlan *plan, bool has_lower, bool has_upper)
{
	StringInfoData buf;
	const char *del = plan->delete_flag ? quote_identifier(plan->delete_flag->name) : NULL;

	initStringInfo(&buf);
	appendStringInfo(&buf, "MERGE INTO %s AS t\nUSING (", plan->target_ident);
	AppendSourceRows(&buf, plan, has_lower, has_upper);
	appendStringInfoString(&buf, ") AS s\nON ");
	AppendKeyJoin(&buf, plan, "t", "s", false);

	if (plan->def->mode != LOAD_MODE_APPEND)
	{
		if (del && plan->def->soft_delete)
		{
			/*
			 * A soft delete keeps the row's last known values (a tombstone
			 * often carries nothing but the key) and sets the flag; it also
			 * takes the tombstone's incremental value, so that a pipeline
			 * reading this target incrementally sees the delete.
			 */
			appendStringInfo(&buf, "\nWHEN MATCHED%s AND s.%s IS TRUE AND t.%s IS NOT TRUE"
							 " THEN UPDATE SET %s = %s", KeepNewerGuard(plan), del, del, del,
							 plan->distributed ? "true" : "pipeline._soft_delete()");
			if (plan->incremental && !plan->incremental->is_key &&
				plan->incremental != plan->delete_flag)
				appendStringInfo(&buf, ", %s = %s", quote_identifier(plan->incremental->name),
								 Col("s", plan->incremental->name));
			if (LineageColumn(plan))
				appendStringInfo(&buf, ", %s = " LINEAGE_RUN_ID, LineageColumn(plan));
			appendStringInfo(&buf, "\nWHEN MATCHED AND s.%s IS TRUE THEN DO NOTHING", del);
		}
		else if (del)
			appendStringInfo(&buf, "\nWHEN MATCHED%s AND s.%s IS TRUE THEN DELETE", KeepNewerGuard(plan), del);
		AppendUpdateAction(&buf, plan);
	}
	if (del)
		appendStringInfo(&buf, "\nWHEN NOT MATCHED AND s.%s IS NOT TRUE THEN", del);
	else
		appendStringInfoString(&buf, "\nWHEN NOT MATCHED THEN");
	AppendInsertAction(&buf, plan);
	return buf.data;
}

/*
 * AppendInsertHead appends INSERT INTO the target, its column list (the
 * lineage column last) and OVERRIDING SYSTEM VALUE when a column needs it.
 */
void
AppendInsertHead(StringInfo buf, LoadPlan *plan)
{
	ListCell   *lc;
	bool		override = false;

	foreach(lc, plan->columns)
		override |= ((LoadColumn *) lfirst(lc))->identity_always;
	appendStringInfo(buf, "INSERT INTO %s (", plan->target_ident);
	AppendColumns(buf, plan->columns, NULL);
	if (LineageColumn(plan))
		appendStringInfo(buf, ", %s", LineageColumn(plan));
	appendStringInfoString(buf, override ? ") OVERRIDING SYSTEM VALUE " : ") ");
}

/* AppendInsertSelect appends SELECT alias."c1", ..., and the run id for a lineage column */
void
AppendInsertSelect(StringInfo buf, LoadPlan *plan, const char *alias)
{
	appendStringInfoString(buf, "SELECT ");
	AppendColumns(buf, plan->columns, alias);
	if (LineageColumn(plan))
		appendStringInfoString(buf, ", " LINEAGE_RUN_ID);
}

/* BuildAppendInsert builds the plain INSERT of an append without a key */
static char *
BuildAppendInsert(LoadPlan *plan, bool has_lower, bool has_upper)
{
	StringInfoData buf;

	initStringInfo(&buf);
	AppendInsertHead(&buf, plan);
	if (plan->replay)
	{
		/* a replay's rows carry their quarantine id, which is not loaded */
		AppendInsertSelect(&buf, plan, "w");
		appendStringInfoString(&buf, " FROM (");
		AppendWindowRows(&buf, plan, "s", has_lower, has_upper, plan->row_checks != NIL, true);
		appendStringInfoString(&buf, ") AS w");
	}
	else if (LineageColumn(plan))
	{
		appendStringInfoString(&buf, "SELECT w.*, " LINEAGE_RUN_ID " FROM (");
		AppendWindowRows(&buf, plan, "s", has_lower, has_upper, plan->row_checks != NIL, true);
		appendStringInfoString(&buf, ") AS w");
	}
	else
		AppendWindowRows(&buf, plan, "s", has_lower, has_upper, plan->row_checks != NIL, true);
	return buf.data;
}

/*
 * BuildVanishedKeyStatement builds the full-mode statement that deletes (or
 * soft-deletes) target rows whose key no longer exists in the source.
 */
static char *
BuildVanishedKeyStatement(LoadPlan *plan)
{
	StringInfoData buf;

	initStringInfo(&buf);
	if (plan->delete_flag && plan->def->soft_delete)
	{
		const char *del = quote_identifier(plan->delete_flag->name);

		appendStringInfo(&buf, "UPDATE %s AS t SET %s = true%s%s%s WHERE t.%s IS NOT TRUE AND",
						 plan->target_ident, del,
						 LineageColumn(plan) ? ", " : "",
						 LineageColumn(plan) ? LineageColumn(plan) : "",
						 LineageColumn(plan) ? " = " LINEAGE_RUN_ID : "", del);
	}
	else
		appendStringInfo(&buf, "DELETE FROM %s AS t WHERE", plan->target_ident);
	appendStringInfo(&buf, " NOT EXISTS (SELECT 1 FROM %s AS s WHERE ", plan->source_ident);
	AppendKeyJoin(&buf, plan, "s", "t", true);
	appendStringInfoChar(&buf, ')');
	return buf.data;
}

/* BuildLoadStatements builds the statements of one load step */
LoadStatements *
BuildLoadStatements(LoadPlan *plan, bool has_lower, bool has_upper)
{
	LoadStatements *stmts = palloc0(sizeof(LoadStatements));

	if (plan->def->mode == LOAD_MODE_FULL && !plan->replay)
		stmts->prepare = BuildVanishedKeyStatement(plan);
	/* the conversion gate keeps its rows with the row checks' (typed_load.c) */
	stmts->has_row_checks = plan->row_checks != NIL || plan->convert_safely;
	stmts->has_erasure_gate = plan->erasure != NIL;
	if (plan->snapshot)
		return BuildSnapshotStatements(plan, stmts, has_lower, has_upper);
	if (plan->upsert && plan->def->unique_key != NIL)
		BuildLocalSourceStatements(plan, stmts, has_lower, has_upper);
	else if (plan->def->mode == LOAD_MODE_APPEND && plan->def->unique_key == NIL)
	{
		stmts->load = BuildAppendInsert(plan, has_lower, has_upper);
		stmts->load_is_merge = false;
	}
	else
	{
		stmts->load = BuildMerge(plan, has_lower, has_upper);
		stmts->load_is_merge = true;
		stmts->counts_kept = plan->needs_dedup;
	}
	return stmts;
}
