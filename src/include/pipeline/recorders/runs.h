/*-------------------------------------------------------------------------
 *
 * src/include/pipeline/recorders/runs.h
 *
 * Layer 2, the recorders: what a run was asked to do, the one record of
 * a run (RunRecord) and its one writer (RecordRunOutcome: run_history,
 * run_io, audit entries and the run_failed alert, in the run's transaction
 * or, for a failed run whose transaction rolls back, in an autonomous
 * recorder worker's), and the alerts raised about runs and limits.
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
	bool		ends_transaction;	/* nothing runs after it in its transaction
									 * (a run worker's, or a statement that is
									 * the call alone: CalledAlone) */
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
	int64		quarantined;	/* sent to (or, replayed, left in) quarantine */
	int64		forgotten;		/* skipped: they carry a forgotten subject */
} LoadCounts;

/* A run's status: what run_history says of it, and how it got there */
typedef enum RunStatus
{
	RUN_RUNNING,				/* started, not finished (batched and worker runs) */
	RUN_SUCCEEDED,
	RUN_FAILED,
	RUN_SKIPPED,				/* another run of the pipeline was in progress */
	RUN_INTERRUPTED				/* its process went away: stored as failed, 57P02 */
} RunStatus;

/*
 * RunRecord is what is recorded of one run: its row of run_history, what
 * its run_io row, its audit entries and its run_failed alert say. The
 * engine keeps one while the run goes; the autonomous recorder is handed a
 * flat copy of one.
 */
typedef struct RunRecord
{
	int64		run_id;
	PipelineDef *def;			/* identity: id, name, source, target, lineage column */
	RunStatus	status;
	TimestampTz started_at;
	LoadCounts	counts;
	int			batches;
	const char *wm_from;		/* NULL: none (a stored record keeps its own) */
	const char *wm_to;
	const char *triggered_by;	/* manual, schedule, trigger, upstream, retry, recovery */
	int64		parent_run_id;	/* 0 if none */
	int32		attempt;		/* 1 for a first attempt */
	int			config_version; /* the version it ran with, 0: none */
	bool		start_recorded; /* its 'running' record and start entry are written */
	bool		nothing_new;	/* it found nothing past the watermark and loaded nothing */
	int			sqlerrcode;		/* failed, interrupted: the error */
	const char *message;
	const char *detail;			/* its DETAIL and HINT, NULL if none */
	const char *hint;
	const char *schema_changes; /* its source's changes (JSON), NULL if none:
								 * recorders/schema_history.c */
	const char *failed_check;	/* failed: the error-severity check that failed
								 * it (JSON), NULL if none: check_results.c */
} RunRecord;

/* recorders/runs.c: run ids, status names, records left running */
extern int64 NextRunId(void);
extern const char *RunStatusName(RunStatus status);
extern RunStatus RunStatusFromName(const char *name);
extern List *LoadInterruptedRuns(int64 pipeline_id, int64 current_run_id);

/* recorders/run_outcome.c: the one writer of a run's records */
extern void RecordRunStart(RunRecord *run);
extern void RecordRunProgress(RunRecord *run);
extern bool RecordRunOutcome(RunRecord *run);

/* recorders/redaction.c: no personal data in what is recorded of a failed run */
extern void RedactRunError(RunRecord *run);
extern bool PipelineHoldsPersonalData(PipelineDef *def);
extern char *RedactQuoted(const char *text);

/* recorders/autonomous.c: a failed run written outside the caller's transaction */
extern void RecordFailedRunAutonomously(RunRecord *run);

/* recorders/alerts.c */
extern void RaiseAlert(int64 pipeline_id, const char *pipeline_name, const char *kind,
					   const char *observed, const char *limit_value, int64 run_id,
					   const char *message);

#endif							/* PIPELINE_RECORDERS_RUNS_H */
