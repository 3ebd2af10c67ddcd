-- ARGV: prefix, agent, status, now
local agent, status, now = ARGV[2], ARGV[3], ARGV[4]
redis.call('HSET', P .. 'agent:' .. agent, 'status', status, 'last_active', now)
if status == 'online' then
  redis.call('SADD', P .. 'agents:online', agent)
else
  redis.call('SREM', P .. 'agents:online', agent)
end
return 1
