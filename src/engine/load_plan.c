/*-------------------------------------------------------------------------
 *
 * src/engine/load_plan.c
 *
 * A definition resolved against the catalogs of now into the plan a run
 * executes: the source and target (checked for kind, persistence and what
 * the source reads), the columns a run loads with their types, operators
 * and compatibility (42804 when the target's types do not fit), whether the
 * source can hold duplicate keys; and the creation of a target table from
 * its source. Everything a user can get wrong is reported here, at
 * registration and again at every run.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/table.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "nodes/nodeFuncs.h"
#include "parser/parse_coerce.h"
#include "parser/parse_oper.h"
#include "rewrite/rewriteHandler.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/ruleutils.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "pipeline/engine.h"
#include "planner_internal.h"
#include "schema_drift.h"

/* TypeDescription spells a column's type for messages */
static char *
TypeDescription(Oid typid)
{
	return format_type_be(typid);
}

/*
 * LookupSourceColumn finds a named column of the source, raising 42703 with
 * the role the column was meant to play when it does not exist.
 */
AttrNumber
LookupSourceColumn(Oid relid, const char *column, const char *role, Oid *typid)
{
	AttrNumber	attnum = get_attnum(relid, column);
	int32		typmod;
	Oid			collid;

	if (attnum == InvalidAttrNumber || attnum < 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("%s column \"%s\" does not exist in source %s", role, column,
						quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
												   get_rel_name(relid))),
				 errhint("Column names are matched exactly, including case.")));
	get_atttypetypmodcoll(relid, attnum, typid, &typmod, &collid);
	return attnum;
}

/*
 * ValidateSourceColumns checks that the key, incremental, delete and
 * partition columns exist in the source and have usable types.
 */
static void
ValidateSourceColumns(PipelineDef *def, Oid source_relid)
{
	ListCell   *lc;
	Oid			typid;

	foreach(lc, def->unique_key)
	{
		TypeCacheEntry *tc;

		LookupSourceColumn(source_relid, lfirst(lc), "unique key", &typid);
		tc = lookup_type_cache(typid, TYPECACHE_EQ_OPR | TYPECACHE_BTREE_OPFAMILY);
		if (!OidIsValid(tc->eq_opr) || !OidIsValid(tc->btree_opf))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("unique key column \"%s\" has type %s, which cannot be compared",
							(char *) lfirst(lc), TypeDescription(typid)),
					 errdetail("A key column needs an equality operator and a default btree operator class."),
					 errhint("Use a column of a comparable type, or a view that casts it.")));
	}
	if (def->incremental_column)
	{
		LookupSourceColumn(source_relid, def->incremental_column, "incremental", &typid);
		if (!IsIncrementalType(typid))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("incremental column \"%s\" has type %s", def->incremental_column,
							TypeDescription(typid)),
					 errdetail("An incremental column must be timestamp, timestamptz, date, smallint, integer or bigint."),
					 errhint("Use a view that casts the column, or load without an incremental column.")));
		if (def->lookback && !IsTimeType(typid))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("lookback needs a time incremental column"),
					 errdetail("Incremental column \"%s\" has type %s.", def->incremental_column,
							   TypeDescription(typid)),
					 errhint("Remove the lookback; integer columns fed by a sequence need none.")));
	}
	if (def->delete_column)
	{
		LookupSourceColumn(source_relid, def->delete_column, "delete", &typid);
		if (getBaseType(typid) != BOOLOID)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("delete column \"%s\" has type %s", def->delete_column,
							TypeDescription(typid)),
					 errdetail("A delete column must be boolean: true marks the key as deleted."),
					 errhint("Use a view that computes a boolean flag.")));
	}
	if (def->partition_column)
		LookupSourceColumn(source_relid, def->partition_column, "partition", &typid);
	ValidateMasks(def, source_relid);
}

/* AttributeIdentity returns a column's attidentity ('' when not identity) */
static char
AttributeIdentity(Oid relid, AttrNumber attnum)
{
	HeapTuple	tup = SearchSysCache2(ATTNUM, ObjectIdGetDatum(relid), Int16GetDatum(attnum));
	char		identity;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for attribute %d of relation %u", attnum, relid);
	identity = ((Form_pg_attribute) GETSTRUCT(tup))->attidentity;
	ReleaseSysCache(tup);
	return identity;
}

/* FindLoadColumn returns the column of that name in a list of LoadColumn, or NULL */
LoadColumn *
FindLoadColumn(List *columns, const char *name)
{
	ListCell   *lc;

	foreach(lc, columns)
	{
		LoadColumn *col = lfirst(lc);

		if (strcmp(col->name, name) == 0)
			return col;
	}
	return NULL;
}

/*
 * IndexColumnsAreKey tells whether an index of the plan's target has only
 * key columns of the plan (no expression), as a unique index on the key,
 * or on part of it, has
 */
bool
IndexColumnsAreKey(LoadPlan *plan, Form_pg_index index)
{
	for (int k = 0; k < index->indnkeyatts; k++)
	{
		AttrNumber	attnum = index->indkey.values[k];
		LoadColumn *col = attnum > 0
			? FindLoadColumn(plan->columns, get_attname(plan->target_relid, attnum, false)) : NULL;

		if (col == NULL || !col->is_key)
			return false;
	}
	return true;
}

/*
 * ColumnComparable tells whether the load can compare target and source
 * values: the operator it spells (the source type's "=", qualified with its
 * schema, planner.c) must resolve for (target type, source type). Schema
 * drift asks it too (schema_drift.c).
 */
bool
ColumnComparable(LoadColumn *col, Oid target_type)
{
	HeapTuple	tup;
	Oid			nspid;
	Operator	op;

	if (!OidIsValid(col->eq_opr))
		return true;			/* compared as text (planner.c) */
	tup = SearchSysCache1(OPEROID, ObjectIdGetDatum(col->eq_opr));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for operator %u", col->eq_opr);
	nspid = ((Form_pg_operator) GETSTRUCT(tup))->oprnamespace;
	ReleaseSysCache(tup);
	op = oper(NULL, list_make2(makeString(get_namespace_name(nspid)),
							   makeString(get_opname(col->eq_opr))),
			  target_type, col->typid, true, -1);
	if (op == NULL)
		return false;
	ReleaseSysCache(op);
	return true;
}

/*
 * CheckColumnTypes refuses (42804) a target column whose type the load could
 * not write from the source column's, or, where the load compares them (the
 * key, and in merge and full modes every column), not compare: otherwise
 * every run would fail with a generic error and the whole statement.
 */
static void
CheckColumnTypes(PipelineDef *def, LoadColumn *col, Oid source_relid, Oid target_relid,
				 AttrNumber target_att)
{
	Oid			target_type;
	int32		target_typmod;
	Oid			target_coll;
	const char *problem = NULL;

	get_atttypetypmodcoll(target_relid, target_att, &target_type, &target_typmod, &target_coll);
	if (target_type == col->typid)
		return;
	if (!can_coerce_type(1, &col->typid, &target_type, COERCION_ASSIGNMENT))
		problem = "no assignment cast";
	else if ((col->is_key || def->mode != LOAD_MODE_APPEND) && !ColumnComparable(col, target_type))
		problem = "no equality operator";
	if (problem == NULL)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_DATATYPE_MISMATCH),
			 errmsg("column \"%s\" has type %s in the source but %s in the target",
					col->name, format_type_be(col->typid), format_type_be(target_type)),
			 errdetail("Source %s, target %s: there is %s from %s to %s.",
					   quote_qualified_identifier(get_namespace_name(get_rel_namespace(source_relid)),
												  get_rel_name(source_relid)),
					   quote_qualified_identifier(get_namespace_name(get_rel_namespace(target_relid)),
												  get_rel_name(target_relid)),
					   problem, format_type_be(col->typid), format_type_be(target_type)),
			 errhint("ALTER TABLE %s ALTER COLUMN %s TYPE %s, or cast the column in a view over the source.",
					 quote_qualified_identifier(get_namespace_name(get_rel_namespace(target_relid)),
												get_rel_name(target_relid)),
					 quote_identifier(col->name),
					 format_type_with_typemod(col->typid, col->typmod))));
}

/*
 * BuildLoadColumns lists the source's columns, checks that each exists in the
 * target as a writable column, and records the operators a run compares
 * them with.
 */
static List *
BuildLoadColumns(PipelineDef *def, Oid source_relid, Oid target_relid)
{
	Relation	source = relation_open(source_relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(source);
	List	   *columns = NIL;
	List	   *masks = ParseMasks(def->masks);

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		LoadColumn *col;
		AttrNumber	target_att;
		Oid			target_typid;
		int32		target_typmod;
		Oid			target_collid;
		TypeCacheEntry *tc;
		ListCell   *lc;

		if (att->attisdropped)
			continue;
		col = palloc0(sizeof(LoadColumn));
		col->name = pstrdup(NameStr(att->attname));
		col->typid = col->source_typid = att->atttypid;
		col->typmod = col->source_typmod = att->atttypmod;
		col->collid = att->attcollation;
		col->mask = FindMask(masks, col->name);
		if (col->mask && MaskYieldsText(col->mask))
		{
			/* the load writes text: a token, a hash, a partial value */
			col->typid = TEXTOID;
			col->typmod = -1;
			col->collid = DEFAULT_COLLATION_OID;
		}
		foreach(lc, def->unique_key)
			if (strcmp(lfirst(lc), col->name) == 0)
				col->is_key = true;

		target_att = get_attnum(target_relid, col->name);
		if ((target_att == InvalidAttrNumber || target_att < 0) &&
			SchemaDriftSkipsColumn(def, col->name))
			continue;			/* not loaded: on_schema_change (schema_drift.c) */
		if (target_att == InvalidAttrNumber || target_att < 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("source column \"%s\" does not exist in target %s", col->name,
							quote_qualified_identifier(get_namespace_name(get_rel_namespace(target_relid)),
													   get_rel_name(target_relid))),
					 errdetail("Every column of the source is loaded into the target column of the same name."),
					 errhint("Add the column to the target, or select fewer columns in a view over the source.")));
		if (get_attgenerated(target_relid, target_att))
			ereport(ERROR,
					(errcode(ERRCODE_GENERATED_ALWAYS),
					 errmsg("target column \"%s\" is a generated column", col->name),
					 errdetail("Target %s computes the column itself.",
							   quote_qualified_identifier(get_namespace_name(get_rel_namespace(target_relid)),
														  get_rel_name(target_relid))),
					 errhint("Leave the column out of the source, for example with a view.")));
		col->identity_always = AttributeIdentity(target_relid, target_att) == ATTRIBUTE_IDENTITY_ALWAYS;
		get_atttypetypmodcoll(target_relid, target_att, &target_typid, &target_typmod, &target_collid);
		(void) SetColumnConversion(col, target_typid, target_typmod, target_collid);
		tc = lookup_type_cache(col->typid, TYPECACHE_EQ_OPR | TYPECACHE_BTREE_OPFAMILY);
		col->eq_opr = tc->eq_opr;
		col->sortable = OidIsValid(tc->btree_opf);
		CheckColumnTypes(def, col, source_relid, target_relid, target_att);
		columns = lappend(columns, col);
	}
	relation_close(source, AccessShareLock);
	return columns;
}


/*
 * CheckRelationKinds checks that the source can be read and the target
 * written, and that they are not the same relation.
 */
static void RefuseTemporary(Oid relid, const char *what);
static void RefuseExtensionRelation(Oid relid, Oid seen, const char *what);

static void
CheckRelationKinds(PipelineDef *def, Oid source_relid, Oid target_relid)
{
	char		skind = get_rel_relkind(source_relid);
	char		tkind = get_rel_relkind(target_relid);

	if (skind != RELKIND_RELATION && skind != RELKIND_PARTITIONED_TABLE &&
		skind != RELKIND_VIEW && skind != RELKIND_MATVIEW &&
		skind != RELKIND_FOREIGN_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("source %s is not a table or view",
						quote_qualified_identifier(def->source_schema, def->source_table)),
				 errhint("A source is a table, a partitioned table, a view, a materialized view or a foreign table.")));
	if (tkind != RELKIND_RELATION && tkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("target %s is not a table",
						quote_qualified_identifier(def->target_schema, def->target_table)),
				 errhint("A target must be a table or a partitioned table.")));
	if (source_relid == target_relid)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("source and target are the same relation %s",
						quote_qualified_identifier(def->source_schema, def->source_table)),
				 errhint("Load into a different table.")));
	RefuseTemporary(source_relid, "source");
	RefuseTemporary(target_relid, "target");
	RefuseExtensionRelation(target_relid, target_relid, "target");
}

/*
 * RefuseTemporary refuses a temporary relation: it belongs to one session
 * (stored as pg_temp_N, it names another session's table, or none, in any
 * other), so a pipeline over it could only fail later.
 */
static void
RefuseTemporary(Oid relid, const char *what)
{
	if (get_rel_persistence(relid) == RELPERSISTENCE_TEMP)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("%s %s is a temporary table", what, quote_identifier(get_rel_name(relid))),
				 errdetail("A temporary table belongs to one session; runs of a pipeline happen in others."),
				 errhint("Use a permanent (or UNLOGGED) table.")));
}

/*
 * RefuseExtensionRelation refuses a relation of pg_pipeline's own schema,
 * or a view reading one (seen is the relation the user named): a pipeline
 * over its own catalog would read itself (pipeline.status reading its own
 * source recursed until the stack overflowed).
 */
static void
RefuseExtensionRelation(Oid relid, Oid seen, const char *what)
{
	if (get_rel_namespace(relid) != get_namespace_oid(PIPELINE_SCHEMA, false))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s %s uses pg_pipeline's own catalog", what,
					quote_qualified_identifier(get_namespace_name(get_rel_namespace(seen)),
											   get_rel_name(seen))),
			 errdetail("It is or reads %s, which belongs to the extension.",
					   quote_qualified_identifier(PIPELINE_SCHEMA, get_rel_name(relid))),
			 errhint("Copy what you need into a table of your own and use that as the %s.", what)));
}

/*
 * CheckSourceReads returns the tables the source reads (CollectBaseTables:
 * the ones whose writers a run waits for), refusing a source that reads,
 * through its views, the pipeline's own target (a run would read what it
 * writes, as a pipeline whose source is its target would) or the
 * extension's catalog.
 */
static List *
CheckSourceReads(PipelineDef *def, Oid source_relid, Oid target_relid)
{
	List	   *relids = CollectBaseTables(source_relid);
	ListCell   *lc;

	foreach(lc, relids)
	{
		Oid			relid = lfirst_oid(lc);

		RefuseExtensionRelation(relid, source_relid, "source");
		if (relid == target_relid)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("source %s reads the pipeline's target %s",
							quote_qualified_identifier(def->source_schema, def->source_table),
							quote_qualified_identifier(def->target_schema, def->target_table)),
					 errdetail("A run would read the rows it writes."),
					 errhint("Load into a different table, or read a copy of the target.")));
	}
	return relids;
}

/*
 * BuildLoadPlan resolves a pipeline definition against the current catalogs:
 * the relations, the columns a run loads, what a run must wait for, and
 * the pipeline's data checks (row-level ones go into the load statement),
 * and the source's columns that identify a forgotten subject (the erasure
 * gate goes into it too).
 * Everything a user can get wrong is reported here with its SQLSTATE, at
 * registration and again at every run.
 */
LoadPlan *
BuildLoadPlan(PipelineDef *def)
{
	LoadPlan   *plan = palloc0(sizeof(LoadPlan));
	ListCell   *lc;

	plan->def = def;
	plan->source_relid = ResolveRelationName(def->source_schema, def->source_table, "source");
	plan->target_relid = ResolveRelationName(def->target_schema, def->target_table, "target");
	plan->source_ident = QualifiedRelationName(def->source_schema, def->source_table);
	plan->target_ident = QualifiedRelationName(def->target_schema, def->target_table);
	CheckRelationKinds(def, plan->source_relid, plan->target_relid);
	plan->base_relids = CheckSourceReads(def, plan->source_relid, plan->target_relid);
	if (def->mode == LOAD_MODE_ROLLUP)
	{
		PlanRollup(plan);		/* rollup_plan.c */
		return plan;
	}
	ValidateSourceColumns(def, plan->source_relid);
	CheckColumnTypesOption(def, plan->source_relid, plan->target_relid);
	plan->columns = BuildLoadColumns(def, plan->source_relid, plan->target_relid);
	foreach(lc, LoadChecks(def->id))
	{
		CheckDef   *check = lfirst(lc);

		if (CHECK_IS_ROW_LEVEL(check->kind))
			plan->row_checks = lappend(plan->row_checks, check);
		else
			plan->set_checks = lappend(plan->set_checks, check);
	}
	if (def->incremental_column)
		plan->incremental = FindLoadColumn(plan->columns, def->incremental_column);
	if (def->delete_column)
		plan->delete_flag = FindLoadColumn(plan->columns, def->delete_column);
	/* a history keeps one version per key and incremental value */
	plan->needs_dedup = def->unique_key != NIL &&
		!SourceKeyIsUnique(plan->source_relid,
						   def->mode == LOAD_MODE_SNAPSHOT && def->incremental_column
						   ? lappend(list_copy(def->unique_key), def->incremental_column)
						   : def->unique_key);
	foreach(lc, plan->columns)
	{
		LoadColumn *col = lfirst(lc);

		plan->has_conversions |= col->convert;
		/* distinct strings may convert to one key ('1', '01'): de-duplicate */
		if (col->convert && col->is_key)
			plan->needs_dedup = true;
	}
	CheckDistributedPlan(plan);
	PlanErasureGate(plan);
	PlanSnapshot(plan);
	return plan;
}

/*
 * CreatedColumnType gives the type a target created for def has for a
 * source column: text for a masked one that holds tokens, hashes or partial
 * values, the type column_types names (typed loads, typed_load.c), else the
 * source's; returns whether it is the source's.
 */
bool
CreatedColumnType(PipelineDef *def, Oid source_relid, const char *column, Oid *typid, int32 *typmod)
{
	ColumnMask *mask = FindMask(ParseMasks(def->masks), column);
	ColumnType *typed = FindColumnType(ParseColumnTypes(def->column_types), column);
	Oid			collid;

	if (mask && MaskYieldsText(mask))
	{
		*typid = TEXTOID;
		*typmod = -1;
		return false;
	}
	if (typed)
	{
		*typid = typed->typid;
		*typmod = typed->typmod;
		return false;
	}
	get_atttypetypmodcoll(source_relid, get_attnum(source_relid, column), typid, typmod, &collid);
	return true;
}

/*
 * CreateTargetTable creates the target from the source's columns, with a
 * primary key on the unique key, or for mode snapshot the history columns
 * and constraints of snapshot_target.c. The index on the incremental column
 * (which downstream pipelines reading this target use to find new rows) is
 * owed, not made: the first run that loads builds it after its data
 * (initial_load.c). It runs as the calling role, which becomes the
 * table's owner.
 */
void
CreateTargetTable(PipelineDef *def, Oid source_relid)
{
	Relation	source;
	TupleDesc	desc;
	StringInfoData sql;
	char	   *target = quote_qualified_identifier(def->target_schema, def->target_table);
	bool		first = true;
	ListCell   *lc;

	if (def->mode == LOAD_MODE_ROLLUP)
	{
		CreateRollupTarget(def, source_relid);	/* rollup_plan.c */
		return;
	}
	ValidateSourceColumns(def, source_relid);
	source = relation_open(source_relid, AccessShareLock);
	desc = RelationGetDescr(source);
	initStringInfo(&sql);
	appendStringInfo(&sql, "CREATE TABLE %s (", target);
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		Oid			typid;
		int32		typmod;
		bool		as_source;

		if (att->attisdropped)
			continue;
		as_source = CreatedColumnType(def, source_relid, NameStr(att->attname), &typid, &typmod);
		appendStringInfo(&sql, "%s%s %s", first ? "" : ", ",
						 quote_identifier(NameStr(att->attname)),
						 format_type_extended(typid, typmod,
											  FORMAT_TYPE_TYPEMOD_GIVEN | FORMAT_TYPE_FORCE_QUALIFY));
		if (as_source && OidIsValid(att->attcollation) &&
			att->attcollation != get_typcollation(att->atttypid))
			appendStringInfo(&sql, " COLLATE %s", generate_collation_name(att->attcollation));
		first = false;
	}
	relation_close(source, AccessShareLock);
	if (def->mode == LOAD_MODE_SNAPSHOT)
		AppendSnapshotTargetDdl(&sql, def, source_relid);
	else if (def->unique_key != NIL)
	{
		appendStringInfoString(&sql, ", PRIMARY KEY (");
		first = true;
		foreach(lc, def->unique_key)
		{
			appendStringInfo(&sql, "%s%s", first ? "" : ", ", quote_identifier(lfirst(lc)));
			first = false;
		}
		appendStringInfoChar(&sql, ')');
	}
	appendStringInfoChar(&sql, ')');
	if (SPI_execute(sql.data, false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "could not create target %s", target);
	/* over a Citus table, a distributed target (distributed_load.c) */
	DistributeCreatedTarget(def, source_relid, target);
	def->target_created = true;
	/* the index on the incremental column comes after the first load's data */
	def->target_index_pending = def->incremental_column != NULL;
}
