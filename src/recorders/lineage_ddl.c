/*-------------------------------------------------------------------------
 *
 * src/recorders/lineage_ddl.c
 *
 * The event triggers that keep lineage current: pipeline._lineage_ddl()
 * runs on ddl_command_end and refreshes (lineage_store.c) the lineage of
 * every pipeline whose stored edges a command may have made stale, and
 * pipeline._lineage_drop() on sql_drop that of every pipeline whose edges
 * name a relation the command dropped, so that creating, replacing,
 * altering, renaming or dropping a relation a pipeline reads through shows
 * in its lineage without anybody asking; the
 * classifications and subject declarations of a renamed relation
 * (api/privacy.c) follow its name; a change to the columns of a pipeline's
 * source is written to its schema history as it happens (schema_history.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "commands/extension.h"
#include "executor/spi.h"

#include "lineage_internal.h"
#include "pipeline/recorders/schema_history.h"

PIPELINE_FUNCTION(pipeline_lineage_ddl);
PIPELINE_FUNCTION(pipeline_lineage_drop);

/* The pipelines whose edges name one of the relations $1, from either end */
#define EDGES_OF_RELIDS \
	"SELECT e.pipeline_id FROM pipeline.lineage_edge e WHERE e.from_relid = ANY ($1)" \
	" UNION SELECT e.pipeline_id FROM pipeline.lineage_edge e WHERE e.to_relid = ANY ($1)"

/* The tables of declarations kept by a relation's name (api/privacy.c) */
static const char *const declarations[] = {"classification", "subject_declaration"};

/* the DDL running is a run's own index work (RunIndexDdl): not lineage */
static bool running_index_ddl = false;

/*
 * RunIndexDdl runs a statement of a run's own that builds or drops an index
 * or a primary key of its target (engine/initial_load.c): it changes no
 * column, so no lineage, and the event trigger skips it. Refreshing the
 * lineage of every pipeline that touches the target would cost the run,
 * and would wait for a registry change in progress on the same pipeline.
 */
void
RunIndexDdl(const char *sql)
{
	PG_TRY();
	{
		running_index_ddl = true;
		if (SPI_execute(sql, false, 0) != SPI_OK_UTILITY)
			elog(ERROR, "pg_pipeline could not run: %s", sql);
	}
	PG_FINALLY();
	{
		running_index_ddl = false;
	}
	PG_END_TRY();
}

/*
 * LineageTriggerIdle: pg_pipeline's own install or update script (its
 * tables are being created), or a catalog older than the library (before
 * ALTER EXTENSION UPDATE), or a run's own index work: nothing to refresh
 */
static bool
LineageTriggerIdle(void)
{
	return (creating_extension && CurrentExtensionObject == get_extension_oid(PIPELINE_EXTENSION, true)) ||
		!CatalogVersionMatches() || running_index_ddl;
}

/* RelationOids returns the oids of pg_class objects the query (of an event trigger's function) lists */
static List *
RelationOids(const char *sql)
{
	List	   *relids = NIL;

	if (SPI_execute(sql, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "pg_pipeline could not read the objects of a DDL command");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			relids = lappend_oid(relids, DatumGetObjectId(d));
	}
	return relids;
}

/*
 * pipeline._lineage_drop() runs on sql_drop, whatever the command (DROP
 * TABLE, DROP SCHEMA ... CASCADE, DROP OWNED, ALTER TABLE ... DROP
 * COLUMN): it refreshes the pipelines whose edges name a relation the
 * command dropped, found by the edges' indexes. Their edges then name it as
 * missing, by name, until it exists again.
 */
Datum
pipeline_lineage_drop(PG_FUNCTION_ARGS)
{
	List	   *relids;
	Oid			types[1] = {OIDARRAYOID};
	Datum		values[1];

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		elog(ERROR, "pipeline._lineage_drop must be called as an event trigger");
	if (LineageTriggerIdle())
		PG_RETURN_NULL();
	SPI_connect();
	relids = RelationOids("SELECT objid FROM pg_catalog.pg_event_trigger_dropped_objects()"
						  " WHERE classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass"
						  "   AND objsubid OPERATOR(pg_catalog.=) 0");
	if (relids != NIL)
	{
		values[0] = OidListArray(relids);
		RefreshPipelinesWhere("SELECT p.name FROM pipeline.pipeline p WHERE p.pipeline_id IN ("
							  EDGES_OF_RELIDS ") ORDER BY p.pipeline_id", 1, types, values);
	}
	SPI_finish();
	PG_RETURN_NULL();
}

/*
 * pipeline._lineage_ddl() runs at the end of DDL that creates, replaces,
 * alters or drops a relation. It refreshes the pipelines whose lineage
 * mentions a relation the command touched (a rename reports the renamed
 * relation), or a missing relation that exists again; those of a dropped
 * relation were refreshed by pipeline._lineage_drop.
 */
Datum
pipeline_lineage_ddl(PG_FUNCTION_ARGS)
{
	List	   *relids = NIL;
	Oid			types[1] = {OIDARRAYOID};
	Datum		values[1];

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		elog(ERROR, "pipeline._lineage_ddl must be called as an event trigger");
	if (LineageTriggerIdle())
		PG_RETURN_NULL();
	SPI_connect();
	relids = RelationOids("SELECT objid FROM pg_catalog.pg_event_trigger_ddl_commands()"
						  " WHERE classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass");
	values[0] = OidListArray(relids);
	/* a classified relation, or one with a subject, renamed: its declarations follow it */
	for (int i = 0; i < lengthof(declarations); i++)
		ExecCatalog(psprintf("UPDATE pipeline.%s c"
							 "   SET relation = quote_ident(n.nspname) || '.' || quote_ident(r.relname)"
							 "  FROM pg_class r JOIN pg_namespace n ON n.oid = r.relnamespace"
							 " WHERE r.oid = c.relid AND c.relid = ANY ($1)"
							 "   AND to_regclass(c.relation) IS NULL", declarations[i]),
					1, types, values, NULL, false);
	/* a registered source changed: its changes, as they happen */
	if (relids != NIL)
		RecordSourceDdl(values[0]);
	/*
	 * Edges of a relation the command touched, and of a missing relation
	 * (kept by name, relid 0) that exists again: each found by an index of
	 * the edges, so that one DDL over a registry of 10,000 pipelines costs
	 * what its own relations' edges cost.
	 */
	RefreshPipelinesWhere("SELECT p.name FROM pipeline.pipeline p WHERE p.pipeline_id IN ("
						  EDGES_OF_RELIDS
						  " UNION SELECT e.pipeline_id FROM pipeline.lineage_edge e"
						  "  WHERE e.from_relid = 0 AND to_regclass(e.from_relation) IS NOT NULL"
						  " UNION SELECT e.pipeline_id FROM pipeline.lineage_edge e"
						  "  WHERE e.to_relid = 0 AND to_regclass(e.to_relation) IS NOT NULL)"
						  " ORDER BY p.pipeline_id",
						  1, types, values);
	SPI_finish();
	PG_RETURN_NULL();
}
