-- Revoke a user: credentials issued before now are refused from now on, and every open
-- connection of the user, on every worker and host, is told to close.
--
-- KEYS: revoked, presence, the user's wake channel (a channel, named like a key so that
--       a cluster routes the script to the user's node)
-- ARGV: how long to remember the revocation (ms), how to publish (PUBLISH, or SPUBLISH on
--       a cluster), the reason (may be empty)
-- Returns {connections open (unexpired presence leases), the revocation's time (ms)}.
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local stamp = string.format('%d', now)
redis.call('SET', KEYS[1], stamp, 'PX', ARGV[1])
local open = redis.call('ZCOUNT', KEYS[2], string.format('%d', now), '+inf')
local publish = ARGV[2] == 'SPUBLISH' and 'SPUBLISH' or 'PUBLISH'
redis.call(publish, KEYS[3], 'revoked ' .. ARGV[3])
return {open, now}
