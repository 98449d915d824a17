//! The Lua scripts the Redis store runs (the `.lua` files in `lua/`): each applies one
//! rule atomically in Redis (the same rules the embedded store applies in Rust;
//! `tests/redis_store.rs` checks they agree).

/// Receipts and acks of one incident, applied in order in one call (a node batches the
/// marks that arrive while its previous calls are in flight: one round trip and one
/// script run for hundreds of phones instead of one each).
/// KEYS: meta, recipients, timeline, counts. ARGV: per mark four values: lead,
/// receipt|accept|decline, at (ms), timeline event JSON.
/// Returns {'not_found'} or {meta, outcome1, state1, outcome2, state2, …} with outcome
/// changed|unchanged|not_recipient|closed|too_many (state '' for the last three).
/// `MAX_ANSWERS` is replaced by [`crate::store::MAX_ANSWERS`].
pub(super) const MARK_SCRIPT: &str = include_str!("lua/mark.lua");

/// KEYS: meta, timeline. ARGV: expected meta, new meta, timeline event. Replaces the
/// meta only if it is still the one the revision was computed from (compare and set).
pub(super) const REVISE_SCRIPT: &str = include_str!("lua/revise.lua");

/// KEYS: steps done, timeline. ARGV: step, events…. Records the step if it is the next
/// one (so no step is done twice, whichever node gets there).
pub(super) const ESCALATED_SCRIPT: &str = include_str!("lua/escalated.lua");

/// KEYS: approvals. ARGV: id, expected state, new JSON. Replaces the request only
/// while it is in the expected state (one decision, whoever comes first).
pub(super) const APPROVAL_SCRIPT: &str = include_str!("lua/approval.lua");

/// KEYS: lock. ARGV: token. Deletes the lock only if the token holds it.
pub(super) const UNLOCK_SCRIPT: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

/// KEYS: meta, timeline. ARGV: events. Appends them if the incident exists; 1 if so.
pub(super) const EVENTS_SCRIPT: &str = include_str!("lua/events.lua");

/// KEYS: tasks, timeline. ARGV: task id, expected JSON, new JSON, timeline event.
pub(super) const TASK_SCRIPT: &str = include_str!("lua/task.lua");

/// KEYS: outbox. ARGV: older_than, now. Claims (re-scores to now) and returns the
/// entries pending since before older_than.
pub(super) const CLAIM_SCRIPT: &str = include_str!("lua/claim.lua");

/// KEYS: fallback messages, meta. ARGV: id, JSON, … Queues the new ones of one incident.
pub(super) const FALLBACK_ADD_SCRIPT: &str = include_str!("lua/fallback_add.lua");

/// KEYS: fallback messages. ARGV: id, now, lease. Claims one due message.
pub(super) const FALLBACK_CLAIM_SCRIPT: &str = include_str!("lua/fallback_claim.lua");

/// KEYS: fallback messages, meta, timeline. ARGV: id, expected claims, JSON, next id,
/// next JSON, events…. Replaces a message under its claim.
pub(super) const FALLBACK_UPDATE_SCRIPT: &str = include_str!("lua/fallback_update.lua");
