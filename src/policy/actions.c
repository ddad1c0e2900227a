/*-------------------------------------------------------------------------
 *
 * src/policy/actions.c
 *
 * Who may do which action on a pipeline: the one table of it. The owner of
 * a pipeline, the roles that have its privileges (members with INHERIT)
 * and superusers may do everything. The three team roles the extension
 * creates (sql/pg_pipeline--0.1.0--0.2.0.sql, "Roles for teams") may do,
 * on every pipeline whoever owns it, what PipelineActions grants them:
 * pipeline_viewer reads, pipeline_operator reads and operates (run,
 * trigger, cancel, pause, resume), pipeline_admin does everything. A role
 * has a team role's grants when it has that role's privileges
 * (has_privs_of_role, pg_has_role(..., 'USAGE')). Nobody else may do
 * anything. CheckPipelineOwner (privileges.c) asks here before each
 * action; the catalog views ask through pipeline._may(action, owner), so
 * that what a role sees and what it may do follow the same table. An
 * action still executes as the pipeline's owner (EnterOwnerContext): a
 * team role gains no privilege on the data.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"

#include "pipeline/policy.h"

PIPELINE_FUNCTION(pipeline_may);

#define TEAM_VIEWER		(1 << 0)
#define TEAM_OPERATOR	(1 << 1)
#define TEAM_ADMIN		(1 << 2)
#define TEAM_READ		(TEAM_VIEWER | TEAM_OPERATOR | TEAM_ADMIN)
#define TEAM_OPERATE	(TEAM_OPERATOR | TEAM_ADMIN)

/* the team roles, least powerful first (the hint names the first that may) */
static const struct
{
	const char *name;
	int			bit;
}			TeamRoles[] = {
	{"pipeline_viewer", TEAM_VIEWER},
	{"pipeline_operator", TEAM_OPERATOR},
	{"pipeline_admin", TEAM_ADMIN},
};

/*
 * PipelineActions: each action a function checks (its verb, as the refusal
 * says it) and the team roles that may do it on anyone's pipeline.
 * docs/security.md shows this table; test/pgtap/15_roles.sql tries every
 * cell of it.
 */
static const struct
{
	const char *action;
	int			granted;
}			PipelineActions[] = {
	{"read", TEAM_READ},		/* the catalog views, config_of */
	{"explain", TEAM_READ},
	{"run", TEAM_OPERATE},		/* run, run_batched */
	{"trigger", TEAM_OPERATE},
	{"cancel", TEAM_OPERATE},
	{"pause", TEAM_OPERATE},
	{"resume", TEAM_OPERATE},
	{"reset", TEAM_ADMIN},
	{"alter", TEAM_ADMIN},		/* alter_pipeline, add_check, drop_check,
								 * set_lineage_column, apply */
	{"drop", TEAM_ADMIN},
	{"schedule", TEAM_ADMIN},
	{"unschedule", TEAM_ADMIN},
	{"refresh the lineage of", TEAM_ADMIN},
	{"replay", TEAM_ADMIN},
	{"backfill", TEAM_ADMIN},	/* backfill, backfill_plan: rewrites rows runs
								 * loaded long ago, over any range */
	{"discard", TEAM_ADMIN},
	{"acknowledge", TEAM_ADMIN},
	{"forget", TEAM_ADMIN},		/* pipeline.forget: rows of every owner's
								 * relations; asked with the extension's
								 * owner as owner */
	{"capture", TEAM_ADMIN},	/* capture, uncapture, purge_capture: the
								 * owner is the table's (privileges.c) */
	{"classify", TEAM_ADMIN},	/* classify, unclassify, declare_subject,
								 * undeclare_subject: the owner is the
								 * relation's (api/privacy.c) */
	{"manage keys", TEAM_ADMIN},	/* create_key, rotate_key: keys have no
									 * owner, so only the roles that may on
									 * every pipeline */
};

/* ActionGrants returns the team roles that may do action (can't-happen if unknown) */
static int
ActionGrants(const char *action)
{
	for (int i = 0; i < lengthof(PipelineActions); i++)
	{
		if (strcmp(PipelineActions[i].action, action) == 0)
			return PipelineActions[i].granted;
	}
	elog(ERROR, "unknown pipeline action \"%s\"", action);
	return 0;					/* keep the compiler quiet */
}

/*
 * RoleMayAct says whether role may do action on a pipeline of owner
 * (InvalidOid: a pipeline whose owner is not known, which only the roles
 * that may do it on every pipeline may).
 */
bool
RoleMayAct(Oid role, Oid owner, const char *action)
{
	int			granted = ActionGrants(action);

	if (superuser_arg(role) || (OidIsValid(owner) && has_privs_of_role(role, owner)))
		return true;
	for (int i = 0; i < lengthof(TeamRoles); i++)
	{
		Oid			team = get_role_oid(TeamRoles[i].name, true);

		if ((granted & TeamRoles[i].bit) && OidIsValid(team) && has_privs_of_role(role, team))
			return true;
	}
	return false;
}

/* TeamRoleFor names the least powerful team role that may do action, for hints */
const char *
TeamRoleFor(const char *action)
{
	int			granted = ActionGrants(action);

	for (int i = 0; i < lengthof(TeamRoles); i++)
	{
		if (granted & TeamRoles[i].bit)
			return TeamRoles[i].name;
	}
	return NULL;
}

/*
 * pipeline._may(action, owner, role DEFAULT NULL): RoleMayAct for SQL, role
 * NULL meaning the current user, owner NULL a pipeline whose owner is not
 * known. The views' visibility is _may('read', owner).
 */
Datum
pipeline_may(PG_FUNCTION_ARGS)
{
	Oid			owner = PG_ARGISNULL(1) ? InvalidOid : PG_GETARG_OID(1);
	Oid			role = PG_ARGISNULL(2) ? GetUserId() : PG_GETARG_OID(2);

	char	   *action;
	bool		known = false;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	action = text_to_cstring(PG_GETARG_TEXT_PP(0));
	for (int i = 0; i < lengthof(PipelineActions) && !known; i++)
		known = strcmp(PipelineActions[i].action, action) == 0;
	if (!known)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown pipeline action \"%s\"", action),
				 errdetail("The actions are those of the table in docs/security.md, such as read, run and alter."),
				 errhint("pipeline._may is internal: the catalog views call it.")));
	PG_RETURN_BOOL(RoleMayAct(role, owner, action));
}
