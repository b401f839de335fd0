-- Put ahead of each script through which a worker writes to its job (KEYS[1]
-- the job hash, KEYS[2] its lease, ARGV[1] the worker's token, bare): owned()
-- is true while the job runs under that token. A claim records the token in
-- the job (owner_token, JSON) and the next claim replaces it, so a worker
-- that lost its job (it stalled past its lease, and another worker took the
-- job over) can write nothing more to it: a fencing token. A lease held under
-- another token refuses it too (a claim by a release before owner tokens); a
-- job claimed before there were such tokens has only its lease.
local function owned()
  local lease = redis.call('GET', KEYS[2])
  local owner = redis.call('HGET', KEYS[1], 'owner_token') or lease
  return (owner == ARGV[1] or owner == cjson.encode(ARGV[1]))
     and (not lease or lease == ARGV[1])
     and redis.call('HGET', KEYS[1], 'state') == '"running"'
end
