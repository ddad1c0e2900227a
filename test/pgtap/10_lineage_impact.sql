\ir common/preamble.sql
-- test/pgtap/10_lineage_impact.sql: impact analysis on a graph of twelve
-- pipelines (a fan-out, a fan-in, a diamond, views of views), checked
-- against the graph as built; column lineage of expressions; the pictures
-- list every pipeline with its last run status.
BEGIN;
SELECT plan(25);

CREATE SCHEMA g;
-- two sources
CREATE TABLE g.s1 (id int PRIMARY KEY, a numeric, b text, seq bigserial);
CREATE TABLE g.s2 (id int PRIMARY KEY, c numeric, seq bigserial);
-- stage 1: t1 <- s1, t2 <- s2 (through a view), t3 <- s1 join s2 (view of a view)
CREATE VIEW g.v2 AS SELECT id, c * 100 AS c100, seq FROM g.s2;
CREATE VIEW g.v3a AS SELECT s1.id, s1.a, v2.c100, s1.seq FROM g.s1 JOIN g.v2 USING (id);
CREATE VIEW g.v3 AS SELECT id, a + c100 AS total, seq FROM g.v3a;
SELECT pipeline.create_pipeline('p1', 'g.s1', 'g.t1', unique_key => ARRAY['id'], incremental_column => 'seq');
SELECT pipeline.create_pipeline('p2', 'g.v2', 'g.t2', unique_key => ARRAY['id'], incremental_column => 'seq');
SELECT pipeline.create_pipeline('p3', 'g.v3', 'g.t3', unique_key => ARRAY['id'], incremental_column => 'seq');
-- stage 2: a chain t1 -> t4 -> t5 -> t6 -> t7
CREATE VIEW g.v4 AS SELECT id, upper(b) AS b, a::int AS a_int, seq FROM g.t1;
SELECT pipeline.create_pipeline('p4', 'g.v4', 'g.t4', unique_key => ARRAY['id'], incremental_column => 'seq');
SELECT pipeline.create_pipeline('p5', 'g.t4', 'g.t5', unique_key => ARRAY['id'], incremental_column => 'seq');
SELECT pipeline.create_pipeline('p6', 'g.t5', 'g.t6', unique_key => ARRAY['id'], incremental_column => 'seq');
SELECT pipeline.create_pipeline('p7', 'g.t6', 'g.t7', unique_key => ARRAY['id'], incremental_column => 'seq');
-- a diamond: t8 <- t2, t9 <- t2, t10 <- t8 + t9
SELECT pipeline.create_pipeline('p8', 'g.t2', 'g.t8', unique_key => ARRAY['id'], incremental_column => 'seq');
SELECT pipeline.create_pipeline('p9', 'g.t2', 'g.t9', unique_key => ARRAY['id'], incremental_column => 'seq');
CREATE VIEW g.v10 AS SELECT t8.id, t8.c100 + t9.c100 AS both_c, greatest(t8.seq, t9.seq) AS seq
  FROM g.t8 JOIN g.t9 USING (id);
SELECT pipeline.create_pipeline('p10', 'g.v10', 'g.t10', unique_key => ARRAY['id'], incremental_column => 'seq');
-- a fan-in: t11 aggregates t3, t7 and t10
CREATE VIEW g.v11 AS
SELECT 1 AS k, (SELECT sum(total) FROM g.t3) AS s3, (SELECT count(*) FROM g.t7) AS n7,
       (SELECT max(both_c) FROM g.t10) AS m10;
SELECT pipeline.create_pipeline('p11', 'g.v11', 'g.t11', unique_key => ARRAY['k'], mode => 'full');
-- and one unrelated pipeline
CREATE TABLE g.lonely (id int PRIMARY KEY, x int);
SELECT pipeline.create_pipeline('p12', 'g.lonely', 'g.lonely_copy', unique_key => ARRAY['id'], mode => 'full');

SELECT is((SELECT count(*)::int FROM pipeline.pipelines WHERE name ~ '^p[0-9]+$'), 12, 'twelve pipelines');

-- Downstream of s1: everything fed by it, with the pipeline that loads each table
SELECT set_eq(
  $$SELECT relation FROM pipeline.downstream('g.s1')$$,
  $$VALUES ('g.t1'), ('g.v4'), ('g.t4'), ('g.t5'), ('g.t6'), ('g.t7'), ('g.v3a'), ('g.v3'),
           ('g.t3'), ('g.v11'), ('g.t11')$$,
  'downstream(s1): the chain, the join and the fan-in');
SELECT is((SELECT depth FROM pipeline.downstream('g.s1') WHERE relation = 'g.t7'), 6,
          't7 is six edges below s1');
SELECT is((SELECT path FROM pipeline.downstream('g.s1') WHERE relation = 'g.t7'),
          ARRAY['g.s1', 'g.t1', 'g.v4', 'g.t4', 'g.t5', 'g.t6', 'g.t7'], 'with its path');
SELECT is((SELECT pipeline FROM pipeline.downstream('g.s1') WHERE relation = 'g.t7'), 'p7',
          'and the pipeline that loads it');
SELECT is((SELECT min(depth) FROM pipeline.downstream('g.s1') WHERE relation = 'g.t11'), 5,
          't11 at its shortest distance, through the join');
-- Downstream of s2: the diamond is reached once per edge into t10's view
SELECT set_eq(
  $$SELECT relation FROM pipeline.downstream('g.s2')$$,
  $$VALUES ('g.v2'), ('g.t2'), ('g.t8'), ('g.t9'), ('g.v10'), ('g.t10'), ('g.v3a'), ('g.v3'),
           ('g.t3'), ('g.v11'), ('g.t11')$$,
  'downstream(s2): the diamond and the join');
SELECT is((SELECT count(*)::int FROM pipeline.downstream('g.s2') WHERE relation = 'g.v10'), 2,
          'v10 is reached by both sides of the diamond, at the same depth');
SELECT is((SELECT count(*)::int FROM pipeline.downstream('g.lonely')), 1, 'the unrelated pipeline has one table below it');
-- Upstream of t11: every relation above, sources at the top
SELECT set_eq(
  $$SELECT relation FROM pipeline.upstream('g.t11')$$,
  $$VALUES ('g.v11'), ('g.t3'), ('g.t7'), ('g.t10'), ('g.v3'), ('g.v3a'), ('g.s1'), ('g.v2'),
           ('g.s2'), ('g.t6'), ('g.t5'), ('g.t4'), ('g.v4'), ('g.t1'), ('g.v10'), ('g.t8'),
           ('g.t9'), ('g.t2')$$,
  'upstream(t11): all eighteen relations above it');
SELECT set_eq(
  $$SELECT DISTINCT pipeline FROM pipeline.upstream('g.t11') WHERE pipeline IS NOT NULL$$,
  $$VALUES ('p1'), ('p2'), ('p3'), ('p4'), ('p5'), ('p6'), ('p7'), ('p8'), ('p9'), ('p10'), ('p11')$$,
  'upstream(t11) names every pipeline above it');
-- Symmetry: X is upstream of Y exactly when Y is downstream of X
SELECT is((SELECT count(*)::int FROM pipeline.pipelines p,
                  LATERAL pipeline.downstream(p.source::regclass) d
            WHERE p.name ~ '^p[0-9]+$'
              AND NOT EXISTS (SELECT 1 FROM pipeline.upstream(d.relation::regclass) u
                               WHERE u.relation = p.source)), 0,
          'every downstream relation has the source upstream of it');

-- Column lineage of expressions
SELECT set_eq(
  $$SELECT relation || '.' || column_name, transformation FROM pipeline.column_upstream('g.t3', 'total')$$,
  $$VALUES ('g.v3.total', 'copied'), ('g.v3a.a', 'transformed'), ('g.v3a.c100', 'transformed'),
           ('g.s1.a', 'transformed'), ('g.v2.c100', 'transformed'), ('g.s2.c', 'transformed')$$,
  'total = a + c * 100: every input column, transformed');
SELECT is((SELECT how FROM pipeline.column_upstream('g.t3', 'total') WHERE relation = 'g.v3a'
            AND column_name = 'a'), 'expression', 'an operator is an expression');
SELECT is((SELECT how FROM pipeline.column_lineage WHERE to_relation = 'g.v4' AND to_column = 'a_int'),
          'cast', 'a cast is a cast');
SELECT is((SELECT how FROM pipeline.column_lineage WHERE to_relation = 'g.v4' AND to_column = 'b'),
          'function upper', 'a function names itself');
SELECT is((SELECT how FROM pipeline.column_lineage WHERE to_relation = 'g.v10' AND to_column = 'seq'
            AND from_relation = 'g.t8'), 'greatest/least', 'GREATEST');
SELECT set_eq(
  $$SELECT from_relation, from_column, how FROM pipeline.column_lineage WHERE to_relation = 'g.v11' AND to_column = 's3'$$,
  $$VALUES ('g.t3', 'total', 'aggregate')$$,
  'a scalar subquery with an aggregate: the aggregate, the strongest kind on the way');
SELECT is_empty($$SELECT 1 FROM pipeline.column_lineage WHERE to_relation = 'g.v11' AND to_column = 'k'$$,
                'a constant has no input column');
SELECT set_eq(
  $$SELECT relation, column_name FROM pipeline.column_downstream('g.s2', 'c') WHERE relation LIKE 'g.t%'$$,
  $$VALUES ('g.t2', 'c100'), ('g.t3', 'total'), ('g.t8', 'c100'), ('g.t9', 'c100'), ('g.t10', 'both_c'),
           ('g.t11', 's3'), ('g.t11', 'm10')$$,
  'column_downstream(s2.c): every target column computed from it');
SELECT is((SELECT bool_and(transformation = 'copied') FROM pipeline.column_downstream('g.s1', 'b')
            WHERE relation IN ('g.t1')), true, 'a loaded column is copied');

-- The pictures: every pipeline edge, with its last run status
SELECT pipeline.run('p1');
SELECT is((SELECT count(*)::int FROM regexp_matches(pipeline.lineage_graph('dot'), '\[label="p[0-9]+: ', 'g')), 12,
          'DOT: one labelled edge per pipeline');
SELECT ok(pipeline.lineage_graph('dot') LIKE '%"g.s1" -> "g.t1" [label="p1: succeeded", color=darkgreen%',
          'DOT: p1 shows its last run succeeded');
SELECT is((SELECT count(*)::int FROM regexp_matches(pipeline.lineage_graph('mermaid'), '==>\|"p[0-9]+: ', 'g')), 12,
          'Mermaid: one labelled edge per pipeline');
SELECT is((SELECT count(*)::int FROM regexp_matches(pipeline.lineage_graph('mermaid', 'g.t5'), '==>', 'g')), 6,
          'around t5: p1, p4, p5, p6, p7 and p11 (below t7) only');

SELECT * FROM finish();
ROLLBACK;
