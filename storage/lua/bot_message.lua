-- An automatic message (welcome, off-hours, queue position…) to the customer:
-- stored in the history and queued for delivery, once per message id.
-- ARGV: prefix, conversation id, message id, encoded message, now, outbound stream,
--       conversation field to set (or ''), its value
local cid, mid, blob, now, stream, field, value = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
if redis.call('EXISTS', conv_key(cid)) == 0 then return 0 end
if append_message(cid, mid, blob, now, true) == 0 then return 0 end
if field ~= '' then
  redis.call('HSET', conv_key(cid), field, value)
  local h = hash_of(cid)
  if h.queued == '1' then  -- the field may move it in line (a left message goes first)
    redis.call('ZADD', queue_key(h.role or ''), queue_score(h), cid)
  end
end
redis.call('XADD', stream, '*', 'e', blob)
return 1
