/*-------------------------------------------------------------------------
 *
 * src/recorders/check_results.c
 *
 * What the data checks of a run came to, and the quarantine: a run's
 * check results (pipeline.check_result, one row per run and check, added
 * up over the batches of a batched run), the rows its gate sent to
 * quarantine (pipeline.quarantine_row), and the statuses of those rows as
 * they are replayed or discarded. Everything is written as the extension
 * owner (ExecCatalog) in the caller's transaction, so that a run's results
 * and quarantine rows commit or roll back with its load.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "pipeline/recorders.h"

static SPIPlanPtr quarantine_plan = NULL;

/*
 * WriteQuarantineRow keeps one source row that failed a quarantine-severity
 * check, or a conversion (with its reason: the column, the value, the error). A row already open in quarantine with the same key and the same
 * values (read again by a lookback) is not kept twice.
 */
void
WriteQuarantineRow(PipelineDef *def, int64 run_id, Datum failed, Datum row, Datum key,
				   const char *incremental_value, const char *reason)
{
	Oid			types[8] = {INT8OID, TEXTOID, INT8OID, JSONBOID, TEXTOID, JSONBOID, TEXTARRAYOID, TEXTOID};
	Datum		values[8];
	char		nulls[8] = {' ', ' ', ' ', key ? ' ' : 'n', incremental_value ? ' ' : 'n', ' ', ' ',
	reason ? ' ' : 'n'};

	values[0] = Int64GetDatum(def->id);
	values[1] = CStringGetTextDatum(def->name);
	values[2] = Int64GetDatum(run_id);
	values[3] = key;
	values[4] = incremental_value ? CStringGetTextDatum(incremental_value) : (Datum) 0;
	values[5] = row;
	values[6] = failed;
	values[7] = reason ? CStringGetTextDatum(reason) : (Datum) 0;
	ExecKeptPlan(&quarantine_plan,
				 "INSERT INTO pipeline.quarantine_row (pipeline_id, pipeline, run_id, key,"
				 " incremental_value, \"row\", failed_checks, reason)"
				 " SELECT $1, $2, $3, $4, $5, $6, $7, $8"
				 "  WHERE NOT EXISTS (SELECT 1 FROM pipeline.quarantine_row q"
				 "   WHERE q.pipeline_id = $1 AND q.status = 'open'"
				 "     AND q.key IS NOT DISTINCT FROM $4 AND q.\"row\" = $6)",
				 8, types, values, nulls);
}

static SPIPlanPtr late_plan = NULL;

/*
 * WriteLateRow keeps one late change of a rollup (engine/rollup_run.c): the
 * row as it arrived in or left a closed bucket, its cell as the key, its
 * time, failed_checks {late} and the reason. Every late change is kept,
 * even one equal to a row already open: each is counted by its run.
 */
void
WriteLateRow(PipelineDef *def, int64 run_id, Datum row, Datum cell, const char *at,
			 const char *reason)
{
	Oid			types[7] = {INT8OID, TEXTOID, INT8OID, JSONBOID, TEXTOID, JSONBOID, TEXTOID};
	Datum		values[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', at ? ' ' : 'n', ' ', ' '};

	values[0] = Int64GetDatum(def->id);
	values[1] = CStringGetTextDatum(def->name);
	values[2] = Int64GetDatum(run_id);
	values[3] = cell;
	values[4] = at ? CStringGetTextDatum(at) : (Datum) 0;
	values[5] = row;
	values[6] = CStringGetTextDatum(reason);
	ExecKeptPlan(&late_plan,
				 "INSERT INTO pipeline.quarantine_row (pipeline_id, pipeline, run_id, key,"
				 " incremental_value, \"row\", failed_checks, reason)"
				 " VALUES ($1, $2, $3, $4, $5, $6, ARRAY['late'], $7)",
				 7, types, values, nulls);
}

/* PipelineHasOpenLateRows tells whether a rollup has late changes open in the quarantine */
bool
PipelineHasOpenLateRows(int64 pipeline_id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1];
	bool		isnull;

	values[0] = Int64GetDatum(pipeline_id);
	ExecCatalog("SELECT EXISTS (SELECT FROM pipeline.quarantine_row WHERE pipeline_id = $1"
				" AND status = 'open' AND failed_checks = ARRAY['late'])",
				1, types, values, NULL, true);
	return DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * ResolveLateRows closes, as replayed, the open late changes of a rollup
 * whose cells (a list of Jsonb * keys; NIL: every cell) a run has just
 * recomputed: their changes are in the target now. Returns how many.
 */
int64
ResolveLateRows(PipelineDef *def, List *cells)
{
	Oid			types[2] = {INT8OID, JSONBARRAYOID};
	Datum		values[2];
	Datum	   *keys;
	int			i = 0;
	ListCell   *lc;

	values[0] = Int64GetDatum(def->id);
	if (cells == NIL)
	{
		ExecCatalog("UPDATE pipeline.quarantine_row SET status = 'replayed', resolved_at = pg_catalog.now()"
					" WHERE pipeline_id = $1 AND status = 'open' AND failed_checks = ARRAY['late']",
					1, types, values, NULL, false);
		return (int64) SPI_processed;
	}
	keys = palloc(sizeof(Datum) * list_length(cells));
	foreach(lc, cells)
		keys[i++] = JsonbPGetDatum(lfirst(lc));
	values[1] = PointerGetDatum(construct_array(keys, i, JSONBOID, -1, false, TYPALIGN_INT));
	ExecCatalog("UPDATE pipeline.quarantine_row SET status = 'replayed', resolved_at = pg_catalog.now()"
				" WHERE pipeline_id = $1 AND status = 'open' AND failed_checks = ARRAY['late']"
				" AND key = ANY ($2)",
				2, types, values, NULL, false);
	return (int64) SPI_processed;
}

/*
 * KeepQuarantineRowOpen reopens a replayed row that still fails (a replay
 * closes every row it read first), with the checks it fails now and the
 * reason of a conversion that still fails (NULL otherwise).
 */
void
KeepQuarantineRowOpen(int64 quarantine_id, Datum failed, const char *reason)
{
	Oid			types[3] = {INT8OID, TEXTARRAYOID, TEXTOID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', reason ? ' ' : 'n'};

	values[0] = Int64GetDatum(quarantine_id);
	values[1] = failed;
	values[2] = reason ? CStringGetTextDatum(reason) : (Datum) 0;
	ExecCatalog("UPDATE pipeline.quarantine_row SET failed_checks = $2, reason = $3, status = 'open',"
				" resolved_at = NULL WHERE quarantine_id = $1",
				3, types, values, nulls, false);
}

/* CheckOutcome is what a check came to in a run */
static const char *
CheckOutcome(CheckDef *check)
{
	if (check->failed_rows == 0)
		return "passed";
	switch (check->severity)
	{
		case SEVERITY_WARN:
			return "warned";
		case SEVERITY_QUARANTINE:
			return "quarantined";
		case SEVERITY_BLOCK:
			return "blocked";
		case SEVERITY_ERROR:
			break;
	}
	elog(ERROR, "check \"%s\" failed with severity error but its run went on", check->name);
	return NULL;
}

/*
 * RecordCheckResults writes what each check came to in a run (or in one
 * batch of it: a later batch adds its failures, and a failure makes the
 * outcome the failed one).
 */
void
RecordCheckResults(int64 run_id, PipelineDef *def, List *checks)
{
	ListCell   *lc;

	foreach(lc, checks)
	{
		CheckDef   *c = lfirst(lc);
		Oid			types[7] = {INT8OID, INT8OID, TEXTOID, TEXTOID, TEXTOID, INT8OID, TEXTOID};
		Datum		values[7];

		values[0] = Int64GetDatum(run_id);
		values[1] = Int64GetDatum(def->id);
		values[2] = CStringGetTextDatum(c->name);
		values[3] = CStringGetTextDatum(CheckKindName(c->kind));
		values[4] = CStringGetTextDatum(CheckSeverityName(c->severity));
		values[5] = Int64GetDatum(c->failed_rows);
		values[6] = CStringGetTextDatum(CheckOutcome(c));
		ExecCatalog("INSERT INTO pipeline.check_result AS r (run_id, pipeline_id, check_name, kind,"
					" severity, failed_rows, outcome) VALUES ($1, $2, $3, $4, $5, $6, $7)"
					" ON CONFLICT (run_id, check_name) DO UPDATE"
					" SET failed_rows = r.failed_rows + excluded.failed_rows,"
					"     outcome = CASE WHEN excluded.failed_rows > 0 THEN excluded.outcome ELSE r.outcome END",
					7, types, values, NULL, false);
	}
}

/*
 * WriteFailedCheckResult writes the result of the error-severity check that
 * failed a run (outcome 'failed'), which rolled back with the run: the
 * failed run's recorder writes it from its record, {"check_name", "kind",
 * "failed_rows"} (row_checks.c NoteFailedCheck).
 */
void
WriteFailedCheckResult(int64 run_id, int64 pipeline_id, const char *failed_check)
{
	Oid			types[3] = {INT8OID, INT8OID, JSONBOID};
	Datum		values[3];

	values[0] = Int64GetDatum(run_id);
	values[1] = Int64GetDatum(pipeline_id);
	values[2] = DirectFunctionCall1(jsonb_in, CStringGetDatum(failed_check));
	ExecCatalog("INSERT INTO pipeline.check_result (run_id, pipeline_id, check_name, kind, severity,"
				" failed_rows, outcome)"
				" SELECT $1, $2, $3->>'check_name', $3->>'kind', 'error', ($3->>'failed_rows')::bigint, 'failed'"
				" ON CONFLICT (run_id, check_name) DO UPDATE"
				" SET failed_rows = excluded.failed_rows, outcome = 'failed'",
				3, types, values, NULL, false);
}

/* PipelineBlocked: a blocking check of the pipeline failed and is not acknowledged */
bool
PipelineBlocked(int64 pipeline_id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1];

	values[0] = Int64GetDatum(pipeline_id);
	ExecCatalog("SELECT 1 FROM pipeline.check_result WHERE pipeline_id = $1 AND outcome = 'blocked' LIMIT 1",
				1, types, values, NULL, false);
	return SPI_processed > 0;
}

/*
 * AcknowledgeRun acknowledges the failed blocking checks of one run of a
 * pipeline and returns how many it acknowledged.
 */
int64
AcknowledgeRun(PipelineDef *def, int64 run_id)
{
	Oid			types[3] = {INT8OID, INT8OID, TEXTOID};
	Datum		values[3];

	values[0] = Int64GetDatum(def->id);
	values[1] = Int64GetDatum(run_id);
	values[2] = CStringGetTextDatum(GetUserNameFromId(GetUserId(), false));
	ExecCatalog("UPDATE pipeline.check_result SET outcome = 'acknowledged',"
				" acknowledged_at = now(), acknowledged_by = $3"
				" WHERE pipeline_id = $1 AND run_id = $2 AND outcome = 'blocked'",
				3, types, values, NULL, false);
	return (int64) SPI_processed;
}

/*
 * LockOpenQuarantine locks the open quarantine rows of a pipeline (those of
 * ids, or all when ids is NULL) whose row has a value for each key column
 * (a row edited to a NULL key stays open), in id order, and returns their
 * ids and rows as an int8[] and a jsonb[].
 */
void
LockOpenQuarantine(PipelineDef *def, ArrayType *ids, Datum *ids_out, Datum *rows_out, int64 *count)
{
	Oid			types[3] = {INT8OID, INT8ARRAYOID, TEXTARRAYOID};
	Datum		values[3];
	char		nulls[3] = {' ', ids ? ' ' : 'n', ' '};
	bool		isnull;
	Datum	   *keys = palloc(sizeof(Datum) * (list_length(def->unique_key) + 1));
	int			nkeys = 0;
	ListCell   *lc;

	foreach(lc, def->unique_key)
		keys[nkeys++] = CStringGetTextDatum(lfirst(lc));
	values[0] = Int64GetDatum(def->id);
	values[1] = PointerGetDatum(ids);
	values[2] = PointerGetDatum(construct_array(keys, nkeys, TEXTOID, -1, false, TYPALIGN_INT));
	ExecCatalog("WITH l AS (SELECT quarantine_id, \"row\" FROM pipeline.quarantine_row"
				"  WHERE pipeline_id = $1 AND status = 'open'"
				"    AND ($2 IS NULL OR quarantine_id = ANY ($2))"
				"    AND NOT EXISTS (SELECT 1 FROM unnest($3) AS k WHERE \"row\" ->> k IS NULL)"
				"  ORDER BY quarantine_id FOR UPDATE)"
				" SELECT coalesce(array_agg(quarantine_id ORDER BY quarantine_id), '{}'),"
				"        coalesce(array_agg(\"row\" ORDER BY quarantine_id), '{}'), count(*) FROM l",
				3, types, values, nulls, false);
	*ids_out = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	*rows_out = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	*count = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
}

/*
 * ResolveQuarantine closes the open quarantine rows of a pipeline (those of
 * ids, or all when ids is NULL) with a status (replayed, discarded) and
 * returns how many it closed.
 */
int64
ResolveQuarantine(PipelineDef *def, ArrayType *ids, const char *status)
{
	Oid			types[3] = {INT8OID, INT8ARRAYOID, TEXTOID};
	Datum		values[3];
	char		nulls[3] = {' ', ids ? ' ' : 'n', ' '};

	values[0] = Int64GetDatum(def->id);
	values[1] = PointerGetDatum(ids);
	values[2] = CStringGetTextDatum(status);
	ExecCatalog("UPDATE pipeline.quarantine_row SET status = $3, resolved_at = now()"
				" WHERE pipeline_id = $1 AND status = 'open'"
				"   AND ($2 IS NULL OR quarantine_id = ANY ($2))",
				3, types, values, nulls, false);
	return (int64) SPI_processed;
}
