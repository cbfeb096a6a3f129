-- Contract prices (docs/pricing.md, "Price books and discounts"): books,
-- their versions and discounts, assignments, which price applies, and what
-- requests record of it.
SET client_min_messages = warning;

-- Rows of the contract price tables and of the pb- requests: refusals write nothing.
CREATE FUNCTION pg_temp.rows() RETURNS text LANGUAGE sql AS $$
    SELECT format('books=%s prices=%s discounts=%s assignments=%s requests=%s',
                  (SELECT count(*) FROM billing.price_books), (SELECT count(*) FROM billing.prices),
                  (SELECT count(*) FROM billing.discounts),
                  (SELECT count(*) FROM billing.price_book_assignments),
                  (SELECT count(*) FROM billing.requests WHERE model LIKE 'pb-%'))
$$;
-- regress.try with the ids of accounts, discounts and requests masked
-- (other tests make some before this one).
CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE sql AS $$
    SELECT regexp_replace(regress.try(sql), '(account|discount|request) -?\d+', '\1 N', 'g') $$;
-- An estimate or a result without its volatile parts.
CREATE FUNCTION pg_temp.brief(e jsonb) RETURNS text LANGUAGE sql AS $$
    SELECT format('%s %s book=%s total=%s %s', e ->> 'model', e ->> 'provider', e ->> 'price_book',
                  e ->> 'total_cost_micros',
                  (SELECT string_agg(format('[%s %s x%s=%s%s]', c ->> 'metric', c ->> 'unit_price',
                                            c ->> 'billable_quantity', c ->> 'total_cost',
                                            CASE WHEN c ? 'multiplier_ppm' THEN
                                                format(' ppm=%s list=%s', c ->> 'multiplier_ppm',
                                                       c ->> 'list_total_cost_micros') ELSE '' END), ' ')
                     FROM jsonb_array_elements(e -> 'components') c))
$$;

-- pb-img: acme (default) and blue, list 40000 an image since yesterday;
-- pb-vid: one provider, 30000 a second.
SELECT billing.set_model('pb-img', 'image', 'acme', 'Acme'),
       billing.set_model('pb-img', 'image', 'blue', 'Blue', NULL, false),
       billing.set_model('pb-vid', 'video', 'vidco', 'VidCo');
SELECT billing.set_price('pb-img', '[{"type":"output","metric":"image","unit_price_micros":40000}]',
                         NULL, now() - interval '1 day') > 0 AS list_img,
       billing.set_price('pb-vid', '[{"type":"output","metric":"second","unit_price_micros":30000}]',
                         NULL, now() - interval '1 day') > 0 AS list_vid;
SELECT billing.create_account('pb-list') AS list_acct, billing.create_account('pb-gold') AS gold_acct,
       billing.create_account('pb-off') AS off_acct \gset
SELECT billing.add_funds(a, 100000000) > 0 AS funded FROM unnest(ARRAY[:list_acct, :gold_acct, :off_acct]) a;

-- Books: 1 to 64 characters, unique.
SELECT billing.create_price_book('gold', 'Gold customers'), billing.create_price_book('silver');
SELECT pg_temp.rows() AS before \gset
SELECT b, pg_temp.try(format('SELECT billing.create_price_book(%L)', b))
  FROM unnest(ARRAY['gold', '', repeat('x', 65), NULL]) b;
SELECT pg_temp.rows() = :'before' AS nothing_written, length(repeat('x', 64)) AS longest_name,
       pg_temp.try(format('SELECT billing.create_price_book(%L)', repeat('x', 64))) AS sixty_four;

-- Versions of a book: set_price's rules, 23505 at the same key.
SELECT billing.set_price('pb-img', '[{"type":"output","metric":"image","unit_price_micros":35000}]',
                         'blue', now() - interval '1 hour', 'gold') AS gold_blue \gset
SELECT pg_temp.rows() AS before \gset
SELECT pg_temp.try($$SELECT billing.set_price('pb-img', '[{"type":"output","metric":"image","unit_price_micros":1}]', NULL, now(), 'bronze')$$) AS unknown_book,
       pg_temp.try(format($$SELECT billing.set_price('pb-img', '[{"type":"output","metric":"image","unit_price_micros":1}]', 'blue', %L, 'gold')$$,
                          (SELECT effective_from FROM billing.prices WHERE price_id = :gold_blue))) AS same_key,
       pg_temp.try($$SELECT billing.set_price('pb-img', '[{"type":"output","metric":"second","unit_price_micros":1}]', NULL, now(), 'gold')$$) AS bad_components,
       pg_temp.try($$SELECT billing.set_price('pb-img', '[{"type":"output","metric":"image","unit_price_micros":1}]', 'nobody', now(), 'gold')$$) AS no_route;
SELECT pg_temp.rows() = :'before' AS nothing_written;

-- Discounts: the refusals, each writing nothing.
SELECT d AS call, pg_temp.try('SELECT billing.set_discount(' || d || ')') AS refused
  FROM unnest(ARRAY[
      'NULL, 900000', $$'gold', NULL$$, $$'gold', 900000, NULL, NULL, NULL$$,
      $$'gold', -1$$, $$'gold', 10000001$$,
      $$'gold', 900000, NULL, NULL, now(), now()$$,
      $$'gold', 900000, NULL, NULL, now(), 'infinity'$$,
      $$'gold', 900000, NULL, 'acme'$$,
      $$'bronze', 900000$$, $$'gold', 900000, 'pb-none'$$, $$'gold', 900000, 'pb-img', 'nobody'$$]) d;
SELECT pg_temp.rows() = :'before' AS nothing_written;
-- gold: 10 % off every model from an hour ago, 20 % off pb-img from now
-- for a day; 25 % off pb-img at acme. silver: a book-wide 50 % off.
SELECT billing.set_discount('gold', 900000, NULL, NULL, now() - interval '1 hour') AS gold_all,
       billing.set_discount('gold', 800000, 'pb-img', NULL, now() - interval '1 hour',
                            now() + interval '1 day') AS gold_img,
       billing.set_discount('gold', 750000, 'pb-img', 'acme', now() - interval '1 hour') AS gold_img_acme,
       billing.set_discount('silver', 500000) AS silver_all \gset
-- overlaps of one target (NULLs equal) are refused; a later one or another target is not
SELECT pg_temp.rows() AS before \gset
SELECT pg_temp.try($$SELECT billing.set_discount('gold', 1, NULL, NULL, now() + interval '1 year')$$) AS overlap_open_end,
       pg_temp.try($$SELECT billing.set_discount('gold', 1, 'pb-img', NULL, now() - interval '2 hours', now() - interval '30 minutes')$$) AS overlap_start;
SELECT pg_temp.rows() = :'before' AS nothing_written;
SELECT billing.set_discount('gold', 700000, 'pb-img', NULL, now() + interval '1 day',
                            now() + interval '2 days') > 0 AS after_it,
       billing.set_discount('gold', 1000000, 'pb-vid', 'vidco', now() + interval '1 day') > 0 AS other_target;

-- Assignments: not before now(), of an active account, to a known book.
UPDATE billing.accounts SET active = false WHERE account_id = :off_acct;
SELECT pg_temp.rows() AS before \gset
SELECT pg_temp.try(format('SELECT billing.assign_price_book(%s, ''gold'', now() - interval ''1 second'')', :gold_acct)) AS in_the_past,
       pg_temp.try(format('SELECT billing.assign_price_book(%s, ''bronze'')', :gold_acct)) AS unknown_book,
       pg_temp.try('SELECT billing.assign_price_book(-1, ''gold'')') AS unknown_account,
       pg_temp.try(format('SELECT billing.assign_price_book(%s, ''gold'')', :off_acct)) AS disabled_account,
       pg_temp.try('SELECT billing.assign_price_book(NULL, ''gold'')') AS null_account,
       pg_temp.try(format('SELECT billing.assign_price_book(%s, ''gold'', NULL)', :gold_acct)) AS null_from,
       pg_temp.try(format('SELECT billing.assign_price_book(%s, NULL)', :gold_acct)) AS the_list_again_writes_nothing;
SELECT pg_temp.rows() = :'before' AS nothing_written;
SELECT billing.assign_price_book(:gold_acct, 'gold');
-- the book then in force writes nothing; a second one at the same time is 23505
SELECT pg_temp.rows() AS before \gset
SELECT now() + interval '1 day' AS tomorrow \gset
SELECT pg_temp.try(format('SELECT billing.assign_price_book(%s, ''gold'', now() + interval ''1 hour'')', :gold_acct)) AS same_book,
       billing.assign_price_book(:gold_acct, 'silver', :'tomorrow') AS scheduled;
SELECT pg_temp.try(format('SELECT billing.assign_price_book(%s, ''gold'', %L)', :gold_acct, :'tomorrow')) AS same_time;
SELECT count(*) AS assignments FROM billing.price_book_assignments WHERE account_id = :gold_acct;

-- Which price applies. The list account and the 2-argument calls: the list.
SELECT pg_temp.brief(billing.estimate('pb-img', '{"n":3}', :list_acct)) AS list_account,
       pg_temp.brief(billing.estimate('pb-img', '{"n":3}')) AS two_args,
       billing.effective_cost('pb-img', regress.images(3), 'blue') ->> 'total_cost_micros' AS effective_cost;
SELECT model, provider, components ->> 0 AS list_components FROM billing.catalog
 WHERE model LIKE 'pb-%' ORDER BY 1, 2;
-- gold: pb-img at acme by the route's discount (3) (most specific of
-- three), at blue by the book's version (1); pb-vid by the book-wide one.
SELECT pg_temp.brief(billing.estimate('pb-img', '{"n":3}', :gold_acct)) AS gold_img,
       pg_temp.brief(billing.estimate('pb-vid', '{"duration_seconds":7.5}', :gold_acct)) AS gold_vid;
SELECT model, provider, is_default, price_book, price_id = :gold_blue AS gold_version,
       discount_id = ANY(ARRAY[:gold_all, :gold_img, :gold_img_acme]::bigint[]) AS gold_discount,
       multiplier_ppm, currency, components ->> 0 AS components
  FROM billing.account_catalog(:gold_acct) WHERE model LIKE 'pb-%';
-- (2): a book version for every provider gives way to the route's own (1)
SELECT billing.set_price('pb-vid', '[{"type":"output","metric":"second","unit_price_micros":20000}]',
                         NULL, now() - interval '1 minute', 'gold') > 0 AS gold_vid_version;
SELECT pg_temp.brief(billing.estimate('pb-vid', '{"duration_seconds":7.5}', :gold_acct)) AS book_version_any_provider;
-- half-up to the micro: 5 x 0.9 = 4.5 -> 5; 128-bit products: 9e18 x 0.5
SELECT billing.set_model('pb-tiny', 'image', 'acme', 'Acme'), billing.set_model('pb-huge', 'image', 'acme', 'Acme');
SELECT billing.set_price('pb-tiny', '[{"type":"output","metric":"image","unit_price_micros":5}]', NULL, now() - interval '1 day') > 0,
       billing.set_price('pb-huge', '[{"type":"output","metric":"image","unit_price_micros":9000000000000000000}]', NULL, now() - interval '1 day') > 0,
       billing.set_discount('silver', 900000, 'pb-tiny') > 0;
SELECT billing.create_account('pb-silver') AS silver_acct \gset
SELECT billing.assign_price_book(:silver_acct, 'silver');
SELECT pg_temp.brief(billing.estimate('pb-tiny', '{"n":1}', :silver_acct)) AS half_up,
       pg_temp.brief(billing.estimate('pb-huge', '{"n":1}', :silver_acct)) AS wide_product,
       pg_temp.try('SELECT billing.estimate(''pb-huge'', ''{"n":3}'', ' || :silver_acct || ')') AS overflow;
-- estimate: app-tier refusals
SELECT pg_temp.try('SELECT billing.estimate(''pb-img'', ''{}'', -1)') AS unknown_account,
       pg_temp.try(format('SELECT billing.estimate(''pb-img'', ''{}'', %s)', :off_acct)) AS disabled,
       pg_temp.try('SELECT billing.estimate(''pb-img'', ''{}'', NULL::bigint)') AS null_account,
       pg_temp.try(format('SELECT billing.estimate(''pb-none'', ''{}'', %s)', :gold_acct)) AS unknown_model,
       pg_temp.try('SELECT * FROM billing.account_catalog(-1)') AS catalog_unknown;

-- Work in flight: begin_request and charge record the book, the version
-- and the discount; an estimate of the outputs that settle is the charge.
SELECT billing.begin_request(:gold_acct, 'pb-img', '{"n":2}') ->> 'request_id' AS open_acme \gset
SELECT billing.begin_request(:gold_acct, 'pb-img', '{"n":2}') ->> 'request_id' AS open_blue \gset
SELECT billing.charge(:gold_acct, 'pb-img', '{"n":3}', regress.images(3)) ->> 'cost_micros' AS charged,
       billing.estimate('pb-img', '{"n":3}', :gold_acct) ->> 'total_cost_micros' AS estimated;
SELECT billing.charge(:gold_acct, 'pb-img', '{"n":1}', regress.images(1), '{"provider":"blue"}', 'pb-key') ->> 'cost_micros' AS charged_blue;
SELECT billing.charge(:list_acct, 'pb-img', '{"n":1}', regress.images(1)) ->> 'cost_micros' AS charged_list;
-- then the route's discount ends and a backdated version appears: nothing
-- admitted changes
SELECT billing.end_discount(:gold_img_acme);
-- (the route's discount ended: the model's applies to new work)
SELECT pg_temp.brief(billing.estimate('pb-img', '{"n":3}', :gold_acct)) AS model_discount;
SELECT billing.set_price('pb-img', '[{"type":"output","metric":"image","unit_price_micros":1}]',
                         'acme', now() - interval '2 hours', 'gold') > 0 AS backdated;
SELECT billing.complete_request(:open_acme, regress.images(2)) ->> 'cost_micros' AS settled_acme,
       billing.complete_request(:open_blue, regress.images(2), '{"provider":"blue"}') ->> 'cost_micros' AS settled_blue;
SELECT model, provider, cost_estimate_micros, cost_micros, price_book,
       price_id = :gold_blue AS gold_version, discount_id = :gold_img_acme AS acme_discount,
       routing ->> 'provider' AS executed
  FROM billing.requests WHERE model = 'pb-img' ORDER BY request_id;
-- and new work is priced by the backdated version
SELECT pg_temp.brief(billing.estimate('pb-img', '{"n":3}', :gold_acct)) AS now_gold_img;

-- end_discount: not into the past, never later; unknown: PB404
SELECT pg_temp.rows() AS before \gset
SELECT pg_temp.try(format('SELECT billing.end_discount(%s, now() - interval ''1 second'')', :gold_all)) AS past,
       pg_temp.try(format('SELECT billing.end_discount(%s, now() + interval ''2 days'')', :gold_img)) AS later,
       pg_temp.try(format('SELECT billing.end_discount(%s, NULL)', :gold_img)) AS null_end,
       pg_temp.try('SELECT billing.end_discount(-1)') AS unknown;
SELECT pg_temp.rows() = :'before' AS nothing_written;
SELECT now() + interval '1 hour' AS in_an_hour \gset
SELECT billing.end_discount(:gold_img, :'in_an_hour');
SELECT effective_until = :'in_an_hour' AS ends FROM billing.discounts WHERE discount_id = :gold_img;

-- Nothing in force is edited or deleted, and no book that is named (PB409);
-- what is not in force yet may be deleted. A request's book and discount
-- are frozen like its price version.
SELECT billing.begin_request(:list_acct, 'pb-img', '{"n":1}') ->> 'request_id' AS open_list \gset
SELECT pg_temp.try(format('UPDATE billing.discounts SET multiplier_ppm = 1 WHERE discount_id = %s', :gold_all)) AS edit_discount,
       pg_temp.try(format('DELETE FROM billing.discounts WHERE discount_id = %s', :gold_all)) AS delete_discount,
       pg_temp.try(format('UPDATE billing.discounts SET effective_until = now() - interval ''1 day'' WHERE discount_id = %s', :gold_all)) AS end_in_past,
       pg_temp.try(format('DELETE FROM billing.price_book_assignments WHERE account_id = %s AND price_book = ''gold''', :gold_acct)) AS delete_assignment,
       pg_temp.try(format('UPDATE billing.price_book_assignments SET price_book = ''silver'' WHERE account_id = %s', :gold_acct)) AS edit_assignment,
       pg_temp.try('DELETE FROM billing.price_books WHERE price_book = ''gold''') AS delete_book,
       pg_temp.try('UPDATE billing.price_books SET price_book = ''golden'' WHERE price_book = ''gold''') AS rename_book,
       pg_temp.try('TRUNCATE billing.discounts') AS truncate,
       pg_temp.try(format('UPDATE billing.prices SET components = ''[]'' WHERE price_id = %s', :gold_blue)) AS edit_version,
       pg_temp.try(format('UPDATE billing.requests SET price_book = ''gold'' WHERE request_id = %s', :open_list)) AS edit_book,
       pg_temp.try(format('UPDATE billing.requests SET discount_id = %s WHERE request_id = %s', :gold_all, :open_list)) AS edit_discount_id;
SELECT billing.cancel_request(:open_list) ->> 'status' AS cancelled;
SELECT pg_temp.try(format('DELETE FROM billing.price_book_assignments WHERE account_id = %s AND price_book = ''silver''', :gold_acct)) AS delete_scheduled,
       pg_temp.try(format('UPDATE billing.price_books SET description = ''Gold'' WHERE price_book = ''gold''')) AS describe,
       pg_temp.try(format('DELETE FROM billing.price_books WHERE price_book = %L', repeat('x', 64))) AS delete_unnamed;

-- Read only (a hot standby): the readers answer, the writers are 25006,
-- and the session goes on.
BEGIN READ ONLY;
SELECT pg_temp.brief(billing.estimate('pb-img', '{"n":1}', :gold_acct)) AS read_only_estimate,
       (SELECT count(*) FROM billing.account_catalog(:gold_acct) WHERE model LIKE 'pb-%') AS read_only_catalog;
SELECT pg_temp.try('SELECT billing.create_price_book(''ro'')') AS create_book,
       pg_temp.try('SELECT billing.set_discount(''silver'', 1, ''pb-vid'')') AS discount,
       pg_temp.try(format('SELECT billing.assign_price_book(%s, ''silver'')', :list_acct)) AS assign,
       pg_temp.try(format('SELECT billing.end_discount(%s)', :silver_all)) AS end_discount;
ROLLBACK;
SELECT pg_temp.try('SELECT billing.set_discount(''silver'', -5)') AS failed_call;
SELECT billing.set_discount('silver', 1000000, 'pb-vid') > 0 AS the_session_goes_on;

-- verify() sees each invariant broken (in a transaction rolled back; the
-- triggers that refuse such edits are off for it).
SELECT count(*) AS problems_before FROM billing.verify();
BEGIN;
SET LOCAL session_replication_role = replica;
UPDATE billing.requests SET price_book = 'silver'
 WHERE request_id = (SELECT min(request_id) FROM billing.requests WHERE model = 'pb-img' AND discount_id IS NULL AND price_book = 'gold');
UPDATE billing.requests SET discount_id = :silver_all
  FROM (SELECT min(request_id) AS id FROM billing.requests WHERE model = 'pb-img' AND discount_id IS NOT NULL) r
 WHERE request_id = r.id;
UPDATE billing.requests SET discount_id = :gold_all
 WHERE request_id = (SELECT min(request_id) FROM billing.requests WHERE model = 'pb-img' AND price_book IS NULL);
INSERT INTO billing.discounts (price_book, model, multiplier_ppm, effective_from)
VALUES ('silver', 'pb-tiny', 1, now() + interval '1 year');
INSERT INTO billing.price_book_assignments (account_id, price_book, effective_from)
VALUES (:list_acct, 'platinum', now() + interval '1 year');
SELECT regexp_replace(problem, '\d+', 'N', 'g') AS problem FROM billing.verify() ORDER BY 1;
ROLLBACK;
SELECT * FROM billing.verify();
