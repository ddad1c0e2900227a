/*-------------------------------------------------------------------------
 *
 * src/engine/retention.c
 *
 * Raw retention: a pipeline's raw_retention option purges the rows of its
 * source table that are older than it and that every pipeline reading the
 * table has read (docs/privacy.md#raw-retention, the rule in
 * docs/exactly-once.md#what-raw-retention-counts-as-loaded). One purge
 * deletes at most pipeline.retention_batch_rows rows, in the caller's
 * transaction:
 *
 *   1. the plan of the pipeline as a run would resolve it, and the run's
 *      privilege checks (the owner needs DELETE on the source too);
 *   2. the source must be a plain table without row-level security, the
 *      pipeline's incremental column a time column, its mode not full;
 *   3. every pipeline whose source reads the table must read the table
 *      itself (not through a view, a parent or a materialized view), with
 *      an incremental column, not in mode full; otherwise nothing is
 *      purged and the reason is logged (once, until it changes);
 *   4. the bound: now() - raw_retention, in the column's type;
 *   5. the read windows of every reader (catalog/read_windows.c) are armed
 *      for pipeline._raw_loaded (retention_proof.c), and one DELETE, as the
 *      pipeline's owner (EnterOwnerContext), removes up to a batch of rows
 *      under the bound, above the frontier, that every reader's windows
 *      prove read: value in a window, xmin visible to its snapshot;
 *   6. the purge is logged with its audit entry (recorders/retention_log.c);
 *      when the batch was not full, the frontier moves up to the lowest
 *      point a reader's next run could read from, and the windows wholly
 *      below it are dropped.
 *
 * The launcher runs one batch per pipeline per pass and comes back after
 * pipeline.retention_pause while there is more (workers/launcher.c);
 * pipeline._purge_raw(name) runs one batch from SQL.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "pipeline/engine.h"
#include "retention_internal.h"
#include "run_internal.h"

PIPELINE_FUNCTION(pipeline_purge_raw);

/* the most windows of one reader armed for one purge (older runs first) */
#define MAX_ARMED_WINDOWS 100000

int			pipeline_retention_batch_rows = 1000;

/* A pipeline that reads the source, directly */
typedef struct Reader
{
	int64		id;
	char	   *name;
	char	   *column;			/* its incremental column */
	Oid			typid;			/* that column's type in the source */
	char	   *watermark;		/* NULL: it has loaded nothing */
	Interval   *lookback;
	ProofReader *proof;
} Reader;

/* Why raw retention cannot purge a source, for an error or the log */
typedef struct RetentionProblem
{
	const char *message;
	const char *detail;
	const char *hint;
} RetentionProblem;

/* RetentionInit defines the settings of raw retention */
void
RetentionInit(void)
{
	DefineCustomIntVariable("pipeline.retention_batch_rows",
							"Most source rows one purge of raw rows deletes.",
							NULL, &pipeline_retention_batch_rows, 1000, 1, 1000000,
							PGC_USERSET, 0, NULL, NULL, NULL);
}

static RetentionProblem *
Problem(const char *message, const char *detail, const char *hint)
{
	RetentionProblem *p = palloc(sizeof(RetentionProblem));

	p->message = message;
	p->detail = detail;
	p->hint = hint;
	return p;
}

/* RelationKindName spells what kind of relation a source is, for a detail */
static const char *
RelationKindName(char relkind)
{
	switch (relkind)
	{
		case RELKIND_VIEW:
			return "a view";
		case RELKIND_MATVIEW:
			return "a materialized view";
		case RELKIND_FOREIGN_TABLE:
			return "a foreign table";
		case RELKIND_PARTITIONED_TABLE:
			return "a partitioned table";
		default:
			return "not a table";
	}
}

/*
 * SourceProblem says why raw retention cannot purge a pipeline's own
 * source (the checks of registration, made again before each purge), or
 * NULL.
 */
static RetentionProblem *
SourceProblem(PipelineDef *def, Oid relid)
{
	char	   *ident = RelationNameOf(relid);
	char		relkind = get_rel_relkind(relid);
	AttrNumber	att;
	Oid			typid;
	HeapTuple	tup;
	bool		rls;

	if (relkind != RELKIND_RELATION)
		return Problem("raw_retention needs a table as source",
					   psprintf("Source %s of pipeline \"%s\" is %s.", ident, def->name,
								RelationKindName(relkind)),
					   "Set raw_retention on a pipeline whose source is the table that holds the raw rows.");
	if (def->incremental_column == NULL)
		return Problem("raw_retention needs a time incremental column",
					   psprintf("Pipeline \"%s\" has no incremental column.", def->name),
					   "Rows are purged by the age of their incremental column: pass incremental_column, a timestamp, timestamptz or date column.");
	att = get_attnum(relid, def->incremental_column);
	typid = att == InvalidAttrNumber ? InvalidOid : get_atttype(relid, att);
	if (!OidIsValid(typid) || !IsTimeType(typid))
		return Problem("raw_retention needs a time incremental column",
					   psprintf("Incremental column \"%s\" of pipeline \"%s\" has type %s.",
								def->incremental_column, def->name,
								OidIsValid(typid) ? format_type_be(typid) : "(none)"),
					   "Rows are purged by the age of their incremental column: use a timestamp, timestamptz or date column.");
	if (def->mode == LOAD_MODE_FULL)
		return Problem("raw_retention cannot purge the source of a pipeline in mode full",
					   psprintf("Pipeline \"%s\" deletes from its target the rows gone from its source.",
								def->name),
					   "Use mode merge, or leave out raw_retention.");
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	rls = HeapTupleIsValid(tup) && ((Form_pg_class) GETSTRUCT(tup))->relrowsecurity;
	if (HeapTupleIsValid(tup))
		ReleaseSysCache(tup);
	if (rls)
		return Problem("raw_retention cannot purge a table with row-level security",
					   psprintf("Table %s has row-level security: a run may not have read every row of it.",
								ident),
					   "Disable row-level security on it, or leave out raw_retention.");
	if (CitusTableKindOf(relid) != CITUS_NONE)
		return Problem("raw_retention cannot purge a Citus table",
					   psprintf("Table %s is a Citus table.", ident),
					   "Leave out raw_retention.");
	return NULL;
}

/*
 * DirectReader makes a Reader of a pipeline whose source is the table
 * itself, or says why its runs do not let rows be purged.
 */
static Reader *
DirectReader(int64 id, const char *name, Oid relid, const char *column, const char *mode,
			 const char *watermark, Interval *lookback, RetentionProblem **problem)
{
	char	   *ident = RelationNameOf(relid);
	Reader	   *r;
	AttrNumber	att;
	Oid			typid;
	const char *hint = "Raw rows are purged once every pipeline reading the table has read them; see docs/privacy.md#raw-retention.";

	if (column == NULL)
	{
		*problem = Problem(psprintf("pipeline \"%s\" reads %s without an incremental column", name, ident),
						   NULL, hint);
		return NULL;
	}
	if (strcmp(mode, "full") == 0)
	{
		*problem = Problem(psprintf("pipeline \"%s\" reads %s in mode full, which deletes from its target the rows gone from its source",
									name, ident), NULL, hint);
		return NULL;
	}
	att = get_attnum(relid, column);
	typid = att == InvalidAttrNumber ? InvalidOid : get_atttype(relid, att);
	if (!OidIsValid(typid) || !IsIncrementalType(typid))
	{
		*problem = Problem(psprintf("pipeline \"%s\" reads %s by column \"%s\", which is not an incremental column of it",
									name, ident, column), NULL, hint);
		return NULL;
	}
	r = palloc0(sizeof(Reader));
	r->id = id;
	r->name = pstrdup(name);
	r->column = pstrdup(column);
	r->typid = typid;
	r->watermark = watermark ? pstrdup(watermark) : NULL;
	r->lookback = lookback;
	return r;
}

/*
 * FindReaders returns the pipeline itself and every other pipeline whose
 * source is the table, first problem found in *problem: a pipeline whose
 * source reads the table otherwise (a view over it, a parent of it, a
 * materialized view of it: CollectBaseTables), or reads it without what
 * the proof needs.
 */
static List *
FindReaders(PipelineDef *def, Oid relid, RetentionProblem **problem)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1];
	SPITupleTable *tuptable;
	uint64		n;
	List	   *readers = NIL;
	Reader	   *own;

	*problem = NULL;
	own = DirectReader(def->id, def->name, relid, def->incremental_column,
					   LoadModeName(def->mode), def->watermark, def->lookback, problem);
	if (own == NULL)
		return NIL;
	readers = lappend(readers, own);
	values[0] = Int64GetDatum(def->id);
	ExecCatalog("SELECT p.pipeline_id, p.name,"
				"       to_regclass(quote_ident(p.source_schema) || '.' || quote_ident(p.source_table))::oid,"
				"       p.incremental_column, p.mode, p.lookback, w.value"
				"  FROM pipeline.pipeline p LEFT JOIN pipeline.watermark w USING (pipeline_id)"
				" WHERE p.pipeline_id <> $1 ORDER BY p.pipeline_id",
				1, types, values, NULL, true);
	tuptable = SPI_tuptable;
	n = SPI_processed;
	for (uint64 i = 0; i < n && *problem == NULL; i++)
	{
		HeapTuple	tup = tuptable->vals[i];
		TupleDesc	desc = tuptable->tupdesc;
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		char	   *name = SPI_getvalue(tup, desc, 2);
		Datum		source = SPI_getbinval(tup, desc, 3, &isnull);
		Datum		lookback;
		Reader	   *r;

		if (isnull)
			continue;			/* its source is gone: it reads nothing */
		if (DatumGetObjectId(source) != relid)
		{
			if (list_member_oid(CollectBaseTables(DatumGetObjectId(source)), relid))
				*problem = Problem(psprintf("pipeline \"%s\" reads %s through %s", name,
											RelationNameOf(relid),
											RelationNameOf(DatumGetObjectId(source))),
								   NULL, "Raw rows are purged only while every pipeline reading the table reads it directly; see docs/privacy.md#raw-retention.");
			continue;
		}
		lookback = SPI_getbinval(tup, desc, 6, &isnull);
		r = DirectReader(id, name, relid, SPI_getvalue(tup, desc, 4), SPI_getvalue(tup, desc, 5),
						 SPI_getvalue(tup, desc, 7),
						 isnull ? NULL : DatumGetIntervalP(datumCopy(lookback, false, sizeof(Interval))),
						 problem);
		if (r)
			readers = lappend(readers, r);
	}
	return readers;
}

/*
 * CheckRawRetention refuses (22023) a definition whose raw_retention could
 * never purge anything, and tells (NOTICE) when another pipeline keeps it
 * from purging for now. Called at registration (api/registry.c).
 */
void
CheckRawRetention(PipelineDef *def, LoadPlan *plan)
{
	RetentionProblem *problem = SourceProblem(def, plan->source_relid);

	if (problem)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s", problem->message),
				 errdetail("%s", problem->detail),
				 errhint("%s", problem->hint)));
	(void) FindReaders(def, plan->source_relid, &problem);
	if (problem)
		ereport(NOTICE,
				(errmsg("raw rows of %s will not be purged while %s", plan->source_ident,
						problem->message),
				 errhint("%s", problem->hint)));
}

/* RetentionBound is now() - retention in the column's type: rows under it are old enough */
static Datum
RetentionBound(Interval *retention, Oid typid)
{
	Datum		now = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	Datum		bound = DirectFunctionCall2(timestamptz_mi_interval, now,
											IntervalPGetDatum(retention));

	switch (getBaseType(typid))
	{
		case TIMESTAMPOID:
			return DirectFunctionCall1(timestamptz_timestamp, bound);
		case DATEOID:
			return DirectFunctionCall1(timestamptz_date, bound);
		default:
			return bound;
	}
}

/* SameColumn: two readers read the same column of the table, as the same type */
static bool
SameColumn(Reader *a, Reader *b)
{
	return strcmp(a->column, b->column) == 0 && a->typid == b->typid;
}

/* BaseValue reads canonical text as a value of a type's base type */
static Datum
BaseValue(const char *text, Oid typid)
{
	Oid			input;
	Oid			ioparam;

	getTypeInputInfo(getBaseType(typid), &input, &ioparam);
	return OidInputFunctionCall(input, (char *) text, ioparam, -1);
}

/*
 * ArmReaders loads each reader's windows (for a reader of the purge's own
 * column, only those starting under the bound) and builds its proof;
 * false when a reader has read nothing, so nothing can be purged.
 */
static bool
ArmReaders(List *readers, const char *bound)
{
	Reader	   *own = linitial(readers);
	ListCell   *lc;

	foreach(lc, readers)
	{
		Reader	   *r = lfirst(lc);
		List	   *windows = LoadReadWindows(r->id, r->column, r->typid,
											  SameColumn(r, own) ? bound : NULL,
											  MAX_ARMED_WINDOWS);

		if (windows == NIL)
			return false;
		r->proof = BuildProofReader(windows, r->typid);
	}
	return true;
}

/*
 * PurgeStatement builds the DELETE of one batch: the rows of the table
 * itself (ONLY: not its inheritance children) under the bound ($1), at or
 * above the frontier ($3, when there is one), that _raw_loaded proves read
 * by every reader; the proof is evaluated again on the row the DELETE
 * finds, so that a version written by a concurrent update is judged by its
 * own xmin.
 */
static char *
PurgeStatement(const char *ident, List *readers, bool has_frontier)
{
	Reader	   *own = linitial(readers);
	StringInfoData proof;
	const char *col = quote_identifier(own->column);
	ListCell   *lc;

	initStringInfo(&proof);
	appendStringInfo(&proof, "%s < $1 AND pipeline._raw_loaded(xmin", col);
	foreach(lc, readers)
		appendStringInfo(&proof, ", %s", quote_identifier(((Reader *) lfirst(lc))->column));
	appendStringInfoChar(&proof, ')');
	return psprintf("DELETE FROM ONLY %s WHERE ctid OPERATOR(pg_catalog.=) ANY (ARRAY("
					"SELECT ctid FROM ONLY %s WHERE %s%s%s LIMIT $2)) AND %s",
					ident, ident, proof.data, has_frontier ? " AND " : "",
					has_frontier ? psprintf("%s >= $3", col) : "", proof.data);
}

/* ExecutePurge runs the DELETE as the pipeline's owner with the proof armed */
static uint64
ExecutePurge(PipelineDef *def, const char *sql, List *readers, Oid typid, Datum bound,
			 int batch, bool has_frontier, Datum frontier)
{
	ProofReader **proofs = palloc(sizeof(ProofReader *) * list_length(readers));
	Oid			types[3] = {getBaseType(typid), INT8OID, getBaseType(typid)};
	Datum		values[3] = {bound, Int64GetDatum(batch), frontier};
	OwnerContext ctx;
	int			rc = 0;
	ListCell   *lc;

	foreach(lc, readers)
		proofs[foreach_current_index(lc)] = ((Reader *) lfirst(lc))->proof;
	EnterOwnerContext(&ctx, def->owner);
	PG_TRY();
	{
		ArmRawProof(proofs, list_length(readers));
		rc = SPI_execute_with_args(sql, has_frontier ? 3 : 2, types, values, NULL, false, 0);
	}
	PG_FINALLY();
	{
		DisarmRawProof();
	}
	PG_END_TRY();
	LeaveOwnerContext(&ctx);
	if (rc != SPI_OK_DELETE)
		elog(ERROR, "pg_pipeline purge failed: %s", SPI_result_code_string(rc));
	return SPI_processed;
}

/*
 * AdvanceFrontier, after a purge that left nothing it could delete under
 * the bound, moves the pipeline's frontier to the lowest point from which
 * a reader's next run could read (its watermark minus its lookback; the
 * bound if lower), and drops the windows wholly below it: a row left under
 * it was not read by some reader, and no later run of that reader will
 * read it. Only when every reader reads the purge's column (otherwise
 * their points are not comparable) and has a watermark.
 */
static void
AdvanceFrontier(PipelineDef *def, List *readers, Datum bound, const char *frontier)
{
	Reader	   *own = linitial(readers);
	Oid			base = getBaseType(own->typid);
	Datum		point = bound;
	List	   *ids = NIL;
	ListCell   *lc;
	char	   *text;

	foreach(lc, readers)
	{
		Reader	   *r = lfirst(lc);
		Datum		next;

		if (!SameColumn(r, own) || r->watermark == NULL)
			return;
		next = BaseValue(r->watermark, base);
		if (r->lookback)
			next = SubtractLookback(next, r->lookback, base);
		if (CompareWatermarks(next, point, base, InvalidOid) < 0)
			point = next;
		ids = lappend(ids, &r->id);
	}
	if (frontier && CompareWatermarks(point, BaseValue(frontier, base), base, InvalidOid) <= 0)
		return;
	text = WatermarkToText(point, base);
	StoreRetentionFrontier(def->id, own->column, own->typid, text);
	DropReadWindowsBelow(ids, own->column, own->typid, text);
}

/* ReaderNames lists the readers' names, for the log */
static List *
ReaderNames(List *readers)
{
	List	   *names = NIL;
	ListCell   *lc;

	foreach(lc, readers)
		names = lappend(names, ((Reader *) lfirst(lc))->name);
	return names;
}

/*
 * PurgeRawBatch deletes at most batch raw rows of a pipeline's source (the
 * steps in the file's header) and returns how many; *more says the batch
 * was full. When something keeps it from purging, the reason goes to the
 * log (and, for a call from SQL, a NOTICE) and nothing is deleted.
 */
static int64
PurgeRawBatch(PipelineDef *def, const char *triggered_by, int batch, bool *more)
{
	LoadPlan   *plan = BuildLoadPlan(def);
	RetentionProblem *problem;
	List	   *readers = NIL;
	Reader	   *own;
	Oid			base;
	Datum		bound;
	char	   *bound_text;
	char	   *frontier;
	uint64		deleted;

	*more = false;
	CheckPipelinePrivileges(def, plan->source_relid, plan->target_relid, def->owner);
	problem = SourceProblem(def, plan->source_relid);
	if (problem == NULL)
		readers = FindReaders(def, plan->source_relid, &problem);
	if (problem)
	{
		(void) RecordRawPurgeSkipped(def, plan->source_ident, problem->message, triggered_by);
		if (strcmp(triggered_by, "manual") == 0)
			ereport(NOTICE,
					(errmsg("raw rows of %s not purged: %s", plan->source_ident, problem->message),
					 problem->hint ? errhint("%s", problem->hint) : 0));
		return 0;
	}
	own = linitial(readers);
	base = getBaseType(own->typid);
	bound = RetentionBound(def->raw_retention, own->typid);
	bound_text = WatermarkToText(bound, base);
	frontier = LoadRetentionFrontier(def->id, own->column, own->typid);
	if (frontier && CompareWatermarks(BaseValue(frontier, base), bound, base, InvalidOid) >= 0)
		return 0;
	if (!ArmReaders(readers, bound_text))
		return 0;
	deleted = ExecutePurge(def, PurgeStatement(plan->source_ident, readers, frontier != NULL),
						   readers, own->typid, bound, batch, frontier != NULL,
						   frontier ? BaseValue(frontier, base) : (Datum) 0);
	if (deleted > 0)
		(void) RecordRawPurge(def, plan->source_ident, ReaderNames(readers), (int64) deleted,
							  bound_text, triggered_by);
	if (deleted < (uint64) batch)
		AdvanceFrontier(def, readers, bound, frontier);
	*more = deleted >= (uint64) batch;
	return (int64) deleted;
}

/*
 * pipeline._purge_raw(name): one purge of a pipeline's raw rows now, as
 * the launcher makes them (at most pipeline.retention_batch_rows rows);
 * returns the rows deleted. Who may run the pipeline may call it.
 */
Datum
pipeline_purge_raw(PG_FUNCTION_ARGS)
{
	char	   *name = PipelineNameArg(fcinfo, 0);
	PipelineDef *def;
	int			nestlevel;
	int64		deleted;
	bool		more;

	SPI_connect();
	nestlevel = PinSearchPath();
	def = LoadPipelineByName(name, false);
	CheckPipelineOwner(def, "run");
	if (def->raw_retention == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pipeline \"%s\" has no raw_retention", def->name),
				 errhint("Set one with SELECT pipeline.alter_pipeline(%s, raw_retention => '30 days');",
						 quote_literal_cstr(def->name))));
	deleted = PurgeRawBatch(def, "manual", pipeline_retention_batch_rows, &more);
	UnpinSearchPath(nestlevel);
	SPI_finish();
	PG_RETURN_INT64(deleted);
}

/* One pipeline's purge in a launcher pass, and what came of it */
typedef struct LauncherPurge
{
	PipelineDef *def;
	bool		more;
} LauncherPurge;

static void
LauncherPurgeOne(void *arg)
{
	LauncherPurge *p = arg;

	(void) PurgeRawBatch(p->def, "launcher", pipeline_retention_batch_rows, &p->more);
}

/*
 * PurgeRawLauncherPass makes one purge of every active pipeline with
 * raw_retention, each in a subtransaction of its own: one that fails
 * (a privilege revoked, the target dropped) is logged with its error and
 * does not stop the others. Returns true when a batch was full, so that
 * the launcher comes back after pipeline.retention_pause.
 */
bool
PurgeRawLauncherPass(void)
{
	SPITupleTable *tuptable;
	uint64		n;
	bool		more = false;

	ExecCatalog("SELECT pipeline_id FROM pipeline.pipeline"
				" WHERE raw_retention IS NOT NULL AND active ORDER BY pipeline_id",
				0, NULL, NULL, NULL, true);
	tuptable = SPI_tuptable;
	n = SPI_processed;
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;
		LauncherPurge p = {0};
		char	   *message = NULL;

		p.def = LoadPipelineById(DatumGetInt64(SPI_getbinval(tuptable->vals[i], tuptable->tupdesc, 1, &isnull)));
		if (p.def == NULL)
			continue;
		if (TryInSubtransactionMessage(LauncherPurgeOne, &p, &message) != 0)
			(void) RecordRawPurgeSkipped(p.def, QualifiedRelationName(p.def->source_schema, p.def->source_table),
										 message, "launcher");
		more |= p.more;
	}
	return more;
}
