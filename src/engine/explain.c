/*-------------------------------------------------------------------------
 *
 * src/engine/explain.c
 *
 * pipeline.explain's text: the statements a run of a pipeline would
 * execute, built by the planner (planner.c) from the load plan resolved
 * now, without running any of them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/builtins.h"

#include "pipeline/engine.h"

/*
 * ExplainPipeline lists, as text rows, what the next run of a pipeline would
 * execute given its current watermark.
 */
List *
ExplainPipeline(PipelineDef *def)
{
	LoadPlan   *plan = BuildLoadPlan(def);
	List	   *rows = NIL;
	bool		has_lower = plan->incremental && def->watermark != NULL;
	bool		has_upper = plan->incremental != NULL;
	LoadStatements *stmts;

	if (plan->rollup)
		return ExplainRollup(plan); /* rollup.c */
	stmts = BuildLoadStatements(plan, has_lower, has_upper);

	rows = lappend(rows, psprintf("-- pipeline %s: %s %s into %s", quote_literal_cstr(def->name),
								  LoadModeName(def->mode), plan->source_ident, plan->target_ident));
	if (plan->incremental)
	{
		const char *inc = quote_identifier(plan->incremental->name);

		rows = lappend(rows, psprintf("-- window: %s > $1 AND %s <= $2", inc, inc));
		if (def->watermark)
			rows = lappend(rows, psprintf("-- $1 = watermark %s%s", quote_literal_cstr(def->watermark),
										  def->lookback ? " minus lookback" : ""));
		else
			rows = lappend(rows, "-- no watermark yet: the first run reads every row up to $2");
		rows = lappend(rows, "-- $2 = the high-water mark, read first; the run then waits for in-flight writers");
	}
	else
		rows = lappend(rows, "-- no incremental column: every run reads the whole source");
	if (def->parallel_workers > 1)
		rows = lappend(rows, psprintf("-- parallel_workers %d: a run splits the window by partition of %s into at most %d parts,"
									  " each loaded by a part worker with the statements below, a partition at a time"
									  " (the partition as the target, its constraint on the source rows), and commits"
									  " them with its own transaction; when it cannot, it loads serially and says why"
									  " in a NOTICE (docs/parallel.md)",
									  def->parallel_workers, plan->target_ident, def->parallel_workers));
	if (!plan->needs_dedup && def->unique_key != NIL)
		rows = lappend(rows, "-- the source's unique index makes de-duplication unnecessary");
	if (plan->incremental)
		rows = lappend(rows, BuildHighWaterQuery(plan));
	if (stmts->prepare)
		rows = lappend(rows, stmts->prepare);
	if (plan->upsert && def->unique_key != NIL)
		rows = lappend(rows, stmts->flagged
					   ? "-- Citus cannot MERGE between a local and a Citus table: the keys flagged deleted, then an upsert (docs/citus.md)"
					   : "-- Citus cannot MERGE between a local and a Citus table: an upsert (docs/citus.md)");
	if (stmts->flagged)
		rows = lappend(rows, stmts->flagged);
	if (InitialLoadApplies(plan, stmts))
	{
		rows = lappend(rows, "-- the target is empty: the run inserts the rows the MERGE would, without it (initial load)");
		rows = lappend(rows, BuildInitialInsert(plan, has_lower, has_upper));
		if (BulkInsertFits(plan))
			rows = lappend(rows, "-- nothing on the target asks more of that INSERT than its rows and their index entries:"
						   " the run writes them in batches, as COPY FROM does, and builds the indexes"
						   " it can lock at once after them (bulk path)");
	}
	else
		rows = lappend(rows, stmts->load);
	if (OwedTargetIndex(plan))
	{
		rows = lappend(rows, "-- then the index the pipeline owes the target it created, built after the data");
		rows = lappend(rows, OwedTargetIndex(plan));
	}
	return rows;
}
