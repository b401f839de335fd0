-- After owned.lua. KEYS: job hash, lease. ARGV: token, field, value, ...
-- A worker's write to its running job; 0 (nothing written) when it is not
-- its own.
if not owned() then return 0 end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
