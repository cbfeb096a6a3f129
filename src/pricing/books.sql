-- Contract prices (docs/pricing.md, "Price books and discounts"): price
-- books, their discounts, the book of each account, and which price applies.

-- Internal: the book named price_book, locked (FOR UPDATE when for_update:
-- set_discount and end_discount of one book queue there; else FOR SHARE,
-- so that it is not deleted under what names it); PB404 when unknown.
CREATE OR REPLACE FUNCTION billing._price_book(price_book text, for_update boolean)
RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF for_update THEN
        PERFORM FROM billing.price_books b WHERE b.price_book = _price_book.price_book FOR UPDATE;
    ELSE
        PERFORM FROM billing.price_books b WHERE b.price_book = _price_book.price_book FOR SHARE;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'price book "%" does not exist', price_book USING ERRCODE = 'PB404';
    END IF;
END $$;

CREATE OR REPLACE FUNCTION billing.create_price_book(price_book text, description text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF COALESCE(pg_catalog.length(price_book), 0) NOT BETWEEN 1 AND 64 THEN
        RAISE EXCEPTION 'invalid price book name "%"', price_book USING ERRCODE = '22023',
            DETAIL = 'A price book''s name has 1 to 64 characters.';
    END IF;
    -- a duplicate is the key's unique_violation (23505)
    INSERT INTO billing.price_books AS b (price_book, description)
    VALUES (create_price_book.price_book, create_price_book.description);
END $$;

-- A discount of the list prices of one route, one model or the whole book,
-- in [effective_from, effective_until). Discounts of one target never
-- overlap: checked under the book's row lock.
CREATE OR REPLACE FUNCTION billing.set_discount(price_book text, multiplier_ppm integer,
                                                model text DEFAULT NULL, provider text DEFAULT NULL,
                                                effective_from timestamptz DEFAULT pg_catalog.now(),
                                                effective_until timestamptz DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    id bigint;
    other bigint;
BEGIN
    PERFORM billing._not_null('price_book, multiplier_ppm, effective_from',
                              price_book, multiplier_ppm, effective_from);
    IF multiplier_ppm NOT BETWEEN 0 AND 10000000 THEN
        RAISE EXCEPTION 'multiplier_ppm % is out of range', multiplier_ppm USING ERRCODE = '22023',
            DETAIL = 'A multiplier is 0 to 10000000 parts per million of the list price (1000000: the list price).';
    END IF;
    IF NOT pg_catalog.isfinite(effective_from) OR NOT pg_catalog.isfinite(effective_until) THEN
        RAISE EXCEPTION 'effective_from and effective_until must be finite times' USING ERRCODE = '22023',
            HINT = 'Leave effective_until null for a discount without an end.';
    END IF;
    IF effective_until <= effective_from THEN
        RAISE EXCEPTION 'effective_until must be after effective_from' USING ERRCODE = '22023';
    END IF;
    IF provider IS NOT NULL AND model IS NULL THEN
        RAISE EXCEPTION 'a discount for provider "%" needs a model', provider USING ERRCODE = '22023',
            DETAIL = 'A discount is for one route (model and provider), one model, or the whole book.';
    END IF;
    PERFORM billing._price_book(price_book, true);
    IF model IS NOT NULL THEN
        PERFORM FROM billing.models m WHERE m.model = model FOR SHARE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'model "%" does not exist', model USING ERRCODE = 'PB404';
        END IF;
    END IF;
    IF provider IS NOT NULL
       AND NOT EXISTS (SELECT FROM billing.model_providers mp
                        WHERE mp.model = model AND mp.provider = provider) THEN
        RAISE EXCEPTION 'provider "%" does not serve model "%"', provider, model USING ERRCODE = 'PB404';
    END IF;
    SELECT d.discount_id INTO other FROM billing.discounts d
     WHERE d.price_book = price_book AND d.model IS NOT DISTINCT FROM model
       AND d.provider IS NOT DISTINCT FROM provider
       AND pg_catalog.tstzrange(d.effective_from, d.effective_until)
           && pg_catalog.tstzrange(effective_from, effective_until)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'discount % of price book "%" overlaps the new one', other, price_book
            USING ERRCODE = 'PB409',
                  DETAIL = 'Discounts of the same book, model and provider never overlap in time.',
                  HINT = 'End it first with billing.end_discount(), or start the new one after it.';
    END IF;
    INSERT INTO billing.discounts AS d (price_book, model, provider, multiplier_ppm, effective_from,
                                        effective_until)
    VALUES (price_book, model, provider, multiplier_ppm, effective_from, effective_until)
    RETURNING d.discount_id INTO id;
    RETURN id;
END $$;

-- Brings a discount's end forward, to a moment not before now(): the one
-- change a discount takes (billing.refuse_discount_change allows no other).
CREATE OR REPLACE FUNCTION billing.end_discount(discount_id bigint,
                                                effective_until timestamptz DEFAULT pg_catalog.now())
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    d billing.discounts;
BEGIN
    IF discount_id IS NULL OR effective_until IS NULL OR NOT pg_catalog.isfinite(effective_until) THEN
        RAISE EXCEPTION 'discount_id and effective_until must not be null or infinite' USING ERRCODE = '22023';
    END IF;
    SELECT * INTO d FROM billing.discounts x WHERE x.discount_id = discount_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'discount % does not exist', discount_id USING ERRCODE = 'PB404';
    END IF;
    PERFORM billing._price_book(d.price_book, true);
    SELECT * INTO d FROM billing.discounts x WHERE x.discount_id = discount_id FOR UPDATE;
    IF effective_until < pg_catalog.now() THEN
        RAISE EXCEPTION 'a discount cannot end in the past' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('%s is before now, %s.', effective_until, pg_catalog.now());
    END IF;
    IF effective_until > d.effective_until THEN
        RAISE EXCEPTION 'discount % already ends before that', discount_id USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('It ends at %s; a discount''s end can only be brought forward.',
                                       d.effective_until);
    END IF;
    IF effective_until <= d.effective_from THEN
        RAISE EXCEPTION 'effective_until must be after effective_from %', d.effective_from
            USING ERRCODE = '22023';
    END IF;
    -- an end at now() is the moment of the change (clock time): a request
    -- admitted meanwhile, from the discount as it was, began before its end
    effective_until := GREATEST(effective_until, pg_catalog.clock_timestamp());
    IF effective_until < d.effective_until OR d.effective_until IS NULL THEN
        UPDATE billing.discounts x SET effective_until = end_discount.effective_until
         WHERE x.discount_id = end_discount.discount_id;
    END IF;
END $$;

-- The account's book from effective_from (not before now()) on; NULL: the
-- list again. Assignments of one account queue on its row.
CREATE OR REPLACE FUNCTION billing.assign_price_book(account_id bigint, price_book text,
                                                     effective_from timestamptz DEFAULT pg_catalog.now())
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
BEGIN
    IF account_id IS NULL OR effective_from IS NULL OR NOT pg_catalog.isfinite(effective_from) THEN
        RAISE EXCEPTION 'account_id and effective_from must not be null or infinite' USING ERRCODE = '22023';
    END IF;
    IF effective_from < pg_catalog.now() THEN
        RAISE EXCEPTION 'an assignment cannot take effect in the past' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('%s is before now, %s.', effective_from, pg_catalog.now()),
            HINT = 'Requests already admitted keep their prices; assign from now on.';
    END IF;
    PERFORM billing._account(account_id, true, true);
    IF price_book IS NOT NULL THEN
        PERFORM billing._price_book(price_book, false);
    END IF;
    -- the book then in force already: nothing to write
    IF (SELECT b.price_book FROM billing._book_at(account_id, effective_from) b)
       IS NOT DISTINCT FROM price_book THEN
        RETURN;
    END IF;
    -- a second assignment at the same time is the key's unique_violation (23505)
    INSERT INTO billing.price_book_assignments AS a (account_id, price_book, effective_from)
    VALUES (account_id, price_book, effective_from);
END $$;

-- The book of an account at a time (NULL: the list), and the span around
-- it in which that holds: the account's latest assignment on or before at.
-- PL/pgSQL, not SQL: Citus plans no SQL function's parameters.
CREATE OR REPLACE FUNCTION billing._book_at(account_id bigint, at timestamptz)
RETURNS TABLE(price_book text, span_from timestamptz, span_until timestamptz)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN QUERY
    SELECT l.price_book, COALESCE(l.effective_from, '-infinity'::timestamptz),
           COALESCE((SELECT pg_catalog.min(n.effective_from) FROM billing.price_book_assignments n
                      WHERE n.account_id = _book_at.account_id AND n.effective_from > _book_at.at),
                    'infinity'::timestamptz)
      FROM (SELECT NULL) one
      LEFT JOIN LATERAL (SELECT a.price_book, a.effective_from FROM billing.price_book_assignments a
                          WHERE a.account_id = _book_at.account_id AND a.effective_from <= _book_at.at
                          ORDER BY a.effective_from DESC LIMIT 1) l ON true;
END $$;

-- Which price applies, defined here once: the price of the route (model,
-- provider) at "at" for an account on price_book (NULL: the list), by the
-- first that exists, each in force at "at": (1) the book's version for the
-- route, (2) its version for the model (billing._route_prices chooses
-- between the two as for the list), (3) the list's choice times the book's
-- most specific discount, of the route, then of the model, then of the
-- whole book (none: the list price). At most one row; none when nothing
-- prices the route. price_book is the book whose version it is (NULL: the
-- list's); [span_from, span_until) a span around "at" in which the answer
-- holds (pricingcatalog.c caches it for that span).
CREATE OR REPLACE FUNCTION billing._price_choice(model text, provider text, price_book text,
                                                 at timestamptz)
RETURNS TABLE(price_id bigint, currency text, components jsonb, effective_from timestamptz,
              price_book text, discount_id bigint, multiplier_ppm integer,
              span_from timestamptz, span_until timestamptz)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT b.price_id, b.currency, b.components, b.effective_from, b.price_book,
           NULL::bigint, NULL::integer, pg_catalog.lower(b.span), pg_catalog.upper(b.span)
      FROM billing._route_prices b
     WHERE b.model = $1 AND b.provider = $2 AND b.price_book = $3 AND b.span @> $4
    UNION ALL
    SELECT l.price_id, l.currency, l.components, l.effective_from, NULL, d.discount_id, d.multiplier_ppm,
           GREATEST(pg_catalog.lower(l.span), e.last_change),
           LEAST(pg_catalog.upper(l.span), e.next_change,
                 -- no version of the book is in force yet: the first one ends this
                 (SELECT pg_catalog.min(p.effective_from) FROM billing.prices p
                   WHERE p.model = $1 AND p.price_book = $3 AND COALESCE(p.provider, $2) = $2))
      FROM billing._route_prices l
      LEFT JOIN LATERAL (
            SELECT x.discount_id, x.multiplier_ppm FROM billing.discounts x
             WHERE x.price_book = $3 AND COALESCE(x.model, $1) = $1 AND COALESCE(x.provider, $2) = $2
               AND x.effective_from <= $4 AND (x.effective_until IS NULL OR x.effective_until > $4)
             ORDER BY x.provider IS NULL, x.model IS NULL LIMIT 1) d ON true
      -- the discounts' starts and ends nearest to "at", which bound the answer
      CROSS JOIN LATERAL (
            SELECT pg_catalog.max(t) FILTER (WHERE t <= $4) AS last_change,
                   pg_catalog.min(t) FILTER (WHERE t > $4) AS next_change
              FROM billing.discounts x
             CROSS JOIN LATERAL (VALUES (x.effective_from), (x.effective_until)) v(t)
             WHERE x.price_book = $3 AND COALESCE(x.model, $1) = $1
               AND COALESCE(x.provider, $2) = $2) e
     WHERE l.model = $1 AND l.provider = $2 AND l.price_book IS NULL AND l.span @> $4
       AND NOT EXISTS (SELECT FROM billing._route_prices b
                        WHERE b.model = $1 AND b.provider = $2 AND b.price_book = $3
                          AND b.span @> $4)
$$;

-- Dry run at the account's prices now (billing.estimate with the book of
-- the account): writes nothing, locks nothing.
CREATE OR REPLACE FUNCTION billing.estimate(model text, params jsonb, account_id bigint)
RETURNS jsonb
LANGUAGE C STABLE CALLED ON NULL INPUT SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_estimate_account';

-- billing.catalog at the account's prices now: price_book NULL where a list
-- version prices the route; components as stored, before the discount.
CREATE OR REPLACE FUNCTION billing.account_catalog(account_id bigint)
RETURNS TABLE(model text, media text, provider text, is_default boolean, price_book text,
              price_id bigint, discount_id bigint, multiplier_ppm integer, currency text,
              components jsonb, effective_from timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    book text;
BEGIN
    PERFORM billing._not_null('account_id', account_catalog.account_id);
    PERFORM billing._account(account_catalog.account_id, false, true);
    SELECT b.price_book INTO book FROM billing._book_at(account_catalog.account_id, pg_catalog.now()) b;
    RETURN QUERY
    SELECT m.model, m.media, mp.provider, mp.is_default, p.price_book, p.price_id, p.discount_id,
           p.multiplier_ppm, p.currency, p.components, p.effective_from
      FROM billing.models m
      JOIN billing.model_providers mp ON mp.model = m.model
     CROSS JOIN LATERAL billing._price_choice(m.model, mp.provider, book, pg_catalog.now()) p
     WHERE m.active
     ORDER BY m.model, mp.provider;
END $$;

-- Every write to the books, discounts and assignments drops the caches of
-- all backends at commit (route_cache.c, accounts.c): the triggers
-- *_changed (triggers.sql).

-- Work in flight settles at what priced its admission: a discount changes
-- only by end_discount (its end brought forward, not into the past), an
-- assignment never; only what is not in force yet may be deleted; a book
-- that anything names stays (a request names a book only where an
-- assignment in force did, which stays). Clock time, as for prices.
CREATE OR REPLACE FUNCTION billing.refuse_price_book_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        NULL;
    ELSIF TG_TABLE_NAME = 'price_books' THEN
        IF TG_OP = 'UPDATE' AND OLD.price_book = NEW.price_book THEN
            RETURN NEW;             -- its description
        END IF;
        IF NOT EXISTS (SELECT FROM billing.prices p WHERE p.price_book = OLD.price_book)
           AND NOT EXISTS (SELECT FROM billing.discounts d WHERE d.price_book = OLD.price_book)
           AND NOT EXISTS (SELECT FROM billing.price_book_assignments a
                            WHERE a.price_book = OLD.price_book) THEN
            RETURN COALESCE(NEW, OLD);
        END IF;
    ELSIF TG_OP = 'DELETE' THEN
        IF OLD.effective_from > pg_catalog.clock_timestamp() THEN
            RETURN OLD;
        END IF;
    ELSIF TG_TABLE_NAME = 'discounts' THEN
        IF (OLD.discount_id, OLD.price_book, OLD.model, OLD.provider, OLD.multiplier_ppm,
            OLD.effective_from, OLD.created_at)
           IS NOT DISTINCT FROM
           (NEW.discount_id, NEW.price_book, NEW.model, NEW.provider, NEW.multiplier_ppm,
            NEW.effective_from, NEW.created_at)
           AND NEW.effective_until >= pg_catalog.now()
           AND NEW.effective_until <= COALESCE(OLD.effective_until, 'infinity') THEN
            RETURN NEW;
        END IF;
    END IF;
    IF TG_TABLE_NAME = 'price_books' THEN
        RAISE EXCEPTION 'price book "%" is in use', OLD.price_book USING ERRCODE = 'PB409',
            DETAIL = 'Prices, discounts or assignments name it.';
    END IF;
    RAISE EXCEPTION '% that took effect is never changed',
                    CASE TG_TABLE_NAME WHEN 'discounts' THEN 'a discount' ELSE 'an assignment' END
        USING ERRCODE = 'PB409',
              DETAIL = 'Requests admitted at a price settle at that price; only what is not in force yet may be deleted.',
              HINT = 'End a discount with billing.end_discount(); assign another book with billing.assign_price_book().';
END $$;
CREATE OR REPLACE TRIGGER price_books_kept BEFORE UPDATE OR DELETE ON billing.price_books
    FOR EACH ROW EXECUTE FUNCTION billing.refuse_price_book_change();
SELECT billing._keep_versions('discounts', 'refuse_price_book_change'),
       billing._keep_versions('price_book_assignments', 'refuse_price_book_change');
