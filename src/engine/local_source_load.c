/*-------------------------------------------------------------------------
 *
 * src/engine/local_source_load.c
 *
 * Loads a window read from a local table of the coordinator into a Citus
 * distributed table (docs/citus.md, "A local source into a distributed
 * target"). Citus 13 refuses a MERGE whose source reads a local table, in
 * a subquery or a materialized CTE alike ("MERGE INTO an distributed table
 * from Postgres table is not yet supported"), but it runs an INSERT …
 * SELECT from one (the coordinator reads the rows and sends them to the
 * shards) and a DELETE or UPDATE joined with one (the local rows become an
 * intermediate result first). So the MERGE of planner.c is spelt as two
 * statements with the same effect, on the same de-duplicated window rows:
 *
 *   1. the keys flagged deleted: DELETE … USING the window (or the soft
 *      delete's UPDATE … FROM it), guarded like the MERGE's WHEN MATCHED;
 *   2. every other key: INSERT … SELECT … ON CONFLICT (key) DO UPDATE SET
 *      the non-key columns WHERE one of them differs (merge), or DO NOTHING
 *      (keyed append); a keyless append is the plain INSERT … SELECT.
 *      Citus reports the rows such an INSERT sends to the shards, not the
 *      rows it writes (a conflict that does nothing is counted), so the
 *      INSERT is a CTE that RETURNs a row per row written, and the load
 *      statement counts them: the number the counts are checked against.
 *
 * Both run in the run's transaction, under its locks, after the exact
 * counts of distributed_load.c, and together must write what they predict.
 * A window's row is either flagged or not, so no key is touched twice.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_index.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/relcache.h"

#include "pipeline/engine.h"

#include "planner_internal.h"

/* LocalTableOfSource: a base table of the source that is not a Citus table, or InvalidOid */
static Oid
LocalTableOfSource(LoadPlan *plan)
{
	ListCell   *lc;

	foreach(lc, plan->base_relids)
	{
		Oid			relid = lfirst_oid(lc);

		if (get_rel_relkind(relid) != RELKIND_VIEW && CitusTableKindOf(relid) == CITUS_NONE)
			return relid;
	}
	return InvalidOid;
}

/*
 * TargetHasKeyIndex: the target has a valid, immediate, non-partial unique
 * index on exactly the key columns, which ON CONFLICT (key) needs.
 */
static bool
TargetHasKeyIndex(LoadPlan *plan)
{
	Relation	rel = table_open(plan->target_relid, AccessShareLock);
	List	   *indexes = RelationGetIndexList(rel);
	int			nkeys = 0;
	bool		found = false;
	ListCell   *lc;

	foreach(lc, plan->columns)
		nkeys += ((LoadColumn *) lfirst(lc))->is_key ? 1 : 0;
	foreach(lc, indexes)
	{
		Relation	index = index_open(lfirst_oid(lc), AccessShareLock);
		Form_pg_index form = index->rd_index;
		bool		matches = form->indisunique && form->indimmediate && form->indisvalid &&
			form->indnkeyatts == nkeys &&
			heap_attisnull(index->rd_indextuple, Anum_pg_index_indpred, NULL) &&
			heap_attisnull(index->rd_indextuple, Anum_pg_index_indexprs, NULL);

		for (int i = 0; matches && i < nkeys; i++)
		{
			char	   *att = get_attname(plan->target_relid, form->indkey.values[i], true);
			ListCell   *k;
			bool		is_key = false;

			foreach(k, plan->columns)
				is_key |= att != NULL && ((LoadColumn *) lfirst(k))->is_key &&
					strcmp(att, ((LoadColumn *) lfirst(k))->name) == 0;
			matches = is_key;
		}
		index_close(index, AccessShareLock);
		if (matches)
		{
			found = true;
			break;
		}
	}
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * CheckLocalSourcePlan marks a plan into a distributed target whose source
 * reads a local table, and refuses (0A000) what the route of this file
 * cannot load: full mode (Citus cannot run the vanished keys' DELETE, a
 * NOT EXISTS correlated with a local table), a history (its MERGE has no
 * such spelling here), and a keyed load into a target without a unique
 * index on the key (ON CONFLICT needs one).
 */
void
CheckLocalSourcePlan(LoadPlan *plan)
{
	Oid			local = LocalTableOfSource(plan);
	const char *why = NULL;
	const char *hint = NULL;

	plan->local_source = OidIsValid(local);
	if (!plan->local_source)
		return;
	if (plan->def->mode == LOAD_MODE_FULL)
	{
		why = "Mode full deletes the target's vanished keys with a NOT EXISTS over the source, which Citus cannot run against a local table.";
		hint = "Distribute the staging table colocated with the target: SELECT create_distributed_table(%s, '<key column>', colocate_with => %s); or make it a reference table with create_reference_table.";
	}
	else if (plan->def->mode == LOAD_MODE_SNAPSHOT)
	{
		why = "A history is loaded with a MERGE, which Citus cannot run from a local table.";
		hint = "Distribute the staging table colocated with the target: SELECT create_distributed_table(%s, '<key column>', colocate_with => %s); or make it a reference table with create_reference_table.";
	}
	else if (plan->def->unique_key != NIL && !TargetHasKeyIndex(plan))
	{
		why = "A window from a local table is loaded with INSERT … ON CONFLICT on the unique key, which needs a unique index on exactly the key columns of the target.";
		hint = "Add a unique index on the key to the target (it must include the distribution column), or distribute the staging table colocated with the target (%s, colocate_with => %s).";
	}
	if (why == NULL)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("source %s reads a local table, and target %s is a Citus distributed table",
					plan->source_ident, plan->target_ident),
			 errdetail("Source %s reads %s, a table of the coordinator only. %s",
					   plan->source_ident, RelationNameOf(local), why),
			 errhint(hint, quote_literal_cstr(RelationNameOf(local)),
					 quote_literal_cstr(plan->target_ident))));
}

/* AppendWindow appends the MERGE's source rows as a FROM item: (…) AS s */
static void
AppendWindow(StringInfo buf, LoadPlan *plan, bool has_lower, bool has_upper)
{
	appendStringInfoChar(buf, '(');
	AppendSourceRows(buf, plan, has_lower, has_upper);
	appendStringInfoString(buf, ") AS s");
}

/*
 * BuildFlaggedStep builds the statement that applies the window's rows
 * flagged deleted whose key is in the target, as the MERGE's WHEN MATCHED
 * AND flagged actions do: DELETE, or the soft delete's UPDATE (the flag,
 * and the tombstone's incremental value).
 */
static char *
BuildFlaggedStep(LoadPlan *plan, bool has_lower, bool has_upper)
{
	StringInfoData buf;
	const char *del = quote_identifier(plan->delete_flag->name);

	initStringInfo(&buf);
	if (plan->def->soft_delete)
	{
		appendStringInfo(&buf, "UPDATE %s AS t SET %s = true", plan->target_ident, del);
		if (plan->incremental && !plan->incremental->is_key && plan->incremental != plan->delete_flag)
			appendStringInfo(&buf, ", %s = %s", quote_identifier(plan->incremental->name),
							 Col("s", plan->incremental->name));
		appendStringInfoString(&buf, " FROM ");
	}
	else
		appendStringInfo(&buf, "DELETE FROM %s AS t USING ", plan->target_ident);
	AppendWindow(&buf, plan, has_lower, has_upper);
	appendStringInfoString(&buf, " WHERE ");
	AppendKeyJoin(&buf, plan, "t", "s", false);
	appendStringInfo(&buf, " AND s.%s IS TRUE%s", del, KeepNewerGuard(plan));
	if (plan->def->soft_delete)
		appendStringInfo(&buf, " AND t.%s IS NOT TRUE", del);
	return buf.data;
}

/*
 * AppendConflictAction appends what ON CONFLICT does with a key already in
 * the target: in merge mode the MERGE's update (every non-key column, only
 * when one other than the incremental column differs, and not over a newer
 * version under keep_newer), else nothing.
 */
static void
AppendConflictAction(StringInfo buf, LoadPlan *plan)
{
	ListCell   *lc;
	bool		first = true;

	appendStringInfoString(buf, " ON CONFLICT (");
	foreach(lc, plan->columns)
	{
		LoadColumn *col = lfirst(lc);

		if (!col->is_key)
			continue;
		appendStringInfo(buf, "%s%s", first ? "" : ", ", quote_identifier(col->name));
		first = false;
	}
	appendStringInfoChar(buf, ')');
	first = true;
	if (plan->def->mode == LOAD_MODE_APPEND)
	{
		appendStringInfoString(buf, " DO NOTHING");
		return;
	}
	foreach(lc, plan->columns)
	{
		LoadColumn *col = lfirst(lc);

		first &= col->is_key || col == plan->incremental;
	}
	if (first)
	{
		appendStringInfoString(buf, " DO NOTHING");	/* nothing but key and watermark */
		return;
	}
	appendStringInfoString(buf, " DO UPDATE SET ");
	first = true;
	foreach(lc, plan->columns)
	{
		LoadColumn *col = lfirst(lc);

		if (col->is_key)
			continue;
		appendStringInfo(buf, "%s%s = %s", first ? "" : ", ", quote_identifier(col->name),
						 Col("excluded", col->name));
		first = false;
	}
	appendStringInfoString(buf, " WHERE ");
	if (plan->keep_newer && plan->incremental)
		appendStringInfo(buf, "(%s IS NULL OR %s <= %s) AND ", Col("t", plan->incremental->name),
						 Col("t", plan->incremental->name), Col("excluded", plan->incremental->name));
	appendStringInfoChar(buf, '(');
	first = true;
	foreach(lc, plan->columns)
	{
		LoadColumn *col = lfirst(lc);

		if (col->is_key || col == plan->incremental)
			continue;
		if (!first)
			appendStringInfoString(buf, " OR ");
		AppendDistinct(buf, col, NULL, Col("excluded", col->name));
		first = false;
	}
	appendStringInfoChar(buf, ')');
}

/*
 * BuildLocalSourceStatements fills stmts with the statements of a load
 * step from a local source into a distributed target (plan->local_source)
 * with a unique key: the flagged rows' step, and the INSERT … SELECT … ON
 * CONFLICT of the others, with the MERGE's effect and counts (see the
 * header). A keyless append's plain INSERT … SELECT needs no other spelling.
 */
void
BuildLocalSourceStatements(LoadPlan *plan, LoadStatements *stmts, bool has_lower, bool has_upper)
{
	StringInfoData buf;
	ListCell   *lc;
	bool		override = false;

	stmts->load_is_merge = true;	/* counted as the MERGE it stands for */
	stmts->counts_kept = plan->needs_dedup;
	if (plan->def->mode != LOAD_MODE_APPEND && plan->delete_flag)
		stmts->flagged = BuildFlaggedStep(plan, has_lower, has_upper);
	foreach(lc, plan->columns)
		override |= ((LoadColumn *) lfirst(lc))->identity_always;
	initStringInfo(&buf);
	appendStringInfo(&buf, "WITH i AS (INSERT INTO %s AS t (", plan->target_ident);
	foreach(lc, plan->columns)
		appendStringInfo(&buf, "%s%s", lc == list_head(plan->columns) ? "" : ", ",
						 quote_identifier(((LoadColumn *) lfirst(lc))->name));
	appendStringInfoString(&buf, override ? ") OVERRIDING SYSTEM VALUE SELECT " : ") SELECT ");
	foreach(lc, plan->columns)
		appendStringInfo(&buf, "%s%s", lc == list_head(plan->columns) ? "" : ", ",
						 Col("s", ((LoadColumn *) lfirst(lc))->name));
	appendStringInfoString(&buf, " FROM ");
	AppendWindow(&buf, plan, has_lower, has_upper);
	if (plan->delete_flag)
		appendStringInfo(&buf, " WHERE s.%s IS NOT TRUE", quote_identifier(plan->delete_flag->name));
	AppendConflictAction(&buf, plan);
	appendStringInfoString(&buf, " RETURNING 1) SELECT pg_catalog.count(*) FROM i");
	stmts->load = buf.data;
}
