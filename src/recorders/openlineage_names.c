/*-------------------------------------------------------------------------
 *
 * src/recorders/openlineage_names.c
 *
 * The names in pg_pipeline's OpenLineage events (openlineage.c): datasets
 * named as OpenLineage's naming spec says for PostgreSQL (namespace
 * postgres://host:port, name database.schema.table, a part quoted when it
 * would be ambiguous), and the two settings that give the namespaces,
 * pipeline.openlineage_namespace (datasets) and
 * pipeline.openlineage_job_namespace (jobs), checked when set.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "postmaster/postmaster.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/regproc.h"

#include "pipeline/recorders.h"

/* GUCs (OpenLineageInit); empty: the defaults that OpenLineageNamespaces says */
static char *openlineage_namespace = NULL;
static char *openlineage_job_namespace = NULL;

/*
 * AppendNamePart appends one part of a dataset name: as it is, or
 * double-quoted (inner quotes doubled) when it is empty or holds a dot, a
 * double quote or white space, so that the parts can be told apart again.
 */
static void
AppendNamePart(StringInfo buf, const char *part)
{
	bool		quote = *part == '\0';

	for (const char *p = part; *p && !quote; p++)
		quote = *p == '.' || *p == '"' || isspace((unsigned char) *p);
	if (!quote)
	{
		appendStringInfoString(buf, part);
		return;
	}
	appendStringInfoChar(buf, '"');
	for (const char *p = part; *p; p++)
	{
		if (*p == '"')
			appendStringInfoChar(buf, '"');
		appendStringInfoChar(buf, *p);
	}
	appendStringInfoChar(buf, '"');
}

/*
 * OpenLineageDatasetName turns a stored "schema"."table" into OpenLineage's
 * database.schema.table, each part quoted by AppendNamePart when needed.
 */
char *
OpenLineageDatasetName(const char *relation)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	AppendNamePart(&buf, get_database_name(MyDatabaseId));
	foreach(lc, stringToQualifiedNameList(relation))
	{
		appendStringInfoChar(&buf, '.');
		AppendNamePart(&buf, strVal(lfirst(lc)));
	}
	return buf.data;
}

/*
 * OpenLineageValidDatasetNamespace tells whether ns is postgres://host:port as other
 * OpenLineage producers write a PostgreSQL namespace: a host name, an IPv4
 * address or a bracketed IPv6 address, and a port from 1 to 65535, nothing
 * else (no user, database or path).
 */
bool
OpenLineageValidDatasetNamespace(const char *ns)
{
	const char *p;
	const char *colon;
	long		port;
	char	   *end;

	if (strncmp(ns, "postgres://", 11) != 0)
		return false;
	p = ns + 11;
	if (*p == '[')
	{
		const char *close = strchr(p, ']');

		if (close == NULL || close == p + 1)
			return false;
		for (const char *q = p + 1; q < close; q++)
			if (!isxdigit((unsigned char) *q) && *q != ':' && *q != '.')
				return false;
		colon = close + 1;
		if (*colon != ':')
			return false;
	}
	else
	{
		colon = strchr(p, ':');
		if (colon == NULL || colon == p)
			return false;
		for (const char *q = p; q < colon; q++)
			if (!isalnum((unsigned char) *q) && *q != '.' && *q != '-' && *q != '_')
				return false;
	}
	if (!isdigit((unsigned char) colon[1]))
		return false;
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	return errno == 0 && *end == '\0' && port >= 1 && port <= 65535 && end - colon <= 6;
}

/*
 * ValidJobNamespace tells whether ns can name a job namespace: 1 to 255
 * printable ASCII characters, no white space.
 */
static bool
ValidJobNamespace(const char *ns)
{
	size_t		len = strlen(ns);

	if (len == 0 || len > 255)
		return false;
	for (const char *p = ns; *p; p++)
		if (*p <= ' ' || *p > '~')
			return false;
	return true;
}

/* CheckDatasetNamespace is the check hook of pipeline.openlineage_namespace */
static bool
CheckDatasetNamespace(char **newval, void **extra, GucSource source)
{
	if (*newval == NULL || **newval == '\0' || OpenLineageValidDatasetNamespace(*newval))
		return true;
	GUC_check_errdetail("pipeline.openlineage_namespace must be postgres://host:port, as \"%s\" is not.",
						*newval);
	GUC_check_errhint("Write the address other OpenLineage producers use for this server, like postgres://db.example.com:5432.");
	return false;
}

/* CheckJobNamespace is the check hook of pipeline.openlineage_job_namespace */
static bool
CheckJobNamespace(char **newval, void **extra, GucSource source)
{
	if (*newval == NULL || **newval == '\0' || ValidJobNamespace(*newval))
		return true;
	GUC_check_errdetail("pipeline.openlineage_job_namespace must be 1 to 255 printable ASCII characters without spaces.");
	GUC_check_errhint("Use something like pg_pipeline-prod.");
	return false;
}

/*
 * OpenLineageInit defines pipeline.openlineage_namespace and
 * pipeline.openlineage_job_namespace; _PG_init calls it.
 */
void
OpenLineageInit(void)
{
	DefineCustomStringVariable("pipeline.openlineage_namespace",
							   "The namespace of the datasets in OpenLineage events: postgres://host:port.",
							   "Empty: postgres://localhost:<port>. Set it to the address other producers use for this server.",
							   &openlineage_namespace, "", PGC_USERSET, 0,
							   CheckDatasetNamespace, NULL, NULL);
	DefineCustomStringVariable("pipeline.openlineage_job_namespace",
							   "The namespace of the jobs (pipelines) in OpenLineage events.",
							   "Empty: pg_pipeline://<host:port of the dataset namespace>/<database>.",
							   &openlineage_job_namespace, "", PGC_USERSET, 0,
							   CheckJobNamespace, NULL, NULL);
}

/*
 * OpenLineageNamespaces sets the dataset namespace (the argument, else the
 * setting, else postgres://localhost:<port>) and the job namespace (the
 * setting, else pg_pipeline://<host:port>/<database>).
 */
void
OpenLineageNamespaces(const char *arg, char **ns, char **job_ns)
{
	if (arg)
		*ns = pstrdup(arg);
	else if (openlineage_namespace && *openlineage_namespace)
		*ns = pstrdup(openlineage_namespace);
	else
		*ns = psprintf("postgres://localhost:%d", PostPortNumber);
	if (openlineage_job_namespace && *openlineage_job_namespace)
		*job_ns = pstrdup(openlineage_job_namespace);
	else
	{
		StringInfoData buf;

		initStringInfo(&buf);
		appendStringInfo(&buf, "pg_pipeline://%s/", *ns + strlen("postgres://"));
		AppendNamePart(&buf, get_database_name(MyDatabaseId));
		*job_ns = buf.data;
	}
}
