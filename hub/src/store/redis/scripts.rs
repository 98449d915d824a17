//! The Lua scripts the Redis store runs: each applies one rule atomically in Redis
//! (the same rules the embedded store applies in Rust; `tests/redis_store.rs` checks
//! they agree).

/// Receipts and acks of one incident, applied in order in one call (a node batches the
/// marks that arrive while its previous calls are in flight: one round trip and one
/// script run for hundreds of phones instead of one each).
/// KEYS: meta, recipients, timeline, counts. ARGV: per mark four values: lead,
/// receipt|accept|decline, at (ms), timeline event JSON.
/// Returns {'not_found'} or {meta, outcome1, state1, outcome2, state2, …} with outcome
/// changed|unchanged|not_recipient|closed|too_many (state '' for the last three).
/// `MAX_ANSWERS` is replaced by [`crate::store::MAX_ANSWERS`].
pub(super) const MARK_SCRIPT: &str = r#"
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
"#;

/// KEYS: meta, timeline. ARGV: expected meta, new meta, timeline event. Replaces the
/// meta only if it is still the one the revision was computed from (compare and set).
pub(super) const REVISE_SCRIPT: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('XADD', KEYS[2], '*', 'e', ARGV[3])
return 1
"#;

/// KEYS: steps done, timeline. ARGV: step, events…. Records the step if it is the next
/// one (so no step is done twice, whichever node gets there).
pub(super) const ESCALATED_SCRIPT: &str = r#"
local done = tonumber(redis.call('GET', KEYS[1]) or '0')
if done + 1 ~= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
for i = 2, #ARGV do redis.call('XADD', KEYS[2], '*', 'e', ARGV[i]) end
return 1
"#;

/// KEYS: tasks, timeline. ARGV: task id, expected JSON, new JSON, timeline event.
pub(super) const TASK_SCRIPT: &str = r#"
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
if ARGV[4] ~= '' then redis.call('XADD', KEYS[2], '*', 'e', ARGV[4]) end
return 1
"#;

/// KEYS: outbox. ARGV: older_than, now. Claims (re-scores to now) and returns the
/// entries pending since before older_than.
pub(super) const CLAIM_SCRIPT: &str = r#"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'LIMIT', 0, 100)
for _, m in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[2], m) end
return due
"#;
