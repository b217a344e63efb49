-- Hold one mailbox to its cap and TTL, whoever wrote it (a raw LPUSH renews no TTL).
--
-- KEYS: mailbox, its write marker ({mailbox}:swept: "<last write, ms> <length> <sha1 of
--       the newest message>" as the last writer, drain or sweep left it)
-- ARGV: the cap (messages), the expiry past the last write (ms: the TTL plus a margin,
--       config.mailbox_expiry_ms), the TTL (ms)
-- Growth first: a mailbox whose length or newest message differs from its marker's (a
-- raw LPUSH since, or one never seen) counts as written now. Otherwise it was last written
-- at the marker's time, and is dropped whole once the TTL has passed since. Either way the
-- expiry is set to the last write plus ours (the sweeper's TTL decides, whoever wrote),
-- and past the cap the oldest (the right end) go. A key of another type is left alone.
-- Returns {dropped over the cap, dropped for age}.
local mailbox, marker = KEYS[1], KEYS[2]
local kind = redis.call('TYPE', mailbox).ok
if kind ~= 'list' then
  if kind == 'none' then redis.call('DEL', marker) end
  return {0, 0}
end
local length = redis.call('LLEN', mailbox)
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local head = redis.sha1hex(redis.call('LINDEX', mailbox, '0'))
local last, seen, seen_head
local stamp = redis.call('GET', marker)
if stamp then
  last, seen, seen_head = string.match(stamp, '^(%d+) (%d+) (%x+)$')
end
if last and tonumber(seen) == length and seen_head == head then
  last = tonumber(last)
  if ms - last >= tonumber(ARGV[3]) then
    redis.call('DEL', mailbox, marker)
    return {0, length}
  end
else
  last = ms
end
local cap = tonumber(ARGV[1])
local dropped = 0
if length > cap then
  redis.call('LTRIM', mailbox, '0', string.format('%d', cap - 1))
  dropped = length - cap
  length = cap
end
local expiry = string.format('%d', last + tonumber(ARGV[2]) - ms)
redis.call('PEXPIRE', mailbox, expiry)
redis.call('SET', marker, string.format('%d %d %s', last, length, head), 'PX', expiry)
return {dropped, 0}
