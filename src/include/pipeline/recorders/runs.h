/*-------------------------------------------------------------------------
 *
 * src/include/pipeline/recorders/runs.h
 *
 * Layer 2, the recorders: what a run was asked to do, and the records of
 * its outcome (pipeline.run_history, written in the run's transaction, or
 * by an autonomous worker for a failed run), and the alerts raised about
 * runs and limits.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_RECORDERS_RUNS_H
#define PIPELINE_RECORDERS_RUNS_H

#include "pipeline/catalog.h"

/* How a run was asked for, and by whom */
typedef struct RunRequest
{
	const char *triggered_by;	/* manual, schedule, trigger, upstream, retry, recovery */
	int64		parent_run_id;	/* 0 if none */
	int32		attempt;		/* 1 for a first attempt */
	int64		run_id;			/* a 'running' record already written, or 0 */
	bool		record_failure_inline;	/* the caller records a failure itself */
} RunRequest;

/* Row counts of one run (or of one batch) */
typedef struct LoadCounts
{
	int64		read;
	int64		inserted;
	int64		updated;
	int64		deleted;
	int64		unchanged;
	int64		rejected;
} LoadCounts;

/* A run that failed, as the failure recorder stores it */
typedef struct FailedRun
{
	int32		attempt;
	int64		run_id;
	PipelineDef *def;
	TimestampTz started_at;
	LoadCounts	counts;
	int			batches;
	const char *wm_from;
	const char *wm_to;
	const char *triggered_by;
	int64		parent_run_id;
	int			sqlerrcode;
	const char *message;
} FailedRun;


/* A finished run, as lineage and audit record it */
typedef struct RunSummary
{
	int64		run_id;
	PipelineDef *def;
	const char *status;
	TimestampTz started_at;
	const LoadCounts *counts;
	int			batches;
	const char *wm_from;
	const char *wm_to;
	const char *triggered_by;
	int64		parent_run_id;
} RunSummary;

/* recorders/runs.c */
extern int64 NextRunId(void);
extern void InsertRunRecord(int64 run_id, PipelineDef *def, const char *status,
							TimestampTz started_at, bool finished,
							const LoadCounts *counts, int batches,
							const char *wm_from, const char *wm_to,
							const RunRequest *req);
extern void UpdateRunRecord(int64 run_id, const char *status, bool finished,
							const LoadCounts *counts, int batches,
							const char *wm_from, const char *wm_to);
extern void FailStaleRuns(int64 pipeline_id, int64 current_run_id);

/* recorders/failure_recorder.c */
extern void RecordFailedRun(FailedRun *run);
extern void StoreFailedRun(FailedRun *run);
extern bool IsTransientError(int sqlerrcode);

/* recorders/alerts.c */
extern void RaiseAlert(int64 pipeline_id, const char *pipeline_name, const char *kind,
					   const char *observed, const char *limit_value, int64 run_id,
					   const char *message);

#endif							/* PIPELINE_RECORDERS_RUNS_H */
