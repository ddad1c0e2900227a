/*-------------------------------------------------------------------------
 *
 * src/include/pipeline/catalog/options.h
 *
 * Layer 1, the catalog store: the one table of a pipeline's options
 * (src/catalog/options.c). Each entry says how the option is spelled as an
 * argument of create_pipeline and alter_pipeline, as a key of apply() and of
 * the canonical config, where it lives in PipelineDef and pipeline.pipeline,
 * and how it is validated. The argument readers (api/registry_args.c), the
 * catalog reads and writes (catalog/pipeline_store.c), the canonical config
 * (recorders/versions.c) and apply() (api/apply.c) all walk this table;
 * sql/14_options.sql checks it against the SQL signatures and columns.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_CATALOG_OPTIONS_H
#define PIPELINE_CATALOG_OPTIONS_H

/*
 * How an option's value is held in PipelineDef and pipeline.pipeline, which
 * also decides how it is read from the catalog, written to it, and spelled in
 * the canonical config.
 */
typedef enum OptionStorage
{
	OPTION_STORE_NONE,			/* not kept (create_target) */
	OPTION_STORE_TEXT,			/* char *, NULL when none; text or name column */
	OPTION_STORE_NAME_LIST,		/* List of char *, NIL when none; name[] column */
	OPTION_STORE_BOOL,			/* bool */
	OPTION_STORE_INT32,			/* int32 */
	OPTION_STORE_COUNT,			/* int64, 0 when none (NULL in the column) */
	OPTION_STORE_INTERVAL,		/* Interval *, NULL when none */
	OPTION_STORE_JSONB,			/* Jsonb * */
	OPTION_STORE_FLOAT8,		/* double, 0 when none (NULL in the column) */
	OPTION_STORE_MODE,			/* LoadMode; its name in a text column */
	OPTION_STORE_RELATION,		/* schema and table: two char *, two name columns */
	OPTION_STORE_ROLE,			/* Oid; a regrole column */
	OPTION_STORE_DEPENDENCIES,	/* pipeline names, rows of pipeline.dependency */
	OPTION_STORE_CHECKS			/* data checks, rows of pipeline.data_check */
} OptionStorage;

/*
 * How an option's argument is validated (api/registry_args.c), beyond its
 * SQL type. Checks that need the relations (a column exists, a key is
 * unique) come later, from the load plan.
 */
typedef enum OptionCheck
{
	OPTION_CHECK_NONE,
	OPTION_CHECK_PIPELINE_NAME, /* not empty, at most 63 characters, unused */
	OPTION_CHECK_SOURCE,		/* a relation; the caller must be able to read it */
	OPTION_CHECK_TARGET,		/* resolved on search_path, created on request */
	OPTION_CHECK_COLUMN,		/* a column name, checked against the source later */
	OPTION_CHECK_COLUMN_LIST,	/* no NULL, empty or repeated column name */
	OPTION_CHECK_MODE,			/* a LoadMode's name */
	OPTION_CHECK_LOOKBACK,		/* not negative; zero means none */
	OPTION_CHECK_COUNT,			/* positive; in alter_pipeline 0 removes it */
	OPTION_CHECK_JSON_OBJECT,	/* a JSON object */
	OPTION_CHECK_SCHEDULE,		/* a cron schedule */
	OPTION_CHECK_PIPELINE_NAMES,	/* no NULL element */
	OPTION_CHECK_NOT_NEGATIVE,	/* zero or more */
	OPTION_CHECK_POSITIVE,		/* an interval longer than zero */
	OPTION_CHECK_LIMIT,			/* positive; in alter_pipeline 0 removes it */
	OPTION_CHECK_MASKS,			/* a masks object (catalog/masks.c) */
	OPTION_CHECK_CHOICE,		/* one of the option's choices */
	OPTION_CHECK_COLUMN_TYPES,	/* an object: column to a type name */
	OPTION_CHECK_SENSITIVITY,	/* a finite number above zero; in alter_pipeline 0 removes it */
	OPTION_CHECK_HISTORY,		/* a number of runs, from 3 to 1000 */
	OPTION_CHECK_SNAPSHOT_COLUMNS,	/* an object naming the history columns */
	OPTION_CHECK_ROLLUP,		/* a rollup object (catalog/rollup_spec.c) */
	OPTION_CHECK_WORKERS		/* a number of part workers, from 1 to 32 */
} OptionCheck;

/* One option of a pipeline */
typedef struct PipelineOption
{
	const char *name;			/* argument name = apply key = config key */
	Oid			sql_type;		/* type of the argument, InvalidOid: none */
	bool		has_default;	/* the argument of create_pipeline has one */
	const char *default_value;	/* its literal (input of sql_type), NULL: NULL */
	bool		required;		/* create_pipeline refuses NULL (22004) */
	OptionCheck check;
	OptionStorage storage;
	const char *column;			/* column of pipeline.pipeline, NULL: none */
	const char *column2;		/* the table's column of a relation */
	bool		written;		/* written by Insert/UpdatePipelineDef */
	int			field;			/* offset in PipelineDef, -1: none */
	int			field2;			/* the table's field of a relation */
	bool		alterable;		/* alter_pipeline may change it */
	bool		resets_watermark;	/* changing it resets the watermark */
	bool		in_config;		/* part of the canonical config */
	bool		omit_default_in_config; /* left out of it while its default (added after 0.1.0) */
	const char *const *choices; /* OPTION_CHECK_CHOICE: the values, NULL-terminated */
	bool		in_spec;		/* a key of apply() */
} PipelineOption;

/* The options, in create_pipeline's argument order (options without one in between) */
extern const PipelineOption PipelineOptions[];
extern const int NumPipelineOptions;

/* OPTION_FIELD points at the field of a PipelineDef at offset (option->field or field2) */
#define OPTION_FIELD(def, offset, type)	((type *) ((char *) (def) + (offset)))

/* alter_pipeline takes new_name as its argument 1, after name */
#define ALTER_NEW_NAME_ARGNO	1

extern const PipelineOption *PipelineOptionByName(const char *name);
extern int	PipelineOptionIndex(const PipelineOption *option);
extern int	PipelineOptionArgno(const PipelineOption *option, bool alter);
extern const char *PipelineOptionDefaultSql(const PipelineOption *option);

#endif							/* PIPELINE_CATALOG_OPTIONS_H */
