-- Store a batch of inbound customer messages in one call: per message, find
-- or open the customer's conversation, append the message once (by id),
-- assign it or queue it, and start the owner's reminder timer.
-- ARGV: prefix, now, routing context json, the batch (msgpack: one array per
-- message, storage/conversations.py:IngestItem).
-- Returns JSON {items, online_roles}: per message {cid, fresh, created, changed}
-- plus the conversation when agents need its new state or the router may have
-- to tell the customer something (it is waiting and something is due); and the
-- roles some online agent holds ('' too when anyone is online).
local now = ARGV[2]
local ctx = context(ARGV[3])
local remind = tonumber(ctx.remind_after) or 0
local position_every = tonumber(ctx.position_updates) or 60
local online_roles, online_list = {}, {}
local function online(role)
  if not online_roles[role] then
    online_roles[role] = true
    online_list[#online_list + 1] = role
  end
end
for _, a in ipairs(redis.call('SMEMBERS', P .. 'agents:online')) do
  online('')
  for r in string.gmatch(redis.call('HGET', P .. 'agent:' .. a, 'roles') or '', '[^,]+') do online(r) end
end
local out = {}

local function waiting_needs_word(k, role)
  -- mirrors routing/router.py:_automate for a conversation that waits
  local f = redis.call('HMGET', k, 'flag:offhours_until', 'left_message', 'flag:position_at')
  if ctx.closed[role] then return tonumber(now) >= (tonumber(f[1]) or 0) end
  local fallback = ctx.fallback[role]
  local someone = (role == '' and next(online_roles) ~= nil) or online_roles[role] or
                  (fallback and online_roles[fallback])
  if not someone then return f[2] ~= '1' end
  return tonumber(now) - (tonumber(f[3]) or 0) >= position_every
end

for _, m in ipairs(cmsgpack.unpack(ARGV[4])) do
  local INGEST_ITEM = unpack(m)  -- IngestItem's field names, in its order
  local ck = P .. 'custconv:' .. channel .. ':' .. cust
  local cust_k = customer_key(channel, cust)
  local cid = redis.call('GET', ck)
  local created = 0
  if tier ~= '' or attrs ~= '' then
    redis.call('HSET', cust_k, 'tier', tier ~= '' and tier or (redis.call('HGET', cust_k, 'tier') or 'new'),
               'attributes', attrs ~= '' and attrs or (redis.call('HGET', cust_k, 'attributes') or '{}'))
  end
  if not cid then
    cid = new_cid
    if lang ~= '' then redis.call('HSET', cust_k, 'language', lang) end
    local stored = redis.call('HMGET', cust_k, 'tier', 'attributes', 'language')
    redis.call('SET', ck, cid)
    redis.call('HSET', conv_key(cid), 'id', cid, 'channel', channel, 'channel_kind', kind,
      'customer_id', cust, 'customer_name', name, 'status', 'open', 'role', role,
      'assignee', '', 'created_at', now, 'updated_at', now, 'priority', priority,
      'unread', 0, 'queued', '0', 'attributes', stored[2] or '{}', 'tier', stored[1] or 'new',
      'language', stored[3] or '', 'menu_pending', menu, 'sla_due', first_due)
    redis.call('RPUSH', P .. 'custhist:' .. channel .. ':' .. cust, cid)
    redis.call('ZADD', P .. 'timers', first_due, 'first_response|' .. cid .. '|1',
               resolution_due, 'resolution|' .. cid .. '|1')
    created = 1
  end
  local k = conv_key(cid)
  local fresh = redis.call('HSETNX', k .. ':msg', mid, blob)
  local changed = created
  local h
  if fresh == 1 then
    redis.call('RPUSH', k .. ':order', mid)
    h = redis.call('HMGET', k, 'assignee', 'queued', 'role', 'menu_pending', 'waiting_since', 'language', 'unread')
    -- one write for everything this message changes
    local fields = {'last_message', blob, 'updated_at', now, 'last_customer_at', now,
                    'unread', (tonumber(h[7]) or 0) + 1}
    local function set(f, v) fields[#fields + 1] = f; fields[#fields + 1] = v end
    if not h[5] or h[5] == '' then set('waiting_since', now) end
    if name ~= '' then set('customer_name', name) end
    if attrs ~= '' then set('attributes', attrs) end
    if tier ~= '' then set('tier', tier) end
    if lang ~= '' and lang ~= h[6] then
      set('language', lang)
      redis.call('HSET', cust_k, 'language', lang)
    end
    if order_no ~= '' then set('order_no', order_no) end
    if human == '1' then set('human', '1') end
    redis.call('HSET', k, unpack(fields))
    redis.call('ZADD', P .. 'convs:open', now, cid)
    if h[1] == '' then
      if h[2] == '1' then
        -- already waiting: the drain assigns it; re-rank only if its band may have changed
        if human == '1' or tier ~= '' then
          redis.call('ZADD', queue_key(h[3] or ''), queue_score(hash_of(cid)), cid)
        end
      elseif assign_or_queue(cid, '', now, ctx) ~= '' then
        changed = 1
      end
      h[1] = redis.call('HGET', k, 'assignee')
    end
    if h[1] ~= '' and remind > 0 then
      redis.call('ZADD', P .. 'timers', tonumber(now) + remind, 'remind|' .. cid .. '|' .. mid)
    end
  end
  local r = {cid = cid, fresh = fresh, created = created, changed = changed}
  if fresh == 1 and (changed == 1 or h[4] == '1' or human == '1' or
                     (h[1] == '' and waiting_needs_word(k, h[3] or ''))) then
    local flat = conv_flat(cid)
    local conv = {}
    for i = 1, #flat, 2 do
      if flat[i] ~= 'last_message' then conv[flat[i]] = flat[i + 1] end
    end
    r.conv = conv
  end
  out[#out + 1] = r
end
return cjson.encode({items = out, online_roles = online_list})
