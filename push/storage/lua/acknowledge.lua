-- Record that a user's client showed an event: the newest acknowledged id only moves forward,
-- and never past what the user was given (the delivered mark, or the history's newest entry:
-- a client may ack an entry before the delivered mark, written every 50 ms, reaches it).
-- An ack of an id never given would hold every later receipt back.
--
-- KEYS: state, history
-- ARGV: event id (each part at most 2^64-1, no leading zeros), ttl seconds
-- Returns 1 when the acknowledged id moved, 0 when it was already at or past this one,
-- -1 when the id is past everything the user was given (nothing is recorded).
-- Ids are compared as decimal text (Lua's numbers are doubles: exact only below 2^53).
local function parse(id)
  if not id then return nil end
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  if not ms then return nil end
  return (string.gsub(ms, '^0+(%d)', '%1')), (string.gsub(seq, '^0+(%d)', '%1'))
end
local function less(a, b)
  if #a ~= #b then return #a < #b end
  return a < b
end
-- Whether id a (parsed) is after id b (parsed).
local function after(ams, aseq, bms, bseq)
  if ams ~= bms then return less(bms, ams) end
  return less(bseq, aseq)
end
local ms, seq = parse(ARGV[1])
local state = redis.call('HMGET', KEYS[1], 'acked_id', 'delivered_id')
local cms, cseq = parse(state[1])
if cms and not after(ms, seq, cms, cseq) then return 0 end
local given = false
local dms, dseq = parse(state[2])
if dms and not after(ms, seq, dms, dseq) then given = true end
if not given then
  local newest = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
  local hms, hseq = parse(newest[1] and newest[1][1])
  if hms and not after(ms, seq, hms, hseq) then given = true end
end
if not given then return -1 end
local now = redis.call('TIME')
local fields = {'acked_id', ARGV[1],
  'acked_at', string.format('%d', now[1] * 1000 + math.floor(now[2] / 1000))}
local entry = redis.call('XRANGE', KEYS[2], ARGV[1], ARGV[1])
if entry[1] then
  local values = entry[1][2]
  for i = 1, #values, 2 do
    if values[i] == 'n' then
      fields[#fields + 1] = 'acked_n'
      fields[#fields + 1] = values[i + 1]
    end
  end
end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
