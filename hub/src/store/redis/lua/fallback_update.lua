-- A fallback message replaced under its claim: only if its stored claims is still
-- ARGV[2]. With it, the next message (ARGV[4], ARGV[5]; '' for none) is queued if new,
-- and the events (ARGV[6]...) go on the incident's timeline. Returns 1, or 0 when it
-- was claimed again meanwhile.
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then
  return 0
end
if (cjson.decode(cur).claims or 0) ~= tonumber(ARGV[2]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
if ARGV[4] ~= '' then
  redis.call('HSETNX', KEYS[1], ARGV[4], ARGV[5])
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  for i = 6, #ARGV do
    redis.call('XADD', KEYS[3], '*', 'e', ARGV[i])
  end
end
return 1
