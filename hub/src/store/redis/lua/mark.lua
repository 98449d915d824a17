local meta = redis.call('GET', KEYS[1])
if not meta then return {'not_found'} end
local closed = cjson.decode(meta).state == 'closed'
local out = {meta}
local delta = {}
for i = 1, #ARGV, 4 do
  local lead, kind, at = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local cur = redis.call('HGET', KEYS[2], lead)
  if not cur then
    out[#out + 1] = 'not_recipient'; out[#out + 1] = ''
  elseif kind ~= 'receipt' and closed then
    out[#out + 1] = 'closed'; out[#out + 1] = ''
  else
    local r = cjson.decode(cur)
    local old = r.status
    local changed = false
    local used_up = false
    if kind == 'receipt' then
      if r.status == 'pending' then
        r.status = 'delivered'
        r.delivered_at = at
        changed = true
      end
    else
      local want = 'declined'
      if kind == 'accept' then want = 'accepted' end
      if r.status ~= want and (r.answers or 0) >= MAX_ANSWERS then
        used_up = true
      elseif r.status ~= want then
        r.status = want
        r.answers = (r.answers or 0) + 1
        if r.delivered_at == nil or r.delivered_at == cjson.null then r.delivered_at = at end
        r.acked_at = at
        changed = true
      end
    end
    if changed then
      local enc = cjson.encode(r)
      redis.call('HSET', KEYS[2], lead, enc)
      redis.call('XADD', KEYS[3], '*', 'e', ARGV[i + 3])
      delta[old] = (delta[old] or 0) - 1
      delta[r.status] = (delta[r.status] or 0) + 1
      out[#out + 1] = 'changed'; out[#out + 1] = enc
    elseif used_up then
      out[#out + 1] = 'too_many'; out[#out + 1] = ''
    else
      out[#out + 1] = 'unchanged'; out[#out + 1] = cur
    end
  end
end
if redis.call('EXISTS', KEYS[4]) == 1 then
  for status, d in pairs(delta) do
    if d ~= 0 then redis.call('HINCRBY', KEYS[4], status, d) end
  end
end
return out
