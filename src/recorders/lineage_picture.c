/*-------------------------------------------------------------------------
 *
 * src/recorders/lineage_picture.c
 *
 * pipeline.lineage_graph(format, around): the lineage graph drawn as text,
 * Graphviz DOT or Mermaid, whole or only the part above and below one
 * relation. Tables are cylinders, views rounded boxes, missing relations
 * dotted; a pipeline's edge carries its name and the status of its last
 * run, coloured, and a view's edge is dashed. A relation that holds
 * personal data (pipeline.pii_columns: declared, or reached through
 * lineage) is drawn red, its label naming those columns. The graph and its
 * walks are lineage_graph.c's.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "utils/builtins.h"

#include "lineage_internal.h"

PIPELINE_FUNCTION(pipeline_lineage_graph);

/* DotEscaped appends the text of a DOT double-quoted string, escaped */
static void
DotEscaped(StringInfo buf, const char *s)
{
	for (; *s; s++)
	{
		if (*s == '"' || *s == '\\')
			appendStringInfoChar(buf, '\\');
		appendStringInfoChar(buf, *s);
	}
}

/* DotString appends a DOT double-quoted string */
static void
DotString(StringInfo buf, const char *s)
{
	appendStringInfoChar(buf, '"');
	DotEscaped(buf, s);
	appendStringInfoChar(buf, '"');
}

/*
 * MermaidString appends a Mermaid quoted label with the characters Mermaid
 * would read as markup (" < > &, and the # that starts its entity codes)
 * written as entity codes, so that a name is drawn as it is spelled
 */
static void
MermaidString(StringInfo buf, const char *s)
{
	appendStringInfoChar(buf, '"');
	for (; *s; s++)
	{
		if (*s == '"')
			appendStringInfoString(buf, "#quot;");
		else if (*s == '<')
			appendStringInfoString(buf, "#lt;");
		else if (*s == '>')
			appendStringInfoString(buf, "#gt;");
		else if (*s == '&')
			appendStringInfoString(buf, "#amp;");
		else if (*s == '#')
			appendStringInfoString(buf, "#35;");
		else if (*s == '\n')
			appendStringInfoString(buf, "<br/>");	/* a line break of the label */
		else
			appendStringInfoChar(buf, *s);
	}
	appendStringInfoChar(buf, '"');
}

/* StatusColor is the DOT colour of a pipeline edge, by its last run status */
static const char *
StatusColor(const char *status)
{
	if (status == NULL)
		return "gray50";
	if (strcmp(status, "succeeded") == 0)
		return "darkgreen";
	if (strcmp(status, "failed") == 0)
		return "red";
	if (strcmp(status, "running") == 0)
		return "blue";
	if (strcmp(status, "skipped") == 0)
		return "orange";
	return "gray50";
}

/* MermaidColor is the Mermaid colour of a pipeline edge, likewise */
static const char *
MermaidColor(const char *status)
{
	if (strcmp(status, "succeeded") == 0)
		return "#2e7d32";
	if (strcmp(status, "failed") == 0)
		return "#c62828";
	if (strcmp(status, "running") == 0)
		return "#1565c0";
	if (strcmp(status, "skipped") == 0)
		return "#ef6c00";
	return "#9e9e9e";
}

/* A node of the picture */
typedef struct PicNode
{
	char	   *name;
	char	   *kind;
	char	   *pii;			/* "PII: col (class), ..." or NULL */
} PicNode;

/*
 * MarkPersonalData gives each node that holds personal data the list of
 * its columns that do, as pipeline.pii_columns shows them to the caller
 * (masked ones marked so: a token is still personal data).
 */
static void
MarkPersonalData(List *nodes)
{
	ListCell   *lc;

	if (nodes == NIL)
		return;
	ExecCatalog("SELECT relation::text, 'PII: ' || string_agg(column_name || ' (' || class"
				"       || CASE WHEN masked THEN ', masked' ELSE '' END || ')', ', '"
				"       ORDER BY column_name)"
				"  FROM (SELECT DISTINCT relation, column_name, class, masked FROM pipeline.pii_columns) p"
				" GROUP BY relation",
				0, NULL, NULL, NULL, true);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		char	   *rel = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);

		foreach(lc, nodes)
		{
			PicNode    *n = lfirst(lc);

			if (strcmp(n->name, rel) == 0)
				n->pii = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
		}
	}
}

/* PicNodeCmp orders nodes by name, so that the picture is stable */
static int
PicNodeCmp(const ListCell *a, const ListCell *b)
{
	return strcmp(((PicNode *) lfirst(a))->name, ((PicNode *) lfirst(b))->name);
}

/* AddPicNode adds a node to the picture once */
static void
AddPicNode(List **nodes, const char *name, const char *kind)
{
	ListCell   *lc;
	PicNode    *n;

	foreach(lc, *nodes)
		if (strcmp(((PicNode *) lfirst(lc))->name, name) == 0)
			return;
	n = palloc0(sizeof(PicNode));
	n->name = pstrdup(name);
	n->kind = pstrdup(kind);
	*nodes = lappend(*nodes, n);
}

/* PicNodeIndex numbers a node for Mermaid, from 1 */
static int
PicNodeIndex(List *nodes, const char *name)
{
	ListCell   *lc;

	foreach(lc, nodes)
		if (strcmp(((PicNode *) lfirst(lc))->name, name) == 0)
			return foreach_current_index(lc) + 1;
	return 0;
}

/* IsTableKind tells relations drawn as tables from views */
static bool
IsTableKind(const char *kind)
{
	return strcmp(kind, "view") != 0 && strcmp(kind, "materialized view") != 0;
}

/*
 * pipeline.lineage_graph(format, around): the whole lineage graph, or the
 * part above and below one relation, as Graphviz DOT or Mermaid text; each
 * pipeline edge carries the pipeline's name and last run status.
 */
Datum
pipeline_lineage_graph(PG_FUNCTION_ARGS)
{
	char	   *format;
	List	   *edges;
	List	   *keep = NIL;
	List	   *nodes = NIL;
	ListCell   *lc;
	StringInfoData buf;
	bool		dot;
	int			nestlevel;
	int			link = 0;
	MemoryContext caller = CurrentMemoryContext;
	text	   *result;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("format must not be NULL"),
				 errhint("Pass 'dot' or 'mermaid'.")));
	format = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (pg_strcasecmp(format, "dot") == 0)
		dot = true;
	else if (pg_strcasecmp(format, "mermaid") == 0)
		dot = false;
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown graph format \"%s\"", format),
				 errhint("The formats are dot (Graphviz) and mermaid.")));

	SPI_connect();
	nestlevel = PinSearchPath();
	edges = LoadTableEdges();
	if (PG_ARGISNULL(1))
		keep = edges;
	else
	{
		char	   *around = LineageStartName(PG_GETARG_OID(1));
		List	   *up = WalkEdges(edges, around, false);
		List	   *down = WalkEdges(edges, around, true);

		/* an edge into the upstream closure, or out of the downstream one */
		foreach(lc, edges)
		{
			GraphEdge  *e = lfirst(lc);

			if (strcmp(e->to, around) == 0 || FindReached(up, e->to) ||
				strcmp(e->from, around) == 0 || FindReached(down, e->from))
				keep = lappend(keep, e);
		}
	}
	foreach(lc, keep)
	{
		GraphEdge  *e = lfirst(lc);

		AddPicNode(&nodes, e->from, e->from_kind);
		AddPicNode(&nodes, e->to, e->to_kind);
	}
	list_sort(nodes, PicNodeCmp);
	MarkPersonalData(nodes);

	initStringInfo(&buf);
	if (dot)
	{
		appendStringInfoString(&buf, "digraph lineage {\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n  edge [fontname=\"Helvetica\", fontsize=10];\n");
		foreach(lc, nodes)
		{
			PicNode    *n = lfirst(lc);

			appendStringInfoString(&buf, "  ");
			DotString(&buf, n->name);
			if (strcmp(n->kind, "missing") == 0)
				appendStringInfoString(&buf, " [shape=box, style=dotted");
			else if (IsTableKind(n->kind))
				appendStringInfoString(&buf, " [shape=cylinder");
			else
				appendStringInfoString(&buf, " [shape=box, style=rounded");
			if (n->pii)
			{
				/* its name, then the columns that hold personal data; red */
				appendStringInfoString(&buf, ", color=red, fontcolor=red, label=\"");
				DotEscaped(&buf, n->name);
				appendStringInfoString(&buf, "\\n");
				DotEscaped(&buf, n->pii);
				appendStringInfoChar(&buf, '"');
			}
			appendStringInfoString(&buf, "];\n");
		}
		foreach(lc, keep)
		{
			GraphEdge  *e = lfirst(lc);

			appendStringInfoString(&buf, "  ");
			DotString(&buf, e->from);
			appendStringInfoString(&buf, " -> ");
			DotString(&buf, e->to);
			if (e->pipeline)
			{
				appendStringInfoString(&buf, " [label=");
				DotString(&buf, psprintf("%s: %s", e->pipeline, e->status));
				appendStringInfo(&buf, ", color=%s, penwidth=2];\n", StatusColor(e->status));
			}
			else
				appendStringInfoString(&buf, " [style=dashed, color=gray50];\n");
		}
		appendStringInfoString(&buf, "}\n");
	}
	else
	{
		StringInfoData styles;

		initStringInfo(&styles);
		appendStringInfoString(&buf, "flowchart LR\n");
		foreach(lc, nodes)
		{
			PicNode    *n = lfirst(lc);
			int			i = foreach_current_index(lc) + 1;

			appendStringInfo(&buf, "  n%d", i);
			if (strcmp(n->kind, "missing") == 0)
			{
				appendStringInfoString(&buf, "[");
				MermaidString(&buf, psprintf("%s (missing)", n->name));
				appendStringInfoString(&buf, "]\n");
				/* drawn dotted, as in DOT */
				appendStringInfo(&styles, "  style n%d stroke-dasharray:3 3\n", i);
			}
			else
			{
				/* a relation that holds personal data: its columns below, red */
				const char *label = n->pii ? psprintf("%s\n%s", n->name, n->pii) : n->name;

				appendStringInfoString(&buf, IsTableKind(n->kind) ? "[(" : "(");
				MermaidString(&buf, label);
				appendStringInfoString(&buf, IsTableKind(n->kind) ? ")]\n" : ")\n");
				if (n->pii)
					appendStringInfo(&styles, "  style n%d stroke:#c62828,color:#c62828\n", i);
			}
		}
		foreach(lc, keep)
		{
			GraphEdge  *e = lfirst(lc);

			appendStringInfo(&buf, "  n%d ", PicNodeIndex(nodes, e->from));
			if (e->pipeline)
			{
				appendStringInfoString(&buf, "==>|");
				MermaidString(&buf, psprintf("%s: %s", e->pipeline, e->status));
				appendStringInfo(&buf, "| n%d\n", PicNodeIndex(nodes, e->to));
				appendStringInfo(&styles, "  linkStyle %d stroke:%s,stroke-width:2px\n",
								 link, MermaidColor(e->status));
			}
			else
				appendStringInfo(&buf, "-.-> n%d\n", PicNodeIndex(nodes, e->to));
			link++;
		}
		appendStringInfoString(&buf, styles.data);
	}
	UnpinSearchPath(nestlevel);
	/* the text is built in SPI's memory, which SPI_finish releases */
	{
		MemoryContext spi = MemoryContextSwitchTo(caller);

		result = cstring_to_text(buf.data);
		MemoryContextSwitchTo(spi);
	}
	SPI_finish();
	PG_RETURN_TEXT_P(result);
}
