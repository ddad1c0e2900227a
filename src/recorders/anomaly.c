/*-------------------------------------------------------------------------
 *
 * src/recorders/anomaly.c
 *
 * Anomaly alerts: a successful run whose metrics are unlike the pipeline's
 * recent successful runs raises one alert of kind 'anomaly'. Called by the
 * one writer of a run's outcome (run_outcome.c) right after it recorded a
 * success, in the run's transaction, so that a run that rolls back raises
 * nothing. A pipeline without anomaly_sensitivity pays nothing: no query.
 *
 * The metrics are rows read, inserted, updated, deleted and quarantined,
 * and the duration in seconds. The baseline is the pipeline's last
 * max(30, anomaly_min_runs) successful runs before this one that loaded a
 * window (batches > 0: a run that found nothing new says nothing about the
 * data) and were neither quarantine replays nor backfills; failed,
 * skipped and running runs are not in it. A run is scored only with at
 * least anomaly_min_runs of them, and only when it is such a run itself.
 * Each metric's score is the robust z-score
 *
 *     score = (x - median) / scale,   scale = MAD / 0.6745
 *
 * (that is 0.6745 * (x - median) / MAD); when MAD is 0 (half the baseline
 * or more is one value), scale = 1.2533 * the mean absolute deviation from
 * the median, and whatever the estimate, scale is never below one unit:
 * one row, one second. A constant baseline thus scores a run by how many
 * rows (seconds) it is away, a steady series scores near 0, and sub-second
 * jitter of the duration never passes a sensitivity of 1 or more. A metric
 * is an outlier when |score| > anomaly_sensitivity; the run raises one
 * alert naming the most extreme one (observed, limit_value) and listing
 * them all (message). A batched run is one record, scored once as a whole
 * when its last batch is recorded. The whole computation is one statement
 * over pipeline.run_history; a unique index on alert_log (run_id) WHERE
 * kind = 'anomaly' keeps it to one alert per run.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"

#include "pipeline/recorders.h"

/* the fewest successful runs a baseline looks back over */
#define ANOMALY_WINDOW 30

static SPIPlanPtr anomaly_plan = NULL;

/*
 * The scoring statement: $1 the run, $2 the window, $3 the minimum
 * baseline, $4 the sensitivity. At most one row: the most extreme outlier
 * (metric, value, baseline, score), the list of all of them and the size
 * of the baseline; none when nothing is unusual or the run was alerted.
 */
static const char *const AnomalyQuery =
"WITH history AS ("
"  SELECT h.* FROM pipeline.run_history h"
"   WHERE h.pipeline_id = (SELECT r.pipeline_id FROM pipeline.run_history r WHERE r.run_id = $1)"
"     AND h.run_id < $1 AND h.status = 'succeeded' AND h.batches > 0"
"     AND h.triggered_by <> ALL (ARRAY['replay', 'backfill'])"
"   ORDER BY h.run_id DESC LIMIT $2"
"), sample AS ("
"  SELECT h.run_id = $1 AS current, m.ord, m.metric, m.unit, m.value"
"    FROM (SELECT * FROM history"
"          UNION ALL SELECT * FROM pipeline.run_history WHERE run_id = $1) h"
"   CROSS JOIN LATERAL (VALUES"
"     (1, 'rows_read', '', h.rows_read::float8),"
"     (2, 'rows_inserted', '', h.rows_inserted::float8),"
"     (3, 'rows_updated', '', h.rows_updated::float8),"
"     (4, 'rows_deleted', '', h.rows_deleted::float8),"
"     (5, 'rows_quarantined', '', h.rows_quarantined::float8),"
"     (6, 'duration', 's', extract(epoch FROM h.finished_at - h.started_at)::float8)"
"   ) m(ord, metric, unit, value)"
"), baseline AS ("
"  SELECT ord, count(value) AS n, percentile_cont(0.5) WITHIN GROUP (ORDER BY value) AS median"
"    FROM sample WHERE NOT current GROUP BY ord"
"), spread AS ("
"  SELECT b.ord, b.n, b.median,"
"         percentile_cont(0.5) WITHIN GROUP (ORDER BY abs(s.value - b.median)) / 0.6745 AS mad_scale,"
"         1.2533 * avg(abs(s.value - b.median)) AS mean_scale"
"    FROM baseline b JOIN sample s ON s.ord = b.ord AND NOT s.current"
"   GROUP BY b.ord, b.n, b.median"
"), outlier AS ("
"  SELECT z.ord, z.metric, z.score,"
"         trim_scale(round(z.value::numeric, 3))::text || z.unit AS value_text,"
"         trim_scale(round(z.median::numeric, 3))::text || z.unit AS median_text,"
"         trim_scale(round(z.score::numeric, 2))::text AS score_text"
"    FROM (SELECT s.ord, s.metric, s.unit, s.value, p.median,"
"                 (s.value - p.median) / greatest(CASE WHEN p.mad_scale > 0 THEN p.mad_scale"
"                                                      ELSE p.mean_scale END, 1) AS score"
"            FROM sample s JOIN spread p ON p.ord = s.ord"
"           WHERE s.current AND p.n >= $3) z"
"   WHERE abs(z.score) > $4"
")"
" SELECT o.metric, o.value_text, o.median_text, o.score_text,"
"        (SELECT string_agg(format('%s %s (baseline %s, score %s)', a.metric, a.value_text,"
"                                  a.median_text, a.score_text), ', ' ORDER BY a.ord)"
"           FROM outlier a),"
"        (SELECT count(*) FROM history)"
"   FROM outlier o"
"  WHERE NOT EXISTS (SELECT FROM pipeline.alert_log l"
"                     WHERE l.run_id = $1 AND l.kind = 'anomaly')"
"  ORDER BY abs(o.score) DESC, o.ord LIMIT 1";

/*
 * Scored tells whether a run is one anomalies are looked for in: its
 * pipeline has a sensitivity, and it loaded a window of the source (not
 * an idle run that found nothing new, nor a quarantine replay, nor a
 * backfill of a range, whose sizes say nothing of the source's flow).
 */
static bool
Scored(RunRecord *run)
{
	return run->status == RUN_SUCCEEDED && run->def->anomaly_sensitivity > 0 &&
		run->batches > 0 &&
		(run->triggered_by == NULL ||
		 (strcmp(run->triggered_by, "replay") != 0 && strcmp(run->triggered_by, "backfill") != 0));
}

/*
 * RaiseAnomalyAlert scores a successful run, just recorded in run_history,
 * against its pipeline's recent successful runs, and raises one 'anomaly'
 * alert when a metric is an outlier. It must run in the run's transaction.
 */
void
RaiseAnomalyAlert(RunRecord *run)
{
	PipelineDef *def = run->def;
	Oid			types[4] = {INT8OID, INT4OID, INT4OID, FLOAT8OID};
	Datum		values[4];
	HeapTuple	tup;
	TupleDesc	desc;
	char	   *metric;
	char	   *value;
	char	   *median;
	char	   *score;
	char	   *outliers;
	char	   *runs;

	if (!Scored(run))
		return;
	values[0] = Int64GetDatum(run->run_id);
	values[1] = Int32GetDatum(Max(ANOMALY_WINDOW, def->anomaly_min_runs));
	values[2] = Int32GetDatum(def->anomaly_min_runs);
	values[3] = Float8GetDatum(def->anomaly_sensitivity);
	ExecKeptPlan(&anomaly_plan, AnomalyQuery, 4, types, values, NULL);
	if (SPI_processed == 0)
		return;
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	metric = SPI_getvalue(tup, desc, 1);
	value = SPI_getvalue(tup, desc, 2);
	median = SPI_getvalue(tup, desc, 3);
	score = SPI_getvalue(tup, desc, 4);
	outliers = SPI_getvalue(tup, desc, 5);
	runs = SPI_getvalue(tup, desc, 6);
	RaiseAlert(def->id, def->name, "anomaly", psprintf("%s=%s", metric, value),
			   psprintf("baseline=%s score=%s", median, score), run->run_id,
			   psprintf("run %lld of pipeline \"%s\" is unusual: %s"
						" (sensitivity %g, against its last %s successful runs)",
						(long long) run->run_id, def->name, outliers,
						def->anomaly_sensitivity, runs));
}
