-- Claim an idempotency key in its scope.
--
-- KEYS: the key's record, its scope's index (a sorted set: record -> when it expires, ms),
--       the scope's record sizes (a hash: record -> bytes), the scope's total bytes
-- ARGV: the record's name in the index, the record's lifetime (ms)
-- Forgets the sizes of up to EXPIRED_PER_CLAIM records that expired (each claim adds one
-- record, so the index keeps up). Returns {1} when claimed (the record says
-- "in-progress"), {0, record} when the key is known. The scope's bytes are bounded when
-- the answer is stored (idempotency_store.lua).
local EXPIRED_PER_CLAIM = 1000
local record, index, sizes, total = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local gone = redis.call('ZRANGEBYSCORE', index, '-inf', string.format('%d', ms),
  'LIMIT', '0', string.format('%d', EXPIRED_PER_CLAIM))
if #gone > 0 then
  local bytes = redis.call('HMGET', sizes, unpack(gone))
  local freed = 0
  for i = 1, #bytes do freed = freed + (tonumber(bytes[i]) or 0) end
  redis.call('HDEL', sizes, unpack(gone))
  redis.call('ZREM', index, unpack(gone))
  if freed > 0 then redis.call('DECRBY', total, string.format('%d', freed)) end
end
local stored = redis.call('GET', record)
if stored then
  return {0, stored}
end
redis.call('SET', record, 'in-progress', 'PX', ARGV[2])
redis.call('ZADD', index, string.format('%d', ms + tonumber(ARGV[2])), ARGV[1])
redis.call('PEXPIRE', index, ARGV[2])
redis.call('PEXPIRE', sizes, ARGV[2])
redis.call('PEXPIRE', total, ARGV[2])
return {1}
