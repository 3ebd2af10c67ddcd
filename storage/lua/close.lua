-- Close: free the owner's slot; the customer's next message opens a new
-- conversation.  ARGV: prefix, conversation id, acting agent, may override, now
local cid, actor, override, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local k = conv_key(cid)
local h = redis.call('HMGET', k, 'status', 'assignee', 'channel', 'customer_id', 'role')
if not h[1] then return {'err', 'not_found'} end
if h[1] == 'closed' then return {'ok', conv_flat(cid)} end
if h[2] ~= '' and h[2] ~= actor and override ~= '1' then return {'err', 'owned', h[2]} end
unassign(cid)
redis.call('HSET', k, 'status', 'closed', 'closed_at', now, 'closed_by', actor, 'queued', '0')
redis.call('ZREM', P .. 'convs:open', cid)
redis.call('ZREM', queue_key(h[5] or ''), cid)
redis.call('ZADD', P .. 'convs:closed', now, cid)
local ck = P .. 'custconv:' .. h[3] .. ':' .. h[4]
if redis.call('GET', ck) == cid then redis.call('DEL', ck) end
return {'ok', conv_flat(cid)}
