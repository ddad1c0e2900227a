/*-------------------------------------------------------------------------
 *
 * src/engine/rollup_plan.c
 *
 * A rollup resolved against the catalogs of now, at registration and at
 * every run (load_plan.c hands a definition in mode rollup here): the
 * source is a table (its changes come from triggers, rollup_capture.c),
 * the time column a timestamptz, timestamp or date, the group_by columns
 * comparable, and each measure one aggregate expression over the source,
 * parsed and analysed as the pipeline owner (EnterOwnerContext) in the
 * query a full recompute runs, so that a bad one fails with the parser's
 * SQLSTATE (42601, 42703, 42883, 42803 ...). Its target has the bucket and
 * the group_by columns as its key, then the measures; the one created by
 * default takes their types from that query.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "nodes/parsenodes.h"
#include "access/htup_details.h"
#include "catalog/pg_attribute.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/clauses.h"
#include "optimizer/optimizer.h"
#include "parser/parse_coerce.h"
#include "parser/parser.h"
#include "rewrite/rewriteManip.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/plancache.h"
#include "utils/ruleutils.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "pipeline/engine.h"

/* AttributeNotNull tells whether a column is NOT NULL */
static bool
AttributeNotNull(Oid relid, AttrNumber attnum)
{
	HeapTuple	tup = SearchSysCache2(ATTNUM, ObjectIdGetDatum(relid), Int16GetDatum(attnum));
	bool		not_null;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for attribute %d of relation %u", attnum, relid);
	not_null = ((Form_pg_attribute) GETSTRUCT(tup))->attnotnull;
	ReleaseSysCache(tup);
	return not_null;
}

/* TimeColumnType checks the time column: it exists and is a time; returns its type */
static Oid
TimeColumnType(PipelineDef *def, RollupSpec *spec, Oid source_relid)
{
	Oid			typid;

	(void) LookupSourceColumn(source_relid, spec->time_column, "rollup time", &typid);
	if (typid != TIMESTAMPTZOID && typid != TIMESTAMPOID && typid != DATEOID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("rollup time column \"%s\" has type %s", spec->time_column, format_type_be(typid)),
				 errdetail("A time column must be timestamptz, timestamp or date."),
				 errhint("Use a column of one of these types.")));
	if (typid == DATEOID && spec->bucket_usecs % USECS_PER_DAY != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("rollup bucket \"%s\" is not a whole number of days", spec->bucket_text),
				 errdetail("Time column \"%s\" is a date.", spec->time_column),
				 errhint("Pass a bucket of days, e.g. \"1 day\" or \"7 days\".")));
	return typid;
}

/* ResolveGroups checks each group_by column: it exists and can be compared */
static List *
ResolveGroups(RollupSpec *spec, Oid source_relid)
{
	List	   *groups = NIL;
	ListCell   *lc;

	foreach(lc, spec->group_by)
	{
		RollupGroup *g = palloc0(sizeof(RollupGroup));
		AttrNumber	attnum = LookupSourceColumn(source_relid, lfirst(lc), "rollup group_by", &g->typid);
		TypeCacheEntry *tc;

		g->name = lfirst(lc);
		get_atttypetypmodcoll(source_relid, attnum, &g->typid, &g->typmod, &g->collid);
		g->not_null = AttributeNotNull(source_relid, attnum);
		tc = lookup_type_cache(g->typid, TYPECACHE_EQ_OPR | TYPECACHE_BTREE_OPFAMILY);
		if (!OidIsValid(tc->eq_opr) || !OidIsValid(tc->btree_opf))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("rollup group_by column \"%s\" has type %s, which cannot be compared",
							g->name, format_type_be(g->typid)),
					 errdetail("A group_by column is part of the target's key: it needs an equality operator and a default btree operator class."),
					 errhint("Group by a column of a comparable type.")));
		groups = lappend(groups, g);
	}
	return groups;
}

/* BadMeasure raises an error about one measure */
static void
BadMeasure(int sqlstate, RollupMeasure *m, const char *problem, const char *hint)
{
	ereport(ERROR,
			(errcode(sqlstate),
			 errmsg("rollup measure \"%s\" %s", m->name, problem),
			 errdetail("The measure is: %s", m->sql),
			 errhint("%s", hint)));
}

/*
 * MeasureIsOneExpression checks that a measure, parsed alone, is one
 * expression (not a row of several), so that it stays inside the
 * parentheses the statements put it in (as check_sql.c does for a check's
 * SQL).
 */
static void
MeasureIsOneExpression(RollupMeasure *m)
{
	char	   *text = psprintf("SELECT (\n%s\n)", m->sql);
	ErrorContextCallback errcb;
	List	   *raw;
	SelectStmt *s;

	errcb.callback = UserSqlErrorCallback;	/* check_sql.c */
	errcb.arg = text;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;
	raw = raw_parser(text, RAW_PARSE_DEFAULT);
	error_context_stack = errcb.previous;
	if (list_length(raw) == 1 && IsA(((RawStmt *) linitial(raw))->stmt, SelectStmt))
	{
		s = (SelectStmt *) ((RawStmt *) linitial(raw))->stmt;
		if (list_length(s->targetList) == 1 &&
			!IsA(((ResTarget *) linitial(s->targetList))->val, RowExpr) &&
			s->fromClause == NIL && s->whereClause == NULL &&
			s->groupClause == NIL && s->havingClause == NULL && s->windowClause == NIL &&
			s->distinctClause == NIL && s->sortClause == NIL && s->limitCount == NULL &&
			s->limitOffset == NULL && s->withClause == NULL && s->valuesLists == NIL &&
			s->intoClause == NULL && s->lockingClause == NIL && s->op == SETOP_NONE)
			return;
	}
	BadMeasure(ERRCODE_SYNTAX_ERROR, m, "must be one aggregate expression",
			   "Write one expression, e.g. \"sum(amount)\".");
}

/*
 * ResolveMeasures parses and analyses the measures as the owner, in the
 * query a full recompute runs (the parser's SQLSTATE), checks that each is
 * an aggregate that reads nothing but its cell's rows, and keeps their
 * result types.
 */
static void
ResolveMeasures(LoadPlan *plan, RollupPlan *rp)
{
	OwnerContext ctx;
	SPIPlanPtr	prepared;
	CachedPlanSource *src;
	Query	   *query;
	ListCell   *lc;
	int			resno = 1 + list_length(rp->groups);

	foreach(lc, rp->spec->measures)
		MeasureIsOneExpression(lfirst(lc));
	EnterOwnerContext(&ctx, plan->def->owner);
	prepared = SPI_prepare(RollupCellsQuery(rp->spec, plan->source_ident, rp->time_typid, "", ""), 0, NULL);
	LeaveOwnerContext(&ctx);
	if (prepared == NULL)
		elog(ERROR, "pg_pipeline could not prepare the rollup: %s", SPI_result_code_string(SPI_result));
	src = linitial(SPI_plan_get_plan_sources(prepared));
	query = linitial_node(Query, src->query_list);
	foreach(lc, rp->spec->measures)
	{
		RollupMeasure *m = lfirst(lc);
		TargetEntry *te = list_nth(query->targetList, resno++);
		Node	   *expr = (Node *) te->expr;

		if (!contain_agg_clause(expr))
			BadMeasure(ERRCODE_GROUPING_ERROR, m, "is not an aggregate",
					   "Aggregate the rows of a cell, e.g. \"sum(amount)\" or \"count(DISTINCT customer_id)\".");
		if (contain_window_function(expr))
			BadMeasure(ERRCODE_WINDOWING_ERROR, m, "must not use a window function",
					   "Use an aggregate over the cell's rows.");
		if (checkExprHasSubLink(expr))
			BadMeasure(ERRCODE_FEATURE_NOT_SUPPORTED, m, "must not contain a subquery",
					   "A cell is recomputed from its own rows: read other tables in a view that the pipeline loading the source reads.");
		if (contain_volatile_functions(expr))
			BadMeasure(ERRCODE_FEATURE_NOT_SUPPORTED, m, "must not call a volatile function",
					   "A cell recomputed twice must come out the same.");
		rp->measure_types = lappend_oid(rp->measure_types, exprType(expr));
		rp->measure_typmods = lappend_int(rp->measure_typmods, exprTypmod(expr));
	}
	SPI_freeplan(prepared);
}

/* ResolveRollup resolves the spec, the time and group columns and the measures */
static RollupPlan *
ResolveRollup(LoadPlan *plan)
{
	RollupPlan *rp = palloc0(sizeof(RollupPlan));
	PipelineDef *def = plan->def;

	rp->spec = ParseRollupSpec(def->rollup);
	if (get_rel_relkind(plan->source_relid) != RELKIND_RELATION)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("source %s of a rollup is not a table", plan->source_ident),
				 errdetail("A rollup finds the cells a change touched with triggers on its source, which only a plain table has."),
				 errhint("Roll up the table itself: the target of the pipeline that loads it, for example.")));
	rp->time_typid = TimeColumnType(def, rp->spec, plan->source_relid);
	rp->groups = ResolveGroups(rp->spec, plan->source_relid);
	ResolveMeasures(plan, rp);
	rp->dirty_table = RollupDirtyTableName(def->target_table);
	if (rp->dirty_table == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("target name \"%s\" is too long for a rollup", def->target_table),
				 errdetail("The rollup keeps its dirty cells in \"<target>" ROLLUP_DIRTY_SUFFIX "\", which must fit in %d bytes.",
						   NAMEDATALEN - 1),
				 errhint("Choose a shorter target name.")));
	rp->dirty_ident = quote_qualified_identifier(def->target_schema, rp->dirty_table);
	return rp;
}

/* TargetColumnFits checks that a target column exists and can take a value of typid */
static void
TargetColumnFits(LoadPlan *plan, const char *column, Oid typid, bool exact)
{
	AttrNumber	attnum = get_attnum(plan->target_relid, column);
	Oid			ttype;

	if (attnum <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("rollup column \"%s\" does not exist in target %s", column, plan->target_ident),
				 errdetail("A rollup's target has the columns \"%s\", then the group_by columns, then the measures.",
						   ROLLUP_BUCKET_COLUMN),
				 errhint("ALTER TABLE %s ADD COLUMN %s %s;", plan->target_ident, quote_identifier(column),
						 format_type_be(typid))));
	ttype = get_atttype(plan->target_relid, attnum);
	if (exact ? ttype != typid : !can_coerce_type(1, &typid, &ttype, COERCION_ASSIGNMENT))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("rollup column \"%s\" has type %s in target %s but the rollup computes %s",
						column, format_type_be(ttype), plan->target_ident, format_type_be(typid)),
				 errdetail("%s", exact ? "A key column of a rollup has the type of its source column."
						   : "There is no assignment cast between the types."),
				 errhint("ALTER TABLE %s ALTER COLUMN %s TYPE %s;", plan->target_ident,
						 quote_identifier(column), format_type_be(typid))));
}

/* CheckRollupTarget checks that the target has the rollup's columns */
static void
CheckRollupTarget(LoadPlan *plan, RollupPlan *rp)
{
	ListCell   *lc;
	ListCell   *tc;

	TargetColumnFits(plan, ROLLUP_BUCKET_COLUMN, rp->time_typid, true);
	foreach(lc, rp->groups)
		TargetColumnFits(plan, ((RollupGroup *) lfirst(lc))->name, ((RollupGroup *) lfirst(lc))->typid, true);
	forboth(lc, rp->spec->measures, tc, rp->measure_types)
		TargetColumnFits(plan, ((RollupMeasure *) lfirst(lc))->name, lfirst_oid(tc), false);
}

/* RefuseRowCheck refuses a row-level check on a rollup (0A000) */
void
RefuseRowCheck(PipelineDef *def, CheckDef *check)
{
	if (def->mode != LOAD_MODE_ROLLUP || !CHECK_IS_ROW_LEVEL(check->kind))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("pipeline \"%s\" in mode rollup cannot have row check \"%s\"",
					def->name, check->name),
			 errdetail("A rollup reads the changes of its source, not its rows one by one."),
			 errhint("Check the detail rows in the pipeline that loads the source, or use a set check (unique, row_count, query).")));
}

/*
 * PlanRollup completes the load plan of a pipeline in mode rollup: what it
 * aggregates, checked against the source and the target; the set checks
 * (row checks have no rows to judge: a rollup reads changes, not rows).
 */
void
PlanRollup(LoadPlan *plan)
{
	RollupPlan *rp = ResolveRollup(plan);
	ListCell   *lc;

	if (CitusTableKindOf(plan->source_relid) != CITUS_NONE ||
		CitusTableKindOf(plan->target_relid) != CITUS_NONE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("pipeline \"%s\" cannot roll up a Citus table", plan->def->name),
				 errhint("Roll up into and from local tables.")));
	CheckRollupTarget(plan, rp);
	rp->time_indexed = SourceHasIndexOn(plan->source_relid, rp->spec->time_column);
	foreach(lc, LoadChecks(plan->def->id))
	{
		CheckDef   *check = lfirst(lc);

		RefuseRowCheck(plan->def, check);
		plan->set_checks = lappend(plan->set_checks, check);
	}
	plan->rollup = rp;
}

/*
 * AppendGroupColumn appends the definition of a group_by column as the
 * source has it (type, typmod, collation; NOT NULL if asked and there),
 * for the target and the dirty-cells table (rollup_capture.c).
 */
void
AppendGroupColumn(StringInfo buf, RollupGroup *g, bool keep_not_null)
{
	appendStringInfo(buf, ", %s %s", quote_identifier(g->name),
					 format_type_extended(g->typid, g->typmod,
										  FORMAT_TYPE_TYPEMOD_GIVEN | FORMAT_TYPE_FORCE_QUALIFY));
	if (OidIsValid(g->collid) && g->collid != get_typcollation(g->typid))
		appendStringInfo(buf, " COLLATE %s", generate_collation_name(g->collid));
	if (keep_not_null && g->not_null)
		appendStringInfoString(buf, " NOT NULL");
}

/*
 * CreateRollupTarget creates the target of a rollup: the bucket and the
 * group_by columns (of the source's types) as its key, a primary key when
 * every group_by column is NOT NULL in the source, else a unique key that
 * holds NULL groups (NULLS NOT DISTINCT), then the measures, of the types
 * the full recompute's query gives them. It runs as the calling role,
 * which becomes the table's owner.
 */
void
CreateRollupTarget(PipelineDef *def, Oid source_relid)
{
	LoadPlan	plan;
	RollupPlan *rp;
	StringInfoData sql;
	StringInfoData key;
	bool		all_not_null = true;
	ListCell   *lc;
	ListCell   *tc;
	ListCell   *mc;

	memset(&plan, 0, sizeof(plan));
	plan.def = def;
	plan.source_relid = source_relid;
	plan.source_ident = RelationNameOf(source_relid);
	rp = ResolveRollup(&plan);
	initStringInfo(&sql);
	initStringInfo(&key);
	appendStringInfo(&sql, "CREATE TABLE %s (%s %s NOT NULL",
					 quote_qualified_identifier(def->target_schema, def->target_table),
					 ROLLUP_BUCKET_COLUMN, format_type_be_qualified(rp->time_typid));
	appendStringInfoString(&key, ROLLUP_BUCKET_COLUMN);
	foreach(lc, rp->groups)
	{
		RollupGroup *g = lfirst(lc);

		AppendGroupColumn(&sql, g, true);
		all_not_null &= g->not_null;
		appendStringInfo(&key, ", %s", quote_identifier(g->name));
	}
	forthree(mc, rp->spec->measures, tc, rp->measure_types, lc, rp->measure_typmods)
		appendStringInfo(&sql, ", %s %s", quote_identifier(((RollupMeasure *) lfirst(mc))->name),
						 format_type_extended(lfirst_oid(tc), lfirst_int(lc),
											  FORMAT_TYPE_TYPEMOD_GIVEN | FORMAT_TYPE_FORCE_QUALIFY));
	appendStringInfo(&sql, ", %s (%s))", all_not_null ? "PRIMARY KEY" : "UNIQUE NULLS NOT DISTINCT", key.data);
	if (SPI_execute(sql.data, false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "could not create target %s", quote_qualified_identifier(def->target_schema, def->target_table));
	def->target_created = true;
	def->target_index_pending = false;
}
