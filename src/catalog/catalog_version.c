/*-------------------------------------------------------------------------
 *
 * src/catalog/catalog_version.c
 *
 * The library and the catalog must be of one version. After a package
 * upgrade the server loads the new library while the database still has
 * the old catalog until ALTER EXTENSION pg_pipeline UPDATE runs; the new
 * code would then read and write tables and columns that are not there yet
 * and fail in ways that say nothing useful. Every catalog statement
 * (ExecCatalog, ExecKeptPlan) first checks that the installed extension is
 * at this library's version and otherwise fails with 55000 and a hint to
 * update; the launcher waits, and the DDL trigger does nothing. Once the
 * versions match, a backend does not look again.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"

#include "pipeline/catalog.h"

static bool version_matches = false;

/*
 * InstalledVersion returns the version of pg_pipeline installed in this
 * database (pg_extension.extversion), NULL when it is not installed.
 */
static char *
InstalledVersion(void)
{
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tuple;
	char	   *version = NULL;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber, F_NAMEEQ,
				CStringGetDatum(PIPELINE_EXTENSION));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
	{
		bool		isnull;
		Datum		d = heap_getattr(tuple, Anum_pg_extension_extversion,
									 RelationGetDescr(rel), &isnull);

		if (!isnull)
			version = TextDatumGetCString(d);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return version;
}

/*
 * CatalogVersionMatches tells whether the installed catalog is this
 * library's version (false also when the extension is not installed).
 */
bool
CatalogVersionMatches(void)
{
	char	   *installed;

	if (version_matches)
		return true;
	installed = InstalledVersion();
	version_matches = installed != NULL && strcmp(installed, PIPELINE_VERSION) == 0;
	return version_matches;
}

/*
 * RequireCatalogVersion fails with 55000 when the installed catalog is of
 * another version than the library; nothing when the extension is not
 * installed (CREATE EXTENSION is in progress, or the caller checks).
 */
void
RequireCatalogVersion(void)
{
	char	   *installed;

	if (version_matches || CatalogVersionMatches())
		return;
	installed = InstalledVersion();
	if (installed == NULL)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("pg_pipeline's catalog in this database is at version %s, its library at %s",
					installed, PIPELINE_VERSION),
			 errdetail("The library was upgraded; the catalog is updated by ALTER EXTENSION."),
			 errhint("Run ALTER EXTENSION pg_pipeline UPDATE in this database.")));
}
