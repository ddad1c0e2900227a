/*-------------------------------------------------------------------------
 *
 * src/workers/monitor.c
 *
 * Watching pipelines: the freshness and timeliness checks (raising alerts,
 * recorders/alerts.c) and the pruning of run history that the launcher does every
 * pipeline.check_interval. (The recovery of the runs a crash interrupted,
 * on every pass, is engine/recovery.c's, which the launcher calls.)
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "pipeline/workers.h"

/* RaiseAlertsFromQuery raises one alert of a kind per row (id, name, observed, limit, run) */
static void
RaiseAlertsFromQuery(const char *kind, const char *sql)
{
	SPITupleTable *tuptable;
	uint64		n;

	ExecCatalog(sql, 0, NULL, NULL, NULL, false);
	tuptable = SPI_tuptable;
	n = SPI_processed;
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	tup = tuptable->vals[i];
		TupleDesc	desc = tuptable->tupdesc;
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		char	   *name = SPI_getvalue(tup, desc, 2);
		char	   *observed = SPI_getvalue(tup, desc, 3);
		char	   *limit_value = SPI_getvalue(tup, desc, 4);
		Datum		run = SPI_getbinval(tup, desc, 5, &isnull);

		RaiseAlert(id, name, kind, observed, limit_value, isnull ? 0 : DatumGetInt64(run),
				   psprintf("%s limit of pipeline \"%s\" breached: %s, limit %s",
							kind, name, observed, limit_value));
	}
}

/*
 * CheckLimits raises freshness alerts (no successful run changed data for
 * longer than the limit) and timeliness alerts (a run took, or is taking,
 * longer than the limit), once per breach, and resolves breaches that have
 * ended. Muted limits raise nothing. The latest run of a pipeline may be an
 * idle one, counted on its watermark row (last_idle_run_id) rather than
 * recorded: it took no longer than the limit (else it is recorded), so it
 * ends a timeliness breach as a later succeeded run does.
 */
void
CheckLimits(void)
{
	RaiseAlertsFromQuery("freshness",
						 "SELECT s.id, s.name, date_trunc('second', s.age)::text,"
						 "       s.freshness::text, NULL::bigint"
						 "  FROM (SELECT p.pipeline_id AS id, p.name, p.freshness,"
						 "               now() - coalesce((SELECT max(h.finished_at)"
						 "                  FROM pipeline.run_history h"
						 "                 WHERE h.pipeline_id = p.pipeline_id AND h.status = 'succeeded'"
						 "                   AND h.rows_inserted + h.rows_updated + h.rows_deleted > 0),"
						 "                 p.created_at) AS age"
						 "          FROM pipeline.pipeline p"
						 "         WHERE p.freshness IS NOT NULL AND p.active AND NOT p.freshness_muted) s"
						 " WHERE s.age > s.freshness"
						 "   AND NOT EXISTS (SELECT 1 FROM pipeline.alert_log a"
						 "                    WHERE a.pipeline_id = s.id AND a.kind = 'freshness'"
						 "                      AND a.resolved_at IS NULL)");
	ExecCatalog("UPDATE pipeline.alert_log a SET resolved_at = clock_timestamp()"
				"  FROM pipeline.pipeline p"
				" WHERE a.kind = 'freshness' AND a.resolved_at IS NULL"
				"   AND p.pipeline_id = a.pipeline_id"
				"   AND (p.freshness IS NULL OR p.freshness_muted OR NOT p.active"
				"        OR now() - coalesce((SELECT max(h.finished_at) FROM pipeline.run_history h"
				"                 WHERE h.pipeline_id = p.pipeline_id AND h.status = 'succeeded'"
				"                   AND h.rows_inserted + h.rows_updated + h.rows_deleted > 0),"
				"                 p.created_at) <= p.freshness)",
				0, NULL, NULL, NULL, false);

	RaiseAlertsFromQuery("timeliness",
						 "SELECT p.pipeline_id, p.name,"
						 "       date_trunc('second', coalesce(h.finished_at, now()) - h.started_at)::text,"
						 "       p.timeliness::text, h.run_id"
						 "  FROM pipeline.pipeline p"
						 "  JOIN LATERAL (SELECT r.run_id, r.started_at, r.finished_at"
						 "                  FROM pipeline.run_history r"
						 "                 WHERE r.pipeline_id = p.pipeline_id AND r.status <> 'skipped'"
						 "                 ORDER BY r.run_id DESC LIMIT 1) h ON true"
						 " WHERE p.timeliness IS NOT NULL AND NOT p.timeliness_muted"
						 "   AND coalesce(h.finished_at, now()) - h.started_at > p.timeliness"
						 "   AND NOT EXISTS (SELECT 1 FROM pipeline.watermark w"
						 "                    WHERE w.pipeline_id = p.pipeline_id AND w.last_idle_run_id > h.run_id)"
						 "   AND NOT EXISTS (SELECT 1 FROM pipeline.alert_log a"
						 "                    WHERE a.pipeline_id = p.pipeline_id AND a.kind = 'timeliness'"
						 "                      AND a.run_id = h.run_id)");
	ExecCatalog("UPDATE pipeline.alert_log a SET resolved_at = clock_timestamp()"
				" WHERE a.kind = 'timeliness' AND a.resolved_at IS NULL"
				"   AND (EXISTS (SELECT 1 FROM pipeline.run_history r"
				"                 WHERE r.pipeline_id = a.pipeline_id AND r.run_id > a.run_id"
				"                   AND r.status = 'succeeded')"
				"        OR EXISTS (SELECT 1 FROM pipeline.watermark w"
				"                    WHERE w.pipeline_id = a.pipeline_id AND w.last_idle_run_id > a.run_id))",
				0, NULL, NULL, NULL, false);
}

/*
 * PruneHistory deletes at most batch finished runs (and resolved alerts,
 * the alerts about one run, which nothing resolves, and the windows runs
 * read, catalog/read_windows.c) older than the retention period; it
 * returns how many runs went, so the launcher can come back soon while
 * there is more.
 */
uint64
PruneHistory(int retention_seconds, int batch)
{
	Oid			types[2] = {INT4OID, INT4OID};
	Datum		values[2];
	uint64		pruned;

	values[0] = Int32GetDatum(retention_seconds);
	values[1] = Int32GetDatum(batch);
	ExecCatalog("DELETE FROM pipeline.run_history WHERE run_id IN ("
				"  SELECT run_id FROM pipeline.run_history"
				"   WHERE started_at < now() - make_interval(secs => $1) AND status <> 'running'"
				"   ORDER BY started_at LIMIT $2)",
				2, types, values, NULL, false);
	pruned = SPI_processed;
	ExecCatalog("DELETE FROM pipeline.alert_log WHERE alert_id IN ("
				"  SELECT alert_id FROM pipeline.alert_log"
				"   WHERE resolved_at < now() - make_interval(secs => $1)"
				"      OR (resolved_at IS NULL AND kind IN ('run_failed', 'retries_exhausted', 'anomaly')"
				"          AND raised_at < now() - make_interval(secs => $1))"
				"   ORDER BY alert_id LIMIT $2)",
				2, types, values, NULL, false);
	(void) PruneReadWindows(retention_seconds, batch);
	return pruned;
}

/*
 * RefreshAllSourceRelations recomputes what every pipeline's source reads
 * (after a restore, the derived table is empty).
 */
void
RefreshAllSourceRelations(void)
{
	SPITupleTable *tuptable;
	uint64		n;

	ExecCatalog("SELECT pipeline_id, to_regclass(quote_ident(source_schema) || '.'"
				"       || quote_ident(source_table))::oid FROM pipeline.pipeline",
				0, NULL, NULL, NULL, false);
	tuptable = SPI_tuptable;
	n = SPI_processed;
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(tuptable->vals[i], tuptable->tupdesc, 1, &isnull));
		Datum		relid = SPI_getbinval(tuptable->vals[i], tuptable->tupdesc, 2, &isnull);

		if (!isnull)
			RefreshSourceRelations(id, DatumGetObjectId(relid));
	}
}
