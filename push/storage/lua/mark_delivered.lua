-- Advance a user's delivered mark: the newest event written to any of its connections.
--
-- KEYS: state
-- ARGV: event id, its sequence number, ttl seconds
-- Returns 1 when the mark moved, 0 when it was already at or past this event.
local current = tonumber(redis.call('HGET', KEYS[1], 'delivered_n')) or 0
if tonumber(ARGV[2]) <= current then return 0 end
local now = redis.call('TIME')
-- '%d': Lua's own number-to-text goes through printf's floating-point path.
redis.call('HSET', KEYS[1], 'delivered_n', ARGV[2], 'delivered_id', ARGV[1],
  'delivered_at', string.format('%d', now[1] * 1000 + math.floor(now[2] / 1000)))
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
