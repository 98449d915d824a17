-- Claims one fallback message for a sender (FallbackRecord::claim): if it is queued or
-- sending and due at ARGV[2], it becomes sending until ARGV[2] + ARGV[3].
-- Returns {'claimed', json}, {'later', next_at} or {'gone'} (nothing left to send).
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then
  return {'gone'}
end
local r = cjson.decode(cur)
if r.state ~= 'queued' and r.state ~= 'sending' then
  return {'gone'}
end
local now = tonumber(ARGV[2])
if r.next_at > now then
  return {'later', string.format('%d', r.next_at)}
end
r.state = 'sending'
r.claims = (r.claims or 0) + 1
r.next_at = now + tonumber(ARGV[3])
local j = cjson.encode(r)
redis.call('HSET', KEYS[1], ARGV[1], j)
return {'claimed', j}
