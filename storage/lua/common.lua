-- Shared by every conversation script.  ARGV[1] is always the key prefix;
-- key suffixes match storage/keys.py.
local P = ARGV[1]

local function conv_key(cid) return P .. 'conv:' .. cid end
local function queue_key(role) return P .. 'queue:' .. (role ~= '' and role or '_any') end
local function customer_key(channel, cust) return P .. 'customer:' .. channel .. ':' .. cust end

local function set_of(list)
  local s = {}
  for _, v in ipairs(list or {}) do s[v] = true end
  return s
end

-- Routing context from routing/router.py (JSON): roles closed now, role
-- fallbacks, stickiness, VIP agents, agents outside their personal hours.
local function context(json)
  local c = cjson.decode(json)
  c.closed = set_of(c.closed)
  c.off_agents = set_of(c.off_agents)
  c.vip_set = set_of(c.vip_agents)
  c.has_vip = #(c.vip_agents or {}) > 0
  c.fallback = c.fallback or {}
  return c
end

local function holds(roles_csv, role)
  return role == '' or string.find(',' .. (roles_csv or '') .. ',', ',' .. role .. ',', 1, true) ~= nil
end

-- An online agent holding `role` with a free slot: the customer's previous
-- agent if `sticky` names one that qualifies, else least loaded, ties to the
-- one idle longest.  `exclude` is skipped (the agent a conversation leaves).
local function pick_in_role(role, exclude, sticky, vip, ctx)
  local best, best_load, best_idle = false, nil, nil
  for _, a in ipairs(redis.call('SMEMBERS', P .. 'agents:online')) do
    if a ~= exclude and not ctx.off_agents[a] and (not vip or not ctx.has_vip or ctx.vip_set[a]) then
      local info = redis.call('HMGET', P .. 'agent:' .. a, 'capacity', 'roles', 'last_assigned_at')
      local load = tonumber(redis.call('ZSCORE', P .. 'agents:load', a)) or 0
      if load < (tonumber(info[1]) or 0) and holds(info[2], role) then
        if a == sticky then return a end
        local idle = tonumber(info[3]) or 0
        if not best or load < best_load or (load == best_load and idle < best_idle) then
          best, best_load, best_idle = a, load, idle
        end
      end
    end
  end
  return best
end

-- The role itself, then its fallback (e.g. dispute → supervisor).
local function pick_agent(role, exclude, sticky, vip, ctx)
  if ctx.closed[role] then return false end
  local a = pick_in_role(role, exclude, sticky, vip, ctx)
  if not a and ctx.fallback[role] and not ctx.closed[ctx.fallback[role]] then
    a = pick_in_role(ctx.fallback[role], exclude, sticky, vip, ctx)
  end
  return a
end

local function assign_to(cid, agent, now)
  local k = conv_key(cid)
  local h = redis.call('HMGET', k, 'role', 'channel', 'customer_id')
  redis.call('HSET', k, 'assignee', agent, 'queued', '0', 'assigned_at', now)
  redis.call('ZINCRBY', P .. 'agents:load', 1, agent)
  redis.call('SADD', P .. 'agent:' .. agent .. ':convs', cid)
  redis.call('HSET', P .. 'agent:' .. agent, 'last_assigned_at', now)
  redis.call('ZREM', queue_key(h[1] or ''), cid)
  redis.call('HSET', customer_key(h[2], h[3]), 'last_agent', agent)
end

local function unassign(cid)
  local owner = redis.call('HGET', conv_key(cid), 'assignee')
  if owner and owner ~= '' then
    if redis.call('SREM', P .. 'agent:' .. owner .. ':convs', cid) == 1 then
      redis.call('ZINCRBY', P .. 'agents:load', -1, owner)
    end
    redis.call('HSET', conv_key(cid), 'assignee', '')
  end
  return owner
end

-- Queue order: left-message tickets first, then VIP, then oldest.
local function queue_score(h)
  local band = 0
  if h.left_message == '1' then band = 2 elseif h.tier == 'vip' or h.human == '1' then band = 1 end
  return (tonumber(h.created_at) or 0) - band * 1e10
end

local function hash_of(cid)
  local flat = redis.call('HGETALL', conv_key(cid))
  local h = {}
  for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
  return h
end

-- Assign now, or put in the role's waiting queue.
local function assign_or_queue(cid, exclude, now, ctx)
  local h = hash_of(cid)
  local sticky = ''
  if ctx.sticky then
    sticky = redis.call('HGET', customer_key(h.channel, h.customer_id), 'last_agent') or ''
  end
  local a = pick_agent(h.role or '', exclude, sticky, h.tier == 'vip', ctx)
  if a then
    assign_to(cid, a, now)
    return a
  end
  redis.call('HSET', conv_key(cid), 'queued', '1')
  redis.call('ZADD', queue_key(h.role or ''), queue_score(h), cid)
  return ''
end

-- `last_message` is what a person last wrote (the inbox preview): kefu's own
-- messages (welcome, queue position...) take it only while there is none.
local function append_message(cid, mid, blob, now, automatic)
  local k = conv_key(cid)
  if redis.call('HSETNX', k .. ':msg', mid, blob) == 0 then return 0 end
  redis.call('RPUSH', k .. ':order', mid)
  if automatic then
    redis.call('HSETNX', k, 'last_message', blob)
    redis.call('HSET', k, 'updated_at', now)
  else
    redis.call('HSET', k, 'last_message', blob, 'updated_at', now)
  end
  return 1
end

local function conv_flat(cid)
  local flat = redis.call('HGETALL', conv_key(cid))
  local h = redis.call('HMGET', conv_key(cid), 'role', 'queued')
  if h[2] == '1' then
    local rank = redis.call('ZRANK', queue_key(h[1] or ''), cid)
    if rank then
      table.insert(flat, 'position')
      table.insert(flat, tostring(rank + 1))
    end
  end
  return flat
end
