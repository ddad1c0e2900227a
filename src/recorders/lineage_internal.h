/*-------------------------------------------------------------------------
 *
 * src/recorders/lineage_internal.h
 *
 * What the lineage files of src/recorders/ share among themselves, and
 * nobody else includes: the edges one pipeline's analysis finds
 * (lineage_analysis.c fills an EdgeSet, lineage_store.c stores it; its
 * ResolveExpr also serves lineage_indirect.c), how
 * lineage names relations and passes lists to SPI as arrays
 * (lineage_store.c), and the graph in memory that the impact functions and
 * the pictures walk (lineage_graph.c, lineage_picture.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_RECORDERS_LINEAGE_INTERNAL_H
#define PIPELINE_RECORDERS_LINEAGE_INTERNAL_H

#include "pipeline/recorders/lineage.h"

/* The edges found for one pipeline */
typedef struct EdgeSet
{
	List	   *views_done;		/* OIDs of views analysed */
	/* table edges: parallel lists */
	List	   *t_kind;
	List	   *t_from;
	List	   *t_to;
	List	   *t_from_name;	/* for missing relations */
	List	   *t_to_name;
	/* column edges */
	List	   *c_kind;
	List	   *c_from;
	List	   *c_from_col;
	List	   *c_to;
	List	   *c_to_col;
	List	   *c_transformed;	/* int list */
	List	   *c_how;
} EdgeSet;

/* An edge of the graph in memory, between relations or between columns */
typedef struct GraphEdge
{
	char	   *from;			/* relation, or relation.column */
	char	   *to;
	char	   *from_rel;
	char	   *to_rel;
	char	   *from_kind;
	char	   *to_kind;
	char	   *pipeline;		/* NULL for a view edge */
	char	   *status;			/* last run status of the pipeline */
	char	   *from_col;
	char	   *to_col;
	bool		transformed;
	char	   *how;
} GraphEdge;

/* A node reached by a walk */
typedef struct Reached
{
	char	   *key;
	int			depth;
	List	   *path;			/* char * keys from the start */
	bool		transformed;	/* along the path */
	GraphEdge  *via;
} Reached;

#define MAX_RESOLVE_DEPTH 64

/*
 * A column a value comes from, and how it gets there; column "*" stands for
 * the rows of the relation (a count(*))
 */
typedef struct ColSource
{
	Oid			relid;
	char	   *column;
	bool		transformed;
	const char *how;			/* copy, cast, aggregate, condition, ... */
} ColSource;

/* lineage_analysis.c: the edges below a relation, from view query trees */
extern void AddTableEdge(EdgeSet *es, const char *kind, Oid from, const char *from_name,
						 Oid to, const char *to_name);
extern void AddColumnEdge(EdgeSet *es, const char *kind, Oid from, const char *from_col,
						  Oid to, const char *to_col, bool transformed, const char *how);
extern void AnalyzeRelation(Oid relid, EdgeSet *es, int depth);
extern void ResolveExpr(Node *expr, List *stack, bool transformed, const char *how,
						List **out, int depth);
extern void ResolveQueryColumn(Query *query, AttrNumber resno, List *stack,
							   bool transformed, const char *how, List **out, int depth);

extern void AddColumnSourceEdges(EdgeSet *es, const char *kind, List *sources, Oid to,
								 const char *to_col);

/* lineage_rollup.c: the column edges of a rollup */
extern void AddRollupColumnEdges(EdgeSet *es, PipelineDef *def, Oid source, Oid target);

/* lineage_store.c: relation names as lineage stores them, lists as arrays */
extern const char *LineageRelationKind(Oid relid);
extern char *LineageRelationName(Oid relid);
extern Datum OidListArray(List *l);
extern Datum TextListArray(List *l);

/* lineage_graph.c: the graph in memory and its walks */
extern List *LoadTableEdges(void);
extern Reached *FindReached(List *reached, const char *key);
extern List *WalkEdges(List *edges, const char *start, bool forward);
extern char *LineageStartName(Oid relid);

#endif							/* PIPELINE_RECORDERS_LINEAGE_INTERNAL_H */
