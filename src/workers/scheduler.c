/*-------------------------------------------------------------------------
 *
 * src/workers/scheduler.c
 *
 * Time-based runs through pg_cron. Each scheduled pipeline has one pg_cron
 * job named "pipeline: <name>" that runs as the pipeline's owner and calls
 * CALL pipeline.scheduled_run(name), which runs in batches when the
 * pipeline has batch_rows and skips a paused pipeline quietly. pg_cron is a
 * soft dependency: it is looked up when a schedule is asked for, and its
 * absence is an error only then.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"

#include "pipeline/workers.h"

PIPELINE_FUNCTION(pipeline_schedule);
PIPELINE_FUNCTION(pipeline_unschedule);
PIPELINE_FUNCTION(pipeline_scheduled_run);

#define JOB_NAME_PREFIX "pipeline: "

/* CronJobName names the pg_cron job of a pipeline */
static char *
CronJobName(const char *pipeline_name)
{
	return psprintf(JOB_NAME_PREFIX "%s", pipeline_name);
}

/* RequirePgCron raises 55000 unless pg_cron is installed in this database */
static void
RequirePgCron(const char *pipeline_name)
{
	if (OidIsValid(get_extension_oid("pg_cron", true)))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("cannot schedule pipeline \"%s\": pg_cron is not installed in this database",
					pipeline_name),
			 errhint("Add pg_cron to shared_preload_libraries, set cron.database_name to this database, and CREATE EXTENSION pg_cron; or run the pipeline with pipeline.run or pipeline.trigger.")));
}

/*
 * ScheduleCronJob creates or replaces the pg_cron job of a pipeline from its
 * schedule, running as the pipeline's owner. old_name, when the pipeline was
 * renamed, names the job to remove first.
 */
void
ScheduleCronJob(PipelineDef *def, const char *old_name)
{
	CronSchedule cs;
	Oid			types[4] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		values[4];
	char	   *command;
	int			rc;

	ParseCronSchedule(def->schedule, &cs);
	RequirePgCron(def->name);
	if (old_name && strcmp(old_name, def->name) != 0)
		(void) UnscheduleCronJob(old_name);
	command = psprintf("CALL pipeline.scheduled_run(%s)", quote_literal_cstr(def->name));
	values[0] = CStringGetTextDatum(CronJobName(def->name));
	values[1] = CStringGetTextDatum(def->schedule);
	values[2] = CStringGetTextDatum(command);
	values[3] = CStringGetTextDatum(GetUserNameFromId(def->owner, false));
	if (GetUserId() == def->owner)
		rc = SPI_execute_with_args("SELECT cron.schedule($1, $2, $3)",
								   3, types, values, NULL, false, 0);
	else
		rc = SPI_execute_with_args("SELECT cron.schedule_in_database($1, $2, $3,"
								   " current_database(), $4)",
								   4, types, values, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not schedule pipeline \"%s\"", def->name);
}

/*
 * UnscheduleCronJob removes the pg_cron job of a pipeline, if pg_cron and
 * the job exist; returns whether a job was removed.
 */
bool
UnscheduleCronJob(const char *pipeline_name)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1];

	if (!OidIsValid(get_extension_oid("pg_cron", true)))
		return false;
	values[0] = CStringGetTextDatum(CronJobName(pipeline_name));
	if (SPI_execute_with_args("SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = $1",
							  1, types, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not unschedule pipeline \"%s\"", pipeline_name);
	return SPI_processed > 0;
}

/* StoreSchedule records a pipeline's schedule (NULL: none) */
static void
StoreSchedule(int64 pipeline_id, const char *schedule)
{
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2];
	char		nulls[2] = {' ', schedule ? ' ' : 'n'};

	values[0] = Int64GetDatum(pipeline_id);
	values[1] = schedule ? CStringGetTextDatum(schedule) : (Datum) 0;
	ExecCatalog("UPDATE pipeline.pipeline SET schedule = $2, updated_at = now()"
				" WHERE pipeline_id = $1", 2, types, values, nulls, false);
}

/* pipeline.schedule(name, schedule): run on a cron schedule; returns the job id */
Datum
pipeline_schedule(PG_FUNCTION_ARGS)
{
	PipelineDef *def;
	int			nestlevel;
	bool		isnull;
	int64		job_id;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL", PG_ARGISNULL(0) ? "pipeline name" : "schedule"),
				 errhint("Remove a schedule with pipeline.unschedule.")));
	SPI_connect();
	nestlevel = PinSearchPath();
	def = LoadPipelineByName(text_to_cstring(PG_GETARG_TEXT_PP(0)), false);
	CheckPipelineOwner(def, "schedule");
	def->schedule = text_to_cstring(PG_GETARG_TEXT_PP(1));
	ScheduleCronJob(def, NULL);
	job_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	StoreSchedule(def->id, def->schedule);
	RegistryChanged("schedule", def, def->schedule);
	UnpinSearchPath(nestlevel);
	SPI_finish();
	PG_RETURN_INT64(job_id);
}

/* pipeline.unschedule(name): stop time-based runs; returns whether a job went */
Datum
pipeline_unschedule(PG_FUNCTION_ARGS)
{
	PipelineDef *def;
	int			nestlevel;
	bool		removed;

	RequireArg(fcinfo, 0, "pipeline name");
	SPI_connect();
	nestlevel = PinSearchPath();
	def = LoadPipelineByName(text_to_cstring(PG_GETARG_TEXT_PP(0)), false);
	CheckPipelineOwner(def, "unschedule");
	removed = UnscheduleCronJob(def->name);
	StoreSchedule(def->id, NULL);
	def->schedule = NULL;
	RegistryChanged("unschedule", def, NULL);
	UnpinSearchPath(nestlevel);
	SPI_finish();
	PG_RETURN_BOOL(removed);
}

/*
 * pipeline.scheduled_run(name): what a pg_cron job calls. A paused (or
 * dropped) pipeline is skipped without an error, so pausing is enough to
 * stop a schedule; a pipeline with batch_rows runs in committed batches.
 */
Datum
pipeline_scheduled_run(PG_FUNCTION_ARGS)
{
	char	   *name;
	PipelineDef *def;
	int			nestlevel;

	RequireArg(fcinfo, 0, "pipeline name");
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	SPI_connect();
	nestlevel = PinSearchPath();
	def = LoadPipelineByName(name, true);
	UnpinSearchPath(nestlevel);
	SPI_finish();
	if (def == NULL || !def->active)
	{
		ereport(NOTICE,
				(errmsg("pipeline \"%s\" is %s; scheduled run skipped", name,
						def == NULL ? "not registered" : "paused")));
		PG_RETURN_VOID();
	}
	if (def->batch_rows > 0)
		RunBatchedCall(fcinfo, name, 0, "schedule");
	else
	{
		RunRequest	req = {"schedule", 0, 1, 0, false};

		req.ends_transaction = CalledAlone(fcinfo);

		SPI_connect();
		nestlevel = PinSearchPath();
		(void) RunPipeline(LoadPipelineByName(name, false), &req);
		UnpinSearchPath(nestlevel);
		SPI_finish();
	}
	PG_RETURN_VOID();
}
