-- Forget one connection of a user and note when the user was last seen.
--
-- KEYS: presence, state
-- ARGV: connection id, state ttl seconds
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], 'last_seen', now)
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[2]))
return removed
