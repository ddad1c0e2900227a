/*-------------------------------------------------------------------------
 *
 * src/engine/backfill_sql.c
 *
 * What a backfill (backfill.c) adds to the statements of a run, pure
 * string building with the quoting of planner.c: the rows it reads of a
 * source that may hold several versions of a key (only each key's newest
 * version in the source), the predicate of a batch of one partition ($4,
 * after the window's $1 and $2 and the batch bound queries' $3), and the
 * query of the partitions a range holds.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/builtins.h"

#include "pipeline/engine.h"
#include "planner_internal.h"

/*
 * AppendNewestRows appends the FROM of a backfill's window rows, under
 * alias: the source rows of which no row of the same key has a greater
 * incremental value anywhere in the source (rows at infinity, which no
 * run loads, aside). So a backfill writes a key at most once, with the
 * version a run leaves in the target, whatever its batches, and never
 * installs an older version of a key whose newest one lies past the
 * range. The NOT EXISTS becomes an anti-join above the scan of the
 * source, so the window predicate and the row counter on alias are
 * evaluated at that scan, before it: a superseded version in the window
 * is counted as read, as a version de-duplication drops is. Every newer
 * version lies above the window's lower bound ($1), which bounds its scan.
 * Keys compare as the source holds them: not masked, and a key converted
 * from text (typed_load.c) as text, with the "=" its type spells.
 */
void
AppendNewestRows(StringInfo buf, LoadPlan *plan, const char *alias)
{
	char	   *inc_n = Col("n", plan->incremental->name);

	appendStringInfo(buf, " FROM (SELECT * FROM %s AS r WHERE NOT EXISTS (SELECT FROM %s AS n WHERE ",
					 plan->source_ident, plan->source_ident);
	AppendKeyJoin(buf, plan, "n", "r", false);
	appendStringInfo(buf, " AND %s > %s AND %s > $1", inc_n, Col("r", plan->incremental->name),
					 inc_n);
	if (IsTimeType(plan->incremental->typid))
		appendStringInfo(buf, " AND %s < %s", inc_n, InfinityLiteral(plan));
	appendStringInfo(buf, ")) AS %s", alias);
}

/*
 * AppendPartitionPredicate appends the condition of a batch of one
 * partition to a window predicate: the partition column is $4 (an
 * equality, which prunes a source partitioned by the column), or NULL.
 */
void
AppendPartitionPredicate(StringInfo buf, LoadPlan *plan, const char *alias)
{
	char	   *column = Col(alias, plan->partition->name);

	if (plan->partition_null)
		appendStringInfo(buf, " AND %s IS NULL", column);
	else
		appendStringInfo(buf, " AND %s %s $4", column, EqualityOperator(plan->partition));
}

/*
 * BuildPartitionValuesQuery: the distinct values of the partition column
 * among the source rows of the window ($1, $2), in order, NULL last.
 */
char *
BuildPartitionValuesQuery(LoadPlan *plan, const char *column)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "SELECT DISTINCT %s FROM %s AS s", Col("s", column), plan->source_ident);
	AppendWindowPredicate(&buf, plan, "s", true, true, "<=");
	appendStringInfoString(&buf, " ORDER BY 1");
	return buf.data;
}
