/*-------------------------------------------------------------------------
 *
 * src/engine/row_checks.c
 *
 * The gate of the row checks inside the load statement. planner.c puts
 * every row-level check of the pipeline into the statement as a predicate
 * (AppendCheckGate); a row that passes them all goes on to the MERGE (or
 * INSERT) at the cost of the predicates alone. A row that fails one is
 * handed to pipeline._check_row, here, once, with which checks it failed:
 *
 *   - each failed check's failure is counted (pipeline.check_results);
 *   - an error-severity check fails the statement with 23514, so the run
 *     fails and nothing loads;
 *   - a quarantine-severity check keeps the row, as read, with its key and
 *     incremental value, in a tuplestore (memory, then a temporary file
 *     past work_mem) and drops it from the load;
 *   - warn and block let it load.
 *
 * Why not a data-modifying CTE around the MERGE, in one statement?
 * PostgreSQL 15 accepts WITH q AS (INSERT ...) MERGE ..., but the INSERT
 * would need the failing rows from a CTE over the window that the MERGE
 * also reads: a materialized CTE, which writes every row of the window to
 * a tuplestore (the cost of a second pass, for the good rows too), and the
 * statement runs as the pipeline owner, who must not write
 * pipeline.quarantine_row. Instead the statement reads the window once and
 * keeps only the failing rows; FlushRowChecks writes them to
 * pipeline.quarantine_row as the extension owner right after the
 * statement, in the same transaction (a run's subtransaction), before the
 * watermark moves: the quarantine rows, the load, the watermark and the
 * counts commit or roll back together, and no row is read twice.
 *
 * Counts stay exact: the gate is evaluated in the window counter's own
 * filter, right after the counter (pipeline._window_row) kept a row, or,
 * with de-duplication, as the filter of the rows DISTINCT ON kept, so each
 * row is gated once; a quarantined row is counted here and nowhere else
 * (counters.c subtracts it from the rows kept).
 *
 * The gate is armed for one statement of this backend's current
 * (sub)transaction; pipeline._check_row refuses to run otherwise.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/tuplestore.h"

#include "pipeline/engine.h"

PIPELINE_FUNCTION(pipeline_check_row);
PIPELINE_FUNCTION(pipeline_checked_row);

/* The gate of the statement being run */
static struct
{
	StatementArm arm;
	LoadPlan   *plan;
	CheckDef  **checks;			/* the row checks, in the order of the statement's array */
	int			nchecks;
	MemoryContext cxt;
	TupleDesc	desc;			/* failed text[], row jsonb, key jsonb, inc text, qid int8, reason text */
	Tuplestorestate *kept;
	int64		quarantined;
	bool		withhold_key;	/* the pipeline holds personal data: no key in errors */
} gate;

/*
 * ArmRowChecks prepares the gate for the next load statement of a plan
 * with row checks: their failure counts start at zero, the rows kept for
 * quarantine in a fresh tuplestore.
 */
void
ArmRowChecks(LoadPlan *plan)
{
	MemoryContext old;
	ListCell   *lc;
	int			i = 0;

	memset(&gate, 0, sizeof(gate));
	gate.cxt = AllocSetContextCreate(CurTransactionContext, "pg_pipeline row checks",
									 ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(gate.cxt);
	gate.plan = plan;
	gate.nchecks = list_length(plan->row_checks);
	gate.checks = palloc(sizeof(CheckDef *) * gate.nchecks);
	foreach(lc, plan->row_checks)
		gate.checks[i++] = lfirst(lc);
	gate.desc = CreateTemplateTupleDesc(6);
	TupleDescInitEntry(gate.desc, 1, "failed", TEXTARRAYOID, -1, 0);
	TupleDescInitEntry(gate.desc, 2, "row", JSONBOID, -1, 0);
	TupleDescInitEntry(gate.desc, 3, "key", JSONBOID, -1, 0);
	TupleDescInitEntry(gate.desc, 4, "inc", TEXTOID, -1, 0);
	TupleDescInitEntry(gate.desc, 5, "qid", INT8OID, -1, 0);
	TupleDescInitEntry(gate.desc, 6, "reason", TEXTOID, -1, 0);
	gate.kept = tuplestore_begin_heap(false, false, work_mem);
	MemoryContextSwitchTo(old);
	/* an error check's failure names the row's key, unless it is personal */
	for (int i = 0; i < gate.nchecks; i++)
		if (gate.checks[i]->severity == SEVERITY_ERROR && !plan->replay)
		{
			gate.withhold_key = PipelineHoldsPersonalData(plan->def);
			break;
		}
	ArmForStatement(&gate.arm);
}

/* GateArmed: the gate was armed by this (sub)transaction's run */
static bool
GateArmed(void)
{
	return ArmedForStatement(&gate.arm);
}

/* RowGateArmed: the gate is armed for the statement being run (typed_load.c's gate shares it) */
bool
RowGateArmed(void)
{
	return GateArmed();
}

/* RowGatePlan is the plan whose statement the gate is armed for */
LoadPlan *
RowGatePlan(void)
{
	return GateArmed() ? gate.plan : NULL;
}

/*
 * AdoptRowGate hands a gate armed in a subtransaction that committed (the
 * first try of a load with conversions, typed_load.c) to its parent, so
 * that FlushRowChecks there writes what it kept.
 */
void
AdoptRowGate(SubTransactionId child)
{
	if (gate.arm.armed && gate.arm.lxid == MyProc->lxid && gate.arm.subxid == child)
		gate.arm.subxid = GetCurrentSubTransactionId();
}

/*
 * KeepRowForQuarantine keeps a row the load drops for quarantine (a row
 * check's, or a conversion's with its reason) until FlushRowChecks.
 */
void
KeepRowForQuarantine(Datum failed, Datum row, Jsonb *key, Datum incremental, bool incremental_null,
					 Datum quarantine_id, bool quarantine_id_null, const char *reason)
{
	Datum		values[6];
	bool		nulls[6] = {false, false, key == NULL, incremental_null, quarantine_id_null,
	reason == NULL};

	values[0] = failed;
	values[1] = row;
	values[2] = key ? PointerGetDatum(key) : (Datum) 0;
	values[3] = incremental;
	values[4] = quarantine_id;
	values[5] = reason ? CStringGetTextDatum(reason) : (Datum) 0;
	tuplestore_putvalues(gate.kept, gate.desc, values, nulls);
	gate.quarantined++;
}

/* RowChecksQuarantined is the number of rows the gate kept for quarantine */
int64
RowChecksQuarantined(void)
{
	return GateArmed() ? gate.quarantined : 0;
}

/* The error-severity check that failed the run being run, as JSON, until taken */
static char *failed_check = NULL;

/*
 * NoteFailedCheck keeps, for the failed run's record, which error-severity
 * check is about to fail the run and with how many rows (a row check stops
 * at its first failing row), since its check_results roll back with it.
 */
void
NoteFailedCheck(CheckDef *check, int64 failed_rows)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"check_name\": ");
	escape_json(&buf, check->name);
	appendStringInfoString(&buf, ", \"kind\": ");
	escape_json(&buf, CheckKindName(check->kind));
	appendStringInfo(&buf, ", \"failed_rows\": %lld}", (long long) failed_rows);
	if (failed_check)
		pfree(failed_check);
	failed_check = MemoryContextStrdup(TopMemoryContext, buf.data);
	pfree(buf.data);
}

/* KeepFailedCheckText keeps the failed check a part of a parallel run reported (parallel_load.c) */
void
KeepFailedCheckText(const char *json)
{
	if (failed_check)
		pfree(failed_check);
	failed_check = MemoryContextStrdup(TopMemoryContext, json);
}

/* TakeFailedCheck returns (in the current context) and forgets the check NoteFailedCheck kept */
char *
TakeFailedCheck(void)
{
	char	   *taken = failed_check ? pstrdup(failed_check) : NULL;

	if (failed_check)
		pfree(failed_check);
	failed_check = NULL;
	return taken;
}

/* FailRow raises the error of a row that failed an error-severity check */
static void
FailRow(CheckDef *check, Jsonb *key)
{
	const char *name = gate.plan->def->name;

	NoteFailedCheck(check, 1);
	ereport(ERROR,
			(errcode(ERRCODE_CHECK_VIOLATION),
			 errmsg("check \"%s\" of pipeline \"%s\" failed", check->name, name),
			 key && !gate.withhold_key
			 ? errdetail("Check \"%s\" (%s, severity error) failed for the source row with key %s; the run loads nothing.",
							 check->name, CheckKindName(check->kind),
							 JsonbToCString(NULL, &key->root, VARSIZE(key)))
			 : errdetail("Check \"%s\" (%s, severity error) failed for a source row%s; the run loads nothing.",
						 check->name, CheckKindName(check->kind),
						 key ? " (its key is withheld: the pipeline holds personal data)" : ""),
			 errhint("Fix the row in the source, or give the check another severity: SELECT pipeline.drop_check(%s, %s); then pipeline.add_check(..., severity => 'quarantine').",
					 quote_literal_cstr(name), quote_literal_cstr(check->name))));
}

/*
 * pipeline._check_row(failed boolean[], row jsonb, key jsonb, incremental
 * text, quarantine_id bigint) routes a row that failed row checks: counts
 * each failed check, fails the run for an error-severity one, keeps the
 * row and returns false (not loaded) for a quarantine-severity one, and
 * returns true (loaded) when only warn or block checks failed.
 */
Datum
pipeline_check_row(PG_FUNCTION_ARGS)
{
	ArrayType  *failed;
	Datum	   *elems;
	bool	   *elem_nulls;
	int			n;
	CheckSeverity worst = SEVERITY_WARN;
	CheckDef   *worst_check = NULL;
	Datum	   *names;
	int			nnames = 0;
	Jsonb	   *key = PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2);

	if (!GateArmed() || PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pipeline._check_row can only be called by the load statement of a run")));
	failed = PG_GETARG_ARRAYTYPE_P(0);
	deconstruct_array(failed, BOOLOID, 1, true, TYPALIGN_CHAR, &elems, &elem_nulls, &n);
	if (n != gate.nchecks)
		elog(ERROR, "pg_pipeline row gate got %d results for %d checks", n, gate.nchecks);
	names = palloc(sizeof(Datum) * n);
	for (int i = 0; i < n; i++)
	{
		CheckDef   *c = gate.checks[i];

		if (elem_nulls[i] || !DatumGetBool(elems[i]))
			continue;
		c->failed_rows++;
		names[nnames++] = CStringGetTextDatum(c->name);
		if (worst_check == NULL || c->severity > worst)
		{
			worst = c->severity;
			worst_check = c;
		}
	}
	if (worst_check == NULL)
		PG_RETURN_BOOL(true);	/* can't happen: the statement asked because one failed */
	/* a replay never fails on a row: one that still fails stays in quarantine */
	if (worst == SEVERITY_ERROR && gate.plan->replay)
		worst = SEVERITY_QUARANTINE;
	if (worst == SEVERITY_ERROR)
		FailRow(worst_check, key);
	if (worst != SEVERITY_QUARANTINE)
		PG_RETURN_BOOL(true);
	KeepRowForQuarantine(PointerGetDatum(construct_array(names, nnames, TEXTOID, -1, false, TYPALIGN_INT)),
						 PG_GETARG_DATUM(1), key,
						 PG_ARGISNULL(3) ? (Datum) 0 : PG_GETARG_DATUM(3), PG_ARGISNULL(3),
						 PG_ARGISNULL(4) ? (Datum) 0 : PG_GETARG_DATUM(4), PG_ARGISNULL(4), NULL);
	PG_RETURN_BOOL(false);
}

/* pipeline._checked_row(passed): the gate's verdict, as the filter the planner sees */
Datum
pipeline_checked_row(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(PG_GETARG_BOOL(0));
}

/*
 * FlushRowChecks writes the rows the gate kept to pipeline.quarantine_row
 * (as the extension owner, in the run's transaction) and disarms the gate.
 * In a replay, a row kept by the gate is one that still fails: it stays
 * open with the checks it fails now.
 */
void
FlushRowChecks(LoadPlan *plan, int64 run_id)
{
	TupleTableSlot *slot;

	if (!GateArmed())
		return;
	slot = MakeSingleTupleTableSlot(gate.desc, &TTSOpsMinimalTuple);
	while (tuplestore_gettupleslot(gate.kept, true, false, slot))
	{
		bool		isnull[6];
		Datum		v[6];
		char	   *reason;

		for (int i = 0; i < 6; i++)
			v[i] = slot_getattr(slot, i + 1, &isnull[i]);
		reason = isnull[5] ? NULL : TextDatumGetCString(v[5]);
		if (plan->replay)
			KeepQuarantineRowOpen(DatumGetInt64(v[4]), v[0], reason);
		else
			WriteQuarantineRow(plan->def, run_id, v[0], v[1], isnull[2] ? (Datum) 0 : v[2],
							   isnull[3] ? NULL : TextDatumGetCString(v[3]), reason);
	}
	ExecDropSingleTupleTableSlot(slot);
	tuplestore_end(gate.kept);
	MemoryContextDelete(gate.cxt);
	gate.arm.armed = false;
}
