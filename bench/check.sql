-- bench/check.sql
--
-- Both contenders must have produced the same tables: prints one line per
-- target pair, "engine_N = hand_N: t" when they hold exactly the same rows.
\set ON_ERROR_STOP on
SELECT format($q$SELECT 'engine_%1$s = hand_%1$s: ' ||
       (NOT EXISTS (SELECT * FROM bench.engine_%1$s EXCEPT ALL SELECT * FROM bench.hand_%1$s)
        AND NOT EXISTS (SELECT * FROM bench.hand_%1$s EXCEPT ALL SELECT * FROM bench.engine_%1$s)
        AND (SELECT count(*) FROM bench.engine_%1$s) = (SELECT count(*) FROM bench.src))::text$q$, n)
  FROM generate_series(1, :reps) AS n
\gexec
