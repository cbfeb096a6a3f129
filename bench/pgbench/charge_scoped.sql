-- (1a): the charge of charge.sql with the scope (API key) 'bench-key'
SELECT billing.charge(:acct, 'bench-img', '{"n":1,"size":"1024x1024"}'::jsonb,
                      '{"images":[{"width":1024,"height":1024}]}'::jsonb, '{}'::jsonb, NULL, 'bench-key');
