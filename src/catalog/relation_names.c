/*-------------------------------------------------------------------------
 *
 * src/catalog/relation_names.c
 *
 * Facts about the relations a definition names, read from PostgreSQL's
 * catalogs: resolving a stored schema and name (42P01 when gone), a
 * relation's name and owner, the tables a relation reads through its views (down to
 * partitions and inheritance children), the indexes of a source, and
 * whether a relation is a Citus table (pg_dist_partition, read only when the
 * citus extension exists, so that nothing links against Citus).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_namespace.h"
#include "commands/extension.h"
#include "nodes/nodeFuncs.h"
#include "rewrite/rewriteHandler.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "pipeline/catalog.h"

typedef struct BaseTableContext
{
	List	   *relids;
	int			depth;
} BaseTableContext;

static void AddBaseTables(Oid relid, BaseTableContext *ctx);

/*
 * ResolveRelationName finds a stored relation by schema and name, raising
 * 42P01 (naming the pipeline's role for it) when it has gone.
 */
Oid
ResolveRelationName(const char *schema, const char *relname, const char *what)
{
	Oid			nspid = get_namespace_oid(schema, true);
	Oid			relid = OidIsValid(nspid) ? get_relname_relid(relname, nspid) : InvalidOid;

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("%s relation %s does not exist", what,
						quote_qualified_identifier(schema, relname)),
				 errhint("Recreate it, or point the pipeline elsewhere with pipeline.alter_pipeline.")));
	return relid;
}

/* DescribeRelation returns a relation's schema and name */
void
DescribeRelation(Oid relid, char **schema, char **relname)
{
	*relname = get_rel_name(relid);
	if (*relname == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	*schema = get_namespace_name(get_rel_namespace(relid));
}

char *
QualifiedRelationName(const char *schema, const char *relname)
{
	return quote_qualified_identifier(schema, relname);
}

/*
 * RelationNameOf spells an existing relation as schema.name, each part
 * quoted when needed: how lineage stores it and messages show it
 */
char *
RelationNameOf(Oid relid)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
}

/* RelationOwnerOf returns the owner of an existing relation */
Oid
RelationOwnerOf(Oid relid)
{
	HeapTuple	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;

	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);
	return owner;
}

/*
 * SourceKeyIsUnique tells whether the source table has a unique, immediate,
 * non-partial index on columns that are all part of the unique key: then no
 * two rows share a (non-NULL) key and a run needs no de-duplication.
 */
bool
SourceKeyIsUnique(Oid source_relid, List *unique_key)
{
	Relation	rel;
	List	   *indexes;
	ListCell   *lc;
	bool		unique = false;
	char		relkind = get_rel_relkind(source_relid);

	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
		return false;
	rel = table_open(source_relid, AccessShareLock);
	indexes = RelationGetIndexList(rel);
	foreach(lc, indexes)
	{
		HeapTuple	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(lfirst_oid(lc)));
		Form_pg_index index;
		bool		covered = true;

		if (!HeapTupleIsValid(tup))
			continue;
		index = (Form_pg_index) GETSTRUCT(tup);
		if (index->indisunique && index->indimmediate && index->indisvalid &&
			heap_attisnull(tup, Anum_pg_index_indpred, NULL) &&
			heap_attisnull(tup, Anum_pg_index_indexprs, NULL))
		{
			for (int k = 0; k < index->indnkeyatts && covered; k++)
			{
				char	   *attname = get_attname(source_relid, index->indkey.values[k], false);
				ListCell   *kc;
				bool		found = false;

				foreach(kc, unique_key)
					if (strcmp(lfirst(kc), attname) == 0)
						found = true;
				covered = found;
			}
			if (covered)
				unique = true;
		}
		ReleaseSysCache(tup);
		if (unique)
			break;
	}
	table_close(rel, AccessShareLock);
	return unique;
}

/* SourceHasIndexOn tells whether some index of the table leads with column */
bool
SourceHasIndexOn(Oid source_relid, const char *column)
{
	Relation	rel;
	List	   *indexes;
	ListCell   *lc;
	AttrNumber	attnum = get_attnum(source_relid, column);
	bool		found = false;
	char		relkind = get_rel_relkind(source_relid);

	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE &&
		relkind != RELKIND_MATVIEW)
		return true;			/* views and foreign tables: nothing to advise */
	rel = table_open(source_relid, AccessShareLock);
	indexes = RelationGetIndexList(rel);
	foreach(lc, indexes)
	{
		HeapTuple	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(lfirst_oid(lc)));

		if (!HeapTupleIsValid(tup))
			continue;
		if (((Form_pg_index) GETSTRUCT(tup))->indkey.values[0] == attnum)
			found = true;
		ReleaseSysCache(tup);
	}
	table_close(rel, AccessShareLock);
	return found;
}

/* BaseTableWalker visits every range table entry of a view's query tree */
static bool
BaseTableWalker(Node *node, BaseTableContext *ctx)
{
	if (node == NULL)
		return false;
	if (IsA(node, RangeTblEntry))
	{
		RangeTblEntry *rte = (RangeTblEntry *) node;

		if (rte->rtekind == RTE_RELATION)
			AddBaseTables(rte->relid, ctx);
		return false;
	}
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, BaseTableWalker, ctx,
								 QTW_EXAMINE_RTES_BEFORE);
	return expression_tree_walker(node, BaseTableWalker, ctx);
}

/* AddBaseTables adds a relation's storage: itself, its children, or its view's */
static void
AddBaseTables(Oid relid, BaseTableContext *ctx)
{
	char		relkind = get_rel_relkind(relid);

	if (list_member_oid(ctx->relids, relid))
		return;
	if (relkind == RELKIND_VIEW)
	{
		Relation	view;

		if (ctx->depth > 64)
			return;				/* views cannot recurse, but stay bounded */
		ctx->relids = lappend_oid(ctx->relids, relid);
		view = relation_open(relid, AccessShareLock);
		ctx->depth++;
		BaseTableWalker((Node *) get_view_query(view), ctx);
		ctx->depth--;
		relation_close(view, AccessShareLock);
		return;
	}
	if (relkind == RELKIND_RELATION || relkind == RELKIND_PARTITIONED_TABLE ||
		relkind == RELKIND_MATVIEW)
	{
		List	   *all = find_all_inheritors(relid, AccessShareLock, NULL);
		ListCell   *lc;

		foreach(lc, all)
			if (!list_member_oid(ctx->relids, lfirst_oid(lc)))
				ctx->relids = lappend_oid(ctx->relids, lfirst_oid(lc));
	}
}

/*
 * CollectBaseTables returns the relation and every table it reads, through
 * views of views and down to partitions and inheritance children: the
 * relations whose in-flight writers a run waits for.
 */
List *
CollectBaseTables(Oid relid)
{
	BaseTableContext ctx = {NIL, 0};

	AddBaseTables(relid, &ctx);
	return ctx.relids;
}

/*
 * CitusTableKindOf tells what kind of Citus table a relation is, from its
 * row of pg_catalog.pg_dist_partition (partmethod, repmodel, colocationid):
 * hash-distributed (or single-shard, schema-based), reference, Citus local,
 * or none. Without the citus extension every relation is CITUS_NONE.
 */
CitusTableKind
CitusTableKindOf(Oid relid)
{
	Oid			distrel;
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	CitusTableKind kind = CITUS_NONE;

	if (!OidIsValid(get_extension_oid("citus", true)))
		return CITUS_NONE;
	distrel = get_relname_relid("pg_dist_partition", PG_CATALOG_NAMESPACE);
	if (!OidIsValid(distrel))
		return CITUS_NONE;
	rel = table_open(distrel, AccessShareLock);
	/* column 1 is logicalrelid (regclass), 2 partmethod, 4 colocationid, 5 repmodel */
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(relid));
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		TupleDesc	desc = RelationGetDescr(rel);
		bool		isnull;
		char		method = DatumGetChar(heap_getattr(tup, 2, desc, &isnull));
		int32		colocation = DatumGetInt32(heap_getattr(tup, 4, desc, &isnull));
		char		repmodel = DatumGetChar(heap_getattr(tup, 5, desc, &isnull));

		if (method != 'n' || colocation != 0)
			kind = CITUS_DISTRIBUTED;
		if (method == 'n' && repmodel == 't')
			kind = CITUS_REFERENCE;
		else if (method == 'n' && colocation == 0)
			kind = CITUS_LOCAL;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return kind;
}
