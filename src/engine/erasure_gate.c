/*-------------------------------------------------------------------------
 *
 * src/engine/erasure_gate.c
 *
 * The erasure gate of the load statement: a row that carries the value of
 * a subject that pipeline.forget erased (a late staging row, a row edited
 * into the quarantine and replayed, a reload after reset) is skipped and
 * counted, never loaded, and never sent to quarantine either.
 *
 * A plan gets the gate only when a column of its source identifies a
 * subject that has tombstones (catalog/tombstones.c, asked by
 * PlanErasureGate when the plan is built): a pipeline without one runs the
 * statement it always ran. planner.c puts the gate in the window counter's
 * own filter, first, right after the counter kept a row:
 *
 *   CASE WHEN pipeline._window_row(...) THEN
 *        CASE WHEN pipeline._unforgotten(ARRAY[s."email"::text, ...], NULL)
 *             THEN <the conversion or row checks' gate, or true> ELSE false END
 *   ELSE false END
 *
 * so each row read is gated once, before de-duplication, conversion and the
 * row checks: a forgotten row is as if it had never been staged.
 * pipeline._unforgotten hashes each subject value with the erasure key
 * (the tombstone of that value in that form) and looks it up in the
 * tombstones of the column's subject, read into a hash table when the gate
 * is armed, under the target's lock. The rows it skips are counted here
 * (rows_forgotten; counters.c leaves them out of the rows kept), with a
 * WARNING: the row is still in the source. In a replay it also notes their
 * quarantine ids, and replay.c deletes those rows from the quarantine.
 *
 * The gate is armed for one statement of this backend's current
 * (sub)transaction; pipeline._unforgotten refuses to run otherwise.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/sha2.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "pipeline/engine.h"

PIPELINE_FUNCTION(pipeline_unforgotten);

/* The gate of the statement being run */
static struct
{
	StatementArm arm;
	LoadPlan   *plan;
	int			ncolumns;
	char	  **subjects;		/* the subject of each value the statement passes */
	uint8	   *key;			/* the erasure key */
	HTAB	   *tombstones;
	int64		forgotten;
	List	   *quarantine_ids; /* a replay's rows skipped (int64 *) */
	MemoryContext cxt;
} gate;

/*
 * PlanErasureGate gives a plan the gate when a column of its source
 * identifies a subject with tombstones. A Citus target cannot have it: the
 * statement runs on the worker nodes, which do not know the tombstones
 * (0A000, rather than loading a forgotten row).
 */
void
PlanErasureGate(LoadPlan *plan)
{
	plan->erasure = ForgottenSubjectColumns(plan->source_relid);
	if (plan->erasure != NIL && plan->distributed)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("pipeline \"%s\" cannot skip forgotten subjects on %s",
						plan->def->name, CitusPlanSubject(plan)),
				 errdetail("Column \"%s\" of source %s identifies subject \"%s\", which pipeline.forget erased; the load's source rows are read on the worker nodes.",
						   ((SubjectColumn *) linitial(plan->erasure))->column, plan->source_ident,
						   ((SubjectColumn *) linitial(plan->erasure))->subject),
				 errhint("Erase the subject's rows from the source with pipeline.forget, or load through a local stage and target.")));
}

/*
 * AppendErasureGate appends the gate's call on the rows of alias: the
 * subject columns as text, and qid (a replay's quarantine id column) or
 * NULL.
 */
void
AppendErasureGate(StringInfo buf, LoadPlan *plan, const char *alias, const char *qid)
{
	ListCell   *lc;

	appendStringInfoString(buf, "pipeline._unforgotten(ARRAY[");
	foreach(lc, plan->erasure)
		appendStringInfo(buf, "%s%s.%s::pg_catalog.text", foreach_current_index(lc) > 0 ? ", " : "",
						 alias, quote_identifier(((SubjectColumn *) lfirst(lc))->column));
	appendStringInfo(buf, "], %s)", qid ? qid : "NULL::pg_catalog.int8");
}

/*
 * ArmErasureGate prepares the gate for the next load statement of a plan
 * with subject columns: the erasure key and the tombstones of their
 * subjects, read now (the caller holds the target's lock), and a count at
 * zero.
 */
void
ArmErasureGate(LoadPlan *plan)
{
	MemoryContext old;
	ListCell   *lc;

	memset(&gate, 0, sizeof(gate));
	gate.cxt = AllocSetContextCreate(CurTransactionContext, "pg_pipeline erasure gate",
									 ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(gate.cxt);
	gate.plan = plan;
	gate.ncolumns = list_length(plan->erasure);
	gate.subjects = palloc(sizeof(char *) * gate.ncolumns);
	foreach(lc, plan->erasure)
		gate.subjects[foreach_current_index(lc)] = pstrdup(((SubjectColumn *) lfirst(lc))->subject);
	gate.key = ErasureKey(false);
	gate.tombstones = LoadTombstones(plan->erasure, gate.cxt);
	MemoryContextSwitchTo(old);
	if (gate.key == NULL)
		elog(ERROR, "pg_pipeline has tombstones but no erasure key");
	ArmForStatement(&gate.arm);
}

/* DisarmErasureGate ends what ArmErasureGate allowed, before the end of its (sub)transaction */
void
DisarmErasureGate(void)
{
	gate.arm.armed = false;
}

/*
 * pipeline._unforgotten("values" text[], quarantine_id bigint) is the gate:
 * false, and the row is counted (and, in a replay, its quarantine id
 * noted), when one of the values is the tombstone of its column's subject.
 */
Datum
pipeline_unforgotten(PG_FUNCTION_ARGS)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	if (!ArmedForStatement(&gate.arm) || PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pipeline._unforgotten can only be called by the load statement of a run")));
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(0), TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	if (n != gate.ncolumns)
		elog(ERROR, "pg_pipeline erasure gate got %d values for %d columns", n, gate.ncolumns);
	for (int i = 0; i < n; i++)
	{
		text	   *value;
		uint8		digest[PG_SHA256_DIGEST_LENGTH];

		if (nulls[i])
			continue;
		value = DatumGetTextPP(elems[i]);
		ErasureDigest(gate.key, gate.subjects[i], VARDATA_ANY(value), VARSIZE_ANY_EXHDR(value),
					  digest);
		if (hash_search(gate.tombstones, digest, HASH_FIND, NULL) == NULL)
			continue;
		gate.forgotten++;
		if (!PG_ARGISNULL(1))
		{
			int64	   *id = MemoryContextAlloc(gate.cxt, sizeof(int64));
			MemoryContext old = MemoryContextSwitchTo(gate.cxt);

			*id = PG_GETARG_INT64(1);
			gate.quarantine_ids = lappend(gate.quarantine_ids, id);
			MemoryContextSwitchTo(old);
		}
		PG_RETURN_BOOL(false);
	}
	PG_RETURN_BOOL(true);
}

/*
 * ErasureGateForgotten returns the rows the gate skipped in the statement
 * that just ran; a run warns that they are still in its source.
 */
int64
ErasureGateForgotten(void)
{
	if (!ArmedForStatement(&gate.arm))
		return 0;
	if (gate.forgotten > 0 && !gate.plan->replay)
		ereport(WARNING,
				(errmsg_plural("pipeline \"%s\" skipped %lld source row of a forgotten subject",
							   "pipeline \"%s\" skipped %lld source rows of forgotten subjects",
							   gate.forgotten, gate.plan->def->name, (long long) gate.forgotten),
				 errdetail("A row skipped carries a value pipeline.forget erased; it is not loaded, is counted in rows_forgotten, and is still in source %s.",
						   gate.plan->source_ident),
				 errhint("Call pipeline.forget again with the value to erase what is left in the source.")));
	return gate.forgotten;
}

/*
 * EraseForgottenQuarantineRows deletes from the quarantine the rows a
 * replay read and the gate skipped (one edited to carry a forgotten value):
 * a replay closes the rows it read, and these must not stay as closed
 * ones. Returns how many.
 */
int64
EraseForgottenQuarantineRows(void)
{
	Datum	   *ids;
	Oid			types[1] = {INT8ARRAYOID};
	Datum		values[1];
	ListCell   *lc;
	int64		n;

	if (!gate.arm.armed || gate.arm.lxid != MyProc->lxid || gate.quarantine_ids == NIL)
		return 0;
	ids = palloc(sizeof(Datum) * list_length(gate.quarantine_ids));
	foreach(lc, gate.quarantine_ids)
		ids[foreach_current_index(lc)] = Int64GetDatum(*(int64 *) lfirst(lc));
	values[0] = PointerGetDatum(construct_array(ids, list_length(gate.quarantine_ids), INT8OID,
												sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	SPI_connect();
	ExecCatalog("DELETE FROM pipeline.quarantine_row WHERE quarantine_id = ANY ($1)",
				1, types, values, NULL, false);
	n = (int64) SPI_processed;
	SPI_finish();
	gate.quarantine_ids = NIL;
	return n;
}
