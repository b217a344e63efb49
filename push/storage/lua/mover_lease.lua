-- The right to run a user's mover (one BLMOVE per user across every worker and host).
--
-- KEYS: the user's mover lease
-- ARGV: this mover's id, the lease's safety expiry (ms), the operation, for "steal" the
--       holder whose worker was found dead, for "release" the user's wake channel and how
--       to publish on it (PUBLISH, or SPUBLISH on a cluster)
-- acquire: take a free lease (or keep ours)      -> 1, or the current holder's id
-- steal:   take it from that dead holder only    -> 1 / 0
-- check:   is it still ours                      -> 1 / 0
-- release: give it back if it is ours, and say "free" on the wake channel in the same
--          step, so a mover waiting for it cannot miss it   -> 1 / 0
local holder = redis.call('GET', KEYS[1])
local op = ARGV[3]
if op == 'acquire' then
  if not holder or holder == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return 1
  end
  return holder
elseif op == 'steal' then
  if holder == ARGV[4] then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return 1
  end
  return 0
elseif op == 'check' then
  if holder == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return 1
  end
  return 0
elseif op == 'release' then
  if holder == ARGV[1] then
    redis.call('DEL', KEYS[1])
    local publish = ARGV[6] == 'SPUBLISH' and 'SPUBLISH' or 'PUBLISH'
    redis.call(publish, ARGV[5], 'free')
    return 1
  end
  return 0
end
return redis.error_reply('unknown operation ' .. tostring(op))
