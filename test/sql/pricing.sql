-- Model catalog and pricing engine (docs/pricing.md).
SET client_min_messages = warning;


-- Runs a statement that must fail; shows its SQLSTATE, message and detail.
CREATE FUNCTION pg_temp.refused(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    detail text;
BEGIN
    EXECUTE stmt;
    RETURN 'accepted';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
    RETURN SQLSTATE || ': ' || SQLERRM || COALESCE(' | ' || NULLIF(detail, ''), '');
END $$;

-- Rows of the catalog tables, to show that refusals write nothing.
CREATE FUNCTION pg_temp.catalog_rows() RETURNS text LANGUAGE sql AS $$
    SELECT format('models=%s providers=%s prices=%s',
                  (SELECT count(*) FROM billing.models),
                  (SELECT count(*) FROM billing.model_providers),
                  (SELECT count(*) FROM billing.prices))
$$;

-- A video model with two providers; vidco is the default.
SELECT billing.set_model('pr-video', 'video', 'vidco', 'VidCo', 'vidco-gen-3');
SELECT billing.set_model('pr-video', 'video', 'fastvid', 'FastVid', 'fv-turbo', false);
SELECT billing.set_model('pr-video', 'video', 'thirdvid', 'ThirdVid', NULL, false);
-- Price for every provider: 720p without audio 0.03/s, with audio 0.04/s, 1080p 0.05/s.
SELECT billing.set_price('pr-video', '[
  {"type":"output","metric":"second","unit_price_micros":30000,"conditions":{"resolution":"720p","audio":false}},
  {"type":"output","metric":"second","unit_price_micros":40000,"conditions":{"resolution":"720p","audio":true}},
  {"type":"output","metric":"second","unit_price_micros":50000,"conditions":{"resolution":"1080p"}}]',
  NULL, now() - interval '1 day') > 0 AS generic_price;
-- fastvid is cheaper; its own price wins over the generic one.
SELECT billing.set_price('pr-video', '[
  {"type":"output","metric":"second","unit_price_micros":27000,"conditions":{"resolution":"720p"}},
  {"type":"output","metric":"second","unit_price_micros":45000,"conditions":{"resolution":"1080p"}}]',
  'fastvid', now() - interval '1 day') > 0 AS fastvid_price;
-- A new generic version next month: not in force yet.
SELECT billing.set_price('pr-video', '[
  {"type":"output","metric":"second","unit_price_micros":35000,"conditions":{"resolution":"720p"}},
  {"type":"output","metric":"second","unit_price_micros":55000,"conditions":{"resolution":"1080p"}}]',
  NULL, now() + interval '30 days') > 0 AS future_price;

-- An image model at 0.06 per megapixel (at most 4 MP billed per image),
-- plus 0.01 per reference image.
SELECT billing.set_model('pr-image-mp', 'image', 'pixco', 'PixCo', 'pix-xl');
SELECT billing.set_price('pr-image-mp', '[
  {"type":"output","metric":"megapixel","unit_price_micros":60000,"max_per_image":4},
  {"type":"input","metric":"input_image","unit_price_micros":10000}]') > 0 AS mp_price;

-- An image model at 0.134 per image at 1K-2K and 0.24 at 4K.
SELECT billing.set_model('pr-image-res', 'image', 'resco', 'ResCo');
SELECT billing.set_price('pr-image-res', '[
  {"type":"output","metric":"image","unit_price_micros":134000,"conditions":{"resolution":["1K","2K"]}},
  {"type":"output","metric":"image","unit_price_micros":240000,"conditions":{"resolution":"4K"}}]') > 0 AS res_price;

-- A video model billed per started 5-second block, plus 0.02 per request.
SELECT billing.set_model('pr-clip', 'video', 'clipco', 'ClipCo');
SELECT billing.set_price('pr-clip', '[
  {"type":"output","metric":"request","unit_price_micros":20000},
  {"type":"output","metric":"second","unit_price_micros":100000,"unit_size":5}]') > 0 AS clip_price;

SELECT model, media, provider, provider_name, executed_model, is_default, currency,
       components -> 0 -> 'unit_price_micros' AS first_unit_price
  FROM billing.catalog WHERE model LIKE 'pr-%' ORDER BY model, provider;

-- Estimates: the default provider's price in force now.
SELECT billing.estimate('pr-video', '{"duration_seconds":8,"resolution":"720p"}');
SELECT billing.estimate('pr-video', '{"duration_seconds":8,"resolution":"720p","audio":true}')
       -> 'total_cost_micros' AS audio_720p_8s;
SELECT billing.estimate('pr-video', '{"duration_seconds":5,"resolution":"1080p","audio":true}')
       -> 'total_cost_micros' AS p1080_5s;
SELECT billing.estimate('pr-image-mp', '{"n":2,"size":"1024x1536"}');
SELECT billing.estimate('pr-image-mp', '{}') -> 'total_cost_micros' AS one_default_image;
SELECT billing.estimate('pr-image-mp', '{"n":1,"size":"4096x4096","input_images":["a.png","b.png"]}');
SELECT billing.estimate('pr-image-mp', '{"size":"1024x1024","input_images":3}')
       -> 'total_cost_micros' AS three_inputs;
SELECT billing.estimate('pr-image-res', '{"n":2,"resolution":"2K","quality":"high"}');
SELECT billing.estimate('pr-image-res', '{"resolution":"4K"}') -> 'total_cost_micros' AS one_4k;
SELECT billing.estimate('pr-clip', '{"duration_seconds":7.6}');

-- An estimate writes nothing and locks nothing: no transaction id is taken.
BEGIN;
SELECT billing.estimate('pr-image-res', '{"n":3,"resolution":"1K"}') -> 'total_cost_micros' AS three_1k;
SELECT pg_current_xact_id_if_assigned() IS NULL AS nothing_written;
COMMIT;

-- Effective costs: actual outputs, then params; the executing provider's price.
SELECT billing.effective_cost('pr-video', '{"duration_seconds":7.6,"resolution":"720p","audio":false}');
SELECT billing.effective_cost('pr-video', '{"duration_seconds":7.6,"resolution":"720p"}', 'fastvid');
SELECT billing.effective_cost('pr-video', '{"duration_seconds":3.0000001,"resolution":"1080p"}', 'thirdvid')
       -> 'components' AS thirdvid_uses_generic_price;
SELECT billing.effective_cost('pr-image-mp',
       '{"images":[{"width":1024,"height":1536},{"width":1000,"height":1000}]}');
SELECT billing.effective_cost('pr-image-res',
       '{"images":[{"width":2048,"height":2048}],"resolution":"2K"}') -> 'total_cost_micros' AS one_2k;
SELECT billing.effective_cost('pr-clip', '{"duration_seconds":10}') -> 'total_cost_micros' AS clip_10s;
SELECT billing.effective_cost('pr-clip', '{"duration_seconds":10.5}') -> 'total_cost_micros' AS clip_10_5s;

-- Defaults: the first route of a model is its default; a new default takes
-- the flag from the old one.
SELECT billing.set_model('pr-video', 'video', 'fastvid', 'FastVid', 'fv-turbo', true);
SELECT provider, is_default FROM billing.model_providers WHERE model = 'pr-video' ORDER BY provider;
SELECT billing.estimate('pr-video', '{"duration_seconds":8,"resolution":"720p"}') ->> 'provider' AS default_now;
SELECT billing.set_model('pr-video', 'video', 'vidco', 'VidCo', 'vidco-gen-3', true);
SELECT billing.set_model('pr-video', 'video', 'vidco', 'VidCo', 'vidco-gen-3', false);
SELECT provider, is_default FROM billing.model_providers WHERE model = 'pr-video' ORDER BY provider;

-- Refusals: each has its SQLSTATE and writes nothing.
SELECT pg_temp.catalog_rows() AS before_refusals \gset
SELECT pg_temp.refused(stmt) FROM (VALUES
  -- n negative, zero, fractional, text, huge, too many
  ($$SELECT billing.estimate('pr-image-mp', '{"n":-1}')$$),
  ($$SELECT billing.estimate('pr-image-mp', '{"n":0}')$$),
  ($$SELECT billing.estimate('pr-image-mp', '{"n":2.5}')$$),
  ($$SELECT billing.estimate('pr-image-mp', '{"n":"2"}')$$),
  ($$SELECT billing.estimate('pr-image-mp', '{"n":1e30}')$$),
  ($$SELECT billing.estimate('pr-image-mp', '{"n":1001}')$$),
  -- sizes that do not parse or are out of range
  ($$SELECT billing.estimate('pr-image-mp', '{"size":"1024"}')$$),
  ($$SELECT billing.estimate('pr-image-mp', '{"size":"1024x1024x3"}')$$),
  ($$SELECT billing.estimate('pr-image-mp', '{"size":"0x512"}')$$),
  ($$SELECT billing.estimate('pr-image-mp', '{"size":"1024x99999"}')$$),
  ($$SELECT billing.estimate('pr-image-mp', '{"size":1024}')$$),
  ($$SELECT billing.estimate('pr-image-mp', '{"input_images":-1}')$$),
  -- negative, zero, absurd or non-numeric durations
  ($$SELECT billing.estimate('pr-video', '{"duration_seconds":-8,"resolution":"720p"}')$$),
  ($$SELECT billing.estimate('pr-video', '{"duration_seconds":0,"resolution":"720p"}')$$),
  ($$SELECT billing.estimate('pr-video', '{"duration_seconds":3600.5,"resolution":"720p"}')$$),
  ($$SELECT billing.estimate('pr-video', '{"duration_seconds":1e400,"resolution":"720p"}')$$),
  ($$SELECT billing.estimate('pr-video', '{"duration_seconds":"8","resolution":"720p"}')$$),
  ($$SELECT billing.estimate('pr-video', '{"resolution":"720p"}')$$),
  -- wrong types of known attributes
  ($$SELECT billing.estimate('pr-video', '{"duration_seconds":8,"resolution":720}')$$),
  ($$SELECT billing.estimate('pr-video', '{"duration_seconds":8,"resolution":"720p","audio":"yes"}')$$),
  -- no price for that resolution, or no resolution at all
  ($$SELECT billing.estimate('pr-image-res', '{"resolution":"8K"}')$$),
  ($$SELECT billing.estimate('pr-image-res', '{"n":2}')$$),
  ($$SELECT billing.effective_cost('pr-video', '{"duration_seconds":8,"resolution":"4K"}')$$),
  -- bad outputs
  ($$SELECT billing.effective_cost('pr-image-mp', '{"images":{"width":1024}}')$$),
  ($$SELECT billing.effective_cost('pr-image-mp', '{"images":[{"width":1024}]}')$$),
  ($$SELECT billing.effective_cost('pr-image-mp', '{"images":[{"width":0,"height":1024}]}')$$),
  ($$SELECT billing.effective_cost('pr-image-mp', '{"images":[1024]}')$$),
  ($$SELECT billing.effective_cost('pr-image-mp', '[1,2]')$$),
  ($$SELECT billing.estimate('pr-image-mp', '"n=2"')$$),
  ($$SELECT billing.estimate('pr-image-mp', NULL)$$),
  -- unknown model or provider
  ($$SELECT billing.estimate('pr-nope', '{}')$$),
  ($$SELECT billing.effective_cost('pr-video', '{"duration_seconds":8,"resolution":"720p"}', 'nobody')$$)
) AS t(stmt);

-- Bad prices and routes.
SELECT pg_temp.refused(stmt) FROM (VALUES
  ($$SELECT billing.set_price('pr-nope', '[{"type":"output","metric":"image","unit_price_micros":1}]')$$),
  ($$SELECT billing.set_price('pr-video', '[{"type":"output","metric":"second","unit_price_micros":1}]', 'nobody')$$),
  ($$SELECT billing.set_price('pr-video', '{"type":"output"}')$$),
  ($$SELECT billing.set_price('pr-video', '[]')$$),
  ($$SELECT billing.set_price('pr-video', '[{"type":"output","metric":"token","unit_price_micros":1}]')$$),
  ($$SELECT billing.set_price('pr-video', '[{"type":"output","metric":"second","unit_price_micros":-1}]')$$),
  ($$SELECT billing.set_price('pr-video', '[{"type":"output","metric":"second","unit_price_micros":0.5}]')$$),
  ($$SELECT billing.set_price('pr-video', '[{"type":"output","metric":"second","unit_price_micros":"30000"}]')$$),
  ($$SELECT billing.set_price('pr-video', '[{"type":"output","metric":"second"}]')$$),
  ($$SELECT billing.set_price('pr-video', '[{"type":"output","metric":"second","unit_price_micros":1,"unit_size":0}]')$$),
  ($$SELECT billing.set_price('pr-video', '[{"type":"output","metric":"second","unit_price_micros":1,"colour":"red"}]')$$),
  ($$SELECT billing.set_price('pr-video', '[{"type":"output","metric":"second","unit_price_micros":1,"conditions":["720p"]}]')$$),
  ($$SELECT billing.set_price('pr-video', '[{"type":"output","metric":"second","unit_price_micros":1,"conditions":{"resolution":[]}}]')$$),
  ($$SELECT billing.set_price('pr-video', '[{"type":"output","metric":"second","unit_price_micros":1,"max_per_image":2}]')$$),
  ($$SELECT billing.set_price('pr-video', '[{"type":"output","metric":"image","unit_price_micros":1}]')$$),
  ($$SELECT billing.set_price('pr-image-mp', '[{"type":"output","metric":"second","unit_price_micros":1}]')$$),
  ($$SELECT billing.set_price('pr-image-mp', '[{"type":"input","metric":"input_image","unit_price_micros":1}]')$$),
  ($$SELECT billing.set_price('pr-image-mp', '[{"type":"output","metric":"input_image","unit_price_micros":1}]')$$),
  ($$SELECT billing.set_price('pr-image-mp', '[{"type":"output","metric":"image","unit_price_micros":1}]', NULL, NULL)$$),
  ($$SELECT billing.set_price('pr-image-mp', '[{"type":"output","metric":"image","unit_price_micros":1}]', NULL, 'infinity')$$),
  ($$SELECT billing.set_model('pr-video', 'audio', 'vidco', 'VidCo')$$),
  ($$SELECT billing.set_model('pr-video', 'image', 'vidco', 'VidCo')$$),
  ($$SELECT billing.set_model(' bad name', 'image', 'p', 'P')$$),
  ($$SELECT billing.set_model('pr-x', 'image', '', 'P')$$)
) AS t(stmt);
SELECT pg_temp.catalog_rows() = :'before_refusals' AS nothing_written;

-- A price that overflows is refused, not wrapped.
SELECT billing.set_model('pr-huge', 'image', 'bigco', 'BigCo');
SELECT billing.set_price('pr-huge', '[{"type":"output","metric":"image","unit_price_micros":9223372036854775807}]') > 0 AS huge_price;
SELECT billing.estimate('pr-huge', '{"n":1}') -> 'total_cost_micros' AS one_huge;
SELECT pg_temp.refused($$SELECT billing.estimate('pr-huge', '{"n":2}')$$);

-- Prices carry the catalog currency of the moment they are set.
SELECT billing.set_model('pr-eur', 'image', 'euco', 'EuCo');
SELECT pg_temp.refused($$SET billing.catalog_currency = 'eur'$$);
SET billing.catalog_currency = 'EUR';
SELECT billing.set_price('pr-eur', '[{"type":"output","metric":"image","unit_price_micros":50000}]') > 0 AS eur_price;
RESET billing.catalog_currency;
SELECT billing.estimate('pr-eur', '{"n":3}') - 'components' AS eur_estimate;

-- A model whose only price starts later has no price in force.
SELECT billing.set_model('pr-later', 'image', 'laterco', 'LaterCo');
SELECT billing.set_price('pr-later', '[{"type":"output","metric":"image","unit_price_micros":1000}]',
                         NULL, now() + interval '1 hour') > 0 AS later_price;
-- (the detail names the time, so it is cut off here)
SELECT split_part(pg_temp.refused($$SELECT billing.estimate('pr-later', '{}')$$), ' | ', 1) AS refused;
SELECT count(*) AS later_in_catalog FROM billing.catalog WHERE model = 'pr-later';

-- A disabled model is unknown to pricing and left out of the catalog.
UPDATE billing.models SET active = false WHERE model = 'pr-huge';
SELECT pg_temp.refused($$SELECT billing.estimate('pr-huge', '{"n":1}')$$);
SELECT count(*) AS huge_in_catalog FROM billing.catalog WHERE model = 'pr-huge';

-- a scheduled price takes effect on time, even in a backend that cached the
-- price before it (the cache keeps a route only until the next version)
SELECT billing.set_model('pr-sched', 'image', 'acme', 'Acme', NULL);
SELECT billing.set_price('pr-sched', '[{"type":"output","metric":"image","unit_price_micros":1000}]') > 0 AS priced;
SELECT billing.set_price('pr-sched', '[{"type":"output","metric":"image","unit_price_micros":2000}]',
                         NULL, clock_timestamp() + interval '1 second') > 0 AS scheduled;
SELECT billing.estimate('pr-sched', '{}') ->> 'total_cost_micros' AS before;
SELECT pg_sleep(1.1);
SELECT billing.estimate('pr-sched', '{}') ->> 'total_cost_micros' AS after;

SELECT * FROM billing.verify();
