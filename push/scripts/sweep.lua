-- Hold one mailbox to its cap and TTL, whoever wrote it (a raw LPUSH renews no TTL).
--
-- KEYS: mailbox, its sweep marker ({mailbox}:swept: its length after the last sweep)
-- ARGV: the cap (messages), the expiry our writers give (ms), the margin of it past the
--       TTL (ms)
-- A mailbox whose expiry is within the margin was not written for its TTL: it is dropped
-- whole. One without an expiry (raw LPUSH to a new key), or longer than the sweep left it
-- (raw LPUSH since), counts as written now: its expiry is renewed (as is one that expires
-- later than ours would: the TTL was lowered). Past the cap the oldest (the right end) go.
-- Returns {dropped over the cap, dropped for age}.
local mailbox, marker = KEYS[1], KEYS[2]
local length = redis.call('LLEN', mailbox)
if length == 0 then
  redis.call('DEL', marker)
  return {0, 0}
end
local left = redis.call('PTTL', mailbox)
if left >= 0 and left <= tonumber(ARGV[3]) then
  redis.call('DEL', mailbox, marker)
  return {0, length}
end
local seen = tonumber(redis.call('GET', marker))
local cap = tonumber(ARGV[1])
local dropped = 0
if length > cap then
  redis.call('LTRIM', mailbox, '0', string.format('%d', cap - 1))
  dropped = length - cap
end
if left < 0 or left > tonumber(ARGV[2]) or not seen or length > seen then
  redis.call('PEXPIRE', mailbox, ARGV[2])
end
redis.call('SET', marker, string.format('%d', length - dropped), 'PX', ARGV[2])
return {dropped, 0}
