/*-------------------------------------------------------------------------
 *
 * src/engine/local_source_load.c
 *
 * Loads a window across Citus's line between local and Citus tables
 * (docs/citus.md, "Local and Citus tables in one pipeline"): from a local
 * table of the coordinator into a distributed table, or from Citus tables
 * into a local one. Citus 13 refuses both MERGEs, in a subquery or a
 * materialized CTE alike ("MERGE INTO an distributed table from Postgres
 * table is not yet supported", "MERGE involving repartition of rows is
 * supported only if the target is distributed"), but it runs an INSERT …
 * SELECT either way, and a DELETE or UPDATE joined with a materialized CTE
 * of the other side (computed first, as an intermediate result). So the
 * MERGE of planner.c is spelt as two statements with the same effect, on
 * the same de-duplicated window rows:
 *
 *   1. the keys flagged deleted: WITH s AS MATERIALIZED (window) DELETE …
 *      USING s (or the soft delete's UPDATE … FROM s), guarded like the
 *      MERGE's WHEN MATCHED;
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
			heap_attisnull(index->rd_indextuple, Anum_pg_index_indexprs, NULL) &&
			IndexColumnsAreKey(plan, form);

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
 * CheckUpsertPlan marks a plan whose load Citus cannot run as a MERGE: a
 * source reading a local table into a distributed target (citus_target),
 * or a source reading Citus tables into a local target; and refuses
 * (0A000) what the route of this file cannot load: full mode (Citus
 * cannot run the vanished keys' DELETE, a NOT EXISTS correlated across a
 * local and a Citus table), a history (its MERGE has no such spelling
 * here), and a keyed load into a target without a unique index on the key
 * (ON CONFLICT needs one).
 */
void
CheckUpsertPlan(LoadPlan *plan, bool citus_target)
{
	Oid			local = citus_target ? LocalTableOfSource(plan) : InvalidOid;
	const char *why = NULL;
	char	   *hint;

	plan->upsert = citus_target ? OidIsValid(local) : true;
	if (!plan->upsert)
		return;
	if (plan->def->mode == LOAD_MODE_FULL)
		why = "Mode full deletes the target's vanished keys with a NOT EXISTS over the source, which Citus cannot run between a local and a Citus table.";
	else if (plan->def->mode == LOAD_MODE_SNAPSHOT)
		why = "A history is loaded with a MERGE, which Citus cannot run between a local and a Citus table.";
	else if (plan->def->unique_key != NIL && !TargetHasKeyIndex(plan))
		why = "The window is then loaded with INSERT … ON CONFLICT on the unique key, which needs a unique index on exactly the key columns of the target.";
	if (why == NULL)
		return;
	if (!citus_target)
		hint = psprintf("Load into a distributed target (create_target creates one over a Citus source), or add a unique index on the key to the target when that is what is missing.");
	else if (plan->def->mode != LOAD_MODE_FULL && plan->def->mode != LOAD_MODE_SNAPSHOT)
		hint = psprintf("Add a unique index on the key to the target (it must include the distribution column), or distribute the staging table colocated with the target: SELECT create_distributed_table(%s, '<key column>', colocate_with => %s);",
						quote_literal_cstr(RelationNameOf(local)), quote_literal_cstr(plan->target_ident));
	else
		hint = psprintf("Distribute the staging table colocated with the target: SELECT create_distributed_table(%s, '<key column>', colocate_with => %s); or make it a reference table with create_reference_table.",
						quote_literal_cstr(RelationNameOf(local)), quote_literal_cstr(plan->target_ident));
	if (citus_target)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("source %s reads a local table, and target %s is a Citus distributed table",
						plan->source_ident, plan->target_ident),
				 errdetail("Source %s reads %s, a table of the coordinator only, so Citus cannot MERGE from it. %s",
						   plan->source_ident, RelationNameOf(local), why),
				 errhint("%s", hint)));
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("source %s reads Citus tables, and target %s is a local table",
					plan->source_ident, plan->target_ident),
			 errdetail("Citus cannot MERGE from a Citus table into a local one. %s", why),
			 errhint("%s", hint)));
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
 * and the tombstone's incremental value). The window is a materialized
 * CTE, which Citus computes first (a local DELETE or UPDATE joined with a
 * Citus table directly is refused: "relation … is not distributed").
 */
static char *
BuildFlaggedStep(LoadPlan *plan, bool has_lower, bool has_upper)
{
	StringInfoData buf;
	const char *del = quote_identifier(plan->delete_flag->name);

	initStringInfo(&buf);
	appendStringInfoString(&buf, "WITH s AS MATERIALIZED (");
	AppendSourceRows(&buf, plan, has_lower, has_upper);
	appendStringInfoString(&buf, ") ");
	if (plan->def->soft_delete)
	{
		appendStringInfo(&buf, "UPDATE %s AS t SET %s = true", plan->target_ident, del);
		if (plan->incremental && !plan->incremental->is_key && plan->incremental != plan->delete_flag)
			appendStringInfo(&buf, ", %s = %s", quote_identifier(plan->incremental->name),
							 Col("s", plan->incremental->name));
		appendStringInfoString(&buf, " FROM s WHERE ");
	}
	else
		appendStringInfo(&buf, "DELETE FROM %s AS t USING s WHERE ", plan->target_ident);
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
 * step across local and Citus tables (plan->upsert) with a unique key: the flagged rows' step, and the INSERT … SELECT … ON
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
