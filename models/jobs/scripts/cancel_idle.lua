-- After reindex.lua. KEYS: job hash, lease, running set, then
-- JobKeys.index_keys. ARGV: finished_at (JSON). Cancels a queued job, or a
-- running one whose worker is gone (no one else will).
local state = redis.call('HGET', KEYS[1], 'state')
if state == '"running"' and redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if state ~= '"queued"' and state ~= '"running"' then return 0 end
redis.call('HSET', KEYS[1], 'state', '"cancelled"', 'finished_at', ARGV[1])
redis.call('SREM', KEYS[3], cjson.decode(redis.call('HGET', KEYS[1], 'id')))
reindex(KEYS[1], cjson.decode(redis.call('HGET', KEYS[1], 'id')), state, '"cancelled"')
return 1
