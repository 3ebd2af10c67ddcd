-- At most `count` events per `window` for every subject (storage/limits.py
-- RateLimiter): a sliding window, kept as a sorted set of the allowed events'
-- times.  All subjects are checked first and the event is logged in all of them,
-- or in none: a refused event costs nothing, so a flood recovers as soon as
-- the window has passed.  Time is the server's, shared by every kefu process.
-- KEYS: one sorted set per subject
-- ARGV: member (unique per event), then per key: count, window (ms)
-- Returns {0, 0} when allowed, else {index of the refusing key, ms to wait}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local refusing, wait = 0, 0
for i, key in ipairs(KEYS) do
  local count, window = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local n = redis.call('ZCARD', key)
  if n >= count then
    -- free again once the event `count` places from the newest leaves the window
    local edge = redis.call('ZRANGE', key, n - count, n - count, 'WITHSCORES')
    local w = tonumber(edge[2]) + window - now
    if refusing == 0 or w > wait then refusing, wait = i, w end
  end
end
if refusing > 0 then return {refusing, math.max(wait, 1)} end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[1])
  redis.call('PEXPIRE', key, ARGV[2 * i + 1])
end
return {0, 0}
