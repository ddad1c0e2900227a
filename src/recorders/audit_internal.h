/*-------------------------------------------------------------------------
 *
 * src/recorders/audit_internal.h
 *
 * What the files of the audit log (src/recorders/audit_*.c) share and
 * nobody else uses: the fields of an entry, the chain's writers and readers
 * (audit_chain.c), the session the run entries name (audit_entries.c), the
 * walk along the chain (audit_verify.c), the prune flag (audit_retention.c)
 * and the admin check (audit_refusals.c). Included by src/recorders/audit_*.c,
 * by the recorders' out-of-transaction writer (autonomous.c), which appends
 * refusals' entries and names the caller's session in a failed run's, and
 * by the writer of a run's records (run_outcome.c), for ExecKeptPlan.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_RECORDERS_AUDIT_INTERNAL_H
#define PIPELINE_RECORDERS_AUDIT_INTERNAL_H

#include "common/sha2.h"
#include "executor/spi.h"
#include "storage/lock.h"

#include "pipeline/recorders/audit.h"

/* The text fields of an entry, in hash order */
enum
{
	AF_SESSION_ID,
	AF_ROLE_NAME,
	AF_SESSION_ROLE,
	AF_ACTION,
	AF_OBJECT_TYPE,
	AF_OBJECT_NAME,
	AF_OUTCOME,
	AF_BEFORE,					/* JSON */
	AF_AFTER,					/* JSON */
	AF_DETAILS,					/* JSON */
	AF_NFIELDS
};

/* One audit entry before it is appended */
typedef struct AuditEntry
{
	const char *f[AF_NFIELDS];	/* NULL for SQL NULL */
	int64		pipeline_id;	/* 0: none */
	int64		run_id;			/* 0: none */
} AuditEntry;

/*
 * A walk along the chain from an anchor (or from the start): what is
 * expected next, what was checked, and the first problem found. Messages
 * are allocated in mcxt, which outlives SPI.
 */
typedef struct ChainWalk
{
	MemoryContext mcxt;
	uint8		prev[PG_SHA256_DIGEST_LENGTH];
	int64		expected;
	int64		checked;
	int64		anchor_seq;		/* 0: no anchor */
	char	   *anchor_hex;
	bool		anchor_confirmed;
	int64		seq;			/* of the last good entry */
	TimestampTz logged_at;		/* of the last good entry */
	int64		bad_seq;
	const char *problem;		/* NULL: no problem so far */
	char	   *detail;
} ChainWalk;

/* audit_chain.c: the chain, its lock, its head, appending and the queue */
extern void EntryHash(const uint8 *prev, int64 seq, TimestampTz logged_at, int64 pipeline_id,
					  int64 run_id, const char *const *fields, uint8 *out);
extern Datum ByteaDatum(const uint8 *bytes, int len);
extern char *IsoTime(TimestampTz t);
extern void SetAuditLockTag(LOCKTAG *tag);
extern Oid	AuditLogRelid(void);
extern Oid	AuditAnchorRelid(void);
extern int64 ReadAuditHead(uint8 *hash);
extern void FillSessionFields(AuditEntry *e);
extern void AppendAuditEntries(AuditEntry *entries, int n);
extern void QueueAuditEntries(AuditEntry *entries, int n);

/* audit_entries.c: the session a failed run's entries name, in the recorder */
extern void AuditActFor(const char *session_id, const char *role_name,
						const char *session_role);

/* autonomous.c: entries that outlive the caller's rollback */
extern bool RecorderWouldWaitForUs(void);
extern bool WriteAuditAutonomously(AuditEntry *entries, int n);

/* audit_refusals.c: who may maintain the log, the launcher's flush */
extern void CheckAuditAdmin(const char *function);
extern int	FlushSharedRefusals(bool force);

/* audit_retention.c: the retention GUC and the prune's permission to delete */
extern bool audit_prune_active;
extern void AuditRetentionInit(void);

/* audit_verify.c: the walk along the chain, shared with the prune */
extern int64 ReadLatestAnchor(uint8 *hash, bool read_only);
extern void StartWalk(ChainWalk *w, int64 anchor_seq, const uint8 *anchor_hash);
extern bool WalkEntry(ChainWalk *w, HeapTuple tup, TupleDesc desc);
extern Portal OpenChainCursor(int64 after_seq, bool read_only);
extern uint64 FetchChain(Portal portal, int rows);

#endif							/* PIPELINE_RECORDERS_AUDIT_INTERNAL_H */
