local done = tonumber(redis.call('GET', KEYS[1]) or '0')
if done + 1 ~= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
for i = 2, #ARGV do redis.call('XADD', KEYS[2], '*', 'e', ARGV[i]) end
return 1
