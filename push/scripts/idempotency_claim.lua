-- Claim an idempotency key, within its scope's quota of live records.
--
-- KEYS: the key's record, its scope's index (a sorted set: record -> when it expires, ms)
-- ARGV: the record's name in the index, the record's lifetime (ms), the scope's quota
-- Returns {1} when claimed (the record says "in-progress"), {0, record} when the key is
-- known, {-1, ms until the scope's oldest record expires} when the quota is reached.
local record, index = KEYS[1], KEYS[2]
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', index, '-inf', string.format('%d', ms))
local stored = redis.call('GET', record)
if stored then
  return {0, stored}
end
if redis.call('ZCARD', index) >= tonumber(ARGV[3]) then
  local oldest = redis.call('ZRANGE', index, '0', '0', 'WITHSCORES')
  return {-1, tonumber(oldest[2]) - ms}
end
redis.call('SET', record, 'in-progress', 'PX', ARGV[2])
redis.call('ZADD', index, string.format('%d', ms + tonumber(ARGV[2])), ARGV[1])
redis.call('PEXPIRE', index, ARGV[2])
return {1}
