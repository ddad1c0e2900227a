/*-------------------------------------------------------------------------
 *
 * src/engine/source_lag.c
 *
 * How far a pipeline's source is ahead of its watermark, for
 * pipeline.status and pipeline.source_lag. Reading the source evaluates the
 * owner's code (views, the functions they call, domains), so it runs as the
 * owner through EnterOwnerContext, whoever reads the status. Each pipeline
 * degrades on its own: whatever goes wrong for one (a dropped source, an
 * owner who lost SELECT, which is the documented way to stop a pipeline, a
 * watermark at infinity or at an integer type's minimum, a source that
 * fails) gives no lag and a reason, in a subtransaction of its own, and
 * never an error that would fail the whole view.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "pipeline/engine.h"

PIPELINE_FUNCTION(pipeline_source_lag);
PIPELINE_FUNCTION(pipeline_source_lag_detail);

/* The lag of one pipeline's source, or why there is none */
typedef struct SourceLag
{
	char	   *lag;			/* NULL when there is none */
	char	   *reason;			/* NULL when lag is known */
} SourceLag;

/*
 * LagQuery builds the query of the distance from the watermark ($1) to the
 * greatest value in the source: an interval for time columns, a count of
 * values for integer ones.
 */
static char *
LagQuery(PipelineDef *def, Oid typid)
{
	Oid			base = getBaseType(typid);
	const char *col = quote_identifier(def->incremental_column);
	const char *src = quote_qualified_identifier(def->source_schema, def->source_table);

	if (base == DATEOID)
		return psprintf("SELECT make_interval(days => greatest(max(s.%s) - $1, 0))::text FROM %s AS s", col, src);
	if (IsTimeType(base))
		return psprintf("SELECT greatest(max(s.%s) - $1, '0'::interval)::text FROM %s AS s", col, src);
	return psprintf("SELECT greatest(max(s.%s) - $1, 0)::text FROM %s AS s", col, src);
}

/* What MeasureLag reads and fills, passed through TryInSubtransaction */
typedef struct LagTry
{
	PipelineDef *def;
	Oid			relid;
	SourceLag  *out;
} LagTry;

/*
 * MeasureLag reads the lag as the pipeline owner (arg is a LagTry); errors
 * propagate to the caller's subtransaction.
 */
static void
MeasureLag(void *arg)
{
	PipelineDef *def = ((LagTry *) arg)->def;
	Oid			relid = ((LagTry *) arg)->relid;
	SourceLag  *out = ((LagTry *) arg)->out;

	AttrNumber	attnum = get_attnum(relid, def->incremental_column);
	Oid			typid;
	int32		typmod;
	Oid			collid;
	Datum		wm;
	OwnerContext ctx;
	int			rc;

	if (attnum <= 0)
	{
		out->reason = "the incremental column is missing from the source";
		return;
	}
	get_atttypetypmodcoll(relid, attnum, &typid, &typmod, &collid);
	if (!IsIncrementalType(typid))
	{
		out->reason = "the incremental column has a type that cannot be measured";
		return;
	}
	if (def->watermark == NULL)
	{
		out->lag = "not loaded yet";
		return;
	}
	wm = WatermarkFromText(def->watermark, typid, typmod, def->owner);
	if (WatermarkIsExtreme(wm, typid))
	{
		out->reason = psprintf("the watermark %s is at an end of its type", def->watermark);
		return;
	}
	EnterOwnerContext(&ctx, def->owner);
	rc = SPI_execute_with_args(LagQuery(def, typid), 1, &typid, &wm, NULL, true, 1);
	LeaveOwnerContext(&ctx);
	if (rc == SPI_OK_SELECT && SPI_processed == 1)
	{
		bool		isnull;
		Datum		lag = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (isnull)
			out->reason = "the source is empty";
		else
			out->lag = TextDatumGetCString(lag);
	}
}

/*
 * ComputeSourceLag fills out for one pipeline; anything a single pipeline
 * can get wrong ends as a reason, caught in a subtransaction (a cancel is
 * passed on).
 */
static void
ComputeSourceLag(int64 pipeline_id, SourceLag *out)
{
	PipelineDef *def = LoadPipelineById(pipeline_id);
	LagTry		lag_try;
	int			sqlerrcode;
	Oid			nspid;
	Oid			relid = InvalidOid;

	if (def == NULL)
	{
		out->reason = "no such pipeline";
		return;
	}
	if (!RoleMayAct(GetUserId(), def->owner, "read"))
	{
		out->reason = "only the roles that see the pipeline see the lag";
		return;
	}
	if (def->incremental_column == NULL)
	{
		out->reason = "the pipeline has no incremental column";
		return;
	}
	nspid = get_namespace_oid(def->source_schema, true);
	if (OidIsValid(nspid))
		relid = get_relname_relid(def->source_table, nspid);
	if (!OidIsValid(relid))
	{
		out->reason = "the source does not exist";
		return;
	}
	if (pg_class_aclcheck(relid, def->owner, ACL_SELECT) != ACLCHECK_OK &&
		pg_attribute_aclcheck_all(relid, def->owner, ACL_SELECT, ACLMASK_ALL) != ACLCHECK_OK)
	{
		out->reason = "the owner may not read the source";
		return;
	}

	lag_try.def = def;
	lag_try.relid = relid;
	lag_try.out = out;
	sqlerrcode = TryInSubtransaction(MeasureLag, &lag_try);
	if (sqlerrcode != 0)
	{
		out->lag = NULL;
		out->reason = psprintf("reading the source failed with SQLSTATE %s",
							   unpack_sql_state(sqlerrcode));
	}
}

/*
 * SourceLagCall computes the lag for a SQL call and copies it out of SPI's
 * memory into the caller's.
 */
static void
SourceLagCall(int64 pipeline_id, SourceLag *out)
{
	MemoryContext caller = CurrentMemoryContext;
	SourceLag	lag = {NULL, NULL};
	int			nestlevel;

	SPI_connect();
	nestlevel = PinSearchPath();
	ComputeSourceLag(pipeline_id, &lag);
	UnpinSearchPath(nestlevel);
	out->lag = lag.lag ? MemoryContextStrdup(caller, lag.lag) : NULL;
	out->reason = lag.reason ? MemoryContextStrdup(caller, lag.reason) : NULL;
	SPI_finish();
}

/*
 * pipeline.source_lag(pipeline_id): how far the source is ahead of the
 * watermark, 'not loaded yet' before the first run, NULL when there is no
 * lag to give (pipeline.source_lag_detail says why).
 */
Datum
pipeline_source_lag(PG_FUNCTION_ARGS)
{
	SourceLag	lag;

	SourceLagCall(PG_GETARG_INT64(0), &lag);
	if (lag.lag == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(lag.lag));
}

/* pipeline.source_lag_detail(pipeline_id, OUT lag text, OUT reason text) */
Datum
pipeline_source_lag_detail(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	SourceLag	lag;
	Datum		values[2];
	bool		nulls[2] = {false, false};

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	SourceLagCall(PG_GETARG_INT64(0), &lag);
	nulls[0] = lag.lag == NULL;
	values[0] = lag.lag ? CStringGetTextDatum(lag.lag) : (Datum) 0;
	nulls[1] = lag.reason == NULL;
	values[1] = lag.reason ? CStringGetTextDatum(lag.reason) : (Datum) 0;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}
