-- Take ownership.  ARGV: prefix, conversation id, agent, may override ('1'/'0'), now
local cid, agent, override, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local h = redis.call('HMGET', conv_key(cid), 'status', 'assignee')
if not h[1] then return {'err', 'not_found'} end
if h[1] ~= 'open' then return {'err', 'closed'} end
if h[2] == agent then return {'ok', conv_flat(cid)} end
if h[2] ~= '' then
  if override ~= '1' then return {'err', 'owned', h[2]} end
  unassign(cid)
end
assign_to(cid, agent, now)
return {'ok', conv_flat(cid)}
