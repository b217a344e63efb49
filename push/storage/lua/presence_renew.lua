-- Renew the leases of a user's connections on one worker; drop the ids it lost.
--
-- KEYS: presence, state
-- ARGV: lease ms, state ttl seconds, then the ids to renew
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local lease = tonumber(ARGV[1])
for i = 3, #ARGV do
  redis.call('ZADD', KEYS[1], now + lease, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], lease)
redis.call('HSET', KEYS[2], 'last_seen', now)
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[2]))
return #ARGV - 2
