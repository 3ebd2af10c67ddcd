-- Give waiting conversations to agents with free slots, in queue order, role
-- by role.  ARGV: prefix, now, how many per role to look at, routing context
-- json (with `roles`: every role that has a queue)
local now, limit = ARGV[2], tonumber(ARGV[3])
local ctx = context(ARGV[4])
local out = {}
if redis.call('SCARD', P .. 'agents:online') == 0 then return out end
for role, _ in pairs(ctx.roles) do
  local r = role == '_any' and '' or role
  if not ctx.closed[r] then
    for _, cid in ipairs(redis.call('ZRANGE', queue_key(r), 0, limit - 1)) do
      local h = redis.call('HMGET', conv_key(cid), 'status', 'assignee')
      if h[1] ~= 'open' or (h[2] and h[2] ~= '') then
        redis.call('ZREM', queue_key(r), cid)
      else
        local hh = hash_of(cid)
        local sticky = ''
        if ctx.sticky then
          sticky = redis.call('HGET', customer_key(hh.channel, hh.customer_id), 'last_agent') or ''
        end
        local a = pick_agent(r, '', sticky, hh.tier == 'vip', ctx)
        if a then
          assign_to(cid, a, now)
          table.insert(out, conv_flat(cid))
        end
      end
    end
  end
end
return out
