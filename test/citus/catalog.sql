-- The catalog of the Citus suite (test/citus.sh): one image model at 0.04
-- an image.
SET client_min_messages = warning;
SELECT billing.set_model('ct-img', 'image', 'acme', 'Acme Imaging', 'acme-img-v2');
SELECT billing.set_model('ct-img', 'image', 'blue', 'Blue Cloud', 'blue-img-1', false);
SELECT billing.set_price('ct-img', '[{"type":"output","metric":"image","unit_price_micros":40000}]') > 0 AS priced;
SELECT billing.set_price('ct-img', '[{"type":"output","metric":"image","unit_price_micros":30000}]', 'blue') > 0 AS priced;
SELECT count(*) = 2 AS routes FROM billing.catalog WHERE model = 'ct-img';
