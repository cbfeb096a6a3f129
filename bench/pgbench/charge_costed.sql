-- (1d): billing.charge() of one 1024x1024 image of bench-costed, whose
-- route has a provider cost version, on account :acct
SELECT billing.charge(:acct, 'bench-costed', '{"n":1,"size":"1024x1024"}'::jsonb,
                      '{"images":[{"width":1024,"height":1024}]}'::jsonb);
