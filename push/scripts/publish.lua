-- Queue one message for one user, as a producer's LPUSH, held to the mailbox's cap and TTL.
--
-- KEYS: mailbox
-- ARGV: payload, the mailbox's cap (messages), its expiry (ms: renewed by every write)
-- Past the cap the oldest messages (the right end, the next to be drained) go.
-- Returns how many were dropped to keep the newest `cap`.
local length = redis.call('LPUSH', KEYS[1], ARGV[1])
local cap = tonumber(ARGV[2])
local dropped = 0
if length > cap then
  redis.call('LTRIM', KEYS[1], '0', string.format('%d', cap - 1))
  dropped = length - cap
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return dropped
