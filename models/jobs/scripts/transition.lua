-- After reindex.lua and owned.lua. KEYS: job hash, lease, running set, the
-- queued jobs by last send, then JobKeys.index_keys. ARGV: token ('' for a
-- move that is not a worker's: fenced otherwise, {-1, state} when the job is
-- not the worker's), new state, allowed current states (comma list), now (s),
-- field, value, ...  Every value is JSON, the states too ('"queued"').
-- A job goes back to queued only when its worker hands it back (SIGTERM):
-- that delivery is counted in handed_back, so it does not use up one of the
-- job's max_attempts, and the job waits for a message again.
local current = redis.call('HGET', KEYS[1], 'state')
if not current then return {0, ''} end
if ARGV[1] ~= '' and not owned() then return {-1, current} end
local allowed = ',' .. ARGV[3] .. ','
if not string.find(allowed, ',' .. current .. ',', 1, true) then return {0, current} end
redis.call('HSET', KEYS[1], 'state', ARGV[2])
for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
local id = cjson.decode(redis.call('HGET', KEYS[1], 'id'))
reindex(KEYS[1], id, current, ARGV[2])
if ARGV[2] == '"running"' then redis.call('SADD', KEYS[3], id)
else redis.call('SREM', KEYS[3], id) end
if ARGV[2] == '"queued"' then
  redis.call('HINCRBY', KEYS[1], 'handed_back', 1)
  redis.call('ZADD', KEYS[4], ARGV[4], id)
end
return {1, current}
