/*-------------------------------------------------------------------------
 *
 * src/api/lineage_api.c
 *
 * The lineage functions of the SQL API that act on a pipeline and so
 * check who calls them (policy): pipeline.refresh_lineage recomputes the
 * lineage of the caller's pipelines (src/recorders/lineage_store.c does the
 * work), and pipeline.set_lineage_column names the target column each run
 * stamps with its id, records the change in the catalog and reports it as
 * a change of the registry (RegistryChanged). The rest of lineage is read
 * only or driven by DDL and lives with the recorders.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "pipeline/policy.h"

PIPELINE_FUNCTION(pipeline_refresh_lineage);
PIPELINE_FUNCTION(pipeline_set_lineage_column);

/* pipeline.refresh_lineage(name): recompute one pipeline's lineage, or all */
Datum
pipeline_refresh_lineage(PG_FUNCTION_ARGS)
{
	int			n;

	SPI_connect();
	if (PG_ARGISNULL(0))
	{
		Oid			types[1] = {OIDOID};
		Datum		values[1] = {ObjectIdGetDatum(GetUserId())};

		/* every pipeline the caller may refresh (policy/actions.c) */
		n = RefreshPipelinesWhere("SELECT name FROM pipeline.pipeline"
								  " WHERE pipeline._may('refresh the lineage of', owner::oid, $1)"
								  " ORDER BY pipeline_id",
								  1, types, values);
	}
	else
	{
		Oid			types[1] = {TEXTOID};
		Datum		values[1];
		int			nestlevel = PinSearchPath();

		/* 42704 for an unknown pipeline, 42501 for one of another role */
		CheckPipelineOwner(LoadPipelineByName(text_to_cstring(PG_GETARG_TEXT_PP(0)), false),
						   "refresh the lineage of");
		UnpinSearchPath(nestlevel);
		values[0] = PG_GETARG_DATUM(0);
		n = RefreshPipelinesWhere("SELECT name FROM pipeline.pipeline WHERE name = $1",
								  1, types, values);
	}
	SPI_finish();
	PG_RETURN_INT32(n);
}

/*
 * pipeline.set_lineage_column(name, column): from the next run on, every row
 * a run of the pipeline inserts or updates carries the run's id in that
 * target column (added as bigint when missing). NULL or '' turns it off.
 */
Datum
pipeline_set_lineage_column(PG_FUNCTION_ARGS)
{
	PipelineDef *def;
	char	   *column = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	int			nestlevel;
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2];
	char		nulls[2] = {' ', ' '};

	RequireArg(fcinfo, 0, "pipeline name");
	if (column && column[0] == '\0')
		column = NULL;
	SPI_connect();
	nestlevel = PinSearchPath();
	def = LoadPipelineByName(text_to_cstring(PG_GETARG_TEXT_PP(0)), false);
	CheckPipelineOwner(def, "alter");
	if (column)
	{
		Oid			source = ResolveRelationName(def->source_schema, def->source_table, "source");
		Oid			target = ResolveRelationName(def->target_schema, def->target_table, "target");
		AttrNumber	att;

		if (get_attnum(source, column) != InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_COLUMN),
					 errmsg("lineage column \"%s\" is also a column of source %s", column,
							quote_qualified_identifier(def->source_schema, def->source_table)),
					 errdetail("The run would have to write both the source's value and its own id to it."),
					 errhint("Choose another name, for example \"_run_id_%s\".", def->name)));
		att = get_attnum(target, column);
		if (att != InvalidAttrNumber)
		{
			Oid			typid = get_atttype(target, att);

			if (att < 0 || (typid != INT8OID && getBaseType(typid) != INT8OID))
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("lineage column \"%s\" of target %s has type %s", column,
								quote_qualified_identifier(def->target_schema, def->target_table),
								format_type_be(typid)),
						 errdetail("A lineage column holds run ids."),
						 errhint("Use a bigint column, or a name the target does not have yet.")));
		}
		else
		{
			char	   *sql = psprintf("ALTER TABLE %s ADD COLUMN %s bigint",
									   quote_qualified_identifier(def->target_schema, def->target_table),
									   quote_identifier(column));

			/* as the caller, who must own the target */
			if (SPI_execute(sql, false, 0) != SPI_OK_UTILITY)
				elog(ERROR, "could not add lineage column \"%s\"", column);
		}
	}
	values[0] = Int64GetDatum(def->id);
	values[1] = column ? CStringGetTextDatum(column) : (Datum) 0;
	nulls[1] = column ? ' ' : 'n';
	ExecCatalog("UPDATE pipeline.pipeline SET lineage_column = $2, updated_at = now()"
				" WHERE pipeline_id = $1", 2, types, values, nulls, false);
	def->lineage_column = column;
	RegistryChanged("alter", def, NULL);
	UnpinSearchPath(nestlevel);
	SPI_finish();
	PG_RETURN_VOID();
}
