/*-------------------------------------------------------------------------
 *
 * src/include/pipeline/common.h
 *
 * Layer 0, the shared helpers every other layer uses (src/common/): the
 * declaration macro of SQL-callable functions, the extension's constants,
 * the switches of identity (into a pipeline's owner, for owner code; into
 * the extension owner, for catalog writes) with the pinned search_path,
 * watermark values, cron expressions, background worker set-up and
 * transactions, the launcher's shared memory and wake-up, what a
 * statement could see (read snapshots, asked later about a row's xmin),
 * and small SPI/JSON/hash helpers. Nothing here knows what a pipeline is.
 *
 * The layers, lowest first, each including only its own header and lower
 * ones (scripts/check-layers.sh fails the test command otherwise):
 * common, catalog, recorders, policy, engine, workers, api.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_COMMON_H
#define PIPELINE_COMMON_H

#include "postgres.h"

#include "access/transam.h"
#include "datatype/timestamp.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "storage/latch.h"
#include "storage/spin.h"

/*
 * PIPELINE_FUNCTION declares a SQL-callable function. The library is built
 * with hidden symbol visibility; PostgreSQL 15's PG_FUNCTION_INFO_V1 exports
 * only the info record, so the function itself is declared exported first.
 */
#define PIPELINE_FUNCTION(fn) \
	extern PGDLLEXPORT Datum fn(PG_FUNCTION_ARGS); \
	PG_FUNCTION_INFO_V1(fn)

#define PIPELINE_SCHEMA			"pipeline"
#define PIPELINE_EXTENSION		"pg_pipeline"
#define PIPELINE_NAME_MAXLEN	63

/* locktag_field4 of the advisory lock that serialises runs of one pipeline */
#define PIPELINE_RUN_LOCK_CLASS	0x5050
/* locktag_field4 of the advisory lock that serialises audit chain writers */
#define PIPELINE_AUDIT_LOCK_CLASS	0x5051

/* how a run whose process went away is recorded (SQLSTATE 57P02) */
#define PIPELINE_INTERRUPTED_MESSAGE \
	"run interrupted: the process running it ended (crash, kill or server restart)"

/* common/security.c: identities and the pinned search_path */

/* A saved user id and security context, for switching in and out of roles */
typedef struct RoleSwitch
{
	Oid			saved_userid;
	int			saved_sec_context;
} RoleSwitch;

/* A switch into a pipeline owner's identity, restricted, search_path pinned */
typedef struct OwnerContext
{
	Oid			saved_userid;
	int			saved_sec_context;
	int			guc_level;
} OwnerContext;

extern Oid	ExtensionOwner(void);
extern void EnterOwnerContext(OwnerContext *ctx, Oid owner);
extern void LeaveOwnerContext(OwnerContext *ctx);
extern void BecomeCatalogOwner(RoleSwitch *sw);
extern void RestoreRole(RoleSwitch *sw);
extern int	PinSearchPath(void);
extern void UnpinSearchPath(int nestlevel);

/* common/watermark.c: incremental values and their canonical text */
extern Datum WatermarkFromText(const char *text, Oid typid, int32 typmod, Oid owner);
extern bool WatermarkIsFinite(Datum value, Oid typid);
extern bool WatermarkIsPlusInfinity(Datum value, Oid typid);
extern bool WatermarkIsExtreme(Datum value, Oid typid);
extern char *WatermarkToText(Datum value, Oid typid);
extern int	CompareWatermarks(Datum a, Datum b, Oid typid, Oid collid);
extern bool IsTimeType(Oid typid);
extern bool IsIncrementalType(Oid typid);

/* common/cron_expr.c: a parsed cron schedule, the values each field allows */
typedef struct CronSchedule
{
	bool		minutes[60];
	bool		hours[24];
	bool		days[32];
	bool		months[13];
	bool		weekdays[8];
	bool		any_day;
	bool		any_weekday;
} CronSchedule;

extern void ParseCronSchedule(const char *schedule, CronSchedule *cs);
extern TimestampTz NextCronTime(const CronSchedule *cs, TimestampTz after);

/* common/bgworker.c: what every pg_pipeline background worker shares */
struct BackgroundWorker;
extern void InitPipelineWorker(struct BackgroundWorker *worker, const char *function,
							   const char *type, const char *name);
extern void BeginWorkerTransaction(const char *activity);
extern void CommitWorkerTransaction(void);

/* common/launcher_shmem.c: the launchers' shared state and their wake-up */
#define MAX_LAUNCHERS 32

typedef struct LauncherSlot
{
	Oid			database_id;
	pid_t		pid;
	Latch	   *latch;
	TimestampTz started_at;
	int64		passes;
	double		last_pass_ms;
	double		total_pass_ms;
	double		max_pass_ms;
	int64		workers_started;
	pid_t		sender_pid;		/* its OpenLineage sender, 0: none */
	Latch	   *sender_latch;
} LauncherSlot;

typedef struct PipelineShared
{
	slock_t		mutex;
	LauncherSlot launchers[MAX_LAUNCHERS];
} PipelineShared;

extern PipelineShared *pipeline_shared;
extern int	pipeline_max_workers;
extern char *pipeline_databases;
extern void LauncherShmemInit(void);
extern void WakeLauncherAtCommit(void);
extern void WakeLauncher(void);
extern void WakeSenderAtCommit(void);
extern bool LauncherConfiguredFor(Oid database_id);

/* common/http_post.c: one HTTP POST of a JSON document (libcurl) */
extern bool HttpPostJson(const char *url, const char *body, const char *bearer, int timeout_ms,
						 long *status, char **error);
extern bool HttpUrlValid(const char *url);

/* common/pii_detect.c: what kind of personal data a value looks like */
extern const char *PiiClassOf(const char *value);

/* common/read_snapshot.c: what a statement could see, asked later */
typedef struct ReadSnapshot
{
	uint64		xmin;			/* ids before it had ended */
	uint64		xmax;			/* ids from it on had not started */
	int			nxip;
	uint64	   *xip;			/* in progress between them, ascending */
} ReadSnapshot;

extern char *CaptureReadSnapshot(void);
extern ReadSnapshot *ParseReadSnapshot(const char *text);
extern bool XidWasVisible(TransactionId xmin, const ReadSnapshot *snap,
						  FullTransactionId *next);

/*
 * common/subxact.c: work that may fail without failing its caller; what may
 * serve only the statement of the (sub)transaction that armed it
 */
extern int	TryInSubtransaction(void (*fn) (void *arg), void *arg);
extern int	TryInSubtransactionMessage(void (*fn) (void *arg), void *arg, char **message);
extern int	TryInSubtransactionIf(void (*fn) (void *arg), void *arg, bool (*caught) (int sqlerrcode),
								  char **message);

typedef struct StatementArm
{
	bool		armed;
	LocalTransactionId lxid;	/* armed in this transaction ... */
	SubTransactionId subxid;	/* ... and subtransaction only */
} StatementArm;

extern void ArmForStatement(StatementArm *arm);
extern bool ArmedForStatement(const StatementArm *arm);

/* common/util.c: SQL arguments, SPI, JSON and hash helpers */
extern void RequireArg(FunctionCallInfo fcinfo, int argno, const char *argname);
extern char *PipelineNameArg(FunctionCallInfo fcinfo, int argno);
extern Datum TextOrNull(const char *s, char *null);
extern void AppendJsonMember(StringInfo buf, const char *key, const char *value, bool comma);
extern bytea *RandomSecret(int len);
extern void Sha256(const char *data, size_t len, uint8 *digest);
extern void HmacSha256(const uint8 *key, size_t keylen, const char *data, size_t len,
					   uint8 *digest);
extern char *HexString(const uint8 *bytes, int len);
extern char *Sha256Hex(const char *data, size_t len);
extern void PushSnapshotSeeingOwnWrites(void);

#endif							/* PIPELINE_COMMON_H */
