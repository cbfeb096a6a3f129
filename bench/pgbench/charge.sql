-- (1), (1b): billing.charge() of one 1024x1024 image on account :acct
SELECT billing.charge(:acct, 'bench-img', '{"n":1,"size":"1024x1024"}'::jsonb,
                      '{"images":[{"width":1024,"height":1024}]}'::jsonb);
