/*-------------------------------------------------------------------------
 *
 * src/api/pipeline_actions.c
 *
 * The SQL functions that act on one registered pipeline without changing
 * its definition: pause, resume, reset (its watermark) and explain (the
 * statements its next run executes). Each checks that the caller may act on
 * the pipeline and is audited as a registry change where it changes state.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/timestamp.h"

#include "pipeline/workers.h"
#include "registry_internal.h"

PIPELINE_FUNCTION(pipeline_pause);
PIPELINE_FUNCTION(pipeline_resume);
PIPELINE_FUNCTION(pipeline_reset);
PIPELINE_FUNCTION(pipeline_explain);

/* SetActive implements pause and resume */
static void
SetActive(FunctionCallInfo fcinfo, bool active)
{
	char	   *name = PipelineNameArg(fcinfo, 0);
	PipelineDef *def;
	int			nestlevel;

	SPI_connect();
	nestlevel = PinSearchPath();
	def = LoadPipelineByName(name, false);
	CheckPipelineOwner(def, active ? "resume" : "pause");
	if (def->active != active)
		SetPipelineActive(def->id, active);
	if (!active)
		ForgetQueuedRuns(def->id);
	RegistryChanged(active ? "resume" : "pause", def, NULL);
	UnpinSearchPath(nestlevel);
	SPI_finish();
}

/* pipeline.pause(name): the pipeline refuses to run until resumed */
Datum
pipeline_pause(PG_FUNCTION_ARGS)
{
	SetActive(fcinfo, false);
	PG_RETURN_VOID();
}

/* pipeline.resume(name) */
Datum
pipeline_resume(PG_FUNCTION_ARGS)
{
	SetActive(fcinfo, true);
	PG_RETURN_VOID();
}

/*
 * pipeline.reset(name, watermark) sets the watermark: NULL makes the next
 * run read the whole source; a value is parsed as the incremental column's
 * type (with the caller's DateStyle, as the pipeline owner, since a domain's
 * CHECK may call the owner's code) and stored in canonical form. Values at
 * an end of the type are refused (22023). The frontier of its raw
 * retention goes: the next run may read rows from below it again.
 */
Datum
pipeline_reset(PG_FUNCTION_ARGS)
{
	char	   *name = PipelineNameArg(fcinfo, 0);
	char	   *value = OptionalText(fcinfo, 1);
	PipelineDef *def;
	int			nestlevel;
	char	   *canonical = NULL;
	Datum		wm;

	SPI_connect();
	nestlevel = PinSearchPath();
	def = LoadPipelineByName(name, false);
	CheckPipelineOwner(def, "reset");
	if (value != NULL)
	{
		LoadPlan   *plan;

		if (def->incremental_column == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("pipeline \"%s\" has no incremental column, so no watermark", def->name),
					 errhint("Call pipeline.reset(%s) without a watermark.", quote_literal_cstr(def->name))));
		plan = BuildLoadPlan(def);
		wm = WatermarkFromText(value, plan->incremental->typid, plan->incremental->typmod,
							   def->owner);
		canonical = WatermarkToText(wm, plan->incremental->typid);
		if (WatermarkIsExtreme(wm, plan->incremental->typid))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("watermark %s of pipeline \"%s\" is at an end of its type", canonical, def->name),
					 errdetail("Column \"%s\" is of type %s; a watermark at infinity or at the type's minimum or maximum would hide every later row.",
							   def->incremental_column, format_type_be(plan->incremental->typid)),
					 errhint("Reset to a finite value inside the type's range, or call pipeline.reset(%s) to reload everything.",
							 quote_literal_cstr(def->name))));
	}
	StoreWatermark(def->id, canonical, 0);
	ForgetRetentionFrontier(def->id);
	RegistryChanged("reset", def, canonical);
	UnpinSearchPath(nestlevel);
	SPI_finish();
	PG_RETURN_VOID();
}

/* pipeline.explain(name): the statements the next run would execute */
Datum
pipeline_explain(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *name = PipelineNameArg(fcinfo, 0);
	PipelineDef *def;
	List	   *rows;
	ListCell   *lc;
	int			nestlevel;

	/* SETOF text: the expected descriptor is the one-column row */
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);

	SPI_connect();
	nestlevel = PinSearchPath();
	def = LoadPipelineByName(name, false);
	/* the statements name the owner's relations and columns: the owner's eyes only */
	CheckPipelineOwner(def, "explain");
	rows = ExplainPipeline(def);
	foreach(lc, rows)
	{
		Datum		value = CStringGetTextDatum((char *) lfirst(lc));
		bool		isnull = false;

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &value, &isnull);
	}
	UnpinSearchPath(nestlevel);
	SPI_finish();
	return (Datum) 0;
}
