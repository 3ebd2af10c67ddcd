-- An agent's reply: check ownership (claiming an unowned conversation),
-- store it and queue it for the customer's channel in one atomic step, so a
-- reply is stored if and only if it will be delivered.
-- ARGV: prefix, conversation id, agent, may override owner ('1'/'0'),
--       message id, encoded message, now, outbound stream key
local cid, agent, override, mid, blob, now, stream =
  ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local k = conv_key(cid)
local h = redis.call('HMGET', k, 'status', 'assignee', 'channel', 'customer_id')
if not h[1] then return {'err', 'not_found'} end
if h[1] ~= 'open' then return {'err', 'closed'} end
local claimed = 0
if h[2] == '' then
  assign_to(cid, agent, now)
  claimed = 1
elseif h[2] ~= agent and override ~= '1' then
  return {'err', 'owned', h[2]}
end
if append_message(cid, mid, blob, now) == 1 then
  redis.call('HSET', k, 'unread', 0, 'last_agent_at', now, 'waiting_since', '', 'human', '0')
  redis.call('HSETNX', k, 'first_response_at', now)
  redis.call('HSET', customer_key(h[3], h[4]), 'last_agent', agent)
  redis.call('ZADD', P .. 'convs:open', now, cid)
  redis.call('XADD', stream, '*', 'e', blob)
end
return {'ok', claimed, conv_flat(cid)}
