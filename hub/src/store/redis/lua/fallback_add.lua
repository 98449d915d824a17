-- New fallback messages of one incident (pairs of id, JSON); an id queued already is
-- left as it is. Returns how many were new.
if redis.call('EXISTS', KEYS[2]) == 0 then
  return 0
end
local n = 0
for i = 1, #ARGV, 2 do
  n = n + redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1])
end
return n
