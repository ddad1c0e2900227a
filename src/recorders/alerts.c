/*-------------------------------------------------------------------------
 *
 * src/recorders/alerts.c
 *
 * Alerts: a row in pipeline.alert_log and a NOTIFY on channel
 * pipeline_alerts, in the current transaction. Raised for failed runs and
 * exhausted retries (recorders, run worker) and for breached freshness and
 * timeliness limits (workers/monitor.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"

#include "pipeline/recorders.h"

/*
 * RaiseAlert records an alert and notifies listeners of channel
 * pipeline_alerts, in the current transaction (so a rolled-back breach is
 * never announced). Any role may LISTEN, so the payload carries identifiers,
 * the kind, the SQLSTATE or measured age, never the message: a run error
 * can quote source values. The message stays in pipeline.alerts, which
 * shows an alert to those who may see its pipeline.
 */
void
RaiseAlert(int64 pipeline_id, const char *pipeline_name, const char *kind,
		   const char *observed, const char *limit_value, int64 run_id,
		   const char *message)
{
	Oid			types[7] = {INT8OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT8OID, TEXTOID};
	Datum		values[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};
	const char *texts[7] = {NULL, pipeline_name, kind, observed, limit_value, NULL, message};

	values[0] = Int64GetDatum(pipeline_id);
	for (int i = 1; i < 7; i++)
	{
		if (i == 5)
			continue;
		nulls[i] = texts[i] ? ' ' : 'n';
		values[i] = texts[i] ? CStringGetTextDatum(texts[i]) : (Datum) 0;
	}
	values[5] = Int64GetDatum(run_id);
	nulls[5] = run_id > 0 ? ' ' : 'n';
	ExecCatalog("WITH a AS (INSERT INTO pipeline.alert_log (pipeline_id, pipeline_name, kind,"
				"   observed, limit_value, run_id, message) VALUES ($1, $2, $3, $4, $5, $6, $7)"
				"   RETURNING *)"
				" SELECT pg_notify('pipeline_alerts', json_build_object("
				"   'alert_id', a.alert_id, 'pipeline', a.pipeline_name, 'kind', a.kind,"
				"   'observed', a.observed, 'limit', a.limit_value, 'run_id', a.run_id,"
				"   'pipeline_id', a.pipeline_id, 'time', a.raised_at)::text)"
				" FROM a",
				7, types, values, nulls, false);
}
