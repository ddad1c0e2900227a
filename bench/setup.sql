-- bench/setup.sql
--
-- The benchmark's data and contenders, on one server:
--   bench.src             the staging table: :rows rows, primary key on the
--                         unique key (id) and a btree index on the
--                         incremental column (updated_at), so neither side
--                         needs a de-duplication sort;
--   bench.engine_N        the targets that pipeline.run loads (pipelines
--                         bench_engine_N, registered with create_target =>
--                         false);
--   bench.hand_N          the targets that the hand-written MERGE loads
--                         (bench/hand_written.sql);
-- for N in 1..:reps. All targets are created the same way (LIKE bench.src
-- INCLUDING ALL: same columns, primary key and index), so both contenders
-- write into identical tables.
\set ON_ERROR_STOP on
SET client_min_messages = warning;

CREATE EXTENSION IF NOT EXISTS pg_pipeline;
DROP SCHEMA IF EXISTS bench CASCADE;
CREATE SCHEMA bench;

CREATE TABLE bench.src (
    id          bigint PRIMARY KEY,
    customer_id integer NOT NULL,
    status      text NOT NULL,
    amount      numeric(12,2) NOT NULL,
    note        text,
    ordered_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);

INSERT INTO bench.src
SELECT g,
       1 + (g * 7919) % 100000,
       (ARRAY['placed', 'paid', 'shipped', 'delivered'])[1 + g % 4],
       round(((g * 37) % 100000) / 100.0, 2),
       CASE WHEN g % 7 = 0 THEN NULL ELSE 'note ' || (g % 1000) END,
       timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second',
       timestamptz '2024-01-01 00:00:00+00' + g * interval '1 millisecond'
  FROM generate_series(1::bigint, :rows) AS g;

CREATE INDEX src_updated_at_idx ON bench.src (updated_at);
VACUUM ANALYZE bench.src;

-- The targets are left as freshly created tables, never analyzed, as a new
-- target is. (Analyzed while empty, a target makes the planner believe it
-- will stay empty, and the initial load MERGE of either contender then
-- picks a nested loop over the growing target: quadratic.)

SELECT format('CREATE TABLE bench.%I (LIKE bench.src INCLUDING ALL)', side || '_' || n)
  FROM generate_series(1, :reps) AS n, unnest(ARRAY['engine', 'hand']) AS side
\gexec

SELECT pipeline.create_pipeline(
           name               => 'bench_engine_' || n,
           source             => 'bench.src',
           target             => 'bench.engine_' || n,
           unique_key         => ARRAY['id'],
           incremental_column => 'updated_at',
           create_target      => false)
  FROM generate_series(1, :reps) AS n
\g /dev/null

\ir hand_written.sql

INSERT INTO bench.hand_watermark (target)
SELECT 'hand_' || n FROM generate_series(1, :reps) AS n;

ANALYZE bench.hand_watermark;
