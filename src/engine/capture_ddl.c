/*-------------------------------------------------------------------------
 *
 * src/engine/capture_ddl.c
 *
 * The event trigger that keeps captures in step with DDL:
 * pipeline._capture_ddl() runs on ddl_command_end of ALTER TABLE and of
 * the DROP commands. After ALTER TABLE of a captured table, its capture
 * table and feed follow its columns (SyncCaptureObjects: added, renamed,
 * retyped, dropped), so that the trigger never meets a column it cannot
 * write, and a pipeline reading the feed sees the change as schema drift
 * of its source. After a DROP, a capture whose table, capture table or
 * feed is gone (DROP TABLE of the table; DROP ... CASCADE of its capture,
 * which takes the triggers along) is forgotten, and audited as an
 * uncapture. It fires before pipeline_lineage_ddl, which then sees the
 * feed as it now is.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "commands/event_trigger.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "utils/builtins.h"

#include "capture_internal.h"

PIPELINE_FUNCTION(pipeline_capture_ddl);

/* AlteredTables lists the tables the command altered */
static List *
AlteredTables(void)
{
	List	   *relids = NIL;

	if (SPI_execute("SELECT DISTINCT objid FROM pg_catalog.pg_event_trigger_ddl_commands()"
					" WHERE classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass"
					"   AND command_tag OPERATOR(pg_catalog.=) 'ALTER TABLE'",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the commands of the event");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);

		relids = lappend_oid(relids, DatumGetObjectId(d));
	}
	return relids;
}

/* pipeline._capture_ddl(): captures follow ALTER TABLE, and forget dropped tables */
Datum
pipeline_capture_ddl(PG_FUNCTION_ARGS)
{
	ListCell   *lc;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		elog(ERROR, "pipeline._capture_ddl must be called as an event trigger");
	if ((creating_extension && CurrentExtensionObject == get_extension_oid(PIPELINE_EXTENSION, true)) ||
		!CatalogVersionMatches() || capture_ddl_active)
		PG_RETURN_NULL();
	SPI_connect();
	foreach(lc, ForgetVanishedCaptures())
		AuditObjectChange("uncapture", "table", lfirst(lc),
						  "{\"reason\": \"its table, capture table or feed was dropped\"}", NULL);
	foreach(lc, AlteredTables())
	{
		ChangeCapture *c = LookupCapture(lfirst_oid(lc), false);

		if (c != NULL)
			SyncCaptureObjects(c);
	}
	SPI_finish();
	PG_RETURN_NULL();
}
