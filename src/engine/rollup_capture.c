/*-------------------------------------------------------------------------
 *
 * src/engine/rollup_capture.c
 *
 * Where a rollup's invalidations come from. Its source (a table, usually
 * another pipeline's target, updated and deleted in place) gets four
 * AFTER ... FOR EACH STATEMENT triggers, "pipeline_rollup_<id>_insert",
 * _update, _delete and _truncate, all calling pipeline._rollup_capture
 * with the pipeline's id. Through the statement's transition tables, one
 * INSERT ... SELECT per statement writes to the dirty-cells table
 * "<target>__dirty", next to the target, the cells its rows arrived in
 * (inserted, updated to) and left (deleted, updated from):
 *
 *   __change 'c': a dirty cell (bucket and the group_by columns), once per
 *   statement, with __n the rows that changed there and __at the latest
 *   time of a row that arrived in it;
 *   '+' or '-': a late change, a row that arrived in ('+') or left ('-') a
 *   closed bucket, one ending at or before the high-water time minus
 *   allowed_lateness as committed when it is written; __at its time,
 *   __row the row as JSON, which the run keeps in the quarantine. It
 *   dirties no cell: a closed cell keeps the value it had;
 *   't': a TRUNCATE.
 *
 * The rows are written in the writer's transaction, so they commit (or
 * roll back) with the change they describe, and a run sees a change and
 * its dirty cells together or not at all: nothing to wait for, no window.
 * An update that moves a row to another bucket or group dirties both
 * cells; a delete dirties the cell the row left. Rows without a time are
 * in no bucket and are not written.
 *
 * Who does what: the triggers are created and dropped as the source's
 * owner (who alone may drop them), once the pipeline owner's TRIGGER
 * privilege on the source is checked (policy/privileges.c); the dirty
 * cells are written as the pipeline owner (EnterOwnerContext), who owns
 * the dirty-cells table: writers of the source need no privilege on it. A
 * trigger fires only for its pipeline's source: one created by hand on
 * another table with this function fails the statement.
 *
 * Why triggers, and not the change capture of <table>__changes: that work
 * was not merged when rollups were written; a statement trigger writes
 * one set-based INSERT per statement rather than a row trigger's one per
 * row; and a rollup needs cells, consumed once by its own runs, rather than
 * a feed with a watermark and purges shared by consumers.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "pipeline/engine.h"
#include "run_internal.h"

PIPELINE_FUNCTION(pipeline_rollup_capture);

/* The four triggers of a rollup's source */
static const struct
{
	const char *suffix;
	const char *event;
	const char *referencing;
}			CaptureTriggers[] = {
	{"insert", "INSERT", " REFERENCING NEW TABLE AS pipeline_new"},
	{"update", "UPDATE", " REFERENCING OLD TABLE AS pipeline_old NEW TABLE AS pipeline_new"},
	{"delete", "DELETE", " REFERENCING OLD TABLE AS pipeline_old"},
	{"truncate", "TRUNCATE", ""},
};

/* TriggerName names one of a rollup's triggers */
static char *
TriggerName(int64 pipeline_id, int i)
{
	return psprintf("pipeline_rollup_%lld_%s", (long long) pipeline_id, CaptureTriggers[i].suffix);
}

/* ExecAs runs one utility statement as a role, through EnterOwnerContext */
static void
ExecAs(Oid role, const char *sql)
{
	OwnerContext ctx;
	int			rc;

	EnterOwnerContext(&ctx, role);
	rc = SPI_execute(sql, false, 0);
	LeaveOwnerContext(&ctx);
	if (rc != SPI_OK_UTILITY)
		elog(ERROR, "pg_pipeline rollup capture failed: %s", SPI_result_code_string(rc));
}

/* DirtyTableSql spells the CREATE TABLE of a rollup's dirty-cells table */
static char *
DirtyTableSql(LoadPlan *plan)
{
	RollupPlan *rp = plan->rollup;
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	appendStringInfo(&buf, "CREATE TABLE IF NOT EXISTS %s (__change \"char\" NOT NULL, %s %s",
					 rp->dirty_ident, ROLLUP_BUCKET_COLUMN, format_type_be_qualified(rp->time_typid));
	foreach(lc, rp->groups)
		AppendGroupColumn(&buf, lfirst(lc), false);	/* rollup_plan.c */
	appendStringInfo(&buf, ", __at %s, __n pg_catalog.int8 NOT NULL, __row pg_catalog.jsonb)",
					 format_type_be_qualified(rp->time_typid));
	return buf.data;
}

/* DropTriggers drops a rollup's triggers from a table, as its owner */
static void
DropTriggers(int64 pipeline_id, Oid relid)
{
	for (int i = 0; i < lengthof(CaptureTriggers); i++)
		if (OidIsValid(get_trigger_oid(relid, TriggerName(pipeline_id, i), true)))
			ExecAs(RelationOwnerOf(relid), psprintf("DROP TRIGGER %s ON %s",
													quote_identifier(TriggerName(pipeline_id, i)),
													RelationNameOf(relid)));
}

/*
 * InstallPlanCapture makes a rollup's dirty-cells table (as the pipeline
 * owner) unless it exists, and its triggers on the source anew (as the
 * source's owner); CREATE TRIGGER holds the source SHARE ROW EXCLUSIVE
 * to the end of the transaction, so no change slips between.
 */
static void
InstallPlanCapture(LoadPlan *plan)
{
	PipelineDef *def = plan->def;

	ExecAs(def->owner, DirtyTableSql(plan));
	DropTriggers(def->id, plan->source_relid);
	for (int i = 0; i < lengthof(CaptureTriggers); i++)
		ExecAs(RelationOwnerOf(plan->source_relid),
			   psprintf("CREATE TRIGGER %s AFTER %s ON %s%s FOR EACH STATEMENT"
						" EXECUTE FUNCTION pipeline._rollup_capture('%lld')",
						quote_identifier(TriggerName(def->id, i)), CaptureTriggers[i].event,
						plan->source_ident, CaptureTriggers[i].referencing, (long long) def->id));
}

/* InstallRollupCapture sets up where a registered rollup's changes come from */
void
InstallRollupCapture(PipelineDef *def)
{
	InstallPlanCapture(BuildLoadPlan(def));
}

/*
 * RemoveRollupCapture drops a rollup's triggers from its source and its
 * dirty-cells table, each as its owner, where they still exist.
 */
void
RemoveRollupCapture(PipelineDef *def)
{
	Oid			nspid = get_namespace_oid(def->source_schema, true);
	Oid			source = OidIsValid(nspid) ? get_relname_relid(def->source_table, nspid) : InvalidOid;
	char	   *dirty = RollupDirtyTableName(def->target_table);
	Oid			dirty_relid = InvalidOid;

	if (OidIsValid(source))
		DropTriggers(def->id, source);
	nspid = get_namespace_oid(def->target_schema, true);
	if (dirty && OidIsValid(nspid))
		dirty_relid = get_relname_relid(dirty, nspid);
	if (OidIsValid(dirty_relid))
		ExecAs(RelationOwnerOf(dirty_relid), psprintf("DROP TABLE %s", RelationNameOf(dirty_relid)));
}

/* RollupCaptureIntact tells whether a rollup's dirty-cells table and triggers are all there */
bool
RollupCaptureIntact(LoadPlan *plan)
{
	Oid			nspid = get_namespace_oid(plan->def->target_schema, false);

	if (!OidIsValid(get_relname_relid(plan->rollup->dirty_table, nspid)))
		return false;
	for (int i = 0; i < lengthof(CaptureTriggers); i++)
		if (!OidIsValid(get_trigger_oid(plan->source_relid, TriggerName(plan->def->id, i), true)))
			return false;
	return true;
}

/*
 * EnsureRollupCapture makes a rollup's capture again where a part of it
 * is gone (a dropped trigger or table, a renamed target); returns true
 * when it did: changes may have gone unrecorded, every cell must be
 * recomputed.
 */
bool
EnsureRollupCapture(LoadPlan *plan)
{
	if (RollupCaptureIntact(plan))
		return false;
	LockRelationOid(plan->source_relid, ShareRowExclusiveLock);
	InstallPlanCapture(plan);
	ereport(NOTICE,
			(errmsg("pipeline \"%s\" made its rollup's triggers or dirty-cells table again",
					plan->def->name),
			 errdetail("Changes of %s may have gone unrecorded; this run recomputes every cell.",
					   plan->source_ident)));
	return true;
}

/* CaptureSideSql spells the rows of one transition table, each with its bucket and lateness */
static char *
CaptureSideSql(RollupSpec *spec, Oid time_typid, const char *change, const char *table,
			   bool has_horizon)
{
	StringInfoData buf;
	const char *t = quote_identifier(spec->time_column);
	char	   *bucket = RollupBucketSql(spec, psprintf("r.%s", t), time_typid);
	char	   *late = has_horizon ? psprintf("(%s <= $1) IS TRUE", RollupBucketEndSql(spec, bucket, time_typid))
		: "false";
	ListCell   *lc;

	initStringInfo(&buf);
	appendStringInfo(&buf, "SELECT '%s'::pg_catalog.\"char\" AS side, %s AS b", change, bucket);
	foreach(lc, spec->group_by)
		appendStringInfo(&buf, ", r.%s", quote_identifier(lfirst(lc)));
	appendStringInfo(&buf, ", r.%s AS at, %s AS late, CASE WHEN %s THEN pg_catalog.to_jsonb(r) END AS img"
					 " FROM %s AS r WHERE r.%s IS NOT NULL", t, late, late, table, t);
	return buf.data;
}

/*
 * CaptureSql spells the INSERT of one statement's dirty cells: each cell
 * the statement's rows arrived in or left once ('c', with the latest time
 * of a row that arrived and how many rows changed), but a change whose
 * bucket ended at or before the horizon ($1: the high-water time minus
 * allowed_lateness, as committed now): that one is late, and written
 * alone, with its row ('+' arrived, '-' left), and dirties no cell.
 */
static char *
CaptureSql(PipelineDef *def, TriggerData *trig, Oid source, const char *dirty, bool has_horizon)
{
	RollupSpec *spec = ParseRollupSpec(def->rollup);
	Oid			time_typid = get_atttype(source, get_attnum(source, spec->time_column));
	StringInfoData buf;
	StringInfoData groups;
	StringInfoData names;
	ListCell   *lc;

	initStringInfo(&buf);
	initStringInfo(&groups);
	initStringInfo(&names);
	foreach(lc, spec->group_by)
	{
		appendStringInfo(&groups, ", x.%s", quote_identifier(lfirst(lc)));
		appendStringInfo(&names, ", %s", quote_identifier(lfirst(lc)));
	}
	if (TRIGGER_FIRED_BY_TRUNCATE(trig->tg_event))
		return psprintf("INSERT INTO %s (__change, __n) VALUES ('t', 0)", dirty);
	appendStringInfoString(&buf, "WITH x AS (");
	if (trig->tg_newtable)
		appendStringInfoString(&buf, CaptureSideSql(spec, time_typid, "+", "pipeline_new", has_horizon));
	if (trig->tg_newtable && trig->tg_oldtable)
		appendStringInfoString(&buf, " UNION ALL ");
	if (trig->tg_oldtable)
		appendStringInfoString(&buf, CaptureSideSql(spec, time_typid, "-", "pipeline_old", has_horizon));
	appendStringInfo(&buf, ")\nINSERT INTO %s (__change, %s%s, __at, __n, __row)", dirty,
					 ROLLUP_BUCKET_COLUMN, names.data);
	appendStringInfo(&buf, "\nSELECT 'c', x.b%s, pg_catalog.max(x.at) FILTER (WHERE x.side = '+'),"
					 " pg_catalog.count(*), NULL FROM x WHERE NOT x.late GROUP BY x.b%s",
					 groups.data, groups.data);
	if (has_horizon)
		appendStringInfo(&buf, "\nUNION ALL SELECT x.side, x.b%s, x.at, 1, x.img FROM x WHERE x.late",
						 groups.data);
	return buf.data;
}

/*
 * CaptureHorizon computes, for a writer, the horizon of a rollup as
 * committed now: its high-water time minus allowed_lateness, in the time
 * column's type; false when no bucket is closed (no high-water time yet,
 * or no allowed_lateness). Runs only move it forward, so a bucket closed
 * for a writer stays closed for every later run.
 */
static bool
CaptureHorizon(PipelineDef *def, Oid source, Datum *horizon, Oid *typid)
{
	RollupSpec *spec;

	if (def->watermark == NULL || def->allowed_lateness == NULL)
		return false;
	spec = ParseRollupSpec(def->rollup);
	*typid = get_atttype(source, get_attnum(source, spec->time_column));
	*horizon = SubtractLookback(WatermarkFromText(def->watermark, *typid, -1, def->owner),
								def->allowed_lateness, *typid);
	return true;
}

/* RequireCaptureTrigger refuses a call that is not a rollup's statement trigger */
static int64
RequireCaptureTrigger(FunctionCallInfo fcinfo)
{
	TriggerData *trig = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(trig->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(trig->tg_event) || trig->tg_trigger->tgnargs != 1)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("pipeline._rollup_capture must be called by the statement triggers of a rollup")));
	return pg_strtoint64(trig->tg_trigger->tgargs[0]);
}

/*
 * pipeline._rollup_capture() writes the dirty cells of one statement on a
 * rollup's source (the file's header). A dirty-cells table that is gone
 * is not made here, in a writer's transaction: the next run of the
 * pipeline makes it again and recomputes every cell.
 */
Datum
pipeline_rollup_capture(PG_FUNCTION_ARGS)
{
	TriggerData *trig = (TriggerData *) fcinfo->context;
	int64		pipeline_id = RequireCaptureTrigger(fcinfo);
	Oid			source = RelationGetRelid(trig->tg_relation);
	PipelineDef *def;
	int			nestlevel;
	Oid			nspid;
	char	   *dirty;
	OwnerContext ctx;
	int			rc;
	bool		has_horizon;
	Datum		horizon = (Datum) 0;
	Oid			horizon_type = InvalidOid;

	SPI_connect();
	nestlevel = PinSearchPath();
	def = LoadPipelineById(pipeline_id);
	if (def == NULL || def->mode != LOAD_MODE_ROLLUP)
	{
		UnpinSearchPath(nestlevel);
		SPI_finish();
		return PointerGetDatum(NULL);	/* a leftover of a pipeline that is no rollup */
	}
	nspid = get_namespace_oid(def->source_schema, true);
	if (!OidIsValid(nspid) || get_relname_relid(def->source_table, nspid) != source)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("pipeline._rollup_capture fired on %s, which is not the source of pipeline \"%s\"",
						RelationNameOf(source), def->name),
				 errhint("DROP TRIGGER %s ON %s;", quote_identifier(trig->tg_trigger->tgname),
						 RelationNameOf(source))));
	dirty = RollupDirtyTableName(def->target_table);
	nspid = get_namespace_oid(def->target_schema, true);
	if (dirty == NULL || !OidIsValid(nspid) || !OidIsValid(get_relname_relid(dirty, nspid)))
	{
		ereport(WARNING,
				(errmsg("the dirty-cells table of pipeline \"%s\" is gone", def->name),
				 errdetail("This change of %s is not recorded; the next run of the pipeline recomputes every cell.",
						   RelationNameOf(source))));
		UnpinSearchPath(nestlevel);
		SPI_finish();
		return PointerGetDatum(NULL);
	}
	if (SPI_register_trigger_data(trig) != SPI_OK_TD_REGISTER)
		elog(ERROR, "pg_pipeline could not read the transition tables");
	has_horizon = CaptureHorizon(def, source, &horizon, &horizon_type);
	EnterOwnerContext(&ctx, def->owner);
	rc = SPI_execute_with_args(CaptureSql(def, trig, source, quote_qualified_identifier(def->target_schema, dirty),
										  has_horizon),
							   has_horizon ? 1 : 0, &horizon_type, &horizon, NULL, false, 0);
	LeaveOwnerContext(&ctx);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "pg_pipeline could not record dirty cells: %s", SPI_result_code_string(rc));
	UnpinSearchPath(nestlevel);
	SPI_finish();
	return PointerGetDatum(NULL);
}
