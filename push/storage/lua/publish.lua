-- Queue one message for one user, as a producer's LPUSH, held to the mailbox's cap and TTL.
--
-- KEYS: mailbox, its write marker ({mailbox}:swept, see sweep.lua)
-- ARGV: payload, the mailbox's cap (messages), its expiry (ms: renewed by every write)
-- Past the cap the oldest messages (the right end, the next to be drained) go. The marker
-- records this write's time, so the sweep counts the TTL from it.
-- Returns how many were dropped to keep the newest `cap`.
local mailbox, marker = KEYS[1], KEYS[2]
local length = redis.call('LPUSH', mailbox, ARGV[1])
local cap = tonumber(ARGV[2])
local dropped = 0
if length > cap then
  redis.call('LTRIM', mailbox, '0', string.format('%d', cap - 1))
  dropped = length - cap
  length = cap
end
redis.call('PEXPIRE', mailbox, ARGV[3])
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('SET', marker, string.format('%d %d %s', ms, length, redis.sha1hex(ARGV[1])),
  'PX', ARGV[3])
return dropped
