/*-------------------------------------------------------------------------
 *
 * src/api/privacy.c
 *
 * Knowing where personal data is. pipeline.classify and unclassify declare
 * the class of a column (pipeline.classification, audited); the view
 * pipeline.pii_columns follows the declarations through column lineage.
 * pipeline.suggest_pii samples a relation's text columns and says which
 * look like personal data (common/pii_detect.c); it classifies nothing.
 * pipeline.pii_classes lists the classes. pipeline.create_key and
 * rotate_key make the keys of the tokenize and hash masks (catalog/masks.c
 * keeps and uses them). pipeline.declare_subject and undeclare_subject say
 * which column identifies a data subject (pipeline.subject_declaration,
 * audited), for pipeline.forget (erasure.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "pipeline/policy.h"
#include "pipeline/recorders.h"

PIPELINE_FUNCTION(pipeline_pii_classes);
PIPELINE_FUNCTION(pipeline_classify);
PIPELINE_FUNCTION(pipeline_unclassify);
PIPELINE_FUNCTION(pipeline_declare_subject);
PIPELINE_FUNCTION(pipeline_undeclare_subject);
PIPELINE_FUNCTION(pipeline_suggest_pii);
PIPELINE_FUNCTION(pipeline_create_key);
PIPELINE_FUNCTION(pipeline_rotate_key);

/* The documented classes; a user's own start with "custom." */
static const struct
{
	const char *name;
	const char *description;
}			pii_classes[] = {
	{"pii.email", "an e-mail address"},
	{"pii.phone", "a telephone number"},
	{"pii.name", "a person's name"},
	{"pii.national_id", "a national identifier: social security, national insurance, passport, tax number"},
	{"pii.address", "a postal address or part of one"},
	{"pii.birth_date", "a date of birth"},
	{"pii.ip", "an IP address"},
	{"pii.card", "a payment card number"},
	{"pii.iban", "a bank account number (IBAN)"},
	{"pii.location", "a precise location: coordinates, a device's position"},
	{"sensitive", "special category data: health, religion, ethnicity, politics, sexual orientation"},
};

#define CUSTOM_PREFIX "custom."

/* ValidClass tells whether class is a documented class or custom.<name> */
static bool
ValidClass(const char *class)
{
	for (int i = 0; i < lengthof(pii_classes); i++)
		if (strcmp(class, pii_classes[i].name) == 0)
			return true;
	if (strncmp(class, CUSTOM_PREFIX, strlen(CUSTOM_PREFIX)) != 0 ||
		class[strlen(CUSTOM_PREFIX)] == '\0' || strlen(class) > 63)
		return false;
	for (const char *p = class + strlen(CUSTOM_PREFIX); *p; p++)
		if (!(*p >= 'a' && *p <= 'z') && !(*p >= '0' && *p <= '9') && *p != '_' && *p != '.')
			return false;
	return true;
}

/* pipeline.pii_classes(): the documented classes */
Datum
pipeline_pii_classes(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < lengthof(pii_classes); i++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};

		values[0] = CStringGetTextDatum(pii_classes[i].name);
		values[1] = CStringGetTextDatum(pii_classes[i].description);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * CheckColumnArg resolves the relation and column of classify, unclassify,
 * declare_subject and undeclare_subject (action, audited when refused;
 * verb, what messages say): the relation must be a table, view,
 * materialized view or foreign table that the caller owns (or has the
 * privileges of its owner, or is a member of pipeline_admin), and have the
 * column.
 */
static char *
CheckColumnArg(FunctionCallInfo fcinfo, const char *action, const char *verb, Oid *relid_out)
{
	Oid			relid;
	char	   *column;
	char		kind;
	char	   *name;

	RequireArg(fcinfo, 0, "relation");
	RequireArg(fcinfo, 1, "column_name");
	relid = PG_GETARG_OID(0);
	column = text_to_cstring(PG_GETARG_TEXT_PP(1));
	kind = get_rel_relkind(relid);
	if (kind == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	name = RelationNameOf(relid);
	if (kind != RELKIND_RELATION && kind != RELKIND_PARTITIONED_TABLE && kind != RELKIND_VIEW &&
		kind != RELKIND_MATVIEW && kind != RELKIND_FOREIGN_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("cannot %s a column of \"%s\"", verb, name),
				 errdetail("\"%s\" is not a table, view, materialized view or foreign table.", name),
				 errhint("%c%s the columns of the relations that hold the data.",
						 pg_toupper((unsigned char) verb[0]), verb + 1)));
	/* the declaration is kept by name in a shared catalog, which every session reads */
	if (get_rel_persistence(relid) == RELPERSISTENCE_TEMP)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot %s a column of temporary table \"%s\"", verb, name),
				 errdetail("A temporary table lives in one session; declarations are read by every session."),
				 errhint("%c%s the columns of a permanent or unlogged table.",
						 pg_toupper((unsigned char) verb[0]), verb + 1)));
	if (get_attnum(relid, column) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" does not exist", column, name),
				 errhint("Name a column of the relation; see \\d %s.", name)));
	if (!RoleMayAct(GetUserId(), RelationOwnerOf(relid), "classify"))
	{
		char	   *object = psprintf("%s.%s", name, quote_identifier(column));

		AuditRefusal(action, "column", object, 0,
					 psprintf("permission denied to %s column %s", verb, object));
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to %s column %s", verb, object),
				 errdetail("Relation \"%s\" is owned by role \"%s\".", name,
						   GetUserNameFromId(RelationOwnerOf(relid), false)),
				 errhint("Run it as the relation's owner, a member of it, or a member of pipeline_admin.")));
	}
	*relid_out = relid;
	return column;
}

/*
 * LowerNameArg reads a name argument of 1 to 63 lower-case letters, digits
 * and _ (a key's, a subject's): 22004 for NULL, 22023 otherwise.
 */
static char *
LowerNameArg(FunctionCallInfo fcinfo, int argno, const char *argname, const char *what,
			 const char *detail, const char *hint)
{
	char	   *name;

	RequireArg(fcinfo, argno, argname);
	name = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	if (*name == '\0' || strlen(name) > 63 || strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(name))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid %s \"%s\"", what, name),
				 errdetail("%s", detail),
				 errhint("%s", hint)));
	return name;
}

/* KeyNameArg reads a key's name */
static char *
KeyNameArg(FunctionCallInfo fcinfo)
{
	return LowerNameArg(fcinfo, 0, "name", "key name",
						"A key's name is 1 to 63 lower-case letters, digits and underscores.",
						"Use a name like customers or default.");
}

/*
 * A table of declarations kept by a column's relation name: the class of
 * classify, the subject of declare_subject.
 */
typedef struct Declaration
{
	const char *table;			/* pipeline.<table> */
	const char *member;			/* its value's column, and audit member */
	const char *by;				/* its columns of who declared it, and when */
	const char *at;
	const char *set_action;		/* the audited actions */
	const char *unset_action;
	const char *verb;			/* what messages say of setting it */
	const char *unset_verb;
} Declaration;

static const Declaration class_declaration = {
	"classification", "class", "classified_by", "classified_at",
	"classify", "unclassify", "classify", "unclassify"
};
static const Declaration subject_declaration = {
	"subject_declaration", "subject", "declared_by", "declared_at",
	"declare_subject", "undeclare_subject", "declare the subject of", "undeclare the subject of"
};

/*
 * AuditDeclaration writes the audit entry of a change to a column's
 * declaration (before, after: NULL for none)
 */
static void
AuditDeclaration(const Declaration *decl, const char *action, Oid relid, const char *column,
				 const char *before, const char *after)
{
	char	   *object = psprintf("%s.%s", RelationNameOf(relid), quote_identifier(column));
	StringInfoData b;
	StringInfoData a;

	initStringInfo(&b);
	initStringInfo(&a);
	if (before)
	{
		appendStringInfoChar(&b, '{');
		AppendJsonMember(&b, decl->member, before, false);
		appendStringInfoChar(&b, '}');
	}
	if (after)
	{
		appendStringInfoChar(&a, '{');
		AppendJsonMember(&a, decl->member, after, false);
		appendStringInfoChar(&a, '}');
	}
	AuditObjectChange(action, "column", object, before ? b.data : NULL, after ? a.data : NULL);
}

/*
 * SetDeclaration declares a column's value (a class, a subject), replacing
 * an earlier one; audited when it changed.
 */
static void
SetDeclaration(const Declaration *decl, Oid relid, const char *column, const char *value)
{
	Oid			types[5] = {TEXTOID, OIDOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		values[5];
	char	   *before = NULL;
	const char *m = decl->member;

	SPI_connect();
	values[0] = CStringGetTextDatum(RelationNameOf(relid));
	values[1] = ObjectIdGetDatum(relid);
	values[2] = CStringGetTextDatum(column);
	values[3] = CStringGetTextDatum(value);
	values[4] = CStringGetTextDatum(GetUserNameFromId(GetUserId(), false));
	ExecCatalog(psprintf("WITH old AS (SELECT %s FROM pipeline.%s"
						 "              WHERE relation = $1 AND column_name = $3),"
						 " new AS (INSERT INTO pipeline.%s (relation, relid, column_name, %s, %s)"
						 "         VALUES ($1, $2, $3, $4, $5)"
						 "         ON CONFLICT (relation, column_name) DO UPDATE"
						 "         SET relid = excluded.relid, %s = excluded.%s,"
						 "             %s = excluded.%s, %s = now())"
						 " SELECT %s FROM old",
						 m, decl->table, decl->table, m, decl->by, m, m, decl->by, decl->by,
						 decl->at, m),
				5, types, values, NULL, false);
	if (SPI_processed > 0)
		before = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	if (before == NULL || strcmp(before, value) != 0)
		AuditDeclaration(decl, decl->set_action, relid, column, before, value);
	SPI_finish();
}

/*
 * Undeclare is unclassify and undeclare_subject: it removes a column's
 * declaration and returns false when it had none; audited when it removed
 * one.
 */
static Datum
Undeclare(FunctionCallInfo fcinfo, const Declaration *decl)
{
	Oid			relid;
	char	   *column = CheckColumnArg(fcinfo, decl->unset_action, decl->unset_verb, &relid);
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2];
	char	   *before = NULL;

	SPI_connect();
	values[0] = CStringGetTextDatum(RelationNameOf(relid));
	values[1] = CStringGetTextDatum(column);
	ExecCatalog(psprintf("DELETE FROM pipeline.%s WHERE relation = $1 AND column_name = $2"
						 " RETURNING %s", decl->table, decl->member),
				2, types, values, NULL, false);
	if (SPI_processed > 0)
		before = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	if (before)
		AuditDeclaration(decl, decl->unset_action, relid, column, before, NULL);
	SPI_finish();
	PG_RETURN_BOOL(before != NULL);
}

/*
 * pipeline.classify(relation, column_name, class): declares the class of
 * personal data a column holds, replacing its earlier class; audited.
 */
Datum
pipeline_classify(PG_FUNCTION_ARGS)
{
	const Declaration *decl = &class_declaration;
	Oid			relid;
	char	   *column = CheckColumnArg(fcinfo, decl->set_action, decl->verb, &relid);
	char	   *class;

	RequireArg(fcinfo, 2, "class");
	class = text_to_cstring(PG_GETARG_TEXT_PP(2));
	if (!ValidClass(class))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown class \"%s\"", class),
				 errdetail("A class is one of SELECT class FROM pipeline.pii_classes(), or custom.<name> (lower-case letters, digits, _ and .)."),
				 errhint("Use pii.email, pii.phone, ... or a class of your own such as custom.loyalty_id.")));
	SetDeclaration(decl, relid, column, class);
	PG_RETURN_VOID();
}

/*
 * pipeline.unclassify(relation, column_name): removes a column's class;
 * false when it had none. Audited when it removed one.
 */
Datum
pipeline_unclassify(PG_FUNCTION_ARGS)
{
	return Undeclare(fcinfo, &class_declaration);
}

/*
 * pipeline.declare_subject(relation, column_name, subject): declares that
 * a column identifies a data subject (its values name a person: a customer
 * id, an e-mail), replacing an earlier subject of the column; audited. The
 * columns derived from it through lineage identify the same subject
 * (pipeline.subject_columns), which pipeline.forget erases (erasure.c).
 */
Datum
pipeline_declare_subject(PG_FUNCTION_ARGS)
{
	const Declaration *decl = &subject_declaration;
	Oid			relid;
	char	   *column = CheckColumnArg(fcinfo, decl->set_action, decl->verb, &relid);

	SetDeclaration(decl, relid, column,
				   LowerNameArg(fcinfo, 2, "subject", "subject",
								"A subject is 1 to 63 lower-case letters, digits and underscores.",
								"Use a name like customer or employee."));
	PG_RETURN_VOID();
}

/*
 * pipeline.undeclare_subject(relation, column_name): removes a column's
 * subject; false when it had none. Audited when it removed one. Tombstones
 * of the subject stay.
 */
Datum
pipeline_undeclare_subject(PG_FUNCTION_ARGS)
{
	return Undeclare(fcinfo, &subject_declaration);
}

/*
 * pipeline.suggest_pii(relation, sample_rows): for each text or network
 * column of the relation, the class its sampled values most often look
 * like, and the share of its non-null values that do; columns with no
 * match are left out. The caller needs SELECT on the relation; the sample
 * is read as the relation's owner, restricted (EnterOwnerContext), so that
 * a view's functions never run as the caller.
 */
Datum
pipeline_suggest_pii(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			relid;
	int32		sample_rows = PG_ARGISNULL(1) ? 1000 : PG_GETARG_INT32(1);
	char	   *name;
	Relation	rel;
	TupleDesc	desc;
	StringInfoData sql;
	List	   *columns = NIL;
	OwnerContext ctx;
	int			ncols;
	int		   *nonnull;
	int		  (*hits)[lengthof(pii_classes)];
	ListCell   *lc;

	RequireArg(fcinfo, 0, "relation");
	relid = PG_GETARG_OID(0);
	if (get_rel_relkind(relid) == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	name = RelationNameOf(relid);
	if (sample_rows < 1 || sample_rows > 1000000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("sample_rows must be between 1 and 1000000"),
				 errdetail("It is %d.", sample_rows),
				 errhint("The default, 1000, is enough to tell a column's kind.")));
	if (pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for relation %s", name),
				 errdetail("suggest_pii reads a sample of its rows."),
				 errhint("GRANT SELECT ON %s to this role.", name)));
	InitMaterializedSRF(fcinfo, 0);

	/* the columns to sample: strings and network addresses */
	rel = relation_open(relid, AccessShareLock);
	desc = RelationGetDescr(rel);
	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT ");
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		char		category;
		bool		preferred;

		if (att->attisdropped)
			continue;
		get_type_category_preferred(getBaseType(att->atttypid), &category, &preferred);
		if (category != TYPCATEGORY_STRING && category != TYPCATEGORY_NETWORK)
			continue;
		appendStringInfo(&sql, "%s%s", columns ? ", " : "",
						 quote_identifier(NameStr(att->attname)));
		columns = lappend(columns, pstrdup(NameStr(att->attname)));
	}
	relation_close(rel, AccessShareLock);
	if (columns == NIL)
		return (Datum) 0;
	appendStringInfo(&sql, " FROM %s LIMIT %d", name, sample_rows);

	ncols = list_length(columns);
	nonnull = palloc0(sizeof(int) * ncols);
	hits = palloc0(sizeof(*hits) * ncols);
	SPI_connect();
	EnterOwnerContext(&ctx, RelationOwnerOf(relid));
	if (SPI_execute(sql.data, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not sample %s", name);
	LeaveOwnerContext(&ctx);
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		for (int c = 0; c < ncols; c++)
		{
			char	   *v = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, c + 1);
			const char *class;

			if (v == NULL)
				continue;
			nonnull[c]++;
			class = PiiClassOf(v);
			for (int k = 0; class && k < lengthof(pii_classes); k++)
				if (strcmp(class, pii_classes[k].name) == 0)
					hits[c][k]++;
		}
	}
	foreach(lc, columns)
	{
		int			c = foreach_current_index(lc);
		int			best = -1;

		for (int k = 0; k < lengthof(pii_classes); k++)
			if (hits[c][k] > 0 && (best < 0 || hits[c][k] > hits[c][best]))
				best = k;
		if (best >= 0)
		{
			Datum		values[3];
			bool		nulls[3] = {false, false, false};

			values[0] = CStringGetTextDatum(lfirst(lc));
			values[1] = CStringGetTextDatum(pii_classes[best].name);
			values[2] = DirectFunctionCall2(numeric_round,
											DirectFunctionCall1(float8_numeric,
																Float8GetDatum((double) hits[c][best] / nonnull[c])),
											Int32GetDatum(3));
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	SPI_finish();
	return (Datum) 0;
}

/*
 * CheckKeyAdmin refuses the keys to anyone the actions table does not let
 * "manage keys" (superusers and members of pipeline_admin), auditing the
 * refusal.
 */
static void
CheckKeyAdmin(const char *action, const char *name)
{
	if (RoleMayAct(GetUserId(), InvalidOid, "manage keys"))
		return;
	AuditRefusal(action, "key", name, 0, psprintf("permission denied to %s key \"%s\"", action, name));
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied to %s key \"%s\"", action, name),
			 errdetail("Keys are managed by superusers and members of pipeline_admin."),
			 errhint("Ask an administrator, or GRANT pipeline_admin to this role.")));
}

/* AddKeyVersion stores a new version of a key with a random secret */
static void
AddKeyVersion(const char *name, int version)
{
	Oid			types[4] = {TEXTOID, INT4OID, BYTEAOID, TEXTOID};
	Datum		values[4];

	values[0] = CStringGetTextDatum(name);
	values[1] = Int32GetDatum(version);
	values[2] = PointerGetDatum(RandomSecret(32));
	values[3] = CStringGetTextDatum(GetUserNameFromId(GetUserId(), false));
	ExecCatalog("INSERT INTO pipeline.mask_key (name, version, secret, created_by) VALUES ($1, $2, $3, $4)",
				4, types, values, NULL, false);
	AuditObjectChange(version == 1 ? "create_key" : "rotate_key", "key", name, NULL,
					  psprintf("{\"version\": %d}", version));
}

/*
 * pipeline.create_key(name): a new key for the tokenize and hash masks, 32
 * random bytes from the operating system; returns its version, 1.
 */
Datum
pipeline_create_key(PG_FUNCTION_ARGS)
{
	char	   *name = KeyNameArg(fcinfo);

	CheckKeyAdmin("create", name);
	SPI_connect();
	if (LatestKeyVersion(name, true) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("key \"%s\" already exists", name),
				 errhint("Rotate it with pipeline.rotate_key('%s'), or choose another name.", name)));
	AddKeyVersion(name, 1);
	SPI_finish();
	PG_RETURN_INT32(1);
}

/*
 * pipeline.rotate_key(name): the key's next version, which the runs use from
 * then on; tokens made with older versions keep their version in their
 * prefix. Returns the new version.
 */
Datum
pipeline_rotate_key(PG_FUNCTION_ARGS)
{
	char	   *name = KeyNameArg(fcinfo);
	int			version;

	CheckKeyAdmin("rotate", name);
	SPI_connect();
	version = LatestKeyVersion(name, false) + 1;
	AddKeyVersion(name, version);
	SPI_finish();
	PG_RETURN_INT32(version);
}
