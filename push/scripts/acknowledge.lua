-- Record that a user's client showed an event: the newest acknowledged id only moves forward.
--
-- KEYS: state, history
-- ARGV: event id, ttl seconds
-- Returns 1 when the acknowledged id moved, 0 when it was already at or past this one.
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local ms, seq = parse(ARGV[1])
local current = redis.call('HGET', KEYS[1], 'acked_id')
if current then
  local cms, cseq = parse(current)
  if ms < cms or (ms == cms and seq <= cseq) then return 0 end
end
local now = redis.call('TIME')
local fields = {'acked_id', ARGV[1], 'acked_at', now[1] * 1000 + math.floor(now[2] / 1000)}
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
