/*-------------------------------------------------------------------------
 *
 * src/include/pipeline/recorders/quality.h
 *
 * Layer 2, the recorders: what the data checks of a run came to
 * (pipeline.check_result), the rows they sent to quarantine
 * (pipeline.quarantine_row) and what became of them (replayed,
 * discarded), written as the extension owner in the run's transaction
 * (src/recorders/check_results.c); the anomaly alert of a successful run
 * unlike its pipeline's recent runs (src/recorders/anomaly.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_RECORDERS_QUALITY_H
#define PIPELINE_RECORDERS_QUALITY_H

#include "pipeline/recorders/runs.h"

#include "utils/array.h"

/* recorders/check_results.c */
extern void WriteQuarantineRow(PipelineDef *def, int64 run_id, Datum failed, Datum row,
							   Datum key, const char *incremental_value, const char *reason);
extern void WriteLateRow(PipelineDef *def, int64 run_id, Datum row, Datum cell,
						 const char *at, const char *reason);
extern bool PipelineHasOpenLateRows(int64 pipeline_id);
extern int64 ResolveLateRows(PipelineDef *def, List *cells);
extern void KeepQuarantineRowOpen(int64 quarantine_id, Datum failed, const char *reason);
extern void WriteFailedCheckResult(int64 run_id, int64 pipeline_id, const char *failed_check);
extern void RecordCheckResults(int64 run_id, PipelineDef *def, List *checks);
extern bool PipelineBlocked(int64 pipeline_id);
extern int64 AcknowledgeRun(PipelineDef *def, int64 run_id);
extern void LockOpenQuarantine(PipelineDef *def, ArrayType *ids, Datum *ids_out, Datum *rows_out,
							   int64 *count);
extern int64 ResolveQuarantine(PipelineDef *def, ArrayType *ids, const char *status);

/* recorders/anomaly.c: called by RecordRunOutcome for a successful run */
extern void RaiseAnomalyAlert(RunRecord *run);

#endif							/* PIPELINE_RECORDERS_QUALITY_H */
