-- KEYS: a model's index, the set of models. ARGV: the model. Forgets a model
-- whose jobs have all gone, unless one was created meanwhile.
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[1]) end
return 0
