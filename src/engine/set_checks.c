/*-------------------------------------------------------------------------
 *
 * src/engine/set_checks.c
 *
 * The set-level checks of a run (unique, row_count, query), evaluated after
 * its load statement, in the same (sub)transaction, each query as the
 * pipeline owner (QueryAsOwner, through EnterOwnerContext): a failing
 * error-severity check fails the run with 23514, so its load rolls back
 * with it. Then what every check came to is recorded (FinishChecks), and
 * the run learns whether a blocking check failed, which keeps its
 * downstream pipelines waiting for pipeline.acknowledge.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/builtins.h"

#include "pipeline/engine.h"
#include "run_internal.h"

/* FailSetCheck raises the error of a failed error-severity set check */
static void
FailSetCheck(PipelineDef *def, CheckDef *check, int64 failed)
{
	NoteFailedCheck(check, check->kind == CHECK_ROW_COUNT ? 1 : failed);
	ereport(ERROR,
			(errcode(ERRCODE_CHECK_VIOLATION),
			 errmsg("check \"%s\" of pipeline \"%s\" failed", check->name, def->name),
			 check->kind == CHECK_ROW_COUNT
			 ? errdetail("Check \"%s\" (row_count, severity error): the run read %lld rows, outside %s; the run loads nothing.",
						 check->name, (long long) failed,
						 JsonbToCString(NULL, &check->args->root, VARSIZE(check->args)))
			 : errdetail("Check \"%s\" (%s, severity error) found %lld failing rows; the run loads nothing.",
						 check->name, CheckKindName(check->kind), (long long) failed),
			 errhint("Fix the data, or give the check another severity: SELECT pipeline.drop_check(%s, %s); then pipeline.add_check(..., severity => 'warn').",
					 quote_literal_cstr(def->name), quote_literal_cstr(check->name))));
}

/*
 * RunSetChecks evaluates the set-level checks after one load step that read
 * rows_read rows, adding their failures: for unique, the rows of the target
 * in groups that share the columns (the target holds the window's rows now,
 * so a duplicate within the window or against the target counts); for
 * row_count, 1 when the rows read are out of bounds; for query, the rows
 * the query returns.
 */
void
RunSetChecks(LoadPlan *plan, int64 rows_read)
{
	ListCell   *lc;

	foreach(lc, plan->set_checks)
	{
		CheckDef   *c = lfirst(lc);
		int64		failed;

		if (c->kind == CHECK_ROW_COUNT)
		{
			int64		min = RowCountBound(plan->def, c, "min");
			int64		max = RowCountBound(plan->def, c, "max");

			failed = ((min >= 0 && rows_read < min) || (max >= 0 && rows_read > max)) ? 1 : 0;
			if (failed && c->severity == SEVERITY_ERROR)
				FailSetCheck(plan->def, c, rows_read);
		}
		else
		{
			bool		isnull;

			failed = DatumGetInt64(QueryAsOwner(plan->def, SetCheckQuery(plan, c), 0, NULL, NULL,
												&isnull));
			if (failed > 0 && c->severity == SEVERITY_ERROR)
				FailSetCheck(plan->def, c, failed);
		}
		c->failed_rows += failed;
	}
}

/*
 * FinishChecks records what each check of the plan came to in a run (or a
 * batch of it), warns about the warn and block checks that failed, and
 * returns whether the pipeline is blocked: a blocking check failed in this
 * run or in an earlier one that nobody acknowledged.
 */
bool
FinishChecks(LoadPlan *plan, int64 run_id)
{
	List	   *all = list_concat_copy(plan->row_checks, plan->set_checks);
	ListCell   *lc;

	if (all != NIL)
		RecordCheckResults(run_id, plan->def, all);
	foreach(lc, all)
	{
		CheckDef   *c = lfirst(lc);

		if (c->failed_rows > 0 && (c->severity == SEVERITY_WARN || c->severity == SEVERITY_BLOCK))
			ereport(WARNING,
					(errcode(ERRCODE_CHECK_VIOLATION),
					 errmsg("check \"%s\" of pipeline \"%s\" failed for %lld rows", c->name,
							plan->def->name, (long long) c->failed_rows),
					 c->severity == SEVERITY_BLOCK
					 ? errdetail("The rows were loaded; the check's severity is block, so the pipelines downstream wait.")
					 : errdetail("The rows were loaded; the check's severity is warn."),
					 c->severity == SEVERITY_BLOCK
					 ? errhint("Look at the data, then SELECT pipeline.acknowledge(%s, %lld);",
							   quote_literal_cstr(plan->def->name), (long long) run_id)
					 : 0));
	}
	return PipelineBlocked(plan->def->id);
}
