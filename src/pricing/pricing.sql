-- pricing: model catalog, versioned prices, estimates and effective costs.

-- Upserts a model and one provider route. A model has exactly one default
-- provider once it has any: the first route becomes the default, and a new
-- default takes the flag from the previous one.
CREATE OR REPLACE FUNCTION billing.set_model(model text, media text, provider text, provider_name text,
                                  executed_model text DEFAULT NULL, is_default boolean DEFAULT true,
                                  display_name text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    old_media text;
    exec_model text := COALESCE(set_model.executed_model, set_model.model);
    make_default boolean;
BEGIN
    IF set_model.model IS NULL OR set_model.model !~ '^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}$' THEN
        RAISE EXCEPTION 'invalid model name "%"', set_model.model USING ERRCODE = '22023',
            DETAIL = 'A model name has 1 to 128 letters, digits or ._:/@+- and starts with a letter or digit.';
    END IF;
    IF set_model.media IS NULL OR set_model.media NOT IN ('image', 'video') THEN
        RAISE EXCEPTION 'invalid media "%"', set_model.media USING ERRCODE = '22023',
            DETAIL = 'The media of a model is image or video.';
    END IF;
    IF COALESCE(pg_catalog.length(set_model.provider), 0) NOT BETWEEN 1 AND 128
       OR COALESCE(pg_catalog.length(set_model.provider_name), 0) NOT BETWEEN 1 AND 256
       OR COALESCE(pg_catalog.length(exec_model), 0) NOT BETWEEN 1 AND 256
       OR set_model.is_default IS NULL THEN
        RAISE EXCEPTION 'invalid provider route for model "%"', set_model.model USING ERRCODE = '22023',
            DETAIL = 'A provider has 1 to 128 characters, a provider_name and an executed_model 1 to 256, and is_default is not null.';
    END IF;

    -- what invoice lines call the model; NULL keeps it
    IF set_model.display_name IS NOT NULL
       AND (pg_catalog.btrim(set_model.display_name) = '' OR pg_catalog.length(set_model.display_name) > 256) THEN
        RAISE EXCEPTION 'invalid display_name for model "%"', set_model.model USING ERRCODE = '22023',
            DETAIL = 'A display name has 1 to 256 characters, not all of them blank.';
    END IF;

    INSERT INTO billing.models AS m (model, media) VALUES (set_model.model, set_model.media)
        ON CONFLICT (model) DO NOTHING;
    -- the row lock serializes route changes of one model, and set_price
    SELECT m.media INTO old_media FROM billing.models m WHERE m.model = set_model.model FOR UPDATE;
    IF old_media <> set_model.media THEN
        RAISE EXCEPTION 'model "%" is a % model', set_model.model, old_media USING ERRCODE = '22023',
            DETAIL = 'The media of a model cannot change; its prices depend on it.';
    END IF;
    UPDATE billing.models m SET display_name = set_model.display_name
     WHERE m.model = set_model.model AND set_model.display_name IS NOT NULL
       AND m.display_name IS DISTINCT FROM set_model.display_name;

    IF set_model.is_default THEN
        UPDATE billing.model_providers mp SET is_default = false
         WHERE mp.model = set_model.model AND mp.provider <> set_model.provider AND mp.is_default;
    END IF;
    -- the first provider of a model is its default; decided before the
    -- INSERT, whose VALUES Citus plans without subqueries
    make_default := set_model.is_default OR NOT EXISTS (
        SELECT FROM billing.model_providers d
         WHERE d.model = set_model.model AND d.provider <> set_model.provider AND d.is_default);
    INSERT INTO billing.model_providers AS mp (model, provider, provider_name, executed_model, is_default)
    VALUES (set_model.model, set_model.provider, set_model.provider_name, exec_model, make_default)
    ON CONFLICT (model, provider) DO UPDATE
       SET provider_name = EXCLUDED.provider_name, executed_model = EXCLUDED.executed_model,
           is_default = EXCLUDED.is_default;
END $$;

-- Internal: set_price's validation (the model, its components, the
-- provider), in C beside the costing that reads the components (pricing.c).
CREATE OR REPLACE FUNCTION billing._check_price(model text, components jsonb, provider text)
RETURNS void LANGUAGE C VOLATILE CALLED ON NULL INPUT SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_check_price';

-- New price version, in billing.catalog_currency; billing._check_price
-- checks it and locks the model row. price_book: a version of that book
-- (docs/pricing.md, "Price books and discounts"), whose row is locked too.
CREATE OR REPLACE FUNCTION billing.set_price(model text, components jsonb, provider text DEFAULT NULL,
                                  effective_from timestamptz DEFAULT pg_catalog.now(),
                                  price_book text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    id bigint;
BEGIN
    PERFORM billing._not_null('model, components', model, components);
    IF effective_from IS NULL OR NOT pg_catalog.isfinite(effective_from) THEN
        RAISE EXCEPTION 'effective_from must be a finite time, not null or infinity' USING ERRCODE = '22023';
    END IF;
    PERFORM billing._check_price(model, components, provider);
    IF price_book IS NOT NULL THEN
        PERFORM billing._price_book(price_book, false);
    END IF;
    INSERT INTO billing.prices AS p (model, provider, currency, components, effective_from, price_book)
    VALUES (model, provider, billing._setting('billing.catalog_currency'), components, effective_from,
            price_book)
    RETURNING p.price_id INTO id;
    RETURN id;
END $$;

-- New provider cost version of one route (docs/pricing.md, "Provider costs
-- and margin"): the components, engine and version rules of prices, checked
-- by the same billing._check_price; in billing.catalog_currency.
CREATE OR REPLACE FUNCTION billing.set_provider_cost(model text, provider text, components jsonb,
                                  effective_from timestamptz DEFAULT pg_catalog.now())
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    id bigint;
BEGIN
    PERFORM billing._not_null('model, provider, components', model, provider, components);
    IF effective_from IS NULL OR NOT pg_catalog.isfinite(effective_from) THEN
        RAISE EXCEPTION 'effective_from must be a finite time, not null or infinity' USING ERRCODE = '22023';
    END IF;
    PERFORM billing._check_price(model, components, provider);
    INSERT INTO billing.provider_costs AS c (model, provider, currency, components, effective_from)
    VALUES (model, provider, billing._setting('billing.catalog_currency'), components, effective_from)
    RETURNING c.cost_id INTO id;
    RETURN id;
END $$;

-- The choice of a route's price, defined here once: at a time t the route
-- (model, provider) is priced by the provider's own latest version in force
-- at t, else by the model's latest provider-independent one. A row is a
-- version that may price a route, with the span of time in which it is the
-- choice (empty for a provider-independent version that an own one
-- superseded before it took effect). The list (price_book NULL) and each
-- price book choose apart, by the same rule. billing.catalog reads it, and
-- so does billing._price_choice (books.sql), which pricing_route() in C
-- (pricingcatalog.c) reads.
CREATE OR REPLACE VIEW billing._route_prices AS
SELECT v.model, v.provider, v.price_id, v.currency, v.components, v.effective_from,
       pg_catalog.tstzrange(v.effective_from,
                            GREATEST(v.effective_from,
                                     COALESCE(LEAST(v.next_from, v.own_from), 'infinity'))) AS span,
       v.price_book
  FROM (SELECT mp.model, mp.provider, p.price_id, p.currency, p.components, p.effective_from,
               p.price_book,
               -- the next version of the same kind (own or provider-independent)
               pg_catalog.lead(p.effective_from) OVER (
                   PARTITION BY mp.model, mp.provider, p.price_book, p.provider IS NULL
                   ORDER BY p.effective_from) AS next_from,
               -- a provider-independent version gives way to the first own one
               CASE WHEN p.provider IS NULL THEN
                   pg_catalog.min(p.effective_from) FILTER (WHERE p.provider IS NOT NULL)
                       OVER (PARTITION BY mp.model, mp.provider, p.price_book) END AS own_from
          FROM billing.model_providers mp
          JOIN billing.prices p ON p.model = mp.model
                               AND COALESCE(p.provider, '') IN (mp.provider, '')) v;

-- The list price in force now of every active model and provider (a route
-- with no price in force is not listed).
CREATE OR REPLACE VIEW billing.catalog AS
SELECT m.model, m.media, mp.provider, mp.provider_name, mp.executed_model, mp.is_default,
       p.price_id, p.currency, p.components, p.effective_from
  FROM billing.models m
  JOIN billing.model_providers mp ON mp.model = m.model
  JOIN billing._route_prices p ON p.model = mp.model AND p.provider = mp.provider
 WHERE m.active AND p.span @> pg_catalog.now() AND p.price_book IS NULL;

-- Dry run with the default provider's price: writes nothing, locks nothing.
CREATE OR REPLACE FUNCTION billing.estimate(model text, params jsonb)
RETURNS jsonb
LANGUAGE C STABLE CALLED ON NULL INPUT SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_estimate';

-- Cost of actual outputs with the executing provider's price (NULL: default).
CREATE OR REPLACE FUNCTION billing.effective_cost(model text, outputs jsonb, provider text DEFAULT NULL)
RETURNS jsonb
LANGUAGE C STABLE CALLED ON NULL INPUT SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_effective_cost';

-- Every write to the catalog drops the route caches of all backends (at
-- commit): the triggers *_changed (triggers.sql).

-- Price versions (and provider cost versions) are never edited: work in
-- flight settles at the version that priced its admission, and every
-- version that took effect may still do so.
-- Only a scheduled version (not yet in force) may be withdrawn; clock time,
-- so that a long transaction cannot withdraw one that took effect meanwhile.
CREATE OR REPLACE FUNCTION billing.refuse_price_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.effective_from > pg_catalog.clock_timestamp() THEN
            RETURN OLD;
        END IF;
    END IF;
    IF TG_TABLE_NAME = 'provider_costs' THEN
        RAISE EXCEPTION 'provider cost versions are never changed'
            USING ERRCODE = 'PB409',
                  DETAIL = 'A settled request keeps the cost of the version in force at its start; only a scheduled version may be deleted.',
                  HINT = 'Set a new version with billing.set_provider_cost() instead.';
    END IF;
    RAISE EXCEPTION 'price versions are never changed'
        USING ERRCODE = 'PB409',
              DETAIL = 'Requests admitted at a price settle at that price; only a scheduled version may be deleted.',
              HINT = 'Set a new version with billing.set_price() instead.';
END $$;
SELECT billing._keep_versions('prices', 'refuse_price_change'),
       billing._keep_versions('provider_costs', 'refuse_price_change');
