\ir common/preamble.sql
-- test/pgtap/masks.sql
--
-- Masks at load (docs/privacy.md): tokens are stable, join across tables
-- and differ per key version; several keys in one load statement each get
-- their own token; a failing load and a load after it token the same; masked
-- values never reach the target; the token functions refuse to work
-- outside a run.

SELECT plan(12);

CREATE SCHEMA m;
CREATE TABLE m.customers (id int PRIMARY KEY, email text, phone text, at bigint NOT NULL);
CREATE TABLE m.orders (order_id int PRIMARY KEY, email text, at bigint NOT NULL);
INSERT INTO m.customers SELECT g, 'user' || g || '@example.com', '+1 555 ' || lpad(g::text, 4, '0'), g
  FROM generate_series(1, 500) g;
INSERT INTO m.orders SELECT g, 'user' || (1 + g % 500) || '@example.com', g FROM generate_series(1, 800) g;
SELECT pipeline.create_key('default');
SELECT pipeline.create_key('other');

SELECT pipeline.create_pipeline('customers', 'm.customers', 'm.customers_dst', '{id}',
       incremental_column => 'at', masks => '{"email": "tokenize", "phone": {"method": "tokenize", "key": "other"}}');
SELECT pipeline.create_pipeline('orders', 'm.orders', 'm.orders_dst', '{order_id}',
       incremental_column => 'at', masks => '{"email": "tokenize"}');
SELECT pipeline.run('customers');
SELECT pipeline.run('orders');

SELECT is((SELECT count(*) FROM m.customers_dst WHERE email ~ '^tk1_[0-9a-f]{32}$' AND phone ~ '^tk1_[0-9a-f]{32}$'),
          500::bigint, 'every e-mail and phone became a version-1 token');
SELECT is((SELECT count(*) FROM m.customers_dst c JOIN m.customers s USING (id)
            WHERE c.email = s.email OR c.phone = s.phone OR c.email LIKE '%@%'),
          0::bigint, 'no raw value reached the target');
SELECT is((SELECT count(DISTINCT email) FROM m.customers_dst), 500::bigint,
          'distinct values give distinct tokens');
SELECT is((SELECT count(*) FROM m.orders_dst o JOIN m.customers_dst c ON c.email = o.email), 800::bigint,
          'tokens join across tables: every order finds its customer by token');
SELECT is((SELECT count(*) FROM m.customers_dst WHERE email = phone), 0::bigint,
          'two keys in one load statement give two kinds of tokens');

-- the same value under another key never gives the same token
SELECT is((SELECT count(*) FROM m.customers_dst c
             JOIN m.customers_dst d ON d.phone = c.email), 0::bigint,
          'the key named "other" tokens no e-mail like the default key');

-- rotation: a reset and a reload re-tokenises with version 2
SELECT pipeline.rotate_key('default');
TRUNCATE m.customers_dst;
SELECT pipeline.reset('customers');
SELECT pipeline.run('customers');
SELECT is((SELECT count(*) FROM m.customers_dst WHERE email ~ '^tk2_'), 500::bigint,
          'after rotate_key a reload tokens with version 2');
SELECT is((SELECT count(*) FROM m.customers_dst c JOIN m.orders_dst o ON o.email = c.email), 0::bigint,
          'version-2 tokens differ from version-1 ones (old tokens are told apart)');

-- a load that fails after tokenising some rows, then one that succeeds:
-- the tokens are those of a clean load
CREATE TABLE m.stage (id int PRIMARY KEY, email text, at bigint NOT NULL);
INSERT INTO m.stage SELECT g, 'user' || g || '@example.com', g FROM generate_series(1, 300) g;
CREATE TABLE m.stage_dst (id int PRIMARY KEY, email text CHECK (id <> 250), at bigint);
SELECT pipeline.create_pipeline('stage', 'm.stage', 'm.stage_dst', '{id}', incremental_column => 'at',
                                masks => '{"email": "tokenize"}');
SELECT throws_ok($$SELECT pipeline.run('stage')$$, '23514', NULL, 'a load that fails half way fails the run');
ALTER TABLE m.stage_dst DROP CONSTRAINT stage_dst_id_check;
SELECT pipeline.run('stage');
SELECT is((SELECT count(*) FROM m.stage_dst s JOIN m.orders_dst o ON o.email = s.email), 0::bigint,
          'the next load tokens with the current version (2), not the old one');
SELECT is((SELECT count(*) FROM m.stage_dst s JOIN m.customers_dst c ON c.email = s.email), 300::bigint,
          'and its tokens equal a clean load''s');

-- outside a run, the token functions refuse
SELECT throws_ok($$SELECT pipeline._mask_token('a@b.c', 'default', 1)$$, '42501', NULL,
                 'a token cannot be computed outside a run');

SELECT * FROM finish();
