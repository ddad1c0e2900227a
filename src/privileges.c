/*-------------------------------------------------------------------------
 *
 * src/privileges.c
 *
 * The security model of pg_pipeline: who may act on a pipeline (its owner,
 * a member of the owner, or a superuser), which privileges the owner needs
 * on the source and target, the switch into the owner's identity for a
 * run's data work (as a security-restricted operation, the way core runs
 * maintenance commands on a user's table), the switch into the extension
 * owner for catalog writes, and the pinned search_path.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "catalog/namespace.h"
#include "jit/jit.h"
#include "utils/lsyscache.h"

#include "pg_pipeline.h"

#define PINNED_SEARCH_PATH "pg_catalog, pg_temp"

/* ExtensionOwner returns the role that owns the extension and its catalog */
Oid
ExtensionOwner(void)
{
	Oid			extoid = get_extension_oid(PIPELINE_EXTENSION, false);
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;
	Oid			owner;

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
	return owner;
}

/*
 * CheckPipelineOwner refuses an action on a pipeline to anyone who does not
 * have the privileges of its owner (superusers do).
 */
void
CheckPipelineOwner(PipelineDef *def, const char *action)
{
	if (has_privs_of_role(GetUserId(), def->owner))
		return;
	AuditRefusal(action, "pipeline", def->name, def->id,
				 psprintf("permission denied to %s pipeline \"%s\"", action, def->name));
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied to %s pipeline \"%s\"", action, def->name),
			 errdetail("Pipeline \"%s\" is owned by role \"%s\"; role \"%s\" is not a member of it.",
					   def->name, GetUserNameFromId(def->owner, true) ? GetUserNameFromId(def->owner, true) : "(dropped role)",
					   GetUserNameFromId(GetUserId(), false)),
			 errhint("Run it as the owner, or GRANT the owner role to this role.")));
}

/* PrivilegeNames spells an ACL mask the way GRANT does */
static char *
PrivilegeNames(AclMode mode)
{
	StringInfoData buf;
	static const struct
	{
		AclMode		bit;
		const char *name;
	}			names[] = {
		{ACL_SELECT, "SELECT"}, {ACL_INSERT, "INSERT"},
		{ACL_UPDATE, "UPDATE"}, {ACL_DELETE, "DELETE"},
	};

	initStringInfo(&buf);
	for (int i = 0; i < lengthof(names); i++)
	{
		if (mode & names[i].bit)
			appendStringInfo(&buf, "%s%s", buf.len ? ", " : "", names[i].name);
	}
	return buf.data;
}

/*
 * CheckRelationAccess raises 42501 unless role holds every privilege in mode
 * on the relation, at table level or on all its columns.
 */
void
CheckRelationAccess(Oid relid, Oid role, AclMode mode, const char *what)
{
	AclMode		missing = 0;
	static const AclMode bits[] = {ACL_SELECT, ACL_INSERT, ACL_UPDATE, ACL_DELETE};

	for (int i = 0; i < lengthof(bits); i++)
	{
		if (!(mode & bits[i]))
			continue;
		if (pg_class_aclcheck(relid, role, bits[i]) == ACLCHECK_OK)
			continue;
		if (bits[i] != ACL_DELETE &&
			pg_attribute_aclcheck_all(relid, role, bits[i], ACLMASK_ALL) == ACLCHECK_OK)
			continue;
		missing |= bits[i];
	}
	if (missing == 0)
		return;
	AuditRefusal("access", what,
				 quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)), get_rel_name(relid)),
				 0, psprintf("role \"%s\" lacks %s privilege on %s", GetUserNameFromId(role, false),
							 PrivilegeNames(missing), what));
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("role \"%s\" lacks %s privilege on %s %s",
					GetUserNameFromId(role, false), PrivilegeNames(missing), what,
					quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
											   get_rel_name(relid))),
			 errdetail("A pipeline reads its source and writes its target with its owner's privileges."),
			 errhint("GRANT %s ON %s TO %s.", PrivilegeNames(missing),
					 quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
												get_rel_name(relid)),
					 quote_identifier(GetUserNameFromId(role, false)))));
}

/*
 * CheckPipelinePrivileges checks what a pipeline's mode needs: SELECT on the
 * source; SELECT and INSERT on the target, UPDATE unless it only appends,
 * DELETE when it deletes.
 */
void
CheckPipelinePrivileges(PipelineDef *def, Oid source_relid, Oid target_relid, Oid role)
{
	AclMode		target_mode = ACL_SELECT | ACL_INSERT;

	if (def->mode != LOAD_MODE_APPEND)
		target_mode |= ACL_UPDATE;
	if (def->mode == LOAD_MODE_FULL || (def->delete_column && !def->soft_delete))
		target_mode |= ACL_DELETE;
	CheckRelationAccess(source_relid, role, ACL_SELECT, "source");
	CheckRelationAccess(target_relid, role, target_mode, "target");
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
