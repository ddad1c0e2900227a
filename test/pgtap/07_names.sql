\ir common/preamble.sql
-- test/pgtap/07_names.sql
--
-- Names with capitals, spaces, quotes and reserved words in schemas, tables,
-- columns and pipeline names: registration, created targets, runs, deletes,
-- views, explain; unqualified targets follow the caller's search_path and
-- unquoted names fold to lower case.

SELECT plan(24);

CREATE SCHEMA "Raw Data";
CREATE SCHEMA "Clean ""Data""";
CREATE TABLE "Raw Data"."Order ""Items""" (
    "Item ID"    integer,
    "order"      bigint NOT NULL,          -- a reserved word as the incremental column
    "Unit Price" numeric,
    "Note's"     text,
    "Is Gone?"   boolean NOT NULL DEFAULT false,
    "select"     text
);

SELECT ok(pipeline.create_pipeline(
              'Items "Pipe" it''s here',
              '"Raw Data"."Order ""Items"""',
              '"Clean ""Data"""."Items ""Final"""',
              unique_key => ARRAY['Item ID'],
              incremental_column => 'order',
              delete_column => 'Is Gone?') > 0,
          'a pipeline with quoted names everywhere');
SELECT has_table('Clean "Data"', 'Items "Final"', 'the target is created with the exact quoted name');
SELECT columns_are('Clean "Data"', 'Items "Final"',
                   ARRAY['Item ID', 'order', 'Unit Price', 'Note''s', 'Is Gone?', 'select'],
                   'with the exact column names');
SELECT col_is_pk('Clean "Data"', 'Items "Final"', ARRAY['Item ID'], 'and the key as primary key');
SELECT results_eq($$SELECT source COLLATE "default", target COLLATE "default", unique_key::text[] COLLATE "default", incremental_column::text COLLATE "default", delete_column::text COLLATE "default"
                      FROM pipeline.pipelines WHERE name = 'Items "Pipe" it''s here'$$,
                  $$VALUES ('"Raw Data"."Order ""Items"""'::text, '"Clean ""Data"""."Items ""Final"""'::text,
                            ARRAY['Item ID'], 'order'::text, 'Is Gone?'::text)$$,
                  'pipelines shows the names quoted');

INSERT INTO "Raw Data"."Order ""Items""" VALUES
    (1, 1, 9.5, 'it''s', false, 'x'),
    (2, 2, 3, NULL, false, NULL),
    (2, 3, 4, 'two "quoted"', false, 'y'),
    (3, 4, 1, 'gone soon', false, 'z'),
    (NULL, 5, 0, 'no key', false, NULL);
SELECT pipeline.run('Items "Pipe" it''s here') AS r1 \gset
SELECT is(run_counts(:r1), 'succeeded read=5 ins=3 upd=0 del=0 unch=0 rej=1', 'first run');
INSERT INTO "Raw Data"."Order ""Items""" VALUES (3, 6, NULL, NULL, true, NULL), (1, 7, 9.5, 'it''s!', false, 'x');
SELECT pipeline.run('Items "Pipe" it''s here') AS r2 \gset
SELECT is(run_counts(:r2), 'succeeded read=2 ins=0 upd=1 del=1 unch=0 rej=0', 'second run: update and delete');
SELECT results_eq($$SELECT "Item ID", "order", "Unit Price", "Note's", "Is Gone?", "select"
                      FROM "Clean ""Data"""."Items ""Final""" ORDER BY "Item ID"$$,
                  $$VALUES (1, 7::bigint, 9.5::numeric, 'it''s!'::text, false, 'x'::text),
                           (2, 3, 4, 'two "quoted"', false, 'y')$$,
                  'target contents');
SELECT is((SELECT pipeline_name FROM pipeline.runs WHERE run_id = :r2), 'Items "Pipe" it''s here',
          'runs shows the pipeline name as given');
SELECT is((SELECT watermark FROM pipeline.pipelines WHERE name = 'Items "Pipe" it''s here'), '7',
          'watermark');
SELECT ok((SELECT bool_or(s LIKE '%"Raw Data"."Order ""Items"""%') FROM pipeline.explain('Items "Pipe" it''s here') AS e(s)),
          'explain quotes the source');
SELECT ok((SELECT bool_or(s LIKE '%"Clean ""Data"""."Items ""Final"""%') FROM pipeline.explain('Items "Pipe" it''s here') AS e(s)),
          'explain quotes the target');

-- pause/resume/reset/alter/drop by the quoted name
SELECT lives_ok($$SELECT pipeline.pause('Items "Pipe" it''s here')$$, 'pause by a quoted name');
SELECT lives_ok($$SELECT pipeline.resume('Items "Pipe" it''s here')$$, 'resume by a quoted name');
SELECT lives_ok($$SELECT pipeline.alter_pipeline('Items "Pipe" it''s here', new_name => 'Ren''amed "P"')$$,
                'rename to another quoted name');
SELECT is((SELECT count(*)::int FROM pipeline.pipelines WHERE name = 'Ren''amed "P"'), 1, 'renamed');

-- unqualified target: the caller's search_path; unquoted names fold to lower case
CREATE TABLE "Raw Data".plain (id integer, seq integer NOT NULL);
SET search_path = "Clean ""Data""", public;
SELECT ok(pipeline.create_pipeline('unqualified', '"Raw Data".plain', '"MixedCase"',
          unique_key => '{id}', incremental_column => 'seq') > 0,
          'an unqualified quoted target');
SELECT has_table('Clean "Data"', 'MixedCase', 'is created in the first schema of the search_path');
SELECT ok(pipeline.create_pipeline('folded', '"Raw Data".plain', 'Clean_Folded',
          unique_key => '{id}', incremental_column => 'seq') > 0,
          'an unquoted mixed-case target');
SELECT has_table('Clean "Data"', 'clean_folded', 'folds to lower case');
RESET search_path;
INSERT INTO "Raw Data".plain VALUES (1, 1);
SELECT pipeline.run('folded') AS r3 \gset
SELECT is(run_counts(:r3), 'succeeded read=1 ins=1 upd=0 del=0 unch=0 rej=0',
          'a run does not depend on the caller''s search_path');
SELECT is((SELECT count(*)::int FROM "Clean ""Data""".clean_folded), 1, 'the folded target is loaded');

SELECT lives_ok($$SELECT pipeline.drop_pipeline('Ren''amed "P"', drop_target => true)$$,
                'drop with drop_target by a quoted name');
SELECT hasnt_table('Clean "Data"', 'Items "Final"', 'the quoted target is dropped');

SELECT * FROM finish();
