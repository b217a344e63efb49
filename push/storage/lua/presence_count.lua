-- How many live connections a user has, and when the user was last seen (ms).
--
-- KEYS: presence, state
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local count = redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
return {count, redis.call('HGET', KEYS[2], 'last_seen')}
