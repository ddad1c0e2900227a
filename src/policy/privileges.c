/*-------------------------------------------------------------------------
 *
 * src/policy/privileges.c
 *
 * The refusal of an action on a pipeline to a role that may not do it (who
 * may is actions.c's table: the owner, its members, superusers, and the
 * team roles for their actions), and which privileges the owner needs on
 * the source and the target, checked at registration and at every run.
 * Refusals are audited (coalesced, recorders/audit_refusals.c) and raised
 * with 42501.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "pipeline/policy.h"

/*
 * CheckPipelineOwner refuses an action on a pipeline to a role that may not
 * do it (RoleMayAct), so that the table of actions.c is the only rule.
 */
void
CheckPipelineOwner(PipelineDef *def, const char *action)
{
	if (RoleMayAct(GetUserId(), def->owner, action))
		return;
	AuditRefusal(action, "pipeline", def->name, def->id,
				 psprintf("permission denied to %s pipeline \"%s\"", action, def->name));
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied to %s pipeline \"%s\"", action, def->name),
			 errdetail("Pipeline \"%s\" is owned by role \"%s\"; role \"%s\" is not a member of it.",
					   def->name, GetUserNameFromId(def->owner, true) ? GetUserNameFromId(def->owner, true) : "(dropped role)",
					   GetUserNameFromId(GetUserId(), false)),
			 errhint("Run it as the owner, or GRANT the owner role or %s to this role.",
					 TeamRoleFor(action))));
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
		{ACL_UPDATE, "UPDATE"}, {ACL_DELETE, "DELETE"}, {ACL_TRIGGER, "TRIGGER"},
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
	static const AclMode bits[] = {ACL_SELECT, ACL_INSERT, ACL_UPDATE, ACL_DELETE, ACL_TRIGGER};

	for (int i = 0; i < lengthof(bits); i++)
	{
		if (!(mode & bits[i]))
			continue;
		if (pg_class_aclcheck(relid, role, bits[i]) == ACLCHECK_OK)
			continue;
		if (bits[i] != ACL_DELETE && bits[i] != ACL_TRIGGER &&
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
 * source, and DELETE there when it purges raw rows (raw_retention), TRIGGER
 * for a rollup (its triggers record the cells each change touches); SELECT
 * and INSERT on the target, UPDATE unless it only appends, DELETE when it
 * deletes (a snapshot pipeline's MERGE removes a version a late one makes
 * redundant; a rollup deletes the cells that empty).
 */
void
CheckPipelinePrivileges(PipelineDef *def, Oid source_relid, Oid target_relid, Oid role)
{
	AclMode		source_mode = ACL_SELECT;
	AclMode		target_mode = ACL_SELECT | ACL_INSERT;

	if (def->raw_retention)
		source_mode |= ACL_DELETE;
	if (def->mode != LOAD_MODE_APPEND)
		target_mode |= ACL_UPDATE;
	if (def->mode == LOAD_MODE_FULL || def->mode == LOAD_MODE_SNAPSHOT ||
		def->mode == LOAD_MODE_ROLLUP ||
		(def->delete_column && !def->soft_delete))
		target_mode |= ACL_DELETE;
	if (def->mode == LOAD_MODE_ROLLUP)
		source_mode |= ACL_TRIGGER;
	CheckRelationAccess(source_relid, role, source_mode, "source");
	CheckRelationAccess(target_relid, role, target_mode, "target");
}

/*
 * CheckCapturePrivilege refuses to capture, stop capturing or purge a table
 * (action names the function, verb says it in the message) to a role that
 * may not: the table's owner, its members, superusers and pipeline_admin
 * may (the "capture" action of actions.c, with the table's owner as the
 * owner). The refusal is audited.
 */
void
CheckCapturePrivilege(Oid relid, const char *action, const char *verb)
{
	Oid			owner;
	char	   *name;

	if (get_rel_relkind(relid) == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	owner = RelationOwnerOf(relid);
	if (RoleMayAct(GetUserId(), owner, "capture"))
		return;
	name = RelationNameOf(relid);
	AuditRefusal(action, "table", name, 0, psprintf("permission denied to %s table %s", verb, name));
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied to %s table %s", verb, name),
			 errdetail("Table %s is owned by role \"%s\"; role \"%s\" is not a member of it.",
					   name, GetUserNameFromId(owner, false), GetUserNameFromId(GetUserId(), false)),
			 errhint("Run it as the table's owner, or GRANT the owner role or %s to this role.",
					 TeamRoleFor("capture"))));
}
