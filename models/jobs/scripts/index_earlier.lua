-- After reindex.lua. KEYS: job hash, its model's index, the set of models,
-- then JobKeys.index_keys. ARGV: job id, model. Indexes a job written before
-- there were indexes by state and model.
local state = redis.call('HGET', KEYS[1], 'state')
local created = redis.call('ZSCORE', index_key, ARGV[1])
if not state or not created or not by_state[state] then return 0 end
for _, key in pairs(by_state) do redis.call('ZREM', key, ARGV[1]) end
redis.call('ZADD', by_state[state], created, ARGV[1])
redis.call('ZADD', KEYS[2], created, ARGV[1])
redis.call('SADD', KEYS[3], ARGV[2])
return 1
