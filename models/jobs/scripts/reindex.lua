-- Put ahead of each script that changes a job's state, after the constants
-- JobScripts writes for the store (STATE_NAMES, FINAL_STATES, RETENTION_MS).
-- reindex(job hash, id, from, to) moves the job between the per-state
-- indexes and, when it finishes, starts the countdown of its hash and
-- history. The script's last KEYS are JobKeys.index_keys: the job's history
-- list, the job index, then one index per state (STATES order).
local index_keys = #KEYS - #STATE_NAMES - 2
local history_key, index_key = KEYS[index_keys + 1], KEYS[index_keys + 2]
local by_state = {}
for i, name in ipairs(STATE_NAMES) do by_state[name] = KEYS[index_keys + 2 + i] end
local function reindex(job, id, from, to)
  local created = redis.call('ZSCORE', index_key, id) or redis.call('TIME')[1]
  if by_state[from] then redis.call('ZREM', by_state[from], id) end
  redis.call('ZADD', by_state[to], created, id)
  if FINAL_STATES[to] then
    redis.call('PEXPIRE', job, RETENTION_MS)
    redis.call('PEXPIRE', history_key, RETENTION_MS)
  end
end
