-- Make Redis agree with config.yaml's agents, and recount each agent's load
-- from the conversations it owns.  ARGV: prefix, then per agent: id, name,
-- capacity, roles (comma separated)
local keep = {}
for i = 2, #ARGV, 4 do
  local a = ARGV[i]
  keep[a] = true
  local k = P .. 'agent:' .. a
  redis.call('HSET', k, 'name', ARGV[i + 1], 'capacity', ARGV[i + 2], 'roles', ARGV[i + 3])
  if redis.call('HEXISTS', k, 'status') == 0 then redis.call('HSET', k, 'status', 'offline') end
  redis.call('ZADD', P .. 'agents:load', redis.call('SCARD', k .. ':convs'), a)
end
for _, a in ipairs(redis.call('ZRANGE', P .. 'agents:load', 0, -1)) do
  if not keep[a] then
    redis.call('ZREM', P .. 'agents:load', a)
    redis.call('SREM', P .. 'agents:online', a)
    redis.call('HSET', P .. 'agent:' .. a, 'status', 'offline')
  end
end
return 1
