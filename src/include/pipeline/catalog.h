/*-------------------------------------------------------------------------
 *
 * src/include/pipeline/catalog.h
 *
 * Layer 1, the catalog store (src/catalog/): a pipeline definition in
 * memory and its rows in pipeline.pipeline and pipeline.watermark, the
 * statements that read and write them (as the extension owner, search_path
 * pinned), the table of a pipeline's options that drives them
 * (pipeline/catalog/options.h), the facts about relations a definition
 * names: resolving them, what a view reads, which indexes a source has;
 * the keys of masks and the tombstones of erased subjects; and what each
 * run read (the windows raw retention proves rows read by).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_CATALOG_H
#define PIPELINE_CATALOG_H

#include "pipeline/common.h"

#include "executor/spi.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "pipeline/catalog/options.h"
#include "pipeline/catalog/checks.h"
#include "pipeline/catalog/capture.h"

typedef enum LoadMode
{
	LOAD_MODE_MERGE,
	LOAD_MODE_APPEND,
	LOAD_MODE_FULL,
	LOAD_MODE_SNAPSHOT,			/* every version of each key (docs/modeling.md) */
	LOAD_MODE_ROLLUP			/* the aggregated cells of a detail relation (docs/modeling.md) */
} LoadMode;

/*
 * A pipeline definition as stored in pipeline.pipeline (plus its watermark).
 * The fields that hold an option are named by the option table
 * (catalog/options.c), which reads and writes them by offset.
 */
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
	Jsonb	   *masks;			/* column -> mask (catalog/masks.c), {} when none */
	Jsonb	   *column_types;	/* column -> type name of a created target, {} when none */
	char	   *on_conversion_error;	/* quarantine or error */
	char	   *on_schema_change;	/* fail, ignore, append_new_columns, sync_all_columns */
	double		anomaly_sensitivity;	/* robust z-score threshold, 0 if none */
	int32		anomaly_min_runs;	/* successful runs before anomalies are looked for */
	Interval   *raw_retention;	/* source rows older than this are purged once loaded, NULL: kept */
	bool		capture;		/* the source is a captured table's feed */
	Interval   *capture_retention;	/* NULL if none */
	Jsonb	   *snapshot_columns;	/* snapshot mode: history column names, {}: the defaults */
	List	   *snapshot_check_columns; /* snapshot mode: the columns a change is told by, NIL: all */
	bool		snapshot_keep_deleted;	/* snapshot mode: a deleted key's version stays open */
	Jsonb	   *rollup;			/* mode rollup: what it aggregates (catalog/rollup_spec.c), NULL: none */
	Interval   *allowed_lateness;	/* rollup: older buckets are closed, NULL: never */
	char	   *distribution_column;	/* Citus: of a target create_target
										 * creates, NULL: the source's */
	int32		parallel_workers;	/* part workers of a run into a partitioned
									 * target (engine/parallel_load.c), 1: serial */
	bool		active;
	Oid			owner;
	bool		target_created;
	bool		target_index_pending;	/* it owes the target it created the
										 * index on the incremental column */
	char	   *watermark;		/* canonical text, NULL if none */
	char	   *row_version;	/* the versions of its pipeline and watermark
								 * rows it was read from, NULL if none */
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

/* catalog/column_types.c: the column_types option */
typedef struct ColumnType
{
	char	   *column;			/* source column */
	char	   *type_name;		/* as written */
	Oid			typid;
	int32		typmod;
} ColumnType;

extern List *ParseColumnTypes(Jsonb *column_types);
extern ColumnType *FindColumnType(List *column_types, const char *column);

/*
 * catalog/snapshot_columns.c: the history columns of snapshot mode, named
 * by the snapshot_columns option, and pipeline.as_of
 */
typedef struct SnapshotColumns
{
	char	   *valid_from;
	char	   *valid_to;
	char	   *is_current;
} SnapshotColumns;

extern void ParseSnapshotColumns(Jsonb *option, SnapshotColumns *names);
extern bool IsSnapshotHistoryColumn(const SnapshotColumns *names, const char *column);

/* catalog/rollup_spec.c: the rollup option of mode rollup */
#define ROLLUP_BUCKET_COLUMN	"bucket"
#define ROLLUP_DIRTY_SUFFIX		"__dirty"
#define ROLLUP_EXAMPLE "{\"time_column\": \"ordered_at\", \"bucket\": \"1 day\", \"group_by\": [\"region\"], \"measures\": {\"orders\": \"count(*)\", \"revenue\": \"sum(amount)\"}}"

typedef struct RollupMeasure
{
	char	   *name;			/* the target column */
	char	   *sql;			/* an aggregate expression over the source, as written */
} RollupMeasure;

typedef struct RollupSpec
{
	char	   *time_column;	/* the source column that puts a row in a bucket */
	char	   *bucket_text;	/* the bucket's length as written */
	Interval   *bucket;
	int64		bucket_usecs;	/* ... in microseconds, a day as 24 hours */
	List	   *group_by;		/* char *: source columns, also target columns */
	List	   *measures;		/* RollupMeasure *, in jsonb's key order */
} RollupSpec;

extern RollupSpec *ParseRollupSpec(Jsonb *rollup);
extern char *RollupBucketSql(RollupSpec *spec, const char *ref, Oid time_typid);
extern char *RollupBucketEndSql(RollupSpec *spec, const char *ref, Oid time_typid);
extern char *RollupCellsQuery(RollupSpec *spec, const char *source_ident, Oid time_typid,
							  const char *extra, const char *having);
extern char *RollupDirtyTableName(const char *target_table);

/* catalog/masks.c: the masks option, the keys, and the functions masks call */
typedef enum MaskMethod
{
	MASK_TOKENIZE, MASK_HASH, MASK_PARTIAL, MASK_NULL, MASK_MONTH, MASK_YEAR, MASK_BUCKET
} MaskMethod;

typedef struct ColumnMask
{
	char	   *column;
	MaskMethod	method;
	char	   *key;			/* tokenize, hash: the key's name */
	int			keep_start;		/* partial */
	int			keep_end;
	char	   *width;			/* bucket: a positive number, as written */
} ColumnMask;

extern List *ParseMasks(Jsonb *masks);
extern ColumnMask *FindMask(List *masks, const char *column);
extern const char *MaskMethodName(MaskMethod method);
extern bool MaskYieldsText(ColumnMask *m);
extern int	LatestKeyVersion(const char *name, bool missing_ok);
extern void ValidateMasks(PipelineDef *def, Oid source_relid);
extern char *MaskExpression(ColumnMask *m, const char *ref, Oid typid, int32 typmod);
extern void ArmMasks(void);
extern void DisarmMasks(void);
extern List *MaskedForms(const char *value, MaskMethod method, const char *key);

/*
 * catalog/tombstones.c: erasure tombstones, keyed hashes of forgotten
 * subjects' values (docs/privacy.md)
 */
typedef struct SubjectColumn
{
	char	   *column;			/* a column of the relation ... */
	char	   *subject;		/* ... that identifies this subject */
} SubjectColumn;

extern uint8 *ErasureKey(bool create);
extern void ErasureDigest(const uint8 *key, const char *subject, const char *value, size_t len,
						  uint8 *digest);
extern char *ErasureDigestHex(const uint8 *key, const char *subject, const char *value);
extern void StoreTombstones(const uint8 *key, const char *subject, List *forms, int64 request_id);
extern List *ForgottenSubjectColumns(Oid relid);
extern HTAB *LoadTombstones(List *columns, MemoryContext cxt);

/* catalog/read_windows.c: what each run read, and the frontier of raw retention */
typedef struct ReadWindowText
{
	int64		run_id;
	char	   *lower;			/* canonical text, NULL: no lower bound */
	char	   *upper;
	char	   *snapshot;		/* a pg_snapshot's text (common/read_snapshot.c) */
} ReadWindowText;

extern void StoreReadWindow(int64 pipeline_id, int64 run_id, const char *column, Oid typid,
							const char *lower, const char *upper, const char *snapshot);
extern void ForgetReadWindows(int64 pipeline_id);
extern List *LoadReadWindows(int64 pipeline_id, const char *column, Oid typid,
							 const char *below, int limit);
extern void DropReadWindowsBelow(List *pipeline_ids, const char *column, Oid typid,
								 const char *below);
extern void ForgetRetentionFrontier(int64 pipeline_id);
extern char *LoadRetentionFrontier(int64 pipeline_id, const char *column, Oid typid);
extern void StoreRetentionFrontier(int64 pipeline_id, const char *column, Oid typid,
								   const char *frontier);
extern uint64 PruneReadWindows(int retention_seconds, int batch);

/* catalog/catalog_version.c: the library and the catalog are of one version */
extern bool CatalogVersionMatches(void);
extern void RequireCatalogVersion(void);

/* catalog/pipeline_store.c */
extern int	ExecCatalog(const char *sql, int nargs, Oid *types, Datum *values,
						const char *nulls, bool read_only);
extern void ExecKeptPlan(SPIPlanPtr *plan, const char *sql, int nargs, Oid *types,
						 Datum *values, const char *nulls);
extern PipelineDef *LoadPipelineByName(const char *name, bool missing_ok);
extern PipelineDef *LoadPipelineById(int64 pipeline_id);
extern int64 InsertPipelineDef(PipelineDef *def);
extern void UpdatePipelineDef(PipelineDef *def, bool reset_watermark);
extern void DeletePipelineDef(int64 pipeline_id);
extern void SetPipelineActive(int64 pipeline_id, bool active);
extern void StoreWatermark(int64 pipeline_id, const char *value, int64 run_id);
extern void StoreRunWatermark(PipelineDef *def, const char *value, int64 run_id);
extern void StoreTargetIndexPending(int64 pipeline_id, bool pending);
extern bool TargetIndexOwed(Oid relid, const char *column);
extern PipelineDef *LockPipelineForRun(PipelineDef *def);
extern PipelineDef *CopyDefIdentity(PipelineDef *def);
extern const char *LoadModeName(LoadMode mode);
extern bool ParseLoadMode(const char *text, LoadMode *mode);

/* catalog/relation_names.c */
extern Oid	ResolveRelationName(const char *schema, const char *relname, const char *role);
extern void DescribeRelation(Oid relid, char **schema, char **relname);
extern char *QualifiedRelationName(const char *schema, const char *relname);
extern char *RelationNameOf(Oid relid);
extern Oid	RelationOwnerOf(Oid relid);
extern List *CollectBaseTables(Oid relid);
extern bool SourceKeyIsUnique(Oid source_relid, List *unique_key);
extern bool SourceHasIndexOn(Oid source_relid, const char *column);

/* What a relation is to Citus (catalog/relation_names.c, CitusTableKindOf) */
typedef enum CitusTableKind
{
	CITUS_NONE,					/* a plain PostgreSQL relation, or no Citus */
	CITUS_DISTRIBUTED,			/* sharded across worker nodes */
	CITUS_REFERENCE,			/* replicated to every node */
	CITUS_LOCAL					/* a Citus local table on the coordinator */
} CitusTableKind;

extern CitusTableKind CitusTableKindOf(Oid relid);

#endif							/* PIPELINE_CATALOG_H */
