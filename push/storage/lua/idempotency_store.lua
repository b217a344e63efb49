-- Store the answer of a claimed idempotency key, and hold its scope to its bytes.
--
-- KEYS: the key's record, its scope's index, record sizes and total bytes (as
--       idempotency_claim.lua)
-- ARGV: the record's name in the index, the answer, the scope's bound (bytes), what a
--       record costs beyond its name and answer (bytes), the records' name prefix (a
--       record is prefix .. its name in the index), the records' lifetime (ms)
-- Past the bound the oldest stored records go (never this one, nor one in progress): a
-- retry after that queues again. A record gone meanwhile (evicted while in progress) stores nothing.
-- Returns how many records were evicted.
local EVICT_BATCH = 100
local record, index, sizes, total = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local member = ARGV[1]
if not redis.call('SET', record, ARGV[2], 'XX', 'KEEPTTL') then
  return 0
end
local size = #record + #ARGV[2] + tonumber(ARGV[4])
local before = tonumber(redis.call('HGET', sizes, member)) or 0
redis.call('HSET', sizes, member, string.format('%d', size))
local used = redis.call('INCRBY', total, string.format('%d', size - before))
redis.call('PEXPIRE', sizes, ARGV[6])
redis.call('PEXPIRE', total, ARGV[6])
local bound = tonumber(ARGV[3])
local evicted, kept = 0, 0
while used > bound do
  -- Oldest first; one in progress (no size yet: its first call is running) and this one
  -- are kept, so a retry waiting on a running call never finds its key gone.
  local batch = redis.call('ZRANGE', index, string.format('%d', kept),
    string.format('%d', kept + EVICT_BATCH - 1))
  if #batch == 0 then break end
  for i = 1, #batch do
    local name = batch[i]
    local freed = name ~= member and tonumber(redis.call('HGET', sizes, name))
    if freed then
      redis.call('DEL', ARGV[5] .. name)
      redis.call('HDEL', sizes, name)
      redis.call('ZREM', index, name)
      used = redis.call('DECRBY', total, string.format('%d', freed))
      evicted = evicted + 1
      if used <= bound then break end
    else
      kept = kept + 1
    end
  end
end
return evicted
