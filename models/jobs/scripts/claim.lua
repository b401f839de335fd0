-- After reindex.lua. KEYS: job hash, lease, running set, the queued jobs by
-- last send, then JobKeys.index_keys. ARGV: token, lease ms, worker, device,
-- started_at (JSON), max attempts, job id. Returns {outcome, attempts,
-- previous worker, deliveries lost}. The token goes into the lease and into
-- the job (owner_token, see owned.lua). A running job without a lease is
-- taken over unless a cancel waits for it or it has lost its deliveries
-- (those whose worker died: a hand-back is not one): those come back
-- orphaned, for the caller to end. Whatever it finds, the job no longer
-- waits for a message.
redis.call('ZREM', KEYS[4], ARGV[7])
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing', 0, 'null', 0} end
local attempts = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0')
local lost = attempts - tonumber(redis.call('HGET', KEYS[1], 'handed_back') or '0')
local previous = redis.call('HGET', KEYS[1], 'worker') or 'null'
local outcome = 'started'
if state == '"running"' then
  if redis.call('EXISTS', KEYS[2]) == 1 then return {'busy', attempts, previous, lost} end
  if redis.call('HGET', KEYS[1], 'cancel_requested') == 'true'
     or lost >= tonumber(ARGV[6]) then
    return {'orphaned', attempts, previous, lost}
  end
  outcome = 'resumed'
elseif state == '"queued"' then
  redis.call('HSET', KEYS[1], 'state', '"running"', 'started_at', ARGV[5])
  redis.call('SADD', KEYS[3], ARGV[7])
  reindex(KEYS[1], ARGV[7], state, '"running"')
else
  return {'finished', attempts, previous, lost}
end
redis.call('HSET', KEYS[1], 'worker', ARGV[3], 'device', ARGV[4], 'attempts', attempts + 1,
           'owner_token', cjson.encode(ARGV[1]))
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return {outcome, attempts + 1, previous, lost}
