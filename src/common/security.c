/*-------------------------------------------------------------------------
 *
 * src/common/security.c
 *
 * The identities pg_pipeline switches into, and the pinned search_path:
 * EnterOwnerContext, the one way into code a pipeline's owner controls (as
 * the owner, in a security-restricted operation, search_path pinned);
 * BecomeCatalogOwner, for the fixed catalog statements that write tables
 * ordinary roles cannot; and PinSearchPath, which every entry point uses so
 * that nothing it runs depends on the caller's path.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "jit/jit.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"

#include "pipeline/common.h"

#define PINNED_SEARCH_PATH "pg_catalog, pg_temp"

/*
 * ExtensionOwner returns the role that owns the extension and its catalog.
 * It is read once per transaction: every catalog statement asks (a run
 * makes about ten), and pg_extension has no syscache; an extension's owner
 * changes only by REASSIGN OWNED, whose transaction sees it from its next
 * one on.
 */
Oid
ExtensionOwner(void)
{
	static LocalTransactionId cached_lxid = InvalidLocalTransactionId;
	static Oid	cached_owner = InvalidOid;
	Oid			extoid;
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;
	Oid			owner;

	if (cached_lxid != InvalidLocalTransactionId && cached_lxid == MyProc->lxid)
		return cached_owner;
	extoid = get_extension_oid(PIPELINE_EXTENSION, false);
	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(extoid));
	scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "extension %s not found", PIPELINE_EXTENSION);
	owner = ((Form_pg_extension) GETSTRUCT(tuple))->extowner;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	cached_owner = owner;
	cached_lxid = MyProc->lxid;
	return owner;
}

/*
 * EnterOwnerContext is the one way into code a pipeline's owner controls:
 * the source's views and the functions they call, domain CHECKs and type
 * input functions of its columns, defaults, triggers, rules and index
 * expressions of the target, and the operators and casts a load resolves.
 * It switches to the owner as a security-restricted operation (so such code
 * cannot change the session: no SET ROLE, no temporary objects, no
 * LISTEN...) and pins search_path in a GUC nest level of its own, whoever
 * the caller is: a superuser, another role, a background worker. Every
 * evaluation of owner code goes through it, so that a new path cannot run
 * that code with the caller's rights. LeaveOwnerContext undoes it; on an
 * error, the (sub)transaction abort restores both the identity and the GUCs.
 */
void
EnterOwnerContext(OwnerContext *ctx, Oid owner)
{
	if (!OidIsValid(owner))
		elog(ERROR, "pipeline owner is not valid");
	GetUserIdAndSecContext(&ctx->saved_userid, &ctx->saved_sec_context);
	ctx->guc_level = PinSearchPath();
	SetUserIdAndSecContext(owner, ctx->saved_sec_context |
						   SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
}

/* LeaveOwnerContext returns to the identity and settings before the switch */
void
LeaveOwnerContext(OwnerContext *ctx)
{
	SetUserIdAndSecContext(ctx->saved_userid, ctx->saved_sec_context);
	UnpinSearchPath(ctx->guc_level);
}

/*
 * BecomeCatalogOwner switches to the extension owner so that fixed,
 * parameterised catalog statements can write tables that ordinary roles
 * cannot touch directly.
 */
void
BecomeCatalogOwner(RoleSwitch *sw)
{
	GetUserIdAndSecContext(&sw->saved_userid, &sw->saved_sec_context);
	SetUserIdAndSecContext(ExtensionOwner(), sw->saved_sec_context |
						   SECURITY_LOCAL_USERID_CHANGE);
}

void
RestoreRole(RoleSwitch *sw)
{
	SetUserIdAndSecContext(sw->saved_userid, sw->saved_sec_context);
}

/*
 * PinSearchPath sets search_path to pg_catalog, pg_temp (and turns JIT off:
 * the catalog statements and probes a call runs are short) for the rest of
 * the call, in its own GUC nest level so that UnpinSearchPath (or an error)
 * restores the caller's values. Every statement pg_pipeline generates is
 * schema-qualified, so nothing it runs depends on the caller's path. When
 * both are already in place (an outer call pinned them) nothing is set.
 */
int
PinSearchPath(void)
{
	int			nestlevel = NewGUCNestLevel();

	if (namespace_search_path == NULL || strcmp(namespace_search_path, PINNED_SEARCH_PATH) != 0)
		(void) set_config_option("search_path", PINNED_SEARCH_PATH,
								 PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	if (jit_enabled)
		(void) set_config_option("jit", "off", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	return nestlevel;
}

void
UnpinSearchPath(int nestlevel)
{
	AtEOXact_GUC(true, nestlevel);
}
