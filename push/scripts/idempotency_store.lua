-- Store the answer of a claimed idempotency key, and hold its scope to its bytes.
--
-- KEYS: the key's record, its scope's index, record sizes and total bytes (as
--       idempotency_claim.lua)
-- ARGV: the record's name in the index, the answer, the scope's bound (bytes), what a
--       record costs beyond its name and answer (bytes), the records' name prefix (a
--       record is prefix .. its name in the index), the records' lifetime (ms)
-- Past the bound the oldest records go (never this one): a retry after that queues
-- again. A record gone meanwhile (evicted while in progress) stores nothing.
-- Returns how many records were evicted.
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
local evicted = 0
while used > bound do
  local oldest = redis.call('ZRANGE', index, '0', '0')[1]
  if not oldest or oldest == member then break end
  local freed = tonumber(redis.call('HGET', sizes, oldest)) or 0
  redis.call('DEL', ARGV[5] .. oldest)
  redis.call('HDEL', sizes, oldest)
  redis.call('ZREM', index, oldest)
  used = redis.call('DECRBY', total, string.format('%d', freed))
  evicted = evicted + 1
end
return evicted
