/*-------------------------------------------------------------------------
 *
 * src/engine/window_queries.c
 *
 * The queries a run asks around its load statement (planner.c): the
 * source's high-water mark (and the rows at infinity kept out of it), the
 * bounds of a batch, and the counts of a load into a Citus table (and of
 * a backfill's dry run). Pure string building, with the quoting and
 * parameters of planner.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "pipeline/engine.h"
#include "planner_internal.h"

/* BuildHighWaterQuery: the greatest incremental value now in the source */
char *
BuildHighWaterQuery(LoadPlan *plan)
{
	return psprintf("SELECT max(%s) FROM %s AS s",
					Col("s", plan->incremental->name), plan->source_ident);
}

/* InfinityLiteral spells 'infinity' as a value of the column's base type */
char *
InfinityLiteral(LoadPlan *plan)
{
	return psprintf("'infinity'::%s",
					format_type_extended(getBaseType(plan->incremental->typid), -1,
										 FORMAT_TYPE_FORCE_QUALIFY));
}

/*
 * BuildFiniteHighWaterQuery: the greatest incremental value below infinity,
 * used when the source holds rows at infinity, which never become the mark
 * (an index on the column still answers it with one probe).
 */
char *
BuildFiniteHighWaterQuery(LoadPlan *plan)
{
	char	   *inc = Col("s", plan->incremental->name);

	return psprintf("SELECT max(%s) FROM %s AS s WHERE %s < %s",
					inc, plan->source_ident, inc, InfinityLiteral(plan));
}

/* BuildInfiniteRowsQuery counts the source rows whose value is infinity */
char *
BuildInfiniteRowsQuery(LoadPlan *plan)
{
	return psprintf("SELECT pg_catalog.count(*) FROM %s AS s WHERE %s = %s",
					plan->source_ident, Col("s", plan->incremental->name),
					InfinityLiteral(plan));
}

/*
 * BuildBatchBoundQuery finds the incremental value just past a batch:
 * the ($3 + 1)-th value of the window in order, NULL if the window holds no
 * more than $3 rows.
 */
char *
BuildBatchBoundQuery(LoadPlan *plan, bool has_lower)
{
	StringInfoData buf;
	char	   *inc = Col("s", plan->incremental->name);

	initStringInfo(&buf);
	appendStringInfo(&buf, "SELECT %s FROM %s AS s", inc, plan->source_ident);
	AppendWindowPredicate(&buf, plan, "s", has_lower, true, "<=");
	appendStringInfo(&buf, " ORDER BY %s OFFSET $3 LIMIT 1", inc);
	return buf.data;
}

/*
 * BuildBatchFallbackQuery finds the greatest value below that boundary, so
 * that a batch ends between two distinct values and holds at most $3 rows.
 */
char *
BuildBatchFallbackQuery(LoadPlan *plan, bool has_lower)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "SELECT max(%s) FROM %s AS s",
					 Col("s", plan->incremental->name), plan->source_ident);
	AppendWindowPredicate(&buf, plan, "s", has_lower, true, "<");
	return buf.data;
}

/*
 * AppendMatchedCounts appends the counts of kept rows whose key is in the
 * target (matched: the predicate that says so, with its AND), by the action
 * the MERGE of BuildMerge takes on them: deleted (or soft-deleted), updated
 * (neither where the target holds a newer version and the plan keeps it:
 * KeepNewerGuard), and not flagged deleted.
 */
static void
AppendMatchedCounts(StringInfo buf, LoadPlan *plan, const char *del, const char *matched)
{
	const char *live = del ? psprintf("s.%s IS NOT TRUE", del) : "true";
	const char *guard = KeepNewerGuard(plan);
	bool		merge_actions = plan->def->mode != LOAD_MODE_APPEND;
	ListCell   *lc;
	bool		first = true;

	if (!merge_actions || del == NULL)
		appendStringInfoString(buf, "pg_catalog.count(*) FILTER (WHERE false), ");
	else if (plan->def->soft_delete)
		appendStringInfo(buf, "pg_catalog.count(*) FILTER (WHERE %ss.%s IS TRUE AND t.%s IS NOT TRUE%s), ",
						 matched, del, del, guard);
	else
		appendStringInfo(buf, "pg_catalog.count(*) FILTER (WHERE %ss.%s IS TRUE%s), ", matched, del, guard);
	appendStringInfo(buf, "pg_catalog.count(*) FILTER (WHERE %s%s%s AND (", matched, live, guard);
	foreach(lc, plan->columns)
	{
		LoadColumn *col = lfirst(lc);

		if (!merge_actions || col->is_key || col == plan->incremental)
			continue;
		if (!first)
			appendStringInfoString(buf, " OR ");
		AppendDistinct(buf, col, NULL, NULL);
		first = false;
	}
	appendStringInfo(buf, "%s)), pg_catalog.count(*) FILTER (WHERE %s%s)", first ? "false" : "", matched, live);
}

/*
 * BuildCountQueries builds the two queries that count a load into or from
 * a Citus table (LoadPlan.distributed), whose MERGE carries no counter
 * function: the window's rows read and rejected; and the rows kept, with,
 * of them, the rows matched in the target by the action the MERGE takes on
 * them (an outer join of the kept rows with the target, so that the window
 * is de-duplicated once). They read exactly what the load reads, so run
 * under the same locks they give its counts.
 */
CountQueries *
BuildCountQueries(LoadPlan *plan, bool has_lower, bool has_upper)
{
	CountQueries *q = palloc0(sizeof(CountQueries));
	const char *del = plan->delete_flag ? quote_identifier(plan->delete_flag->name) : NULL;
	StringInfoData buf;
	ListCell   *lc;
	bool		first = true;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "SELECT pg_catalog.count(*), pg_catalog.count(*) FILTER (WHERE ");
	foreach(lc, plan->columns)
	{
		LoadColumn *col = lfirst(lc);

		if (!col->is_key)
			continue;
		appendStringInfo(&buf, "%s%s IS NULL", first ? "" : " OR ", Col("s", col->name));
		first = false;
	}
	appendStringInfo(&buf, "%s) FROM %s AS s", first ? "false" : "", plan->source_ident);
	AppendWindowPredicate(&buf, plan, "s", has_lower, has_upper, "<=");
	q->window = buf.data;

	initStringInfo(&buf);
	appendStringInfo(&buf, "SELECT pg_catalog.count(*), pg_catalog.count(*) FILTER (WHERE %s)",
					 del ? psprintf("s.%s IS NOT TRUE", del) : "true");
	if (plan->def->unique_key == NIL)
	{
		/* a keyless append matches nothing */
		appendStringInfoString(&buf, " FROM (");
		AppendSourceRows(&buf, plan, has_lower, has_upper);
		appendStringInfoString(&buf, ") AS s");
		q->kept = buf.data;
		return q;
	}
	/*
	 * The kept rows and those matched in the target in one pass over the
	 * de-duplicated window: a kept row is matched when the outer join found
	 * its key (never NULL in a kept row, so never NULL in a matched one).
	 */
	foreach(lc, plan->columns)
		if (((LoadColumn *) lfirst(lc))->is_key)
			break;
	appendStringInfoString(&buf, ", ");
	AppendMatchedCounts(&buf, plan, del,
						psprintf("%s IS NOT NULL AND ", Col("t", ((LoadColumn *) lfirst(lc))->name)));
	appendStringInfoString(&buf, " FROM (");
	AppendSourceRows(&buf, plan, has_lower, has_upper);
	appendStringInfo(&buf, ") AS s LEFT JOIN %s AS t ON ", plan->target_ident);
	AppendKeyJoin(&buf, plan, "t", "s", false);
	q->kept = buf.data;
	return q;
}
