-- Register one connection of a user, unless the user is at the limit or its credential
-- was revoked.
--
-- KEYS: presence (sorted set: connection id -> lease expiry, ms), state, revoked (the
--       time, ms, of the user's last revocation)
-- ARGV: connection id, lease ms, max connections per user, state ttl seconds, when the
--       credential was issued (ms; -1: not a token, which no revocation refuses)
-- Returns {1 joined / 0 refused, connections counted (with this one if joined), the
--          user's delivered mark (false if none): where a stream without a cursor starts,
--          1 if the mark is the history's newest entry (or the history is empty) else 0},
--         or {-1, when the user was revoked (ms)} for a credential issued before that.
local issued = tonumber(ARGV[5]) or -1
if issued >= 0 then
  local revoked = tonumber(redis.call('GET', KEYS[3]) or '0') or 0
  if revoked > 0 and issued < revoked then return {-1, revoked} end
end
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local lease = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local count = redis.call('ZCARD', KEYS[1])
if count >= tonumber(ARGV[3]) then return {0, count, false} end
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
redis.call('PEXPIRE', KEYS[1], lease)
redis.call('HSET', KEYS[2], 'last_seen', now)
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[4]))
local state = redis.call('HMGET', KEYS[2], 'delivered_id', 'delivered_n', 'seq')
local caught_up = (tonumber(state[2]) or 0) == (tonumber(state[3]) or 0) and 1 or 0
return {1, count + 1, state[1], caught_up}
