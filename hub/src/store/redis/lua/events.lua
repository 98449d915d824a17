-- Events added to an incident's timeline (a check-in, ...), only if it exists.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
for i = 1, #ARGV do
  redis.call('XADD', KEYS[2], '*', 'e', ARGV[i])
end
return 1
