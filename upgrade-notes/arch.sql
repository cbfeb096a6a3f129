-- 0.1.0 -> 0.2.0, from the "arch" branch: the choice of a route's price is
-- defined once, by billing._route_prices, which billing.catalog and
-- pricing_route() in C read. Idempotent; the catalog view keeps its columns.
CREATE OR REPLACE VIEW billing._route_prices AS
SELECT v.model, v.provider, v.price_id, v.currency, v.components, v.effective_from,
       pg_catalog.tstzrange(v.effective_from,
                            GREATEST(v.effective_from,
                                     COALESCE(LEAST(v.next_from, v.own_from), 'infinity'))) AS span
  FROM (SELECT mp.model, mp.provider, p.price_id, p.currency, p.components, p.effective_from,
               -- the next version of the same kind (own or provider-independent)
               pg_catalog.lead(p.effective_from) OVER (
                   PARTITION BY mp.model, mp.provider, p.provider IS NULL
                   ORDER BY p.effective_from) AS next_from,
               -- a provider-independent version gives way to the first own one
               CASE WHEN p.provider IS NULL THEN
                   pg_catalog.min(p.effective_from) FILTER (WHERE p.provider IS NOT NULL)
                       OVER (PARTITION BY mp.model, mp.provider) END AS own_from
          FROM billing.model_providers mp
          JOIN billing.prices p ON p.model = mp.model
                               AND COALESCE(p.provider, '') IN (mp.provider, '')) v;
REVOKE ALL ON billing._route_prices FROM PUBLIC;

CREATE OR REPLACE VIEW billing.catalog AS
SELECT m.model, m.media, mp.provider, mp.provider_name, mp.executed_model, mp.is_default,
       p.price_id, p.currency, p.components, p.effective_from
  FROM billing.models m
  JOIN billing.model_providers mp ON mp.model = m.model
  JOIN billing._route_prices p ON p.model = mp.model AND p.provider = mp.provider
 WHERE m.active AND p.span @> pg_catalog.now();
