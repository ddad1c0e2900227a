/*-------------------------------------------------------------------------
 *
 * src/engine/snapshot_load.c
 *
 * The load statement of mode snapshot (docs/modeling.md): one MERGE that
 * keeps in the target every version of each key, from the same window rows
 * as any load (planner.c's AppendSourceRows: the counters, the erasure
 * gate, conversions, the row checks' gate, masks and de-duplication, here
 * to one row per key and incremental value). Pure string building, shown
 * by pipeline.explain.
 *
 * Each kept row is an event of its key at a time t: its incremental value,
 * or without an incremental column the run's stamp, one timestamptz per
 * load taken under the load's lock on the target (so the stamps follow the
 * order the runs commit in) and later than every bound the history holds;
 * a row flagged in the delete column is a delete event, and so is, in a
 * full read, a key whose current version's key vanished from the source
 * (unless snapshot_keep_deleted, which drops delete events). Per key the
 * statement then:
 *
 *   1. takes lo, the earliest time among the key's events, and the
 *      versions of the key that the events may change: those that end at
 *      or after lo, or are current; each is an event again (at valid_from,
 *      and a delete event at valid_to when no version starts there);
 *   2. keeps one event per time, the window's over the history's;
 *   3. orders the events by time and keeps the significant ones: a delete
 *      after a version; a row after nothing or a delete, or whose check
 *      columns differ from the event before it (LAG): a re-sent unchanged
 *      row, or a duplicate of an existing version, is not significant;
 *   4. makes each significant row a version, valid until the next
 *      significant event (LEAD), current when none follows.
 * Every event after lo is either in the window (the window is a range of
 * the incremental column, so a late row's successors are re-read with it)
 * or a version of the history, and the one before lo is the version then
 * valid: the result equals the history recomputed from every event. The
 * MERGE then inserts the new versions, updates those whose end or values
 * changed (closed, split by a late version, or given the values a re-read
 * row now has), and deletes the versions a late row made redundant (an
 * earlier version holds their values now); versions that did not change
 * are not touched. The target's exclusion constraints are deferrable, so
 * they hold at the end of the statement (snapshot_target.c).
 *
 * Counts (counters.c): inserted, the versions added; updated, the versions
 * changed but for those a delete closed, which are deleted, with the
 * versions removed; unchanged, the kept rows that applied nothing.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/builtins.h"

#include "pipeline/engine.h"
#include "planner_internal.h"

/* What the builder of one statement needs at hand */
typedef struct SnapshotSql
{
	LoadPlan   *plan;
	SnapshotPlan *sp;
	StringInfo	buf;
	char	   *prefix;			/* of every name the statement adds */
	char	   *stamp_type;		/* the type of valid_from, spelled */
} SnapshotSql;

/*
 * InternalPrefix returns a prefix no loaded, history or lineage column
 * starts with, so that no name the statement adds (its columns, its CTEs,
 * which could otherwise hide a table a check names) is ambiguous.
 */
static char *
InternalPrefix(LoadPlan *plan)
{
	char	   *prefix = pstrdup("__pp_");

	for (;;)
	{
		size_t		len = strlen(prefix);
		bool		clash = strncmp(plan->snapshot->names.valid_from, prefix, len) == 0 ||
			strncmp(plan->snapshot->names.valid_to, prefix, len) == 0 ||
			strncmp(plan->snapshot->names.is_current, prefix, len) == 0 ||
			(plan->def->lineage_column && strncmp(plan->def->lineage_column, prefix, len) == 0);
		ListCell   *lc;

		foreach(lc, plan->columns)
			clash |= strncmp(((LoadColumn *) lfirst(lc))->name, prefix, len) == 0;
		if (!clash)
			return prefix;
		prefix = psprintf("%s_", prefix);
	}
}

/* N spells an added name, quoted */
static const char *
N(SnapshotSql *q, const char *base)
{
	return quote_identifier(psprintf("%s%s", q->prefix, base));
}

/* H spells a history column of alias */
static const char *
H(SnapshotSql *q, const char *alias, const char *column)
{
	return psprintf("%s%s%s", alias ? alias : "", alias ? "." : "", quote_identifier(column));
}

/* LoadedType spells a loaded column's type, for a typed NULL */
static char *
LoadedType(LoadColumn *col)
{
	return format_type_extended(col->typid, col->typmod,
								FORMAT_TYPE_TYPEMOD_GIVEN | FORMAT_TYPE_FORCE_QUALIFY);
}

/*
 * AppendRow appends the loaded columns read from alias, under their names:
 * with keys_only, the other columns as typed NULLs (a delete event, a
 * version to remove); with casts, the target's values cast to the loaded
 * types.
 */
static void
AppendRow(SnapshotSql *q, const char *alias, bool keys_only, bool casts)
{
	ListCell   *lc;
	ListCell   *cc;

	forboth(lc, q->plan->columns, cc, q->sp->old_casts)
	{
		LoadColumn *col = lfirst(lc);
		const char *name = quote_identifier(col->name);

		if (foreach_current_index(lc) > 0)
			appendStringInfoString(q->buf, ", ");
		if (keys_only && !col->is_key)
			appendStringInfo(q->buf, "NULL::%s AS %s", LoadedType(col), name);
		else if (casts && ((char *) lfirst(cc))[0] != '\0')
			appendStringInfo(q->buf, "%s.%s%s AS %s", alias, name, (char *) lfirst(cc), name);
		else if (alias)
			appendStringInfo(q->buf, "%s.%s", alias, name);
		else
			appendStringInfoString(q->buf, name);
	}
}

/* AppendKeys appends the key columns of alias (bare names if alias is NULL) */
static void
AppendKeys(SnapshotSql *q, const char *alias)
{
	ListCell   *lc;
	bool		first = true;

	foreach(lc, q->plan->columns)
	{
		LoadColumn *col = lfirst(lc);

		if (!col->is_key)
			continue;
		appendStringInfo(q->buf, "%s%s", first ? "" : ", ",
						 alias ? Col(alias, col->name) : quote_identifier(col->name));
		first = false;
	}
}

/*
 * AppendEvents appends the events of the window: its kept rows, each at its
 * time, a delete when flagged (unless deletes keep versions open); in a full
 * read, a delete at the stamp for each current version whose key vanished
 * from the source (the vanished keys of mode full).
 */
static void
AppendEvents(SnapshotSql *q, bool has_lower, bool has_upper)
{
	LoadPlan   *plan = q->plan;
	bool		deletes = plan->delete_flag && !plan->def->snapshot_keep_deleted;

	appendStringInfo(q->buf, "%s AS (SELECT ", N(q, "ev"));
	AppendRow(q, "w", false, false);
	appendStringInfo(q->buf, ", %s AS %s, %s AS %s, 2 AS %s FROM (",
					 q->sp->stamped ? psprintf("st.%s", N(q, "t")) : Col("w", plan->incremental->name),
					 N(q, "t"), deletes ? psprintf("%s IS TRUE", Col("w", plan->delete_flag->name)) : "false",
					 N(q, "del"), N(q, "src"));
	AppendSourceRows(q->buf, plan, has_lower, has_upper);
	/* a filter of the flag stays above the rows' query, which counts every kept row */
	appendStringInfoString(q->buf, plan->delete_flag && plan->def->snapshot_keep_deleted ? " OFFSET 0) AS w" : ") AS w");
	if (q->sp->stamped)
		appendStringInfo(q->buf, " CROSS JOIN %s AS st", N(q, "stamp"));
	if (plan->delete_flag && plan->def->snapshot_keep_deleted)
		appendStringInfo(q->buf, " WHERE %s IS NOT TRUE", Col("w", plan->delete_flag->name));
	if (q->sp->stamped && !plan->replay && !plan->def->snapshot_keep_deleted)
	{
		appendStringInfoString(q->buf, "\n UNION ALL SELECT ");
		AppendRow(q, "c", true, true);
		appendStringInfo(q->buf, ", st.%s, true, 1 FROM %s AS c CROSS JOIN %s AS st WHERE %s"
						 " AND NOT EXISTS (SELECT 1 FROM %s AS s WHERE ", N(q, "t"), plan->target_ident,
						 N(q, "stamp"), H(q, "c", q->sp->names.is_current), plan->source_ident);
		AppendKeyJoin(q->buf, plan, "s", "c", true);
		appendStringInfoString(q->buf, ")");
	}
	appendStringInfoChar(q->buf, ')');
}

/*
 * AppendHistory appends steps 1 and 2 of the header: lo per key, the
 * versions the events may change (old), and all the events, one per time.
 */
static void
AppendHistory(SnapshotSql *q)
{
	const char *vf = H(q, "o", q->sp->names.valid_from);
	const char *vt = H(q, "o", q->sp->names.valid_to);

	appendStringInfo(q->buf, ",\n%s AS (SELECT ", N(q, "lo"));
	AppendKeys(q, "e");
	appendStringInfo(q->buf, ", pg_catalog.min(e.%s) AS %s FROM %s AS e GROUP BY ", N(q, "t"), N(q, "t"),
					 N(q, "ev"));
	AppendKeys(q, "e");
	appendStringInfo(q->buf, "),\n%s AS (SELECT ", N(q, "old"));
	AppendRow(q, "o", false, true);
	appendStringInfo(q->buf, ", %s AS %s, %s AS %s FROM %s AS o JOIN %s AS l ON ", vf, N(q, "t"), vt,
					 N(q, "end"), q->plan->target_ident, N(q, "lo"));
	AppendKeyJoin(q->buf, q->plan, "o", "l", false);
	appendStringInfo(q->buf, " WHERE %s IS NULL OR %s >= l.%s)", vt, vt, N(q, "t"));

	appendStringInfo(q->buf, ",\n%s AS (SELECT DISTINCT ON (", N(q, "all"));
	AppendKeys(q, "e");
	appendStringInfo(q->buf, ", e.%s) * FROM (SELECT * FROM %s UNION ALL SELECT ", N(q, "t"), N(q, "ev"));
	AppendRow(q, "o", false, false);
	appendStringInfo(q->buf, ", o.%s, false, 0 FROM %s AS o UNION ALL SELECT ", N(q, "t"), N(q, "old"));
	AppendRow(q, "o", true, false);
	appendStringInfo(q->buf, ", o.%s, true, 0 FROM %s AS o WHERE o.%s IS NOT NULL AND NOT EXISTS"
					 " (SELECT 1 FROM %s AS n WHERE ", N(q, "end"), N(q, "old"), N(q, "end"), N(q, "old"));
	AppendKeyJoin(q->buf, q->plan, "n", "o", false);
	appendStringInfo(q->buf, " AND n.%s = o.%s)) AS e ORDER BY ", N(q, "t"), N(q, "end"));
	AppendKeys(q, "e");
	appendStringInfo(q->buf, ", e.%s, e.%s DESC)", N(q, "t"), N(q, "src"));
}

/* AppendWindowClause appends WINDOW w AS (PARTITION BY the key ORDER BY the time) */
static void
AppendWindowClause(SnapshotSql *q)
{
	appendStringInfo(q->buf, " WINDOW %s AS (PARTITION BY ", N(q, "w"));
	AppendKeys(q, "e");
	appendStringInfo(q->buf, " ORDER BY e.%s)", N(q, "t"));
}

/*
 * AppendVersions appends steps 3 and 4 of the header: the events with the
 * one before each (seq), the significant ones (sig), and the versions they
 * make with their ends (new).
 */
static void
AppendVersions(SnapshotSql *q)
{
	ListCell   *lc;

	appendStringInfo(q->buf, ",\n%s AS (SELECT e.*, pg_catalog.lag(e.%s) OVER %s AS %s,"
					 " pg_catalog.lag(e.%s) OVER %s AS %s", N(q, "seq"), N(q, "t"), N(q, "w"), N(q, "pt"),
					 N(q, "del"), N(q, "w"), N(q, "pdel"));
	foreach(lc, q->sp->check_columns)
		appendStringInfo(q->buf, ", pg_catalog.lag(%s) OVER %s AS %s",
						 Col("e", ((LoadColumn *) lfirst(lc))->name), N(q, "w"),
						 N(q, psprintf("p%d", foreach_current_index(lc))));
	appendStringInfo(q->buf, " FROM %s AS e", N(q, "all"));
	AppendWindowClause(q);
	appendStringInfo(q->buf, "),\n%s AS (SELECT e.* FROM %s AS e WHERE CASE WHEN e.%s"
					 " THEN e.%s IS NOT NULL AND NOT e.%s ELSE e.%s IS NULL OR e.%s",
					 N(q, "sig"), N(q, "seq"), N(q, "del"), N(q, "pt"), N(q, "pdel"), N(q, "pt"), N(q, "pdel"));
	foreach(lc, q->sp->check_columns)
	{
		appendStringInfoString(q->buf, " OR ");
		AppendDistinct(q->buf, lfirst(lc), Col("e", ((LoadColumn *) lfirst(lc))->name),
					   psprintf("e.%s", N(q, psprintf("p%d", foreach_current_index(lc)))));
	}
	appendStringInfoString(q->buf, " END)");
	appendStringInfo(q->buf, ",\n%s AS (SELECT e.*, pg_catalog.lead(e.%s) OVER %s AS %s,"
					 " pg_catalog.lead(e.%s) OVER %s AS %s, pg_catalog.lead(e.%s) OVER %s AS %s FROM %s AS e",
					 N(q, "new"), N(q, "t"), N(q, "w"), N(q, "end"), N(q, "del"), N(q, "w"), N(q, "end_del"),
					 N(q, "src"), N(q, "w"), N(q, "end_src"), N(q, "sig"));
	AppendWindowClause(q);
	appendStringInfoChar(q->buf, ')');
}

/*
 * AppendChanges appends the rows the MERGE applies: each version of the new
 * history, and each version of the old one that the new one no longer has
 * (to remove).
 */
static void
AppendChanges(SnapshotSql *q)
{
	appendStringInfoString(q->buf, "\nSELECT ");
	AppendRow(q, "n", false, false);
	appendStringInfo(q->buf, ", n.%s, n.%s, n.%s, n.%s, n.%s, false AS %s FROM %s AS n WHERE NOT n.%s",
					 N(q, "t"), N(q, "end"), N(q, "end_del"), N(q, "end_src"), N(q, "src"), N(q, "drop"),
					 N(q, "new"), N(q, "del"));
	appendStringInfoString(q->buf, "\nUNION ALL SELECT ");
	AppendRow(q, "o", true, false);
	appendStringInfo(q->buf, ", o.%s, NULL::%s, NULL::pg_catalog.bool, NULL::pg_catalog.int4,"
					 " NULL::pg_catalog.int4, true FROM %s AS o WHERE NOT EXISTS (SELECT 1 FROM %s AS n"
					 " WHERE NOT n.%s AND ", N(q, "t"), q->stamp_type, N(q, "old"), N(q, "new"), N(q, "del"));
	AppendKeyJoin(q->buf, q->plan, "n", "o", false);
	appendStringInfo(q->buf, " AND n.%s = o.%s)", N(q, "t"), N(q, "t"));
}

/* AppendValuesDiffer appends whether any non-key column differs between t and s */
static void
AppendValuesDiffer(SnapshotSql *q)
{
	ListCell   *lc;
	bool		first = true;

	appendStringInfoChar(q->buf, '(');
	foreach(lc, q->plan->columns)
	{
		LoadColumn *col = lfirst(lc);

		if (col->is_key)
			continue;
		if (!first)
			appendStringInfoString(q->buf, " OR ");
		AppendDistinct(q->buf, col, NULL, NULL);
		first = false;
	}
	appendStringInfo(q->buf, "%s)", first ? "false" : "");
}

/*
 * AppendActions appends the MERGE's actions: remove, update a version whose
 * end or values changed (counting the kept rows that applied, and whether
 * a delete closed it), insert a new one.
 */
static void
AppendActions(SnapshotSql *q)
{
	LoadPlan   *plan = q->plan;
	const char *vf = quote_identifier(q->sp->names.valid_from);
	const char *vt = quote_identifier(q->sp->names.valid_to);
	const char *cur = quote_identifier(q->sp->names.is_current);
	const char *lineage = plan->def->lineage_column ? quote_identifier(plan->def->lineage_column) : NULL;
	const char *closed = psprintf("(s.%s AND t.%s IS DISTINCT FROM s.%s) IS TRUE", N(q, "end_del"), vt,
								  N(q, "end"));
	bool		override = false;
	ListCell   *lc;

	appendStringInfo(q->buf, "\nWHEN MATCHED AND s.%s THEN DELETE", N(q, "drop"));
	appendStringInfo(q->buf, "\nWHEN MATCHED AND (t.%s IS DISTINCT FROM s.%s OR ", vt, N(q, "end"));
	AppendValuesDiffer(q);
	appendStringInfoString(q->buf, ") THEN UPDATE SET ");
	foreach(lc, plan->columns)
	{
		LoadColumn *col = lfirst(lc);

		override |= col->identity_always;
		if (!col->is_key)
			appendStringInfo(q->buf, "%s = %s, ", quote_identifier(col->name), Col("s", col->name));
	}
	appendStringInfo(q->buf, "%s = s.%s, %s = pipeline._snapshot_row((CASE WHEN s.%s = 2 AND ",
					 vt, N(q, "end"), cur, N(q, "src"));
	AppendValuesDiffer(q);
	appendStringInfo(q->buf, " THEN 1 ELSE 0 END) + (CASE WHEN %s AND s.%s = 2 THEN 1 ELSE 0 END),"
					 " %s, s.%s IS NULL)", closed, N(q, "end_src"), closed, N(q, "end"));
	if (lineage)
		appendStringInfo(q->buf, ", %s = " LINEAGE_RUN_ID, lineage);
	appendStringInfo(q->buf, "\nWHEN NOT MATCHED AND NOT s.%s THEN INSERT (", N(q, "drop"));
	AppendRow(q, NULL, false, false);
	appendStringInfo(q->buf, ", %s, %s, %s%s%s)%s VALUES (", vf, vt, cur, lineage ? ", " : "",
					 lineage ? lineage : "", override ? " OVERRIDING SYSTEM VALUE" : "");
	AppendRow(q, "s", false, false);
	appendStringInfo(q->buf, ", s.%s, s.%s, pipeline._snapshot_row(1, false, s.%s IS NULL)%s)",
					 N(q, "t"), N(q, "end"), N(q, "end"), lineage ? ", " LINEAGE_RUN_ID : "");
}

/*
 * BuildSnapshotStatements sets the load of stmts to the MERGE of a
 * snapshot pipeline (see the header), counted as counters.c counts it.
 */
LoadStatements *
BuildSnapshotStatements(LoadPlan *plan, LoadStatements *stmts, bool has_lower, bool has_upper)
{
	StringInfoData buf;
	SnapshotSql q;

	initStringInfo(&buf);
	q.plan = plan;
	q.sp = plan->snapshot;
	q.buf = &buf;
	q.prefix = InternalPrefix(plan);
	q.stamp_type = format_type_extended(q.sp->stamp_typid, q.sp->stamp_typmod,
										FORMAT_TYPE_TYPEMOD_GIVEN | FORMAT_TYPE_FORCE_QUALIFY);
	appendStringInfo(&buf, "MERGE INTO %s AS t\nUSING (WITH ", plan->target_ident);
	if (q.sp->stamped)
		appendStringInfo(&buf, "%s AS (SELECT GREATEST(pg_catalog.clock_timestamp(),"
						 " pg_catalog.max(GREATEST(h.%s, h.%s)) + '00:00:00.000001'::pg_catalog.interval)"
						 " AS %s FROM %s AS h),\n", N(&q, "stamp"), quote_identifier(q.sp->names.valid_from),
						 quote_identifier(q.sp->names.valid_to), N(&q, "t"), plan->target_ident);
	AppendEvents(&q, has_lower, has_upper);
	AppendHistory(&q);
	AppendVersions(&q);
	AppendChanges(&q);
	appendStringInfoString(&buf, ") AS s\nON ");
	AppendKeyJoin(&buf, plan, "t", "s", false);
	appendStringInfo(&buf, " AND t.%s = s.%s", quote_identifier(q.sp->names.valid_from), N(&q, "t"));
	AppendActions(&q);
	stmts->load = buf.data;
	stmts->load_is_merge = true;
	stmts->snapshot = true;
	stmts->counts_kept = plan->needs_dedup;
	return stmts;
}
