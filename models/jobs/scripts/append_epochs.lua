-- After owned.lua. KEYS: job hash, lease, history list. ARGV: owner token,
-- epochs stored before these, progress, metrics (JSON), then one JSON object
-- per epoch. Writes nothing and returns -1 unless the job runs under this
-- token; returns the list's length when it holds fewer epochs than ARGV[2]
-- (some were never written: the caller sends from there); else trims what a
-- run before a resume wrote past ARGV[2], appends, and returns -2.
if not owned() then return -1 end
local before = tonumber(ARGV[2])
local stored = redis.call('LLEN', KEYS[3])
if stored < before then return stored end
if stored > before and before == 0 then redis.call('DEL', KEYS[3])
elseif stored > before then redis.call('LTRIM', KEYS[3], 0, before - 1) end
for i = 5, #ARGV do redis.call('RPUSH', KEYS[3], ARGV[i]) end
redis.call('HSET', KEYS[1], 'progress', ARGV[3], 'metrics', ARGV[4])
return -2
