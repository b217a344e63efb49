-- Move one user's messages into the history stream, atomically.
--
-- KEYS: mailbox, pending, history, state, dead, mover lease, presence, the mailbox's
--       write marker (sweep.lua)
-- ARGV: window, batch, history max length, ttl seconds, max message bytes, wake channel,
--       how to publish the wake (PUBLISH, or SPUBLISH on a cluster; default PUBLISH),
--       how many payload bytes a wake may carry (default 0: none),
--       the lease holder's id ("": do not look at the lease), the lease operation
--       ("claim", or "steal" from the dead holder named next), the lease's expiry (ms),
--       the presence prefix of the calling worker ("": always publish the wake),
--       the mailbox's cap (0: none) and expiry (ms; "": none), the bytes of a dead letter
--       kept (default: all), the dead-letter list's TTL (seconds; "": none) and how many
--       dead letters are kept (default 1000)
--
-- Takes from `pending` first (what BLMOVE, or a worker that died, left there), then
-- from the mailbox's right end (oldest first). Flow control: the history never
-- holds more than `window` entries past the user's delivered mark, so trimming the
-- history to its cap only drops entries that were delivered. A message over the
-- size limit or not valid UTF-8 goes to the dead-letter list instead, cut to its first
-- bytes behind a "[truncated: <n> bytes] " marker when longer than the dead-letter bound.
--
-- The mailbox is held to its cap first (the oldest, at the right end, go) and, while it
-- holds mail, its expiry and its write marker are renewed: an online user's backlog does
-- not age out, and the sweep sees any LPUSH after this drain (an emptied mailbox's marker
-- goes).
--
-- With a holder id, only the lease's holder drains (one drainer per user across the
-- fleet): a free lease is taken, a lease held by anyone else is left alone (and by
-- "steal", taken from the holder named dead) and its holder is returned, nothing moved.
--
-- The wake is published only when a connection of the user lives on another worker
-- (a presence member without the caller's prefix), or always without a prefix. It is
-- the newest id; when the moved payloads add up to no more than the carry limit, it is
-- followed by a space and a JSON array [id before, [id, n, payload]...]: the other
-- workers hand those to their connections without reading the history.
--
-- Returns {moved, dead, room left, more waiting (0/1), newest id, why each dead one died,
--          the id the history ended with before (false if empty), the moved entries as
--          {id, sequence number, payload}, the lease's holder when it is not the caller
--          (false otherwise), how many of the oldest the cap dropped}: the caller's worker hands the entries to its connections
--          without reading the history again.
local mailbox, pending, history, state, dead = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local lease, presence, marker = KEYS[6], KEYS[7], KEYS[8]
local window = tonumber(ARGV[1])
local batch = tonumber(ARGV[2])
local maxlen = tonumber(ARGV[3])
-- Numbers handed to redis.call are formatted as text: Lua's own conversion of a number
-- goes through printf's floating-point path (about 1 us each here); '%d' does not.
local ttl = ARGV[4]
local max_bytes = tonumber(ARGV[5])
local wake = ARGV[6]
local publish = ARGV[7] == 'SPUBLISH' and 'SPUBLISH' or 'PUBLISH'
local wake_bytes = tonumber(ARGV[8]) or 0
local me = ARGV[9] or ''
local prefix = ARGV[13] or ''
local mailbox_max = tonumber(ARGV[14]) or 0
local mailbox_expiry = ARGV[15] or ''
local dead_bytes = tonumber(ARGV[16])
local dead_ttl = ARGV[17] or ''
local dead_last = string.format('%d', (tonumber(ARGV[18]) or 1000) - 1)

if me ~= '' then
  local holder = redis.call('GET', lease)
  if holder ~= me then
    if holder and not (ARGV[10] == 'steal' and holder == ARGV[11]) then
      return {0, 0, 0, 0, false, {}, false, {}, holder, 0}
    end
    redis.call('SET', lease, me, 'PX', ARGV[12])
  end
end

local function valid_utf8(s)
  if not string.find(s, '[\128-\255]') then return true end
  local i, n = 1, #s
  while i <= n do
    local c = string.byte(s, i)
    if c < 0x80 then
      i = i + 1
    elseif c >= 0xC2 and c <= 0xDF then
      local c2 = string.byte(s, i + 1)
      if not c2 or c2 < 0x80 or c2 > 0xBF then return false end
      i = i + 2
    elseif c >= 0xE0 and c <= 0xEF then
      local c2, c3 = string.byte(s, i + 1, i + 2)
      if not c3 or c3 < 0x80 or c3 > 0xBF then return false end
      local low, high = 0x80, 0xBF
      if c == 0xE0 then low = 0xA0 elseif c == 0xED then high = 0x9F end
      if c2 < low or c2 > high then return false end
      i = i + 3
    elseif c >= 0xF0 and c <= 0xF4 then
      local c2, c3, c4 = string.byte(s, i + 1, i + 3)
      if not c4 or c3 < 0x80 or c3 > 0xBF or c4 < 0x80 or c4 > 0xBF then return false end
      local low, high = 0x80, 0xBF
      if c == 0xF0 then low = 0x90 elseif c == 0xF4 then high = 0x8F end
      if c2 < low or c2 > high then return false end
      i = i + 4
    else
      return false
    end
  end
  return true
end

local capped = 0
if mailbox_max > 0 then
  local length = redis.call('LLEN', mailbox)
  if length > mailbox_max then
    redis.call('LTRIM', mailbox, '0', string.format('%d', mailbox_max - 1))
    capped = length - mailbox_max
  end
end

local counters = redis.call('HMGET', state, 'seq', 'delivered_n', 'last')
local seq = tonumber(counters[1]) or 0
local delivered = tonumber(counters[2]) or 0
local previous_id = counters[3] or false
if seq > 0 and not previous_id then
  -- A history written before the state kept its newest id.
  local before = redis.call('XREVRANGE', history, '+', '-', 'COUNT', '1')
  if before[1] then previous_id = before[1][1] end
end
local room = window - (seq - delivered)
if room < 0 then room = 0 end
local want = math.min(batch, room)

local taken = {}
if want > 0 then
  taken = redis.call('RPOP', pending, string.format('%d', want)) or {}
  if #taken < want then
    local fresh = redis.call('RPOP', mailbox, string.format('%d', want - #taken))
    if fresh then
      for i = 1, #fresh do taken[#taken + 1] = fresh[i] end
    end
  end
end

local moved, dead_count, last_id = 0, 0, false
local reasons, added = {}, {}
local added_bytes = 0
for i = 1, #taken do
  local message = taken[i]
  local why = false
  if #message > max_bytes then
    why = 'too large'
  elseif not valid_utf8(message) then
    why = 'not UTF-8'
  end
  if why then
    if dead_bytes and #message > dead_bytes then
      message = string.format('[truncated: %d bytes] ', #message) .. string.sub(message, 1, dead_bytes)
    end
    redis.call('LPUSH', dead, message)
    redis.call('LTRIM', dead, '0', dead_last)
    if dead_ttl ~= '' then redis.call('EXPIRE', dead, dead_ttl) end
    dead_count = dead_count + 1
    reasons[#reasons + 1] = why
  else
    seq = seq + 1
    last_id = redis.call('XADD', history, '*', 'd', message, 'n', string.format('%d', seq))
    added[#added + 1] = {last_id, seq, message}
    added_bytes = added_bytes + #message
    moved = moved + 1
    room = room - 1
  end
end

if moved > 0 then
  redis.call('HSET', state, 'seq', string.format('%d', seq), 'last', last_id)
  local length = redis.call('XLEN', history)
  if length > maxlen then
    local excess = string.format('%d', length - maxlen)
    local dropped = redis.call('XRANGE', history, '-', '+', 'COUNT', excess)
    redis.call('HSET', state, 'trimmed', dropped[#dropped][1])
    redis.call('XTRIM', history, 'MAXLEN', ARGV[3])
  end
  redis.call('EXPIRE', history, ttl)
  redis.call('EXPIRE', state, ttl)
  local others = prefix == ''
  if not others then
    local members = redis.call('ZRANGE', presence, '0', '-1')
    for i = 1, #members do
      if string.sub(members[i], 1, #prefix) ~= prefix then
        others = true
        break
      end
    end
  end
  if others then
    if added_bytes <= wake_bytes then
      redis.call(publish, wake, last_id .. ' ' .. cjson.encode({previous_id or '', added}))
    else
      redis.call(publish, wake, last_id)
    end
  end
end

if mailbox_expiry ~= '' then
  local head = redis.call('LINDEX', mailbox, '0')
  if head then
    local now = redis.call('TIME')
    local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
    local left = redis.call('LLEN', mailbox)
    redis.call('PEXPIRE', mailbox, mailbox_expiry)
    redis.call('SET', marker, string.format('%d %d %s', ms, left, redis.sha1hex(head)),
      'PX', mailbox_expiry)
  else
    redis.call('DEL', marker)
  end
end

-- Fewer taken than asked for: both lists were empty a moment ago.
local more = 0
if #taken == want and (redis.call('LLEN', pending) > 0 or redis.call('LLEN', mailbox) > 0) then
  more = 1
end
return {moved, dead_count, room, more, last_id, reasons, previous_id, added, false, capped}
