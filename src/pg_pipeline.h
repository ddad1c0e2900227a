/*-------------------------------------------------------------------------
 *
 * src/pg_pipeline.h
 *
 * Shared declarations of pg_pipeline: the in-memory form of a pipeline
 * definition, the resolved load plan a run executes, row counts, and the
 * entry points each source file offers the others.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PG_PIPELINE_H
#define PG_PIPELINE_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "fmgr.h"
#include "nodes/parsenodes.h"
#include "nodes/pg_list.h"
#include "utils/jsonb.h"

/*
 * PIPELINE_FUNCTION declares a SQL-callable function. The library is built
 * with hidden symbol visibility; PostgreSQL 15's PG_FUNCTION_INFO_V1 exports
 * only the info record, so the function itself is declared exported first.
 */
#define PIPELINE_FUNCTION(fn) \
	extern PGDLLEXPORT Datum fn(PG_FUNCTION_ARGS); \
	PG_FUNCTION_INFO_V1(fn)

#define PIPELINE_SCHEMA			"pipeline"
#define PIPELINE_EXTENSION		"pg_pipeline"
#define PIPELINE_NAME_MAXLEN	63

/* locktag_field4 of the advisory lock that serialises runs of one pipeline */
#define PIPELINE_RUN_LOCK_CLASS	0x5050

/* how a run whose process went away is recorded (SQLSTATE 57P02) */
#define PIPELINE_INTERRUPTED_MESSAGE \
	"run interrupted: the process running it ended (crash, kill or server restart)"

/* Columns of pipeline.pipeline, in the order LoadPipelineQuery selects them */
#define Anum_pipeline_id				1
#define Anum_pipeline_name				2
#define Anum_pipeline_source_schema		3
#define Anum_pipeline_source_table		4
#define Anum_pipeline_target_schema		5
#define Anum_pipeline_target_table		6
#define Anum_pipeline_mode				7
#define Anum_pipeline_unique_key		8
#define Anum_pipeline_incremental		9
#define Anum_pipeline_delete_column		10
#define Anum_pipeline_soft_delete		11
#define Anum_pipeline_partition_column	12
#define Anum_pipeline_lookback			13
#define Anum_pipeline_batch_rows		14
#define Anum_pipeline_description		15
#define Anum_pipeline_metadata			16
#define Anum_pipeline_active			17
#define Anum_pipeline_owner				18
#define Anum_pipeline_target_created	19
#define Anum_pipeline_watermark			20
#define Anum_pipeline_schedule			21
#define Anum_pipeline_max_retries		22
#define Anum_pipeline_retry_delay		23
#define Anum_pipeline_timeout			24
#define Anum_pipeline_freshness			25
#define Anum_pipeline_timeliness		26
#define Anum_pipeline_freshness_muted	27
#define Anum_pipeline_timeliness_muted	28
#define Anum_pipeline_lineage_column	29
#define Natts_pipeline_query			29

typedef enum LoadMode
{
	LOAD_MODE_MERGE,
	LOAD_MODE_APPEND,
	LOAD_MODE_FULL
} LoadMode;

/* A pipeline definition as stored in pipeline.pipeline (plus its watermark) */
typedef struct PipelineDef
{
	int64		id;
	char	   *name;
	char	   *source_schema;
	char	   *source_table;
	char	   *target_schema;
	char	   *target_table;
	LoadMode	mode;
	List	   *unique_key;		/* list of char * column names */
	char	   *incremental_column;	/* NULL if none */
	char	   *delete_column;	/* NULL if none */
	bool		soft_delete;
	char	   *partition_column;	/* NULL if none */
	Interval   *lookback;		/* NULL if none */
	int64		batch_rows;		/* 0 if none */
	char	   *description;	/* NULL if none */
	Jsonb	   *metadata;
	bool		active;
	Oid			owner;
	bool		target_created;
	char	   *watermark;		/* canonical text, NULL if none */
	char	   *schedule;		/* cron expression, NULL if none */
	int32		max_retries;
	Interval   *retry_delay;
	Interval   *timeout;		/* NULL if none */
	Interval   *freshness;		/* NULL if none */
	Interval   *timeliness;		/* NULL if none */
	bool		freshness_muted;
	bool		timeliness_muted;
	char	   *lineage_column;	/* target column for the run id, NULL if none */
} PipelineDef;

/* How a run was asked for, and by whom */
typedef struct RunRequest
{
	const char *triggered_by;	/* manual, schedule, trigger, upstream, retry, recovery */
	int64		parent_run_id;	/* 0 if none */
	int32		attempt;		/* 1 for a first attempt */
	int64		run_id;			/* a 'running' record already written, or 0 */
	bool		record_failure_inline;	/* the caller records a failure itself */
} RunRequest;

/* A parsed cron schedule: the values each field allows */
typedef struct CronSchedule
{
	bool		minutes[60];
	bool		hours[24];
	bool		days[32];
	bool		months[13];
	bool		weekdays[8];
	bool		any_day;
	bool		any_weekday;
} CronSchedule;

/* One column a run loads: present in the source and in the target */
typedef struct LoadColumn
{
	char	   *name;
	Oid			typid;
	int32		typmod;
	Oid			collid;
	bool		is_key;
	Oid			eq_opr;			/* equality operator, InvalidOid if none */
	bool		sortable;		/* has a default btree opclass */
	bool		identity_always;	/* target column is GENERATED ALWAYS AS IDENTITY */
} LoadColumn;

/* Everything a run needs, resolved against the catalogs at run time */
typedef struct LoadPlan
{
	PipelineDef *def;
	Oid			source_relid;
	Oid			target_relid;
	char	   *source_ident;	/* "schema"."table", quoted */
	char	   *target_ident;
	List	   *columns;		/* LoadColumn *, in source column order */
	LoadColumn *incremental;	/* NULL if none */
	LoadColumn *delete_flag;	/* NULL if none */
	bool		needs_dedup;	/* source may hold several rows per key */
	List	   *base_relids;	/* tables whose writers a run waits for */
} LoadPlan;

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

/* The statements of one load step, with $1 = lower bound, $2 = upper bound */
typedef struct LoadStatements
{
	char	   *prepare;		/* full mode: delete vanished keys; else NULL */
	char	   *load;			/* MERGE or INSERT */
	bool		load_is_merge;
	bool		counts_kept;	/* pipeline._kept_row counts rows after de-duplication */
} LoadStatements;

/* catalog.c */
extern int	ExecCatalog(const char *sql, int nargs, Oid *types, Datum *values,
						const char *nulls, bool read_only);
extern PipelineDef *LoadPipelineByName(const char *name, bool missing_ok);
extern PipelineDef *LoadPipelineById(int64 pipeline_id);
extern int64 InsertPipelineDef(PipelineDef *def);
extern void UpdatePipelineDef(PipelineDef *def, bool reset_watermark);
extern void DeletePipelineDef(int64 pipeline_id);
extern void SetPipelineActive(int64 pipeline_id, bool active);
extern void StoreWatermark(int64 pipeline_id, const char *value, int64 run_id);
extern PipelineDef *LockPipelineForRun(PipelineDef *def);
extern void InsertRunRecord(int64 run_id, PipelineDef *def, const char *status,
							TimestampTz started_at, bool finished,
							const LoadCounts *counts, int batches,
							const char *wm_from, const char *wm_to,
							const RunRequest *req);
extern void UpdateRunRecord(int64 run_id, const char *status, bool finished,
							const LoadCounts *counts, int batches,
							const char *wm_from, const char *wm_to);
extern void FailStaleRuns(int64 pipeline_id, int64 current_run_id);
extern int64 NextRunId(void);
extern const char *LoadModeName(LoadMode mode);
extern bool ParseLoadMode(const char *text, LoadMode *mode);

/* relations.c */
extern Oid	ResolveRelationName(const char *schema, const char *relname, const char *role);
extern void DescribeRelation(Oid relid, char **schema, char **relname);
extern char *QualifiedRelationName(const char *schema, const char *relname);
extern LoadPlan *BuildLoadPlan(PipelineDef *def);
extern void CreateTargetTable(PipelineDef *def, Oid source_relid);
extern List *CollectBaseTables(Oid relid);
extern bool SourceKeyIsUnique(Oid source_relid, List *unique_key);
extern bool SourceHasIndexOn(Oid source_relid, const char *column);

/* planner.c */
extern LoadStatements *BuildLoadStatements(LoadPlan *plan, bool has_lower, bool has_upper);
extern char *BuildHighWaterQuery(LoadPlan *plan);
extern char *BuildFiniteHighWaterQuery(LoadPlan *plan);
extern char *BuildInfiniteRowsQuery(LoadPlan *plan);
extern char *BuildBatchBoundQuery(LoadPlan *plan, bool has_lower);
extern char *BuildBatchFallbackQuery(LoadPlan *plan, bool has_lower);
extern List *ExplainPipeline(PipelineDef *def);

/* engine.c */
extern int64 RunPipeline(PipelineDef *def, RunRequest *req);
extern void RunBatchedCall(FunctionCallInfo fcinfo, const char *name, int64 batch_rows,
						   const char *triggered_by);
extern bool TryLockPipeline(int64 pipeline_id, bool session);
extern void UnlockPipeline(int64 pipeline_id);
extern struct FailedRun *TakeInlineFailure(void);
extern PipelineDef *CopyDefIdentity(PipelineDef *def);

/* cron_expr.c */
extern void ParseCronSchedule(const char *schedule, CronSchedule *cs);
extern TimestampTz NextCronTime(const CronSchedule *cs, TimestampTz after);

/* scheduler.c */
extern void ScheduleCronJob(PipelineDef *def, const char *old_name);
extern bool UnscheduleCronJob(const char *pipeline_name);

/* queue.c */
extern void EnqueueDownstream(int64 pipeline_id, int64 run_id);
extern void EnqueueRun(int64 pipeline_id, const char *reason, int64 parent_run_id,
					   int32 attempt, double delay_seconds);
extern void SetDeclaredDependencies(PipelineDef *def, List *upstream_names);
extern void RefreshSourceRelations(int64 pipeline_id, Oid source_relid);
extern void CheckNoDependencyCycle(PipelineDef *def);
extern void ForgetQueuedRuns(int64 pipeline_id);

/* launcher.c */
struct BackgroundWorker;
extern void InitPipelineWorker(struct BackgroundWorker *worker, const char *function,
							   const char *type, const char *name);
extern void LauncherInit(void);
extern void WakeLauncherAtCommit(void);
extern void WakeLauncher(void);
extern bool LauncherConfiguredFor(Oid database_id);
extern int	pipeline_max_workers;

/* monitor.c */
extern void RaiseAlert(int64 pipeline_id, const char *pipeline_name, const char *kind,
					   const char *observed, const char *limit_value, int64 run_id,
					   const char *message);

/* counters.c */
extern void ResetLoadCounters(void);
extern void ArmMergeCapture(void);
extern void CollectLoadCounters(LoadStatements *stmts, uint64 processed, LoadCounts *counts);
extern void InstallCounterHooks(void);

/* privileges.c */
extern Oid	ExtensionOwner(void);
extern void CheckPipelineOwner(PipelineDef *def, const char *action);
extern void CheckRelationAccess(Oid relid, Oid role, AclMode mode, const char *what);
extern void CheckPipelinePrivileges(PipelineDef *def, Oid source_relid, Oid target_relid, Oid role);
extern int	PinSearchPath(void);
extern void UnpinSearchPath(int nestlevel);

/* A saved user id and security context, for switching in and out of roles */
typedef struct RoleSwitch
{
	Oid			saved_userid;
	int			saved_sec_context;
} RoleSwitch;

/* A switch into a pipeline owner's identity, restricted, search_path pinned */
typedef struct OwnerContext
{
	Oid			saved_userid;
	int			saved_sec_context;
	int			guc_level;
} OwnerContext;

extern void EnterOwnerContext(OwnerContext *ctx, Oid owner);
extern void LeaveOwnerContext(OwnerContext *ctx);
extern void BecomeCatalogOwner(RoleSwitch *sw);
extern void RestoreRole(RoleSwitch *sw);

/* failure_recorder.c */
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

extern void RecordFailedRun(FailedRun *run);
extern void StoreFailedRun(FailedRun *run);
extern bool IsTransientError(int sqlerrcode);

/* watermark.c */
extern Datum WatermarkFromText(const char *text, Oid typid, int32 typmod, Oid owner);
extern bool WatermarkIsFinite(Datum value, Oid typid);
extern bool WatermarkIsPlusInfinity(Datum value, Oid typid);
extern bool WatermarkIsExtreme(Datum value, Oid typid);
extern char *WatermarkToText(Datum value, Oid typid);
extern int	CompareWatermarks(Datum a, Datum b, Oid typid, Oid collid);
extern bool IsTimeType(Oid typid);
extern bool IsIncrementalType(Oid typid);

/* ---- lineage, audit and config versions (issue 4) ---- */

/* locktag_field4 of the advisory lock that serialises audit chain writers */
#define PIPELINE_AUDIT_LOCK_CLASS	0x5051

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

/* audit.c */
extern void AuditInit(void);
extern bool AuditLauncherPass(void);
extern void RegistryChanged(const char *action, PipelineDef *def, const char *value);
extern void AuditRefusal(const char *action, const char *object_type,
						 const char *object_name, int64 pipeline_id, const char *message);
extern void RecordRunStart(RunSummary *run);
extern void RecordRunEnd(RunSummary *run);
extern void RecordSkippedRunAudit(RunSummary *run);
extern void AuditFailedRun(FailedRun *run);

/* versions.c */
extern char *CanonicalConfig(PipelineDef *def);
extern int	RecordConfigVersion(PipelineDef *def, char **previous_config, char **config);

/* lineage.c */
extern void RefreshPipelineLineage(PipelineDef *def);
extern void SetLineageRunId(int64 run_id);

#endif							/* PG_PIPELINE_H */
