/*-------------------------------------------------------------------------
 *
 * src/engine/retention_internal.h
 *
 * Private to src/engine/: the proof of raw retention (retention_proof.c),
 * armed by the purge (retention.c) around its DELETE statement.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_ENGINE_RETENTION_INTERNAL_H
#define PIPELINE_ENGINE_RETENTION_INTERNAL_H

#include "pipeline/engine.h"

/* One read window of a reader, its bounds as values of the column's base type */
typedef struct ProofWindow
{
	bool		has_lower;
	Datum		lower;			/* exclusive */
	Datum		upper;			/* inclusive */
	ReadSnapshot *snapshot;
} ProofWindow;

/*
 * What one pipeline reading the source has read: its windows ordered by
 * lower bound (none first), and for each the greatest upper bound up to it,
 * so that the windows holding a value are found by a binary search and a
 * short walk back.
 */
typedef struct ProofReader
{
	Oid			typid;			/* base type of its incremental column */
	int			nwindows;
	ProofWindow *windows;
	Datum	   *reach;
} ProofReader;

extern ProofReader *BuildProofReader(List *windows, Oid typid);
extern Datum ProofGreatestUpper(ProofReader *reader);
extern void ArmRawProof(ProofReader **readers, int nreaders);
extern void DisarmRawProof(void);

#endif							/* PIPELINE_ENGINE_RETENTION_INTERNAL_H */
