-- bench/change10.sql
--
-- A new batch in which 10% of the rows changed: every tenth row gets a new
-- amount and status and a later updated_at, past the current watermark.
\set ON_ERROR_STOP on
UPDATE bench.src
   SET amount = amount + 1,
       status = CASE status WHEN 'delivered' THEN 'returned' ELSE 'delivered' END,
       updated_at = updated_at + interval '1 year'
 WHERE id % 10 = 0;
VACUUM ANALYZE bench.src;
