/*-------------------------------------------------------------------------
 *
 * src/engine/rollup.c
 *
 * The statements of a run in mode rollup, a pure builder (pipeline.explain
 * shows them as they are). The rollup's cells are (bucket, group_by ...);
 * the triggers of rollup_capture.c write, with every change of the source,
 * the cells its rows left and arrived in, and its late changes, to the
 * dirty-cells table "<target>__dirty", committed with the change. A run
 * (rollup_run.c) then executes, as the pipeline owner:
 *
 *   - incremental: one MERGE whose first CTE deletes (takes) the entries
 *     its snapshot sees, a second one keeps each dirty cell once, handing
 *     every entry to pipeline._rollup_change on the way (it counts it, and
 *     keeps a late change for the quarantine, dirtying no cell), and
 *     whose source recomputes each dirty cell from the source's
 *     rows in its bucket and group (a LATERAL subquery: an index range
 *     scan per cell when the time column is indexed). An empty cell is
 *     deleted, a changed one updated, a new one inserted, an unchanged one
 *     counted and left alone;
 *   - full (the first run, after reset, a TRUNCATE of the source, or a
 *     dirty-cells table that had to be made again): forget every dirty
 *     cell, delete the cells no source row is in any more, and MERGE every
 *     cell of a GROUP BY over the whole source.
 *
 * The run's snapshot of the dirty cells is the one it recomputes them with
 * (or an older one): a change committed later stays in the table for the
 * next run, so every change is applied once, and the target equals a full
 * recompute of the cells it holds.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "pipeline/engine.h"

/* AppendGroupMatch appends "AND l.g = r.g" per group (IS NOT DISTINCT FROM where NULLs may be) */
static void
AppendGroupMatch(StringInfo buf, RollupPlan *rp, const char *left, bool left_named,
				 const char *right, bool right_named)
{
	ListCell   *lc;
	int			n = 1;

	foreach(lc, rp->groups)
	{
		RollupGroup *g = lfirst(lc);
		const char *name = quote_identifier(g->name);
		char	   *l = left_named ? psprintf("%s.%s", left, name) : psprintf("%s.__pp_g%d", left, n);
		char	   *r = right_named ? psprintf("%s.%s", right, name) : psprintf("%s.__pp_g%d", right, n);

		appendStringInfo(buf, " AND %s %s %s", l, g->not_null ? "=" : "IS NOT DISTINCT FROM", r);
		n++;
	}
}

/* AppendCellRows appends the predicate of the source rows of cell (ref's bucket and groups) */
static void
AppendCellRows(StringInfo buf, RollupPlan *rp, const char *bucket, const char *ref, bool named)
{
	const char *t = quote_identifier(rp->spec->time_column);

	appendStringInfo(buf, "s.%s >= %s AND s.%s < %s", t, bucket, t,
					 RollupBucketEndSql(rp->spec, bucket, rp->time_typid));
	AppendGroupMatch(buf, rp, "s", true, ref, named);
}

/*
 * AppendMergeActions appends the actions of a rollup's MERGE: an empty cell
 * deleted (incremental only), a changed one updated, an unchanged one
 * counted, a new one inserted.
 */
static void
AppendMergeActions(StringInfo buf, RollupPlan *rp, bool incremental)
{
	ListCell   *lc;
	int			n = 1;

	if (incremental)
		appendStringInfoString(buf, "\nWHEN MATCHED AND s.__pp_rows = 0 THEN DELETE");
	appendStringInfoString(buf, "\nWHEN MATCHED AND (");
	foreach(lc, rp->spec->measures)
	{
		const char *m = quote_identifier(((RollupMeasure *) lfirst(lc))->name);

		appendStringInfo(buf, "%st.%s IS DISTINCT FROM s.%s", lc == list_head(rp->spec->measures) ? "" : " OR ", m, m);
	}
	appendStringInfoString(buf, ") THEN UPDATE SET ");
	foreach(lc, rp->spec->measures)
	{
		const char *m = quote_identifier(((RollupMeasure *) lfirst(lc))->name);

		appendStringInfo(buf, "%s%s = s.%s", lc == list_head(rp->spec->measures) ? "" : ", ", m, m);
	}
	appendStringInfoString(buf, "\nWHEN MATCHED AND pipeline._rollup_unchanged() THEN DO NOTHING");
	appendStringInfo(buf, "\nWHEN NOT MATCHED%s THEN INSERT (%s", incremental ? " AND s.__pp_rows > 0" : "",
					 ROLLUP_BUCKET_COLUMN);
	foreach(lc, rp->groups)
		appendStringInfo(buf, ", %s", quote_identifier(((RollupGroup *) lfirst(lc))->name));
	foreach(lc, rp->spec->measures)
		appendStringInfo(buf, ", %s", quote_identifier(((RollupMeasure *) lfirst(lc))->name));
	appendStringInfoString(buf, ") VALUES (s.__pp_b");
	foreach(lc, rp->groups)
		appendStringInfo(buf, ", s.__pp_g%d", n++);
	foreach(lc, rp->spec->measures)
		appendStringInfo(buf, ", s.%s", quote_identifier(((RollupMeasure *) lfirst(lc))->name));
	appendStringInfoChar(buf, ')');
}

/* AppendMergeHead appends MERGE INTO the target and the key join after USING (...) AS s */
static void
AppendMergeOn(StringInfo buf, LoadPlan *plan)
{
	appendStringInfo(buf, ") AS s\nON t.%s = s.__pp_b", ROLLUP_BUCKET_COLUMN);
	AppendGroupMatch(buf, plan->rollup, "t", true, "s", false);
}

/* CellKeySql spells a dirty cell's key as the quarantine keeps it: bucket and groups, as JSON */
static char *
CellKeySql(RollupPlan *rp)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	appendStringInfo(&buf, "pg_catalog.jsonb_build_object('%s', d.%s", ROLLUP_BUCKET_COLUMN, ROLLUP_BUCKET_COLUMN);
	foreach(lc, rp->groups)
	{
		const char *name = ((RollupGroup *) lfirst(lc))->name;

		appendStringInfo(&buf, ", %s, d.%s", quote_literal_cstr(name), quote_identifier(name));
	}
	appendStringInfoChar(&buf, ')');
	return buf.data;
}

/*
 * BuildIncrementalMerge builds the MERGE of the dirty cells; $1 says
 * whether pipeline._rollup_change gets the key of every cell (the
 * pipeline has open late rows, which a recompute of their cell applies),
 * or only of the late changes (which it keeps for the quarantine).
 */
static char *
BuildIncrementalMerge(LoadPlan *plan)
{
	RollupPlan *rp = plan->rollup;
	StringInfoData buf;
	ListCell   *lc;
	int			n = 1;

	initStringInfo(&buf);
	appendStringInfo(&buf, "WITH d AS (DELETE FROM %s RETURNING *),\n"
					 "c AS (SELECT DISTINCT d.%s AS __pp_b", rp->dirty_ident, ROLLUP_BUCKET_COLUMN);
	foreach(lc, rp->groups)
		appendStringInfo(&buf, ", d.%s AS __pp_g%d", quote_identifier(((RollupGroup *) lfirst(lc))->name), n++);
	appendStringInfo(&buf, " FROM d\n WHERE pipeline._rollup_change(d.__change, d.__at, d.__n, d.__row,"
					 " CASE WHEN $1 OR d.__change <> 'c' THEN %s END))\n", CellKeySql(rp));
	appendStringInfo(&buf, "MERGE INTO %s AS t\nUSING (SELECT c.*, a.* FROM c CROSS JOIN LATERAL (\n"
					 "  SELECT pg_catalog.count(*) AS __pp_rows", plan->target_ident);
	foreach(lc, rp->spec->measures)
	{
		RollupMeasure *m = lfirst(lc);

		appendStringInfo(&buf, ", (\n%s\n) AS %s", m->sql, quote_identifier(m->name));
	}
	appendStringInfo(&buf, "\n  FROM ONLY %s AS s WHERE ", plan->source_ident);
	AppendCellRows(&buf, rp, "c.__pp_b", "c", false);
	appendStringInfoString(&buf, ") AS a");
	AppendMergeOn(&buf, plan);
	AppendMergeActions(&buf, rp, true);
	return buf.data;
}

/*
 * BuildVanishedCells builds the DELETE of the target's cells no source row
 * is in. A full recompute reads the whole source anyway: the rows are
 * matched by their bucket (a hash anti join), not by a range per cell.
 */
static char *
BuildVanishedCells(LoadPlan *plan)
{
	RollupPlan *rp = plan->rollup;
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "DELETE FROM %s AS t WHERE NOT EXISTS (SELECT 1 FROM ONLY %s AS s WHERE %s = t.%s",
					 plan->target_ident, plan->source_ident,
					 RollupBucketSql(rp->spec, psprintf("s.%s", quote_identifier(rp->spec->time_column)),
									 rp->time_typid),
					 ROLLUP_BUCKET_COLUMN);
	AppendGroupMatch(&buf, rp, "s", true, "t", true);
	appendStringInfoChar(&buf, ')');
	return buf.data;
}

/* BuildFullMerge builds the MERGE of every cell of the source */
static char *
BuildFullMerge(LoadPlan *plan)
{
	RollupPlan *rp = plan->rollup;
	StringInfoData buf;
	const char *t = quote_identifier(rp->spec->time_column);

	initStringInfo(&buf);
	appendStringInfo(&buf, "MERGE INTO %s AS t\nUSING (", plan->target_ident);
	appendStringInfoString(&buf, RollupCellsQuery(rp->spec, plan->source_ident, rp->time_typid, "",
												  psprintf("\n HAVING pipeline._rollup_cell(pg_catalog.count(*), pg_catalog.max(s.%s))", t)));
	AppendMergeOn(&buf, plan);
	AppendMergeActions(&buf, rp, false);
	return buf.data;
}

/* BuildRollupStatements builds every statement a run of a rollup may execute */
RollupStatements *
BuildRollupStatements(LoadPlan *plan)
{
	RollupStatements *stmts = palloc0(sizeof(RollupStatements));
	const char *dirty = plan->rollup->dirty_ident;

	stmts->pending = psprintf("SELECT EXISTS (SELECT FROM %s), EXISTS (SELECT FROM %s WHERE __change = 't')",
							  dirty, dirty);
	stmts->incremental = BuildIncrementalMerge(plan);
	stmts->consume_all = psprintf("DELETE FROM %s", dirty);
	stmts->vanished = BuildVanishedCells(plan);
	stmts->full = BuildFullMerge(plan);
	return stmts;
}

/* ExplainRollup lists, as text rows, what the next run of a rollup would execute */
List *
ExplainRollup(LoadPlan *plan)
{
	PipelineDef *def = plan->def;
	RollupPlan *rp = plan->rollup;
	RollupStatements *stmts = BuildRollupStatements(plan);
	List	   *rows = NIL;

	rows = lappend(rows, psprintf("-- pipeline %s: rollup %s into %s, buckets of %s by %s",
								  quote_literal_cstr(def->name), plan->source_ident,
								  plan->target_ident, rp->spec->bucket_text,
								  quote_identifier(rp->spec->time_column)));
	rows = lappend(rows, psprintf("-- the changed cells come from %s (triggers on the source)", rp->dirty_ident));
	if (!rp->time_indexed)
		rows = lappend(rows, "-- no index leads with the time column: each dirty cell scans the whole source");
	rows = lappend(rows, stmts->pending);
	if (def->watermark == NULL)
	{
		rows = lappend(rows, "-- no high-water time yet: the next run recomputes every cell");
		rows = lappend(rows, stmts->consume_all);
		rows = lappend(rows, stmts->vanished);
		rows = lappend(rows, stmts->full);
		return rows;
	}
	if (def->allowed_lateness)
		rows = lappend(rows, psprintf("-- closed buckets: those ending by the high-water time %s minus allowed_lateness %s;"
									  " the triggers write a change in one as late",
									  quote_literal_cstr(def->watermark),
									  DatumGetCString(DirectFunctionCall1(interval_out,
																		  IntervalPGetDatum(def->allowed_lateness)))));
	else
		rows = lappend(rows, "-- no allowed_lateness: no bucket is ever closed");
	rows = lappend(rows, "-- $1 = whether the pipeline has open late rows, which a recompute of their cell applies");
	rows = lappend(rows, stmts->incremental);
	rows = lappend(rows, "-- after a TRUNCATE of the source, or reset, every cell instead:");
	rows = lappend(rows, stmts->consume_all);
	rows = lappend(rows, stmts->vanished);
	rows = lappend(rows, stmts->full);
	return rows;
}
