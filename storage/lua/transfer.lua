-- Explicit hand-over to an agent or to a role.
-- ARGV: prefix, conversation id, acting agent, may override ('1'/'0'), now,
--       'agent' | 'role' | 'reassign', target, routing context json
local cid, actor, override, now, what, target = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local ctx = context(ARGV[8])
local k = conv_key(cid)
local h = redis.call('HMGET', k, 'status', 'assignee', 'role')
if not h[1] then return {'err', 'not_found'} end
if h[1] ~= 'open' then return {'err', 'closed'} end
if h[2] ~= '' and h[2] ~= actor and override ~= '1' then return {'err', 'owned', h[2]} end
if what == 'agent' then
  if redis.call('EXISTS', P .. 'agent:' .. target) == 0 then return {'err', 'unknown_agent'} end
  if redis.call('SISMEMBER', P .. 'agents:online', target) == 0 then return {'err', 'agent_offline'} end
  unassign(cid)
  redis.call('ZREM', queue_key(h[3] or ''), cid)
  assign_to(cid, target, now)
elseif what == 'reassign' then
  -- SLA ladder: another agent of the role if one is free, else it stays put.
  local previous = unassign(cid)
  local hh = hash_of(cid)
  local a = pick_agent(hh.role or '', previous or '', '', hh.tier == 'vip', ctx)
  if not a and previous and previous ~= '' then a = previous end
  if a then assign_to(cid, a, now) else assign_or_queue(cid, '', now, ctx) end
else
  if not ctx.roles[target] then return {'err', 'unknown_role'} end
  local previous = unassign(cid)
  redis.call('ZREM', queue_key(h[3] or ''), cid)
  redis.call('HSET', k, 'role', target, 'queued', '0', 'menu_pending', '0')
  ctx.sticky = false
  assign_or_queue(cid, previous or '', now, ctx)
end
return {'ok', conv_flat(cid)}
