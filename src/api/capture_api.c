/*-------------------------------------------------------------------------
 *
 * src/api/capture_api.c
 *
 * The SQL API of change capture (docs/capture.md): pipeline.capture,
 * uncapture and purge_capture, each allowed to the table's owner (its
 * members, superusers) and pipeline_admin (policy's "capture" action) and
 * audited; and the capture option of create_pipeline and alter_pipeline
 * (SetUpCaptureSource): the table named as the source is captured if it is
 * not yet, and the pipeline reads its feed instead, with the change id as
 * its incremental column, _deleted as its delete column and the table's
 * primary key as its unique key. The work itself is the engine's
 * (engine/capture_*.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/lsyscache.h"

#include "registry_internal.h"

PIPELINE_FUNCTION(pipeline_capture);
PIPELINE_FUNCTION(pipeline_uncapture);
PIPELINE_FUNCTION(pipeline_purge_capture);

/*
 * CaptureState spells a capture for its audit entries: its capture table,
 * feed and key, and how many rows a snapshot copied (-1: none was taken).
 */
static char *
CaptureState(ChangeCapture *c, int64 snapshot_rows)
{
	StringInfoData state;
	ListCell   *lc;

	initStringInfo(&state);
	appendStringInfoChar(&state, '{');
	AppendJsonMember(&state, "capture_table", RelationNameOf(c->capture_relid), false);
	AppendJsonMember(&state, "feed", RelationNameOf(c->feed_relid), true);
	appendStringInfoString(&state, ",\"key\":[");
	foreach(lc, c->key_columns)
	{
		if (lc != list_head(c->key_columns))
			appendStringInfoChar(&state, ',');
		escape_json(&state, lfirst(lc));
	}
	appendStringInfoChar(&state, ']');
	if (snapshot_rows >= 0)
		appendStringInfo(&state, ",\"snapshot_rows\":%lld", (long long) snapshot_rows);
	appendStringInfoChar(&state, '}');
	return state.data;
}

/* RequireCapture returns a table's capture, refusing (42704) a table not captured */
static ChangeCapture *
RequireCapture(Oid relid, bool lock)
{
	ChangeCapture *c = LookupCapture(relid, lock);

	if (c == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("table %s is not captured", RelationNameOf(relid)),
				 errhint("pipeline.captures lists the captured tables; pipeline.capture starts one.")));
	return c;
}

/*
 * BeginCaptureCall starts capture(), uncapture() or purge_capture(): reads
 * the relation argument, connects to SPI, pins search_path (its level in
 * nestlevel, for EndCaptureCall) and checks that the caller may do action.
 */
static Oid
BeginCaptureCall(FunctionCallInfo fcinfo, const char *action, const char *verb, int *nestlevel)
{
	Oid			relid;

	RequireArg(fcinfo, 0, "relation");
	relid = PG_GETARG_OID(0);
	SPI_connect();
	*nestlevel = PinSearchPath();
	CheckCapturePrivilege(relid, action, verb);
	return relid;
}

static void
EndCaptureCall(int nestlevel)
{
	UnpinSearchPath(nestlevel);
	SPI_finish();
}

/* pipeline.capture(relation): start capturing a table; returns its capture table */
Datum
pipeline_capture(PG_FUNCTION_ARGS)
{
	int			nestlevel;
	Oid			relid = BeginCaptureCall(fcinfo, "capture", "capture", &nestlevel);
	ChangeCapture *c;
	int64		rows;

	c = StartCapture(relid, &rows);
	AuditObjectChange("capture", "table", RelationNameOf(relid), NULL, CaptureState(c, rows));
	EndCaptureCall(nestlevel);
	PG_RETURN_OID(c->capture_relid);
}

/*
 * pipeline.uncapture(relation): stop capturing a table, dropping its
 * triggers, feed and capture table; refused (2BP01) while pipelines read
 * its changes, which would lose their source.
 */
Datum
pipeline_uncapture(PG_FUNCTION_ARGS)
{
	int			nestlevel;
	Oid			relid = BeginCaptureCall(fcinfo, "uncapture", "stop capturing", &nestlevel);
	ChangeCapture *c = RequireCapture(relid, true);
	Oid			types[1] = {OIDOID};
	Datum		values[1];
	bool		isnull;
	Datum		readers;
	char	   *state;

	values[0] = ObjectIdGetDatum(c->capture_relid);
	ExecCatalog("SELECT pg_catalog.string_agg(pg_catalog.quote_literal(p.name), ', ' ORDER BY p.name)"
				"  FROM pipeline.source_relation r"
				"  JOIN pipeline.pipeline p ON p.pipeline_id OPERATOR(pg_catalog.=) r.pipeline_id"
				" WHERE r.relid OPERATOR(pg_catalog.=) $1",
				1, types, values, NULL, false);
	readers = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (!isnull)
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot stop capturing table %s: pipelines read its changes", RelationNameOf(relid)),
				 errdetail("Pipelines reading %s: %s.", RelationNameOf(c->feed_relid),
						   TextDatumGetCString(readers)),
				 errhint("Drop those pipelines, or alter them with capture => false, first.")));
	state = CaptureState(c, -1);
	StopCapture(c);
	AuditObjectChange("uncapture", "table", RelationNameOf(relid), state, NULL);
	EndCaptureCall(nestlevel);
	PG_RETURN_VOID();
}

/* pipeline.purge_capture(relation): purge now what the launcher would; returns how many changes */
Datum
pipeline_purge_capture(PG_FUNCTION_ARGS)
{
	int			nestlevel;
	Oid			relid = BeginCaptureCall(fcinfo, "purge_capture", "purge the capture of", &nestlevel);
	int64		purged = PurgeAllOfCapture(RequireCapture(relid, false));

	EndCaptureCall(nestlevel);
	PG_RETURN_INT64(purged);
}

/* CaptureOptionError raises the 22023 of an option that capture decides */
static void
CaptureOptionError(PipelineDef *def, const char *message, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s", message),
			 errdetail("Pipeline \"%s\" reads a captured table's changes: its incremental column is %s, its delete column %s, its unique key the table's primary key.",
					   def->name, CAPTURE_CHANGE_ID, CAPTURE_DELETED),
			 errhint("%s", hint)));
}

/* ArgGiven tells whether create_pipeline's (or alter_pipeline's) argument for an option is not NULL */
static bool
ArgGiven(FunctionCallInfo fcinfo, const char *option, bool alter)
{
	return !PG_ARGISNULL(PipelineOptionArgno(PipelineOptionByName(option), alter));
}

/* SameColumns tells whether two lists name the same columns, in any order */
static bool
SameColumns(List *a, List *b)
{
	ListCell   *lc;

	if (list_length(a) != list_length(b))
		return false;
	foreach(lc, a)
	{
		bool		found = false;
		ListCell   *bc;

		foreach(bc, b)
			found |= strcmp(lfirst(lc), lfirst(bc)) == 0;
		if (!found)
			return false;
	}
	return true;
}

/*
 * CheckCaptureOptions refuses (22023) the options a pipeline over a capture
 * cannot take: another incremental or delete column, another mode than
 * merge (the changes carry deletes).
 */
static void
CheckCaptureOptions(FunctionCallInfo fcinfo, PipelineDef *def, bool alter)
{
	if ((ArgGiven(fcinfo, "incremental_column", alter) &&
		 (def->incremental_column == NULL || strcmp(def->incremental_column, CAPTURE_CHANGE_ID) != 0)) ||
		(ArgGiven(fcinfo, "delete_column", alter) &&
		 (def->delete_column == NULL || strcmp(def->delete_column, CAPTURE_DELETED) != 0)))
		CaptureOptionError(def, "capture sets the incremental and delete columns itself",
						   "Leave out incremental_column and delete_column.");
	if (def->mode != LOAD_MODE_MERGE)
		CaptureOptionError(def, psprintf("capture needs mode merge, not %s", LoadModeName(def->mode)),
						   "Leave out mode: a merge applies the table's inserts, updates and deletes.");
}

/*
 * CapturedTable finds the table a pipeline with capture reads the changes
 * of: the source given (itself, or the table whose feed it is), or, in
 * alter_pipeline without a source, the pipeline's source (a table to
 * capture, or already a feed).
 */
static Oid
CapturedTable(PipelineDef *def, OptionArgs *args)
{
	Oid			source = OidIsValid(args->source_relid) ? args->source_relid
		: ResolveRelationName(def->source_schema, def->source_table, "source");
	ChangeCapture *of = LookupCaptureOf(source);

	return of ? of->relid : source;
}

/*
 * CaptureSnapshotForNewReader copies the table's rows into its capture
 * again when a new pipeline starts reading a capture that has purged
 * changes: those are gone, so the new reader starts from a snapshot (the
 * pipelines already reading find the copied rows unchanged). The capture's
 * row is locked, so no purge runs in between.
 */
static void
CaptureSnapshotForNewReader(ChangeCapture *c, PipelineDef *def)
{
	int64		rows;

	if (c->purged_through == 0)
		return;
	rows = SnapshotCapture(c);
	AuditObjectChange("capture_snapshot", "table", RelationNameOf(c->relid), NULL,
					  psprintf("{\"pipeline\": \"%s\", \"snapshot_rows\": %lld, \"purged_through\": %lld}",
							   def->name, (long long) rows, (long long) c->purged_through));
	ereport(NOTICE,
			(errmsg("the rows of table %s were copied into its capture again", RelationNameOf(c->relid)),
			 errdetail("Changes up to %lld were purged; pipeline \"%s\" starts from a snapshot of %lld rows.",
					   (long long) c->purged_through, def->name, (long long) rows)));
}

/* SetSource makes relid the source of def, its names in the caller's memory context */
static void
SetSource(PipelineDef *def, Oid relid, MemoryContext caller)
{
	MemoryContext spi = MemoryContextSwitchTo(caller);

	DescribeRelation(relid, &def->source_schema, &def->source_table);
	MemoryContextSwitchTo(spi);
}

/*
 * SetUpCaptureSource applies the capture option of create_pipeline or
 * alter_pipeline to def, before its options are validated: with capture,
 * the table is captured if it is not yet (with the privilege capture()
 * needs) and the pipeline reads its feed by change id, with the table's
 * primary key; switched off, the pipeline reads the table again (unless
 * given another source), without incremental and delete columns unless
 * given. A change of what the pipeline reads resets its watermark.
 */
void
SetUpCaptureSource(FunctionCallInfo fcinfo, PipelineDef *def, OptionArgs *args, bool alter,
				   bool was_capture)
{
	ChangeCapture *c;
	int64		rows;
	MemoryContext caller = CurrentMemoryContext;

	if (def->capture_retention && !def->capture)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("capture_retention needs capture"),
				 errdetail("Pipeline \"%s\" does not read a captured table's changes.", def->name),
				 errhint("Pass capture => true, or leave out capture_retention.")));
	if (!def->capture && !(alter && was_capture))
		return;
	SPI_connect();
	if (!def->capture)
	{
		/* switched off: back to the table, unless another source was given */
		if (!OidIsValid(args->source_relid))
			SetSource(def, CapturedTable(def, args), caller);
		if (!ArgGiven(fcinfo, "incremental_column", alter))
			def->incremental_column = NULL;
		if (!ArgGiven(fcinfo, "delete_column", alter))
			def->delete_column = NULL;
		args->source_relid = InvalidOid;
		args->reset_watermark = true;
		SPI_finish();
		return;
	}
	CheckCaptureOptions(fcinfo, def, alter);
	c = LookupCapture(CapturedTable(def, args), true);
	if (def->unique_key != NIL && c != NULL && !SameColumns(def->unique_key, c->key_columns))
		CaptureOptionError(def, "the unique key of a pipeline over a capture is the table's primary key",
						   "Leave out unique_key.");
	if (c == NULL)
	{
		Oid			table = CapturedTable(def, args);

		CheckCapturePrivilege(table, "capture", "capture");
		c = StartCapture(table, &rows);
		AuditObjectChange("capture", "table", RelationNameOf(table), NULL, CaptureState(c, rows));
	}
	else if (!alter || !was_capture || args->reset_watermark)
		CaptureSnapshotForNewReader(c, def);
	if (alter && !was_capture)
		args->reset_watermark = true;
	SetSource(def, c->feed_relid, caller);
	args->source_relid = c->feed_relid;
	def->incremental_column = CAPTURE_CHANGE_ID;
	def->delete_column = CAPTURE_DELETED;
	if (def->unique_key == NIL)
	{
		MemoryContext spi = MemoryContextSwitchTo(caller);
		ListCell   *lc;

		foreach(lc, c->key_columns)
			def->unique_key = lappend(def->unique_key, pstrdup(lfirst(lc)));
		MemoryContextSwitchTo(spi);
	}
	else if (!SameColumns(def->unique_key, c->key_columns))
		CaptureOptionError(def, "the unique key of a pipeline over a capture is the table's primary key",
						   "Leave out unique_key.");
	SPI_finish();
}
