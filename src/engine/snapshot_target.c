/*-------------------------------------------------------------------------
 *
 * src/engine/snapshot_target.c
 *
 * The target of mode snapshot: a history that keeps every version of each
 * key, with the history columns valid_from, valid_to (NULL for the current
 * version) and is_current, or the names snapshot_columns gives them
 * (catalog/snapshot_columns.c). This file creates such a target, resolves
 * what a load needs of it (PlanSnapshot, part of the load plan: every
 * mistake with its SQLSTATE, at registration and at every run), and warns
 * at registration when an existing one lacks the constraints that keep a
 * history sound. snapshot_load.c builds the statement that loads it.
 *
 * A target the pipeline creates gets, besides the source's columns:
 *   PRIMARY KEY (key, valid_from);
 *   CHECK (valid_from < valid_to) and CHECK (is_current = (valid_to IS NULL));
 *   EXCLUDE USING gist (key WITH =, range(valid_from, valid_to) WITH &&)
 *     DEFERRABLE: no two versions of a key overlap, which compares the key
 *     in a GiST index, so btree_gist must be installed (55000 otherwise);
 *   EXCLUDE USING btree (key WITH =) WHERE (is_current) DEFERRABLE: one
 *     current version per key, a unique partial index in effect.
 * Both exclusion constraints are DEFERRABLE (initially immediate), so that
 * they are checked at the end of the load statement, not row by row: the
 * MERGE opens a key's new version and closes its old one in whatever order
 * it meets them. For the same reason an existing target with a unique index
 * (not deferrable) on the key columns alone is refused (55000).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/sysattr.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/dependency.h"
#include "catalog/index.h"
#include "catalog/pg_am.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parse_coerce.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "pipeline/engine.h"
#include "planner_internal.h"

static void RefuseHistoryName(PipelineDef *def, const SnapshotColumns *names, const char *column);

/* RangeConstructor names the range type's constructor for a history's valid_from type */
static const char *
RangeConstructor(Oid typid)
{
	switch (getBaseType(typid))
	{
		case TIMESTAMPTZOID:
			return "tstzrange";
		case TIMESTAMPOID:
			return "tsrange";
		case DATEOID:
			return "daterange";
		case INT8OID:
			return "int8range";
		default:
			return "int4range";	/* integer and smallint */
	}
}

/* AppendKeyList appends the key columns, each followed by suffix */
static void
AppendKeyList(StringInfo buf, PipelineDef *def, const char *suffix)
{
	ListCell   *lc;

	foreach(lc, def->unique_key)
		appendStringInfo(buf, "%s%s%s", foreach_current_index(lc) > 0 ? ", " : "",
						 quote_identifier(lfirst(lc)), suffix);
}

/*
 * RequireGistKeys checks that every key column of a target created for def
 * can be compared in the GiST index of the overlap constraint: scalar
 * types need btree_gist (55000 with the command that installs it), and a
 * type it does not cover is refused (0A000).
 */
static void
RequireGistKeys(PipelineDef *def, Oid source_relid)
{
	ListCell   *lc;

	foreach(lc, def->unique_key)
	{
		Oid			typid;
		int32		typmod;

		(void) CreatedColumnType(def, source_relid, lfirst(lc), &typid, &typmod);
		if (OidIsValid(GetDefaultOpClass(typid, GIST_AM_OID)))
			continue;
		if (!OidIsValid(get_extension_oid("btree_gist", true)))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("mode snapshot needs the extension btree_gist"),
					 errdetail("The history's exclusion constraint compares key column \"%s\" (%s) in a GiST index.",
							   (char *) lfirst(lc), format_type_be(typid)),
					 errhint("CREATE EXTENSION btree_gist;")));
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("key column \"%s\" of type %s has no GiST operator class",
						(char *) lfirst(lc), format_type_be(typid)),
				 errdetail("The history's exclusion constraint compares the key in a GiST index."),
				 errhint("Use a key of a scalar type, or create the target yourself (docs/modeling.md).")));
	}
}

/*
 * AppendSnapshotTargetDdl appends to the CREATE TABLE of a snapshot
 * pipeline's target its history columns and constraints (see the header).
 * valid_from has the type the target's incremental column has, or
 * timestamptz without one.
 */
void
AppendSnapshotTargetDdl(StringInfo sql, PipelineDef *def, Oid source_relid)
{
	SnapshotColumns names;
	Oid			typid = TIMESTAMPTZOID;
	int32		typmod = -1;
	Relation	source;
	char	   *type;
	const char *vf;
	const char *vt;
	const char *cur;

	ParseSnapshotColumns(def->snapshot_columns, &names);
	vf = quote_identifier(names.valid_from);
	vt = quote_identifier(names.valid_to);
	cur = quote_identifier(names.is_current);
	if (def->incremental_column)
		(void) CreatedColumnType(def, source_relid, def->incremental_column, &typid, &typmod);
	source = table_open(source_relid, AccessShareLock);
	for (int i = 0; i < RelationGetDescr(source)->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(RelationGetDescr(source), i);

		if (!att->attisdropped)
			RefuseHistoryName(def, &names, NameStr(att->attname));
	}
	table_close(source, AccessShareLock);
	RequireGistKeys(def, source_relid);
	type = format_type_extended(typid, typmod, FORMAT_TYPE_TYPEMOD_GIVEN | FORMAT_TYPE_FORCE_QUALIFY);
	appendStringInfo(sql, ", %s %s NOT NULL, %s %s, %s pg_catalog.bool NOT NULL", vf, type, vt, type, cur);
	appendStringInfoString(sql, ", PRIMARY KEY (");
	AppendKeyList(sql, def, "");
	appendStringInfo(sql, ", %s)", vf);
	appendStringInfo(sql, ", CHECK (%s OPERATOR(pg_catalog.<) %s)", vf, vt);
	appendStringInfo(sql, ", CHECK (%s OPERATOR(pg_catalog.=) (%s IS NULL))", cur, vt);
	appendStringInfoString(sql, ", EXCLUDE USING gist (");
	AppendKeyList(sql, def, " WITH OPERATOR(pg_catalog.=)");
	appendStringInfo(sql, ", pg_catalog.%s(%s, %s) WITH OPERATOR(pg_catalog.&&)) DEFERRABLE",
					 RangeConstructor(typid), vf, vt);
	appendStringInfoString(sql, ", EXCLUDE USING btree (");
	AppendKeyList(sql, def, " WITH OPERATOR(pg_catalog.=)");
	appendStringInfo(sql, ") WHERE (%s) DEFERRABLE", cur);
}

/*
 * RefuseHistoryName refuses (42701) a source column that has the name of a
 * history column: the target would need it twice.
 */
static void
RefuseHistoryName(PipelineDef *def, const SnapshotColumns *names, const char *column)
{
	const char *key = strcmp(column, names->valid_from) == 0 ? "valid_from"
		: strcmp(column, names->valid_to) == 0 ? "valid_to" : "is_current";

	if (!IsSnapshotHistoryColumn(names, column))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_DUPLICATE_COLUMN),
			 errmsg("source column \"%s\" has the name of a history column", column),
			 errdetail("Pipeline \"%s\" keeps the validity of its versions in \"%s\", \"%s\" and \"%s\".",
					   def->name, names->valid_from, names->valid_to, names->is_current),
			 errhint("Name the history columns otherwise with snapshot_columns, e.g. {\"%s\": \"history_%s\"}.",
					 key, key)));
}

/*
 * RefuseSnapshotFeatures refuses (0A000) a Citus target, which a history
 * cannot be loaded into (a distributed MERGE runs none of the functions the
 * statement counts with), and (42701) a loaded column or the lineage
 * column that has the name of a history column.
 */
static void
RefuseSnapshotFeatures(LoadPlan *plan, const SnapshotColumns *names)
{
	ListCell   *lc;

	if (plan->distributed)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("mode snapshot is not supported on %s", CitusPlanSubject(plan)),
				 errhint("Keep the history in a table of the coordinator, loaded from a local stage.")));
	foreach(lc, plan->columns)
		RefuseHistoryName(plan->def, names, ((LoadColumn *) lfirst(lc))->name);
	if (plan->def->lineage_column && IsSnapshotHistoryColumn(names, plan->def->lineage_column))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_COLUMN),
				 errmsg("lineage column \"%s\" has the name of a history column", plan->def->lineage_column),
				 errhint("Name the history columns otherwise with snapshot_columns.")));
}

/*
 * CheckHistoryColumn checks that the target has a history column of the
 * type it must have (42703, 42804), so that no run fails on it later.
 */
static void
CheckHistoryColumn(LoadPlan *plan, const char *column, Oid typid, int32 typmod, bool not_null)
{
	AttrNumber	attnum = get_attnum(plan->target_relid, column);
	char	   *type = format_type_with_typemod(typid, typmod);

	if (attnum <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("target %s has no history column \"%s\"", plan->target_ident, column),
				 errdetail("Pipeline \"%s\" has mode snapshot: its target keeps every version of a key.",
						   plan->def->name),
				 errhint("ALTER TABLE %s ADD COLUMN %s %s%s;", plan->target_ident, quote_identifier(column),
						 type, not_null ? " NOT NULL" : "")));
	if (getBaseType(get_atttype(plan->target_relid, attnum)) != getBaseType(typid))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("history column \"%s\" of target %s has type %s, not %s", column,
						plan->target_ident, format_type_be(get_atttype(plan->target_relid, attnum)),
						format_type_be(typid)),
				 errdetail("The validity of a version is %s.",
						   plan->incremental ? "a value of the pipeline's incremental column" : "a time"),
				 errhint("ALTER TABLE %s ALTER COLUMN %s TYPE %s;", plan->target_ident,
						 quote_identifier(column), type)));
}

/*
 * CheckColumnsOf resolves the columns a change of which makes a new
 * version: those of snapshot_check_columns (each loaded, not a key column:
 * 42703, 22023), else every loaded column but the key, the incremental
 * column and the delete flag.
 */
static List *
CheckColumnsOf(LoadPlan *plan)
{
	List	   *columns = NIL;
	ListCell   *lc;

	if (plan->def->snapshot_check_columns == NIL)
	{
		foreach(lc, plan->columns)
		{
			LoadColumn *col = lfirst(lc);

			if (!col->is_key && col != plan->incremental && col != plan->delete_flag)
				columns = lappend(columns, col);
		}
		return columns;
	}
	foreach(lc, plan->def->snapshot_check_columns)
	{
		LoadColumn *col = FindLoadColumn(plan->columns, lfirst(lc));

		if (col == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("snapshot check column \"%s\" is not a column the pipeline loads", (char *) lfirst(lc)),
					 errdetail("Source %s, target %s.", plan->source_ident, plan->target_ident),
					 errhint("Name columns of the source in snapshot_check_columns.")));
		if (col->is_key)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("snapshot check column \"%s\" is a key column", col->name),
					 errdetail("A key's versions always share its key."),
					 errhint("Leave the key out of snapshot_check_columns.")));
		columns = lappend(columns, col);
	}
	return columns;
}

/*
 * OldValueCasts spells, per loaded column, the cast of the target's value
 * to the loaded type, which the load compares versions in (42804 when the
 * target's type cannot be cast back).
 */
static List *
OldValueCasts(LoadPlan *plan)
{
	List	   *casts = NIL;
	ListCell   *lc;

	foreach(lc, plan->columns)
	{
		LoadColumn *col = lfirst(lc);
		Oid			typid = get_atttype(plan->target_relid, get_attnum(plan->target_relid, col->name));

		if (typid == col->typid)
		{
			casts = lappend(casts, "");
			continue;
		}
		if (!can_coerce_type(1, &typid, &col->typid, COERCION_EXPLICIT))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column \"%s\" of target %s has type %s, which cannot be cast to %s",
							col->name, plan->target_ident, format_type_be(typid), format_type_be(col->typid)),
					 errdetail("Mode snapshot compares the versions a history holds with the rows it loads."),
					 errhint("ALTER TABLE %s ALTER COLUMN %s TYPE %s;", plan->target_ident,
							 quote_identifier(col->name), format_type_with_typemod(col->typid, col->typmod))));
		casts = lappend(casts, psprintf("::%s", format_type_extended(col->typid, col->typmod,
																	 FORMAT_TYPE_TYPEMOD_GIVEN | FORMAT_TYPE_FORCE_QUALIFY)));
	}
	return casts;
}

/*
 * RefuseKeyOnlyUniqueIndexes refuses (55000) a target with a unique index,
 * checked row by row, on key columns alone (a merge pipeline's primary key,
 * or a unique index on the key of the current versions): it would refuse
 * a key's second version, or a key's new version before the same statement
 * closed its old one.
 */
static void
RefuseKeyOnlyUniqueIndexes(LoadPlan *plan)
{
	Relation	rel = table_open(plan->target_relid, AccessShareLock);
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;

	table_close(rel, AccessShareLock);
	foreach(lc, indexes)
	{
		Oid			indexid = lfirst_oid(lc);
		HeapTuple	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(indexid));
		Form_pg_index index;
		bool		refused;
		Oid			constraint;

		if (!HeapTupleIsValid(tup))
			continue;
		index = (Form_pg_index) GETSTRUCT(tup);
		refused = index->indisunique && index->indimmediate && IndexColumnsAreKey(plan, index);
		ReleaseSysCache(tup);
		if (!refused)
			continue;
		constraint = get_index_constraint(indexid);
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("target %s has a unique index on its key alone", plan->target_ident),
				 errdetail("Index %s allows one row per key, checked row by row; a history keeps several versions of a key and changes them in one statement.",
						   quote_identifier(get_rel_name(indexid))),
				 OidIsValid(constraint)
				 ? errhint("ALTER TABLE %s DROP CONSTRAINT %s; then see docs/modeling.md for the constraints of a history.",
						   plan->target_ident, quote_identifier(get_constraint_name(constraint)))
				 : errhint("DROP INDEX %s; then see docs/modeling.md for the constraints of a history.",
						   quote_qualified_identifier(get_namespace_name(get_rel_namespace(indexid)),
													  get_rel_name(indexid)))));
	}
}

/*
 * PlanSnapshot resolves what a snapshot pipeline's load needs of its
 * history (the plan's snapshot; nothing for other modes), refusing a
 * target or a definition it could not load.
 */
void
PlanSnapshot(LoadPlan *plan)
{
	SnapshotPlan *sp;

	if (plan->def->mode != LOAD_MODE_SNAPSHOT)
		return;
	sp = palloc0(sizeof(SnapshotPlan));
	ParseSnapshotColumns(plan->def->snapshot_columns, &sp->names);
	RefuseSnapshotFeatures(plan, &sp->names);
	sp->stamped = plan->incremental == NULL;
	sp->stamp_typid = sp->stamped ? TIMESTAMPTZOID : plan->incremental->typid;
	sp->stamp_typmod = sp->stamped ? -1 : plan->incremental->typmod;
	CheckHistoryColumn(plan, sp->names.valid_from, sp->stamp_typid, sp->stamp_typmod, true);
	CheckHistoryColumn(plan, sp->names.valid_to, sp->stamp_typid, sp->stamp_typmod, false);
	CheckHistoryColumn(plan, sp->names.is_current, BOOLOID, -1, true);
	sp->check_columns = CheckColumnsOf(plan);
	sp->old_casts = OldValueCasts(plan);
	RefuseKeyOnlyUniqueIndexes(plan);
	plan->snapshot = sp;
}

/* IndexUses tells whether an index has (or its expressions read) a column */
static bool
IndexUses(Relation index, AttrNumber attnum)
{
	Bitmapset  *attrs = NULL;

	for (int k = 0; k < index->rd_index->indnkeyatts; k++)
		if (index->rd_index->indkey.values[k] == attnum)
			return true;
	pull_varattnos((Node *) RelationGetIndexExpressions(index), 1, &attrs);
	return bms_is_member(attnum - FirstLowInvalidHeapAttributeNumber, attrs);
}

/*
 * GuardsHistory tells which guard of a history an index of its target is:
 * an exclusion constraint over every key column and both validity columns
 * (no overlap), or a unique or exclusion index on the key columns alone,
 * partial on is_current (one current version per key).
 */
static void
GuardsHistory(LoadPlan *plan, Relation index, bool *no_overlap, bool *one_current)
{
	ListCell   *lc;
	bool		all_keys = true;
	SnapshotColumns *names = &plan->snapshot->names;

	foreach(lc, plan->def->unique_key)
		all_keys &= IndexUses(index, get_attnum(plan->target_relid, lfirst(lc)));
	if (!all_keys)
		return;
	if (index->rd_index->indisexclusion &&
		IndexUses(index, get_attnum(plan->target_relid, names->valid_from)) &&
		IndexUses(index, get_attnum(plan->target_relid, names->valid_to)))
		*no_overlap = true;
	if ((index->rd_index->indisunique || index->rd_index->indisexclusion) &&
		index->rd_index->indnkeyatts == list_length(plan->def->unique_key) &&
		RelationGetIndexPredicate(index) != NIL)
		*one_current = true;
}

/*
 * WarnSnapshotTarget warns, at registration, when an existing target does
 * not itself refuse overlapping versions or two current versions of a key:
 * runs keep the history sound either way, but nothing else that writes the
 * table is held to it. The hint is the constraint to add.
 */
void
WarnSnapshotTarget(LoadPlan *plan)
{
	Relation	rel = table_open(plan->target_relid, AccessShareLock);
	List	   *indexes = RelationGetIndexList(rel);
	bool		no_overlap = false;
	bool		one_current = false;
	ListCell   *lc;
	StringInfoData keys;

	table_close(rel, AccessShareLock);
	foreach(lc, indexes)
	{
		Relation	index = index_open(lfirst_oid(lc), AccessShareLock);

		GuardsHistory(plan, index, &no_overlap, &one_current);
		index_close(index, AccessShareLock);
	}
	initStringInfo(&keys);
	AppendKeyList(&keys, plan->def, " WITH =");
	if (!no_overlap)
		ereport(WARNING,
				(errmsg("target %s does not refuse overlapping versions of a key", plan->target_ident),
				 errdetail("It has no exclusion constraint over the key and (%s, %s).",
						   plan->snapshot->names.valid_from, plan->snapshot->names.valid_to),
				 errhint("CREATE EXTENSION IF NOT EXISTS btree_gist; ALTER TABLE %s ADD EXCLUDE USING gist (%s, %s(%s, %s) WITH &&) DEFERRABLE;",
						 plan->target_ident, keys.data, RangeConstructor(plan->snapshot->stamp_typid),
						 quote_identifier(plan->snapshot->names.valid_from),
						 quote_identifier(plan->snapshot->names.valid_to))));
	if (!one_current)
		ereport(WARNING,
				(errmsg("target %s does not refuse two current versions of a key", plan->target_ident),
				 errhint("ALTER TABLE %s ADD EXCLUDE USING btree (%s) WHERE (%s) DEFERRABLE;",
						 plan->target_ident, keys.data, quote_identifier(plan->snapshot->names.is_current))));
}
