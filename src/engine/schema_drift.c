/*-------------------------------------------------------------------------
 *
 * src/engine/schema_drift.c
 *
 * Schema drift in a run. Before the load is planned, in the run's
 * transaction, HandleSchemaDrift compares the source's columns with the
 * snapshot of its last successful run (recorders/schema_history.c) and
 * with the target, and does what the pipeline's on_schema_change says
 * about each change (docs/quality.md#schema-drift):
 *
 *   change           fail          ignore        append_new_columns  sync_all_columns
 *   added            fails 42703   not loaded    ADD COLUMN          ADD COLUMN
 *   renamed          fails 42703   not loaded    ADD COLUMN (new)    RENAME COLUMN
 *   dropped          kept          kept          kept                DROP COLUMN
 *   retyped          kept if the target can take it, else fails      widened, else
 *                    42804                                           fails 42804
 *
 * (fail is what a run did before: it fails where the load could not
 * work, with an error naming the change; a change the target already
 * follows is applied by every policy; a dropped or renamed key,
 * incremental, delete or partition column fails every policy, 42703.)
 * Every change is decided before anything is changed, so a run that fails
 * on one changes nothing. The target is altered as the pipeline's owner
 * (EnterOwnerContext), in the run's transaction. The changes travel in the
 * run's RunRecord to the writer of its records, and the snapshot is
 * rewritten in the run's transaction: both move only with a run that
 * commits; a failed run's changes are written by the failure recorder.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_class.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "parser/parse_coerce.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/ruleutils.h"
#include "utils/typcache.h"

#include "pipeline/catalog/source_columns.h"
#include "pipeline/recorders/schema_history.h"
#include "schema_drift.h"

/* on_schema_change, in the order of the option's choices (catalog/options.c) */
typedef enum DriftPolicy
{
	DRIFT_FAIL,
	DRIFT_IGNORE,
	DRIFT_APPEND,
	DRIFT_SYNC
} DriftPolicy;

/* Why a run fails on a change */
typedef enum DriftFailure
{
	DRIFT_NOT_IN_TARGET,		/* the load needs a column the target lacks */
	DRIFT_ROLE_COLUMN,			/* a column the definition names is gone */
	DRIFT_NOT_ASSIGNABLE,		/* the target cannot take the new type */
	DRIFT_NOT_WIDENING			/* sync would have to narrow (or change) the target */
} DriftFailure;

/* What one run knows and decides about its source's changes */
typedef struct Drift
{
	PipelineDef *def;
	DriftPolicy policy;
	Oid			target_relid;
	char	   *source_ident;
	char	   *target_ident;
	List	   *columns;		/* SourceColumn *: the source now */
	List	   *changes;		/* ColumnChange * */
	List	   *statements;		/* ALTER TABLE of the target, in order */
	List	   *added;			/* target columns the statements add (names) */
	List	   *gone;			/* and take away */
	bool		have_options;
	List	   *column_types;	/* the column_types option */
	List	   *masks;			/* the masks option */
	ColumnChange *failed;		/* the first change the run fails on */
	DriftFailure failure;
	const char *problem;		/* DRIFT_NOT_ASSIGNABLE: what the types lack */
} Drift;

/* PolicyOf reads a definition's on_schema_change (fail when unset) */
static DriftPolicy
PolicyOf(PipelineDef *def)
{
	const char *const *choices = PipelineOptionByName("on_schema_change")->choices;

	for (int i = 0; def->on_schema_change && choices[i]; i++)
		if (strcmp(choices[i], def->on_schema_change) == 0)
			return (DriftPolicy) i;
	return DRIFT_FAIL;
}

/* ColumnRole names the part a column plays in a definition, NULL if none */
static const char *
ColumnRole(PipelineDef *def, const char *column)
{
	ListCell   *lc;

	foreach(lc, def->unique_key)
		if (strcmp(lfirst(lc), column) == 0)
			return "unique key";
	if (def->incremental_column && strcmp(def->incremental_column, column) == 0)
		return "incremental column";
	if (def->delete_column && strcmp(def->delete_column, column) == 0)
		return "delete column";
	if (def->partition_column && strcmp(def->partition_column, column) == 0)
		return "partition column";
	return NULL;
}

/*
 * SchemaDriftSkipsColumn tells the load plan (load_plan.c) to leave out a
 * source column the target lacks instead of refusing it: under any policy
 * but fail (ignore loads the common columns; the others have added what
 * they add before the plan is built), unless the definition names it.
 */
bool
SchemaDriftSkipsColumn(PipelineDef *def, const char *column)
{
	return PolicyOf(def) != DRIFT_FAIL && ColumnRole(def, column) == NULL;
}

/* NameIn tells whether a list of names holds one */
static bool
NameIn(List *names, const char *name)
{
	ListCell   *lc;

	foreach(lc, names)
		if (strcmp(lfirst(lc), name) == 0)
			return true;
	return false;
}

/* TargetHas tells whether the target has a column, once the statements ran */
static bool
TargetHas(Drift *d, const char *column)
{
	AttrNumber	attnum;

	if (NameIn(d->added, column))
		return true;
	if (NameIn(d->gone, column))
		return false;
	attnum = get_attnum(d->target_relid, column);
	return attnum != InvalidAttrNumber && attnum > 0;
}

/* LoadOptions reads the options that choose a target column's type */
static void
LoadOptions(Drift *d)
{
	if (d->have_options)
		return;
	d->column_types = ParseColumnTypes(d->def->column_types);
	d->masks = ParseMasks(d->def->masks);
	d->have_options = true;
}

/*
 * PipelineChoosesType tells whether the target's type of a column is the
 * pipeline's choice (column_types, or a mask that writes text) rather than
 * the source's: a retype of the source leaves it as it is.
 */
static bool
PipelineChoosesType(Drift *d, const char *column)
{
	ColumnMask *mask;

	LoadOptions(d);
	mask = FindMask(d->masks, column);
	return FindColumnType(d->column_types, column) != NULL || (mask && MaskYieldsText(mask));
}

/* TargetTypeSql spells the type a target column takes for a source column */
static char *
TargetTypeSql(Drift *d, SourceColumn *col)
{
	ColumnType *ct;
	ColumnMask *mask;
	char	   *type;

	LoadOptions(d);
	mask = FindMask(d->masks, col->name);
	if (mask && MaskYieldsText(mask))
		return "pg_catalog.text";
	ct = FindColumnType(d->column_types, col->name);
	if (ct)
		return format_type_extended(ct->typid, ct->typmod,
									FORMAT_TYPE_TYPEMOD_GIVEN | FORMAT_TYPE_FORCE_QUALIFY);
	type = format_type_extended(col->typid, col->typmod,
								FORMAT_TYPE_TYPEMOD_GIVEN | FORMAT_TYPE_FORCE_QUALIFY);
	if (OidIsValid(col->collid) && col->collid != get_typcollation(col->typid))
		type = psprintf("%s COLLATE %s", type, generate_collation_name(col->collid));
	return type;
}

/* Alter adds an ALTER TABLE of the target to the statements the run makes */
static void
Alter(Drift *d, const char *action)
{
	d->statements = lappend(d->statements,
							psprintf("ALTER TABLE %s %s", d->target_ident, action));
}

/* Fail marks a change the run fails on; the first one is raised */
static void
Fail(Drift *d, ColumnChange *c, DriftFailure why)
{
	c->action = "failed";
	if (d->failed == NULL)
	{
		d->failed = c;
		d->failure = why;
	}
}

/*
 * DecideMissing decides a change whose column the target lacks and the
 * load needs: fail fails; ignore leaves it out (a column the definition
 * names cannot be left out); the others add it.
 */
static void
DecideMissing(Drift *d, ColumnChange *c)
{
	if (d->policy == DRIFT_FAIL ||
		(d->policy == DRIFT_IGNORE && ColumnRole(d->def, c->column) != NULL))
		Fail(d, c, DRIFT_NOT_IN_TARGET);
	else if (d->policy == DRIFT_IGNORE)
		c->action = "ignored";
	else
	{
		Alter(d, psprintf("ADD COLUMN %s %s", quote_identifier(c->column), TargetTypeSql(d, c->now)));
		d->added = lappend(d->added, c->column);
	}
}

/*
 * LoadProblem says why the load could not take a retyped column into the
 * target's type, as the load plan would find (load_plan.c): no assignment
 * cast, or, where the load compares the two (the key, and every column in
 * merge and full modes), no equality operator; NULL when it can.
 */
static const char *
LoadProblem(Drift *d, ColumnChange *c, Oid target_type)
{
	LoadColumn	col;

	if (!can_coerce_type(1, &c->now->typid, &target_type, COERCION_ASSIGNMENT))
		return "no assignment cast";
	if (d->def->mode == LOAD_MODE_APPEND && !NameIn(d->def->unique_key, c->column))
		return NULL;
	memset(&col, 0, sizeof(col));
	col.typid = c->now->typid;
	col.eq_opr = lookup_type_cache(col.typid, TYPECACHE_EQ_OPR)->eq_opr;
	return ColumnComparable(&col, target_type) ? NULL : "no equality operator";
}

/*
 * DecideRetyped decides a column whose type changed: sync_all_columns
 * widens the target's type where that keeps every value, and fails
 * otherwise; the other policies keep the target's type, and fail when the
 * load cannot assign the new type to it.
 */
static void
DecideRetyped(Drift *d, ColumnChange *c)
{
	SourceColumn *n = c->now;
	Oid			typid;
	int32		typmod;
	Oid			collid;
	const char *problem;

	if (!TargetHas(d, c->column))
	{
		DecideMissing(d, c);
		return;
	}
	get_atttypetypmodcoll(d->target_relid, get_attnum(d->target_relid, c->column),
						  &typid, &typmod, &collid);
	if (typid == n->typid && typmod == n->typmod)
		return;					/* the target follows already */
	if (PipelineChoosesType(d, c->column))
		c->action = "ignored";
	else if (d->policy == DRIFT_SYNC)
	{
		if (TypeWidens(typid, typmod, n->typid, n->typmod))
			Alter(d, psprintf("ALTER COLUMN %s TYPE %s", quote_identifier(c->column),
							  TargetTypeSql(d, n)));
		else
			Fail(d, c, DRIFT_NOT_WIDENING);
	}
	else if ((problem = LoadProblem(d, c, typid)) == NULL)
		c->action = "ignored";
	else
	{
		if (d->failed == NULL)
			d->problem = problem;
		Fail(d, c, DRIFT_NOT_ASSIGNABLE);
	}
}

/* DecideChange decides what the run does about one change */
static void
DecideChange(Drift *d, ColumnChange *c)
{
	const char *role = ColumnRole(d->def, c->kind == COLUMN_RENAMED ? c->old_column : c->column);

	c->action = "applied";
	switch (c->kind)
	{
		case COLUMN_ADDED:
			if (!TargetHas(d, c->column))
				DecideMissing(d, c);
			break;
		case COLUMN_RETYPED:
			DecideRetyped(d, c);
			break;
		case COLUMN_RENAMED:
			if (role)
				Fail(d, c, DRIFT_ROLE_COLUMN);
			else if (TargetHas(d, c->column))
				break;
			else if (d->policy == DRIFT_SYNC && TargetHas(d, c->old_column))
			{
				Alter(d, psprintf("RENAME COLUMN %s TO %s", quote_identifier(c->old_column),
								  quote_identifier(c->column)));
				d->gone = lappend(d->gone, c->old_column);
				d->added = lappend(d->added, c->column);
			}
			else
				DecideMissing(d, c);
			break;
		case COLUMN_DROPPED:
			if (role)
				Fail(d, c, DRIFT_ROLE_COLUMN);
			else if (!TargetHas(d, c->column))
				break;
			else if (d->policy == DRIFT_SYNC)
			{
				Alter(d, psprintf("DROP COLUMN %s", quote_identifier(c->column)));
				d->gone = lappend(d->gone, c->column);
			}
			else
				c->action = "ignored";
			break;
	}
}

/*
 * AddMissingColumns compares the source with the target when there is no
 * snapshot of the source to compare it with (a pipeline whose snapshot was
 * lost): a source column the target lacks is an added column. A column the
 * snapshot knows and the target lost is not a change of the source: the
 * load plan refuses it under fail (42703, as it always has) and leaves it
 * out under the other policies.
 */
static void
AddMissingColumns(Drift *d)
{
	ListCell   *lc;

	foreach(lc, d->columns)
	{
		SourceColumn *col = lfirst(lc);
		ColumnChange *c;

		if (TargetHas(d, col->name))
			continue;
		c = palloc0(sizeof(ColumnChange));
		c->kind = COLUMN_ADDED;
		c->column = col->name;
		c->new_type = col->type;
		c->now = col;
		d->changes = lappend(d->changes, c);
	}
}

/* RaiseNotInTarget: the load needs a source column the target lacks */
static void
RaiseNotInTarget(Drift *d, ColumnChange *c)
{
	if (c->kind == COLUMN_RENAMED)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of source %s was renamed to \"%s\", which target %s does not have",
						c->old_column, d->source_ident, c->column, d->target_ident),
				 errdetail("Pipeline \"%s\": column \"%s\" (%s) is \"%s\" now, and on_schema_change is %s.",
						   d->def->name, c->old_column, c->old_type, c->column, d->def->on_schema_change),
				 errhint("ALTER TABLE %s RENAME COLUMN %s TO %s; or let runs follow renames: SELECT pipeline.alter_pipeline(%s, on_schema_change => 'sync_all_columns');",
						 d->target_ident, quote_identifier(c->old_column), quote_identifier(c->column),
						 quote_literal_cstr(d->def->name))));
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_COLUMN),
			 errmsg("source %s has a new column \"%s\" that target %s does not have",
					d->source_ident, c->column, d->target_ident),
			 errdetail("Pipeline \"%s\": column \"%s\" (%s) was %s, and on_schema_change is %s.",
					   d->def->name, c->column, c->new_type,
					   c->kind == COLUMN_ADDED ? "added to the source" : "retyped in the source",
					   d->def->on_schema_change),
			 errhint("ALTER TABLE %s ADD COLUMN %s %s; or let runs add new columns: SELECT pipeline.alter_pipeline(%s, on_schema_change => 'append_new_columns');",
					 d->target_ident, quote_identifier(c->column), TargetTypeSql(d, c->now),
					 quote_literal_cstr(d->def->name))));
}

/* RaiseRoleColumn: a column the definition names was dropped or renamed */
static void
RaiseRoleColumn(Drift *d, ColumnChange *c)
{
	const char *column = c->kind == COLUMN_RENAMED ? c->old_column : c->column;
	const char *role = ColumnRole(d->def, column);

	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_COLUMN),
			 c->kind == COLUMN_RENAMED ?
			 errmsg("column \"%s\" of source %s was renamed to \"%s\", but pipeline \"%s\" uses it as its %s",
					column, d->source_ident, c->column, d->def->name, role) :
			 errmsg("column \"%s\" was dropped from source %s, but pipeline \"%s\" uses it as its %s",
					column, d->source_ident, d->def->name, role),
			 errdetail("Column \"%s\" (%s) of source %s is the pipeline's %s: no on_schema_change loads without it (on_schema_change is %s).",
					   column, c->old_type, d->source_ident, role, d->def->on_schema_change),
			 errhint("Restore the column in the source, or point the pipeline at another column (with the target's column to match) with pipeline.alter_pipeline.")));
}

/* RaiseTypeRefused: the target keeps a type the new one does not fit */
static void
RaiseTypeRefused(Drift *d, ColumnChange *c)
{
	Oid			typid;
	int32		typmod;
	Oid			collid;
	char	   *target_type;
	char	   *to = TargetTypeSql(d, c->now);

	get_atttypetypmodcoll(d->target_relid, get_attnum(d->target_relid, c->column),
						  &typid, &typmod, &collid);
	target_type = format_type_with_typemod(typid, typmod);
	if (d->failure == DRIFT_NOT_ASSIGNABLE)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("column \"%s\" of source %s changed type from %s to %s, which target %s cannot take",
						c->column, d->source_ident, c->old_type, c->new_type, d->target_ident),
				 errdetail("Pipeline \"%s\": target column \"%s\" is %s, and there is %s from %s; on_schema_change is %s.",
						   d->def->name, c->column, target_type, d->problem, c->new_type,
						   d->def->on_schema_change),
				 errhint("ALTER TABLE %s ALTER COLUMN %s TYPE %s USING %s::%s; or cast the column back in a view over the source.",
						 d->target_ident, quote_identifier(c->column), to, quote_identifier(c->column), to)));
	ereport(ERROR,
			(errcode(ERRCODE_DATATYPE_MISMATCH),
			 errmsg("on_schema_change sync_all_columns does not change target column \"%s\" of %s from %s to %s",
					c->column, d->target_ident, target_type, c->new_type),
			 errdetail("Pipeline \"%s\": column \"%s\" of source %s changed type from %s to %s; %s.",
					   d->def->name, c->column, d->source_ident, c->old_type, c->new_type,
					   TypeWidens(c->now->typid, c->now->typmod, typid, typmod) ?
					   "the target's type would narrow, and values could be lost" :
					   "that is not a widening that keeps every value"),
			 errhint("Change the target yourself (ALTER TABLE %s ALTER COLUMN %s TYPE %s USING %s::%s;), or keep its type: SELECT pipeline.alter_pipeline(%s, on_schema_change => 'ignore');",
					 d->target_ident, quote_identifier(c->column), to, quote_identifier(c->column), to,
					 quote_literal_cstr(d->def->name))));
}

/* RaiseDriftFailure raises the error of the first change the run fails on */
static void
RaiseDriftFailure(Drift *d)
{
	switch (d->failure)
	{
		case DRIFT_NOT_IN_TARGET:
			RaiseNotInTarget(d, d->failed);
			break;
		case DRIFT_ROLE_COLUMN:
			RaiseRoleColumn(d, d->failed);
			break;
		case DRIFT_NOT_ASSIGNABLE:
		case DRIFT_NOT_WIDENING:
			RaiseTypeRefused(d, d->failed);
			break;
	}
}

/* AlterTarget makes the run's changes to the target, as the pipeline's owner */
static void
AlterTarget(Drift *d)
{
	OwnerContext ctx;
	ListCell   *lc;

	foreach(lc, d->statements)
	{
		const char *sql = lfirst(lc);

		EnterOwnerContext(&ctx, d->def->owner);
		if (SPI_execute(sql, false, 0) != SPI_OK_UTILITY)
			elog(ERROR, "could not change target %s", d->target_ident);
		LeaveOwnerContext(&ctx);
		ereport(NOTICE,
				(errmsg("pipeline \"%s\" changed its target: %s", d->def->name, sql)));
	}
}

/*
 * HandleSchemaDrift is the run's step before its load is planned (engine.c,
 * PrepareRun; the first batch of a batched run): find the changes of the
 * source, decide each, fail the run on the first that fails it (changing
 * nothing), or alter the target, hand the changes to the run's record and
 * keep the source's columns as the snapshot of this run.
 */
void
HandleSchemaDrift(RunRecord *rec)
{
	PipelineDef *def = rec->def;
	Drift		d;
	Oid			source_relid;
	SourceSnapshot *snap;
	bool		have_snapshot;
	char		kind;
	ListCell   *lc;

	memset(&d, 0, sizeof(d));
	d.def = def;
	d.policy = PolicyOf(def);
	source_relid = ResolveRelationName(def->source_schema, def->source_table, "source");
	d.target_relid = ResolveRelationName(def->target_schema, def->target_table, "target");
	kind = get_rel_relkind(d.target_relid);
	if (kind != RELKIND_RELATION && kind != RELKIND_PARTITIONED_TABLE)
		return;					/* the load plan refuses it, as it always has */
	d.source_ident = QualifiedRelationName(def->source_schema, def->source_table);
	d.target_ident = QualifiedRelationName(def->target_schema, def->target_table);
	d.columns = RelationColumns(source_relid);
	snap = LoadSourceSnapshot(def->id);
	have_snapshot = snap != NULL && strcmp(snap->relation, d.source_ident) == 0;
	if (have_snapshot)
		d.changes = DiffColumns(snap->columns, d.columns);
	else
		AddMissingColumns(&d);
	foreach(lc, d.changes)
		DecideChange(&d, lfirst(lc));
	if (d.changes != NIL)
		rec->schema_changes = ColumnChangesJson(d.changes, def->on_schema_change);
	if (d.failed)
		RaiseDriftFailure(&d);
	AlterTarget(&d);
	if (d.changes != NIL || !have_snapshot || DiffColumns(snap->seen, d.columns) != NIL)
		StoreSourceSnapshot(def->id, d.source_ident, source_relid, rec->run_id);
}
