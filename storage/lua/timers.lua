-- Fire due timers exactly once across processes: each due timer is removed
-- and turned into a `timer` event on the inbound stream in one atomic step;
-- the router then handles it like any other event.
-- KEYS: timers zset, inbound stream.  ARGV: now, max count
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
  redis.call('ZREM', KEYS[1], member)
  local kind, cid, extra = string.match(member, '^([^|]*)|([^|]*)|(.*)$')
  local event = cmsgpack.pack({
    id = 't_' .. member, type = 'timer', channel = '_timer', channel_kind = 'timer',
    direction = 'in', customer_id = cid or '', ts = tonumber(ARGV[1]),
    meta = {kind = kind or '', conversation_id = cid or '', extra = extra or ''}, v = 1})
  redis.call('XADD', KEYS[2], '*', 'e', event)
end
return #due
