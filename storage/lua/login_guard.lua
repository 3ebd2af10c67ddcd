-- Login attempts and growing lock-outs (storage/limits.py LoginGuard).
-- Each subject (an agent name, an address) has a round of attempts that starts
-- with its first attempt and lasts `window`; an attempt is counted before the
-- password is checked, so parallel guesses cannot slip past the limit.  When a
-- failure finds the round full, the subject is locked out, for `lockout` the
-- first time and twice as long each further time (at most `max_lockout`);
-- lock-outs are forgotten after `forget` without attempts.
-- KEYS: one hash per subject: n (attempts this round), since (round start),
--       strikes (lock-outs so far), locked_until (ms)
-- ARGV: op ('attempt' | 'failed' | 'succeeded'), window, lockout, max_lockout,
--       forget (ms), then per key: attempts allowed, on success ('reset': forget
--       everything | 'refund': the attempt does not count)
-- Returns {ms to wait (0: go on), index of the key that makes it wait}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local op = ARGV[1]
local window, lockout, max_lockout, forget =
  tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])

local function lockout_for(strikes)
  return math.min(lockout * 2 ^ (strikes - 1), max_lockout)
end

local subjects = {}
for i, key in ipairs(KEYS) do
  local h = redis.call('HMGET', key, 'n', 'since', 'strikes', 'locked_until')
  local s = {n = tonumber(h[1]) or 0, since = tonumber(h[2]) or 0, strikes = tonumber(h[3]) or 0,
             locked = tonumber(h[4]) or 0, allowed = tonumber(ARGV[4 + 2 * i]), on_success = ARGV[5 + 2 * i]}
  if now - s.since >= window then s.n = 0 end
  subjects[i] = s
end

local wait, which = 0, 0
local function hold(i, ms)
  if ms > wait then wait, which = ms, i end
end
if op == 'attempt' then
  for i, s in ipairs(subjects) do
    if s.locked > now then
      hold(i, s.locked - now)
    elseif s.n >= s.allowed then  -- the round's attempts are all in flight
      hold(i, lockout_for(s.strikes + 1))
    end
  end
  if wait > 0 then return {wait, which} end
  for i, key in ipairs(KEYS) do
    local s = subjects[i]
    if s.n == 0 then redis.call('HSET', key, 'since', now) end
    redis.call('HSET', key, 'n', s.n + 1)
    redis.call('PEXPIRE', key, math.max(s.locked - now, window) + forget)
  end
elseif op == 'failed' then
  for i, key in ipairs(KEYS) do
    local s = subjects[i]
    if s.n >= s.allowed and s.locked <= now then
      s.strikes = s.strikes + 1
      local till = now + lockout_for(s.strikes)
      redis.call('HSET', key, 'n', 0, 'strikes', s.strikes, 'locked_until', till)
      redis.call('PEXPIRE', key, till - now + forget)
      hold(i, till - now)
    end
  end
else
  for i, key in ipairs(KEYS) do
    local s = subjects[i]
    if s.on_success == 'reset' then
      redis.call('DEL', key)
    elseif s.n > 0 then
      redis.call('HSET', key, 'n', s.n - 1)
    end
  end
end
return {wait, which}
