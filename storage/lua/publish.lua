-- Publish many live-event payloads in one call.  KEYS: channel.  ARGV: payloads
for i = 1, #ARGV do redis.call('PUBLISH', KEYS[1], ARGV[i]) end
return #ARGV
