/*-------------------------------------------------------------------------
 *
 * src/catalog/source_columns.c
 *
 * The columns of a pipeline's source as schema drift sees them: name, type
 * with its typmod, and attnum, read from the catalogs of now or from a
 * snapshot (JSON: [{"name", "type", "attnum"}], as the SQL function
 * pipeline._source_columns writes it), and the changes between two such
 * lists. Columns are
 * matched by name first; a column whose type changed is retyped. Of the
 * rest, a column that left and one that came with the same attnum and the
 * same type are one column renamed (a table never reuses an attnum; a
 * view's columns keep theirs through ALTER VIEW ... RENAME COLUMN); what
 * is left was dropped or added.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/rel.h"

#include "pipeline/catalog.h"
#include "pipeline/catalog/source_columns.h"

/* RelationColumns lists a relation's columns (dropped ones left out) */
List *
RelationColumns(Oid relid)
{
	Relation	rel = relation_open(relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	List	   *columns = NIL;

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		SourceColumn *col;

		if (att->attisdropped)
			continue;
		col = palloc0(sizeof(SourceColumn));
		col->name = pstrdup(NameStr(att->attname));
		col->typid = att->atttypid;
		col->typmod = att->atttypmod;
		col->collid = att->attcollation;
		col->type = format_type_with_typemod(att->atttypid, att->atttypmod);
		col->attnum = att->attnum;
		columns = lappend(columns, col);
	}
	relation_close(rel, AccessShareLock);
	return columns;
}

/* JsonbText returns a string member of a JSON object, or NULL */
static char *
JsonbText(JsonbContainer *obj, const char *key)
{
	JsonbValue *v = getKeyJsonValueFromContainer(obj, key, strlen(key), NULL);

	if (v == NULL || v->type != jbvString)
		return NULL;
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/* ColumnsFromJson reads back the columns of a snapshot */
List *
ColumnsFromJson(Jsonb *columns)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	List	   *out = NIL;

	if (columns == NULL || !JB_ROOT_IS_ARRAY(columns))
		return NIL;
	it = JsonbIteratorInit(&columns->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		SourceColumn *col;
		JsonbValue *attnum;

		if (tok != WJB_ELEM || v.type != jbvBinary)
			continue;
		col = palloc0(sizeof(SourceColumn));
		col->name = JsonbText(v.val.binary.data, "name");
		col->type = JsonbText(v.val.binary.data, "type");
		attnum = getKeyJsonValueFromContainer(v.val.binary.data, "attnum", 6, NULL);
		if (attnum && attnum->type == jbvNumeric)
			col->attnum = DatumGetInt32(DirectFunctionCall1(numeric_int4,
															NumericGetDatum(attnum->val.numeric)));
		if (col->name && col->type)
			out = lappend(out, col);
	}
	return out;
}

/* NewChange makes a change of a kind between two columns (either may be NULL) */
static ColumnChange *
NewChange(ColumnChangeKind kind, SourceColumn *before, SourceColumn *now)
{
	ColumnChange *c = palloc0(sizeof(ColumnChange));

	c->kind = kind;
	c->column = now ? now->name : before->name;
	c->old_column = kind == COLUMN_RENAMED ? before->name : NULL;
	c->old_type = before ? before->type : NULL;
	c->new_type = now ? now->type : NULL;
	c->now = now;
	return c;
}

/*
 * RenamedFrom finds, among the columns that left (not yet matched), the one
 * a new column was renamed from: the same attnum and the same type.
 */
static SourceColumn *
RenamedFrom(List *before, bool *matched, SourceColumn *now)
{
	ListCell   *lc;

	foreach(lc, before)
	{
		SourceColumn *b = lfirst(lc);

		if (!matched[foreach_current_index(lc)] && b->attnum == now->attnum &&
			strcmp(b->type, now->type) == 0)
		{
			matched[foreach_current_index(lc)] = true;
			return b;
		}
	}
	return NULL;
}

/*
 * DiffColumns lists the changes from before to now: retyped, renamed and
 * added columns in the order of now, then the dropped ones.
 */
List *
DiffColumns(List *before, List *now)
{
	bool	   *matched = palloc0(sizeof(bool) * (list_length(before) + 1));
	List	   *changes = NIL;
	List	   *unmatched = NIL;
	ListCell   *lc;

	foreach(lc, now)
	{
		SourceColumn *n = lfirst(lc);
		SourceColumn *b = NULL;
		ListCell   *bc;

		foreach(bc, before)
			if (strcmp(((SourceColumn *) lfirst(bc))->name, n->name) == 0)
			{
				b = lfirst(bc);
				matched[foreach_current_index(bc)] = true;
				break;
			}
		if (b == NULL)
			unmatched = lappend(unmatched, n);
		else if (strcmp(b->type, n->type) != 0)
			changes = lappend(changes, NewChange(COLUMN_RETYPED, b, n));
	}
	foreach(lc, unmatched)
	{
		SourceColumn *n = lfirst(lc);
		SourceColumn *b = RenamedFrom(before, matched, n);

		changes = lappend(changes, NewChange(b ? COLUMN_RENAMED : COLUMN_ADDED, b, n));
	}
	foreach(lc, before)
		if (!matched[foreach_current_index(lc)])
			changes = lappend(changes, NewChange(COLUMN_DROPPED, lfirst(lc), NULL));
	return changes;
}

/* ColumnChangeName spells a kind of change as schema_history does */
const char *
ColumnChangeName(ColumnChangeKind kind)
{
	switch (kind)
	{
		case COLUMN_ADDED:
			return "added";
		case COLUMN_DROPPED:
			return "dropped";
		case COLUMN_RETYPED:
			return "retyped";
		case COLUMN_RENAMED:
			return "renamed";
	}
	return "?";
}

/*
 * ColumnChangesJson spells changes, with what was done about each and the
 * policy that decided it, as a run carries them to their writer
 * (recorders/schema_history.c): {"policy": p, "changes": [...]}.
 */
char *
ColumnChangesJson(List *changes, const char *policy)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	AppendJsonMember(&buf, "policy", policy, false);
	appendStringInfoString(&buf, ",\"changes\":[");
	foreach(lc, changes)
	{
		ColumnChange *c = lfirst(lc);

		appendStringInfoString(&buf, foreach_current_index(lc) > 0 ? ",{" : "{");
		AppendJsonMember(&buf, "column_name", c->column, false);
		AppendJsonMember(&buf, "old_column_name", c->old_column, true);
		AppendJsonMember(&buf, "change", ColumnChangeName(c->kind), true);
		AppendJsonMember(&buf, "old_type", c->old_type, true);
		AppendJsonMember(&buf, "new_type", c->new_type, true);
		AppendJsonMember(&buf, "action", c->action, true);
		appendStringInfoChar(&buf, '}');
	}
	appendStringInfoString(&buf, "]}");
	return buf.data;
}
