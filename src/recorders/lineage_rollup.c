/*-------------------------------------------------------------------------
 *
 * src/recorders/lineage_rollup.c
 *
 * The column lineage of a pipeline in mode rollup: its target's columns
 * are not its source's by name but the cells of a GROUP BY, so each is
 * traced through the query a full recompute runs (RollupCellsQuery), with
 * the walker that traces a view's columns (lineage_analysis.c): the
 * bucket derives from the time column (transformed by date_bin), each
 * group_by column is copied, and each measure derives from the columns
 * its aggregate reads ("revenue" from "amount", aggregate; count(*) from
 * "*", the rows). The query is parsed and analysed, never run. When it no
 * longer analyses (a column gone), the rollup keeps its table edge and no
 * column edges; its next run fails and says why.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "parser/analyze.h"
#include "parser/parser.h"
#include "utils/lsyscache.h"

#include "lineage_internal.h"

typedef struct RollupLineage
{
	PipelineDef *def;
	Oid			source;
	Oid			target;
	EdgeSet    *es;
} RollupLineage;

/* TargetColumnNames lists the target's columns in the query's order */
static List *
TargetColumnNames(RollupSpec *spec)
{
	List	   *names = list_make1(ROLLUP_BUCKET_COLUMN);
	ListCell   *lc;

	names = list_concat_copy(names, spec->group_by);
	foreach(lc, spec->measures)
		names = lappend(names, ((RollupMeasure *) lfirst(lc))->name);
	return names;
}

/* TraceRollup analyses the rollup's query and adds the edge of each target column */
static void
TraceRollup(void *arg)
{
	RollupLineage *rl = arg;
	RollupSpec *spec = ParseRollupSpec(rl->def->rollup);
	Oid			time_typid = get_atttype(rl->source, get_attnum(rl->source, spec->time_column));
	char	   *sql = RollupCellsQuery(spec, RelationNameOf(rl->source), time_typid, "", "");
	List	   *raw = raw_parser(sql, RAW_PARSE_DEFAULT);
	Query	   *query = parse_analyze_fixedparams(linitial(raw), sql, NULL, 0, NULL);
	ListCell   *lc;
	AttrNumber	resno = 1;

	foreach(lc, TargetColumnNames(spec))
	{
		List	   *sources = NIL;

		ResolveQueryColumn(query, resno++, NIL, false, NULL, &sources, 0);
		AddColumnSourceEdges(rl->es, "pipeline", sources, rl->target, lfirst(lc));
	}
}

/*
 * AddRollupColumnEdges adds the column edges of a rollup from its source to
 * its target; none when its query does not analyse now.
 */
void
AddRollupColumnEdges(EdgeSet *es, PipelineDef *def, Oid source, Oid target)
{
	RollupLineage rl = {def, source, target, es};
	EdgeSet		saved = *es;

	if (TryInSubtransaction(TraceRollup, &rl) != 0)
		*es = saved;
}
