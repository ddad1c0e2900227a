/*-------------------------------------------------------------------------
 *
 * src/include/pipeline/engine.h
 *
 * Layer 4, the engine (src/engine/): a definition resolved into a load plan
 * against the catalogs of now, the statements a run executes (a pure
 * builder, shown by explain), the exact row counters, one run (plain or in
 * committed batches), the recovery of runs whose process went away, the
 * queue of runs for the workers and the dependency graph, the lag of a
 * source, and the purges of raw source rows (raw retention).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_ENGINE_H
#define PIPELINE_ENGINE_H

#include "pipeline/policy.h"

#include "lib/stringinfo.h"
#include "storage/latch.h"
#include "utils/array.h"

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
	ColumnMask *mask;			/* what the load writes instead, NULL: the value */
	Oid			source_typid;	/* the column's type in the source (typid: what is loaded) */
	int32		source_typmod;
	bool		convert;		/* text converted to the target's type (typed_load.c) */
	Oid			convert_typid;	/* ... that type (typid too, unless it is a string type) */
	int32		convert_typmod;
} LoadColumn;

/*
 * What a snapshot pipeline's load needs of the history it keeps
 * (engine/snapshot_target.c, docs/modeling.md)
 */
typedef struct SnapshotPlan
{
	SnapshotColumns names;		/* valid_from, valid_to, is_current */
	bool		stamped;		/* no incremental column: versions get the run's time */
	Oid			stamp_typid;	/* the type of valid_from and valid_to */
	int32		stamp_typmod;
	List	   *check_columns;	/* LoadColumn *: a change of one makes a new version */
	List	   *old_casts;		/* per column of the plan: the cast of the target's
								 * value to the loaded type, "" when none */
} SnapshotPlan;

/* One group_by column of a rollup, as the source has it */
typedef struct RollupGroup
{
	char	   *name;
	Oid			typid;
	int32		typmod;
	Oid			collid;
	bool		not_null;		/* NOT NULL in the source: compared with = */
} RollupGroup;

/* A rollup resolved against the catalogs of now (engine/rollup_plan.c) */
typedef struct RollupPlan
{
	RollupSpec *spec;
	Oid			time_typid;		/* timestamptz, timestamp or date */
	List	   *groups;			/* RollupGroup *, in group_by order */
	List	   *measure_types;	/* Oid of each measure's result, in measures order */
	List	   *measure_typmods;	/* int32 of each */
	char	   *dirty_table;	/* its dirty-cells table's name, in the target's schema */
	char	   *dirty_ident;	/* ... quoted and qualified */
	bool		time_indexed;	/* an index of the source leads with the time column */
} RollupPlan;

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
	List	   *row_checks;		/* CheckDef * evaluated in the load statement */
	List	   *set_checks;		/* CheckDef * evaluated after it */
	bool		replay;			/* rows come from quarantine: $1 ids, $2 rows */
	bool		keep_newer;		/* never overwrite a newer version of a key in the
								 * target: the incremental value decides (a
								 * replay, a backfill) */
	bool		lower_inclusive;	/* the window's lower bound $1 is inclusive
									 * (a backfill's first batch) */
	bool		newest_only;	/* read of each key only its newest version in
								 * the source (a backfill: backfill_sql.c) */
	LoadColumn *partition;		/* a backfill's batch of one partition: the
								 * rows whose partition column is $4 ... */
	bool		partition_null; /* ... or NULL */
	Oid			part_relid;		/* a parallel run's part: the target is this
								 * partition, the window the rows it takes
								 * (parallel_part.c) */
	bool		part_marked;	/* ... named in pipeline._partition_rows, */
	Oid			part_next_relid;	/* ... with the part's next partition, whose
									 * rows the scan keeps (partition_rows.c) */
	bool		fill_indexes;	/* the bulk path fills the indexes row by row,
								 * never builds them after the rows (a part
								 * whose leader's transaction goes on) */
	bool		distributed;	/* the target is a Citus table (docs/citus.md) */
	bool		upsert;			/* ... and Citus cannot MERGE it: local and
								 * Citus tables across source and target
								 * (local_source_load.c) */
	bool		has_conversions;	/* some column is converted (typed_load.c) */
	bool		convert_safely; /* row by row through the conversion gate */
	bool		redact_reasons; /* the pipeline holds personal data */
	List	   *erasure;		/* SubjectColumn * of the source with tombstones
								 * (erasure_gate.c) */
	SnapshotPlan *snapshot;		/* mode snapshot: the history, else NULL */
	RollupPlan *rollup;			/* mode rollup: what it aggregates, else NULL */
} LoadPlan;

/* The statements of one load step, with $1 = lower bound, $2 = upper bound */
typedef struct LoadStatements
{
	char	   *prepare;		/* full mode: delete vanished keys; else NULL */
	char	   *flagged;		/* an upsert load: the keys flagged deleted
								 * (local_source_load.c) */
	char	   *load;			/* MERGE or INSERT */
	bool		load_is_merge;
	bool		snapshot;		/* load is the MERGE of a history (snapshot_load.c) */
	bool		counts_kept;	/* pipeline._kept_row counts rows after de-duplication */
	bool		has_row_checks; /* rows pass the gate of row_checks.c */
	bool		has_erasure_gate;	/* rows pass the gate of erasure_gate.c */
	bool		initial_load;	/* load is the INSERT into an empty target of
								 * initial_load.c, in place of a MERGE */
	char	   *drop_key;		/* initial load: drops the primary key before
								 * the INSERT, or NULL */
	char	   *add_key;		/* ... and adds it back after it */
	char	   *bulk_rows;		/* initial load: the SELECT of its rows when
								 * they are written in bulk (bulk_insert.c) */
} LoadStatements;

/*
 * The queries that count a load into a Citus table exactly, run just before
 * it with its source and target locked (engine/distributed_load.c): each
 * returns one row of bigint counts.
 */
typedef struct CountQueries
{
	char	   *window;			/* rows read, rows rejected (NULL key) */
	char	   *kept;			/* rows kept after de-duplication, of them not
								 * flagged deleted; with a key, then of them the
								 * rows whose key is in the target: deleted,
								 * updated, not flagged (one outer join) */
} CountQueries;

/* engine/load_plan.c */
extern LoadPlan *BuildLoadPlan(PipelineDef *def);
extern void CreateTargetTable(PipelineDef *def, Oid source_relid);
extern bool CreatedColumnType(PipelineDef *def, Oid source_relid, const char *column, Oid *typid,
							  int32 *typmod);

/* engine/snapshot_target.c: the history of mode snapshot */
extern void PlanSnapshot(LoadPlan *plan);
extern void AppendSnapshotTargetDdl(StringInfo sql, PipelineDef *def, Oid source_relid);
extern void WarnSnapshotTarget(LoadPlan *plan);

/* engine/snapshot_load.c */
extern LoadStatements *BuildSnapshotStatements(LoadPlan *plan, LoadStatements *stmts,
											   bool has_lower, bool has_upper);

extern AttrNumber LookupSourceColumn(Oid relid, const char *column, const char *role, Oid *typid);

/* engine/rollup_plan.c: mode rollup, its plan and target */
extern void PlanRollup(LoadPlan *plan);
extern void CreateRollupTarget(PipelineDef *def, Oid source_relid);
extern void RefuseRowCheck(PipelineDef *def, CheckDef *check);
extern void AppendGroupColumn(StringInfo buf, RollupGroup *g, bool keep_not_null);

/* engine/rollup.c: mode rollup, its statements (a pure builder) */
typedef struct RollupStatements
{
	char	   *pending;		/* are there changes; is one a TRUNCATE */
	char	   *incremental;	/* the MERGE of the dirty cells, $1 the horizon */
	char	   *consume_all;	/* a full recompute: forget the dirty cells */
	char	   *vanished;		/* ... delete the cells no row is in */
	char	   *full;			/* ... and MERGE every cell */
} RollupStatements;

extern RollupStatements *BuildRollupStatements(LoadPlan *plan);
extern List *ExplainRollup(LoadPlan *plan);

/* engine/rollup_run.c: mode rollup, a run's data work */
extern bool RollupHasWork(LoadPlan *plan);
extern char *ExecuteRollupStep(LoadPlan *plan, int64 run_id, LoadCounts *counts);

/* engine/rollup_capture.c: mode rollup, where its changes come from */
extern void InstallRollupCapture(PipelineDef *def);
extern void RemoveRollupCapture(PipelineDef *def);
extern bool RollupCaptureIntact(LoadPlan *plan);
extern bool EnsureRollupCapture(LoadPlan *plan);

/* engine/planner.c */
extern LoadStatements *BuildLoadStatements(LoadPlan *plan, bool has_lower, bool has_upper);
extern char *BuildHighWaterQuery(LoadPlan *plan);
extern char *BuildFiniteHighWaterQuery(LoadPlan *plan);
extern char *BuildInfiniteRowsQuery(LoadPlan *plan);
extern char *BuildBatchBoundQuery(LoadPlan *plan, bool has_lower);
extern char *BuildBatchFallbackQuery(LoadPlan *plan, bool has_lower);
extern List *ExplainPipeline(PipelineDef *def);
extern CountQueries *BuildCountQueries(LoadPlan *plan, bool has_lower, bool has_upper);

/* engine/initial_load.c */
extern bool InitialLoadApplies(LoadPlan *plan, LoadStatements *stmts);
extern char *BuildInitialInsert(LoadPlan *plan, bool has_lower, bool has_upper);
extern LoadStatements *ChooseInitialLoad(LoadPlan *plan, LoadStatements *stmts, bool has_lower,
										 bool has_upper);
extern void RunInitialLoadStatement(const char *sql);
extern char *OwedTargetIndex(LoadPlan *plan);
extern bool BuildOwedTargetIndex(LoadPlan *plan);

/* engine/bulk_insert.c */
extern bool BulkInsertFits(LoadPlan *plan);
extern uint64 ExecuteBulkInsert(LoadPlan *plan, const char *rows_sql, int nargs, Oid *types,
								Datum *values);

/* engine/local_source_load.c */
extern void CheckUpsertPlan(LoadPlan *plan, bool citus_target);
extern void BuildLocalSourceStatements(LoadPlan *plan, LoadStatements *stmts, bool has_lower,
									   bool has_upper);

/* engine/distributed_load.c */
extern void CheckDistributedPlan(LoadPlan *plan);
extern char *CitusPlanSubject(LoadPlan *plan);
extern void DistributeCreatedTarget(PipelineDef *def, Oid source_relid, const char *target);
extern void LockCitusTables(List *relids, const char *mode);
extern void NoticeSequenceAcrossNodes(LoadPlan *plan);
extern void ExecuteDistributedLoad(LoadPlan *plan, LoadStatements *stmts, bool has_lower,
								   bool has_upper, int nargs, Oid *types, Datum *values,
								   LoadCounts *counts);
extern int64 CountLoadStep(LoadPlan *plan, bool merge, bool has_lower, bool has_upper, int nargs,
						   Oid *types, Datum *values, LoadCounts *counts);

/* engine/backfill_sql.c */
extern char *BuildPartitionValuesQuery(LoadPlan *plan, const char *column);

/* engine/check_sql.c */
extern char *RowCheckPredicate(PipelineDef *def, CheckDef *check);
extern char *SetCheckQuery(LoadPlan *plan, CheckDef *check);
extern int64 RowCountBound(PipelineDef *def, CheckDef *check, const char *key);
extern void ValidateCheck(PipelineDef *def, CheckDef *check);
extern void UserSqlErrorCallback(void *arg);

/* engine/row_checks.c */
extern void ArmRowChecks(LoadPlan *plan);
extern int64 RowChecksQuarantined(void);
extern void FlushRowChecks(LoadPlan *plan, int64 run_id);
extern bool RowGateArmed(void);
extern void NoteFailedCheck(CheckDef *check, int64 failed_rows);
extern char *TakeFailedCheck(void);
extern void KeepFailedCheckText(const char *json);
extern LoadPlan *RowGatePlan(void);
extern void KeepRowForQuarantine(Datum failed, Datum row, Jsonb *key, Datum incremental,
								 bool incremental_null, Datum quarantine_id,
								 bool quarantine_id_null, const char *reason);
extern void AdoptRowGate(SubTransactionId child);

/* engine/erasure_gate.c */
extern void PlanErasureGate(LoadPlan *plan);
extern void AppendErasureGate(StringInfo buf, LoadPlan *plan, const char *alias, const char *qid);
extern void ArmErasureGate(LoadPlan *plan);
extern void DisarmErasureGate(void);
extern int64 ErasureGateForgotten(void);
extern int64 EraseForgottenQuarantineRows(void);

/* engine/typed_load.c */
extern bool ColumnNeedsConversion(Oid source_typid, int32 source_typmod, Oid target_typid,
								  int32 target_typmod);
extern bool SetColumnConversion(LoadColumn *col, Oid target_typid, int32 target_typmod,
								Oid target_collid);
extern void CheckColumnTypesOption(PipelineDef *def, Oid source_relid, Oid target_relid);
extern char *ConvertedValue(LoadColumn *col, const char *ref);
extern char *TypedSourceRows(LoadPlan *plan);
extern void AppendConversionGate(StringInfo buf, LoadPlan *plan, const char *alias,
								 const char *identity);
extern bool IsConversionError(int sqlerrcode);
extern void ExecuteLoad(LoadPlan *plan, bool has_lower, bool has_upper, int nargs, Oid *types,
						Datum *values, LoadCounts *counts);

/* engine/set_checks.c */
extern void RunSetChecks(LoadPlan *plan, int64 rows_read);
extern bool FinishChecks(LoadPlan *plan, int64 run_id);

/* engine/replay.c */
extern int64 ReplayQuarantine(PipelineDef *def, ArrayType *ids);

/* engine/counters.c */
extern void ResetLoadCounters(void);
extern void ArmMergeCapture(void);
extern void CollectLoadCounters(LoadStatements *stmts, uint64 processed, LoadCounts *counts);
extern void InstallCounterHooks(void);
extern void TakeMergeTallies(int64 *inserted, int64 *updated, int64 *deleted);

/* engine/engine.c */
extern int64 RunPipeline(PipelineDef *def, RunRequest *req);
extern void RunBatchedCall(FunctionCallInfo fcinfo, const char *name, int64 batch_rows,
						   const char *triggered_by);
extern bool TryLockPipeline(int64 pipeline_id, bool session);
extern void WaitForPipelineLock(int64 pipeline_id);
extern void UnlockPipeline(int64 pipeline_id);
extern RunRecord *TakeInlineFailure(void);

/* engine/retention.c: raw retention, purges of a source's raw rows */
extern int	pipeline_retention_batch_rows;
extern void RetentionInit(void);
extern void CheckRawRetention(PipelineDef *def, LoadPlan *plan);
extern bool PurgeRawLauncherPass(void);

/* engine/recovery.c */
extern void FailInterruptedRuns(int64 pipeline_id, int64 current_run_id);

/*
 * engine/parallel_load.c, parallel_part.c: a run loaded by part workers,
 * each a set of the target's partitions in a prepared transaction
 * (docs/parallel.md). The leader and its part workers share a
 * ParallelShared in a DSM segment.
 */
#define PIPELINE_MAX_PARALLEL_WORKERS 32
#define PARALLEL_MAX_CHECKS		64
#define PARALLEL_TEXT			1024
/* room for the settings a leader hands its parts: name and value pairs */
#define PARALLEL_SETTINGS		2048
/* the advisory lock (bigint key) a paused part waits for: pipeline.parallel_pause */
#define PARALLEL_PAUSE_LOCK_KEY	INT64CONST(7428)

typedef enum PartState
{
	PART_STARTING = 0,
	PART_LOADING,
	PART_PREPARED,				/* waits for the leader's decision */
	PART_EMPTY,					/* wrote nothing: committed, no decision needed */
	PART_FAILED,				/* rolled back; the error is in the slot */
	PART_FINISHED				/* committed or rolled back as decided */
} PartState;

typedef enum PartDecision
{
	PARTS_UNDECIDED = 0,
	PARTS_COMMIT,
	PARTS_ABORT
} PartDecision;

typedef enum ParallelPause
{
	PAUSE_NONE = 0,
	PAUSE_BEFORE_PREPARE,		/* the last part, loaded, before its PREPARE */
	PAUSE_BEFORE_COMMIT_PREPARED	/* the last part, told to commit, before it does */
} ParallelPause;

/* What one part worker reports to the leader */
typedef struct PartSlot
{
	volatile int state;			/* PartState */
	int			pid;
	Latch	   *latch;			/* the part worker's, set by the leader */
	LoadCounts	counts;
	int64		check_failed[PARALLEL_MAX_CHECKS];	/* per row check of the plan */
	int			sqlerrcode;
	char		message[PARALLEL_TEXT];
	char		detail[PARALLEL_TEXT];
	char		hint[PARALLEL_TEXT];
	char		failed_check[PARALLEL_TEXT];
} PartSlot;

typedef struct ParallelShared
{
	Oid			database;
	int64		pipeline_id;
	int64		run_id;
	int			leader_pid;
	Latch	   *leader_latch;
	volatile int decision;		/* PartDecision */
	int			pause;			/* ParallelPause */
	int			nparts;
	int			nchecks;
	bool		has_lower;
	char		lower[PARALLEL_TEXT];	/* the window, as text of the incremental column's type */
	char		upper[PARALLEL_TEXT];
	char		settings[PARALLEL_SETTINGS];	/* the leader's, for its parts
												 * (SaveLeaderSettings) */
	bool		build_indexes;	/* the parts may build indexes after their
								 * rows: the leader's transaction ends with
								 * the run (parallel_load.c) */
	PartSlot	slots[PIPELINE_MAX_PARALLEL_WORKERS];
	int			npartitions;
	Oid			partitions[FLEXIBLE_ARRAY_MEMBER];	/* partition i goes to part i % nparts */
} ParallelShared;

extern char *pipeline_parallel_pause;
extern void ParallelLoadInit(void);
extern void RequirePreparedTransactions(PipelineDef *def, int workers);
extern void PartGid(char *gid, int64 pipeline_id, int64 run_id, int part);
extern bool SaveLeaderSettings(char *buf, Size size);
extern bool CalledAlone(FunctionCallInfo fcinfo);
extern void TakePartSettings(const char *buf);
extern void LoadParallelPart(ParallelShared *sh, int part);
extern void PauseParallelPart(ParallelShared *sh, int part, ParallelPause point);
extern void ResolvePreparedParts(int64 pipeline_id);

/* engine/partition_rows.c: one scan of the source for two partitions of a part */
extern void PartitionRowsInit(void);
extern void ArmPartitionRows(bool armed, bool whole);

/* engine/queue.c */
extern void EnqueueDownstream(int64 pipeline_id, int64 run_id);
extern void EnqueueRun(int64 pipeline_id, const char *reason, int64 parent_run_id,
					   int32 attempt, double delay_seconds);
extern void SetDeclaredDependencies(PipelineDef *def, List *upstream_names);
extern void RefreshSourceRelations(int64 pipeline_id, Oid source_relid);
extern void CheckNoDependencyCycle(PipelineDef *def);
extern void ForgetQueuedRuns(int64 pipeline_id);

/*
 * engine/capture_setup.c, capture_purge.c: change capture of tables
 * updated in place (docs/capture.md); the trigger is capture_trigger.c,
 * the following of DDL capture_ddl.c
 */
extern ChangeCapture *StartCapture(Oid relid, int64 *snapshot_rows);
extern void StopCapture(ChangeCapture *c);
extern int64 SnapshotCapture(ChangeCapture *c);
extern void CheckCaptureIsolation(const char *what);
extern int64 PurgeCapture(ChangeCapture *c, int64 batch_rows, bool *more);
extern int64 PurgeAllOfCapture(ChangeCapture *c);
extern bool CapturePurgePass(void);

#endif							/* PIPELINE_ENGINE_H */
