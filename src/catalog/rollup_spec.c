/*-------------------------------------------------------------------------
 *
 * src/catalog/rollup_spec.c
 *
 * The rollup option of a pipeline in mode rollup: what it aggregates, e.g.
 *
 *   {"time_column": "ordered_at", "bucket": "1 day", "group_by": ["region"],
 *    "measures": {"orders": "count(*)", "revenue": "sum(amount)"}}
 *
 * This file reads and checks its shape (22023, 42701 for a repeated name,
 * the interval input's 22007), and spells the parts of SQL that depend on
 * nothing but the option: the bucket of a time value (date_bin from
 * 2000-01-01, UTC for timestamptz), the end of a bucket, the query of the
 * cells, and the name of the pipeline's dirty-cells table. The options a
 * rollup takes or refuses are checked with the others (api/registry_args.c).
 * Whether the columns exist and the measures are aggregates is the plan's
 * business (engine/rollup_plan.c), against the source of now.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "pipeline/catalog.h"

/* BadRollup raises the 22023 of a rollup option of the wrong shape */
static void
BadRollup(const char *message, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s", message),
			 detail ? errdetail("%s", detail) : 0,
			 errhint("Pass an object like %s.", ROLLUP_EXAMPLE)));
}

/* JsonString returns a JSON string member's text, or NULL for a missing key */
static char *
JsonString(Jsonb *spec, const char *key)
{
	JsonbValue *v = getKeyJsonValueFromContainer(&spec->root, key, strlen(key), NULL);

	if (v == NULL)
		return NULL;
	if (v->type != jbvString || v->val.string.len == 0)
		BadRollup(psprintf("rollup \"%s\" must be a non-empty string", key), NULL);
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/*
 * CheckOutputName refuses a name of a target column that cannot be one:
 * empty, too long, reserved (the statements' own names start with "__"),
 * or already taken by "bucket", a group_by column or another measure.
 */
static void
CheckOutputName(RollupSpec *spec, const char *name, const char *what)
{
	ListCell   *lc;

	if (name[0] == '\0' || strlen(name) >= NAMEDATALEN)
		BadRollup(psprintf("rollup %s name \"%s\" is not a column name", what, name),
				  psprintf("A name has 1 to %d bytes.", NAMEDATALEN - 1));
	if (strncmp(name, "__", 2) == 0)
		BadRollup(psprintf("rollup %s name \"%s\" is reserved", what, name),
				  "Names starting with two underscores are pg_pipeline's own.");
	if (strcmp(name, ROLLUP_BUCKET_COLUMN) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_COLUMN),
				 errmsg("rollup %s \"%s\" has the name of the bucket column", what, name),
				 errhint("The target's first column is \"%s\"; rename the %s.", ROLLUP_BUCKET_COLUMN, what)));
	foreach(lc, spec->group_by)
		if (strcmp(lfirst(lc), name) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_COLUMN),
					 errmsg("rollup %s \"%s\" is named twice", what, name),
					 errhint("Each group_by column and measure is a column of the target: give each its own name.")));
	foreach(lc, spec->measures)
		if (strcmp(((RollupMeasure *) lfirst(lc))->name, name) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_COLUMN),
					 errmsg("rollup %s \"%s\" is named twice", what, name),
					 errhint("Each group_by column and measure is a column of the target: give each its own name.")));
}

/* ReadBucket reads the bucket: an interval (its input's 22007), positive, without months */
static void
ReadBucket(RollupSpec *spec, Jsonb *jb)
{
	Interval	zero = {0};

	spec->bucket_text = JsonString(jb, "bucket");
	if (spec->bucket_text == NULL)
		BadRollup("rollup needs \"bucket\"", "The bucket is an interval, e.g. \"1 day\" or \"15 minutes\".");
	spec->bucket = DatumGetIntervalP(DirectFunctionCall3(interval_in, CStringGetDatum(spec->bucket_text),
														 ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
	if (spec->bucket->month != 0)
		BadRollup(psprintf("rollup bucket \"%s\" has months or years", spec->bucket_text),
				  "Buckets are cut every so many days, hours or minutes from 2000-01-01 (date_bin), and months have no fixed length.");
	spec->bucket_usecs = spec->bucket->day * USECS_PER_DAY + spec->bucket->time;
	if (spec->bucket_usecs <= 0 ||
		DatumGetInt32(DirectFunctionCall2(interval_cmp, IntervalPGetDatum(spec->bucket),
										  IntervalPGetDatum(&zero))) <= 0)
		BadRollup(psprintf("rollup bucket \"%s\" is not positive", spec->bucket_text), NULL);
}

/* ReadGroupBy reads group_by: an array of distinct column names, [] when absent */
static void
ReadGroupBy(RollupSpec *spec, Jsonb *jb)
{
	JsonbValue *v = getKeyJsonValueFromContainer(&jb->root, "group_by", 8, NULL);
	JsonbIterator *it;
	JsonbValue	e;
	JsonbIteratorToken tok;

	if (v == NULL)
		return;
	if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
		BadRollup("rollup \"group_by\" must be an array of column names", NULL);
	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
	{
		char	   *name;

		if (tok != WJB_ELEM)
			continue;
		if (e.type != jbvString)
			BadRollup("rollup \"group_by\" must be an array of column names", NULL);
		name = pnstrdup(e.val.string.val, e.val.string.len);
		CheckOutputName(spec, name, "group_by column");
		spec->group_by = lappend(spec->group_by, name);
	}
}

/* ReadMeasures reads measures: a non-empty object of names to SQL expressions */
static void
ReadMeasures(RollupSpec *spec, Jsonb *jb)
{
	JsonbValue *v = getKeyJsonValueFromContainer(&jb->root, "measures", 8, NULL);
	JsonbIterator *it;
	JsonbValue	e;
	JsonbIteratorToken tok;
	RollupMeasure *m = NULL;

	if (v == NULL || v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
		BadRollup("rollup needs \"measures\", an object of names to aggregate expressions", NULL);
	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			m = palloc0(sizeof(RollupMeasure));
			m->name = pnstrdup(e.val.string.val, e.val.string.len);
			CheckOutputName(spec, m->name, "measure");
		}
		else if (tok == WJB_VALUE)
		{
			if (e.type != jbvString || e.val.string.len == 0)
				BadRollup(psprintf("rollup measure \"%s\" must be an aggregate expression", m->name),
						  "Its value is SQL text, e.g. \"sum(amount)\".");
			m->sql = pnstrdup(e.val.string.val, e.val.string.len);
			spec->measures = lappend(spec->measures, m);
		}
	}
	if (spec->measures == NIL)
		BadRollup("rollup needs at least one measure", NULL);
}

/*
 * ParseRollupSpec reads a rollup option, checking its shape: the keys
 * time_column, bucket, group_by and measures, nothing else; NULL gives
 * NULL. Measures are kept in the order jsonb keeps an object's keys
 * (shorter names first), which is the order of the target's columns.
 */
RollupSpec *
ParseRollupSpec(Jsonb *rollup)
{
	static const char *const keys[] = {"time_column", "bucket", "group_by", "measures"};
	RollupSpec *spec;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (rollup == NULL)
		return NULL;
	if (!JB_ROOT_IS_OBJECT(rollup) || JB_ROOT_IS_SCALAR(rollup))
		BadRollup("rollup must be a JSON object", NULL);
	it = JsonbIteratorInit(&rollup->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		bool		known = false;

		if (tok != WJB_KEY)
			continue;
		for (int i = 0; i < lengthof(keys); i++)
			known |= strlen(keys[i]) == v.val.string.len &&
				strncmp(keys[i], v.val.string.val, v.val.string.len) == 0;
		if (!known)
			BadRollup(psprintf("rollup has an unknown key \"%s\"",
							   pnstrdup(v.val.string.val, v.val.string.len)),
					  "The keys are time_column, bucket, group_by and measures.");
	}
	spec = palloc0(sizeof(RollupSpec));
	spec->time_column = JsonString(rollup, "time_column");
	if (spec->time_column == NULL)
		BadRollup("rollup needs \"time_column\"", "It names the source column whose time puts a row in a bucket.");
	ReadBucket(spec, rollup);
	ReadGroupBy(spec, rollup);
	ReadMeasures(spec, rollup);
	return spec;
}

/* RollupOrigin is the origin of the buckets of a time column's type */
static const char *
RollupOrigin(Oid time_typid)
{
	return time_typid == TIMESTAMPTZOID ? "'2000-01-01 00:00:00+00'::pg_catalog.timestamptz"
		: "'2000-01-01 00:00:00'::pg_catalog.timestamp";
}

/* RollupStrideSql spells the bucket's length as an interval of seconds, as date_bin counts it */
static char *
RollupStrideSql(RollupSpec *spec)
{
	int64		secs = spec->bucket_usecs / USECS_PER_SEC;
	int64		frac = spec->bucket_usecs % USECS_PER_SEC;

	if (frac == 0)
		return psprintf("'%lld seconds'::pg_catalog.interval", (long long) secs);
	return psprintf("'%lld.%06lld seconds'::pg_catalog.interval", (long long) secs, (long long) frac);
}

/*
 * RollupBucketSql spells the bucket of a time value (ref, a column of type
 * time_typid): date_bin from 2000-01-01 (a Saturday; UTC for timestamptz,
 * so that no run's TimeZone moves a bucket), a date's bucket a date.
 */
char *
RollupBucketSql(RollupSpec *spec, const char *ref, Oid time_typid)
{
	if (time_typid == DATEOID)
		return psprintf("pg_catalog.date_bin(%s, %s::pg_catalog.timestamp, %s)::pg_catalog.date",
						RollupStrideSql(spec), ref, RollupOrigin(TIMESTAMPOID));
	return psprintf("pg_catalog.date_bin(%s, %s, %s)", RollupStrideSql(spec), ref,
					RollupOrigin(time_typid));
}

/*
 * RollupBucketEndSql spells where the bucket starting at ref ends: a
 * number of seconds later (never a calendar day of some time zone), or of
 * days for a date.
 */
char *
RollupBucketEndSql(RollupSpec *spec, const char *ref, Oid time_typid)
{
	if (time_typid == DATEOID)
		return psprintf("(%s + %lld)", ref, (long long) (spec->bucket_usecs / USECS_PER_DAY));
	return psprintf("(%s + %s)", ref, RollupStrideSql(spec));
}

/*
 * RollupCellsQuery spells the query of a full recompute's cells: the
 * bucket (__pp_b), the group_by columns (__pp_g1 ...), extra (more columns,
 * or ""), the measures (each in parentheses, between newlines, so that it
 * stays one expression), from the source alone (ONLY: its triggers see no
 * child table's rows), its rows without a time left out, grouped by the
 * bucket and the groups, then having (or ""). The statements of a run
 * (engine/rollup.c), the check of the measures (engine/rollup_plan.c) and
 * the lineage of a rollup (recorders/lineage_rollup.c) all read it.
 */
char *
RollupCellsQuery(RollupSpec *spec, const char *source_ident, Oid time_typid, const char *extra,
				 const char *having)
{
	StringInfoData buf;
	const char *t = quote_identifier(spec->time_column);
	ListCell   *lc;
	int			n = 1;

	initStringInfo(&buf);
	appendStringInfo(&buf, "SELECT %s AS __pp_b", RollupBucketSql(spec, psprintf("s.%s", t), time_typid));
	foreach(lc, spec->group_by)
		appendStringInfo(&buf, ", s.%s AS __pp_g%d", quote_identifier(lfirst(lc)), n++);
	appendStringInfoString(&buf, extra);
	foreach(lc, spec->measures)
	{
		RollupMeasure *m = lfirst(lc);

		appendStringInfo(&buf, ", (\n%s\n) AS %s", m->sql, quote_identifier(m->name));
	}
	appendStringInfo(&buf, "\n  FROM ONLY %s AS s WHERE s.%s IS NOT NULL GROUP BY 1", source_ident, t);
	for (int i = 2; i <= n; i++)
		appendStringInfo(&buf, ", %d", i);
	appendStringInfoString(&buf, having);
	return buf.data;
}

/*
 * RollupDirtyTableName is the name of a rollup's dirty-cells table, next to
 * its target: "<target>__dirty". NULL when that would be too long.
 */
char *
RollupDirtyTableName(const char *target_table)
{
	char	   *name = psprintf("%s" ROLLUP_DIRTY_SUFFIX, target_table);

	return strlen(name) < NAMEDATALEN ? name : NULL;
}
