//! The fallback channel's durable queue: one record per message (a lead's text of an
//! incident, each call of its 叫应), keyed by its id, which is also the idempotency key
//! the gateway sees.
//!
//! A record is `queued` until a sender claims it: the claim marks it `sending` (durably,
//! before the request leaves) with a lease; the sender then records what the gateway
//! said. A sender that died leaves it `sending` past its lease, and any node claims it
//! again and sends it with the same key: a message is sent at least once, and a gateway
//! that honours `Idempotency-Key` delivers it once.

use gridcast_protocol::api::Channel;
use serde::{Deserialize, Serialize};

pub use gridcast_protocol::api::MessageState as FallbackState;

/// One fallback message; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FallbackRecord {
    /// `INC-000001:lead:sms`, `INC-000001:lead:call1`, …
    pub id: String,
    /// The incident.
    pub incident: String,
    /// The lead (its number is read from the registry when sent, never stored here).
    pub lead: String,
    /// SMS or voice.
    pub channel: Channel,
    /// For a call, its number in the 叫应 (1, 2, …); 0 for a text.
    #[serde(default)]
    pub call: u32,
    /// Where it is.
    pub state: FallbackState,
    /// Requests made to the gateway so far.
    #[serde(default)]
    pub attempts: u32,
    /// When a sender may next act on it (Unix ms): the first try, a retry, a throttle's
    /// end, or the end of a claim's lease.
    pub next_at: u64,
    /// Claims so far: an update is kept only by the sender holding the latest claim.
    #[serde(default)]
    pub claims: u64,
    /// Times it was queued again after the gateway reported a temporary failure: each
    /// such send is a new one for the gateway, with its own idempotency key.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub resends: u32,
    /// When the gateway took it (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<u64>,
    /// The last error or status the gateway gave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl FallbackRecord {
    /// A new message due at `at`.
    pub fn new(incident: &str, lead: &str, channel: Channel, call: u32, at: u64) -> Self {
        let id = match channel {
            Channel::Sms => format!("{incident}:{lead}:sms"),
            Channel::Voice => format!("{incident}:{lead}:call{call}"),
        };
        Self {
            id,
            incident: incident.to_owned(),
            lead: lead.to_owned(),
            channel,
            call,
            state: FallbackState::Queued,
            attempts: 0,
            next_at: at,
            claims: 0,
            resends: 0,
            sent_at: None,
            error: None,
        }
    }

    /// The idempotency key of its current send: its id, then `id#1`, `id#2`, … for the
    /// sends after reported temporary failures.
    pub fn key(&self) -> String {
        match self.resends {
            0 => self.id.clone(),
            n => format!("{}#{n}", self.id),
        }
    }

    /// Its row in the after-action report.
    pub fn row(&self) -> gridcast_protocol::api::MessageRow {
        gridcast_protocol::api::MessageRow {
            message_id: self.id.clone(),
            lead: self.lead.clone(),
            channel: self.channel,
            call: self.call,
            state: self.state,
            attempts: self.attempts,
            sent_at: self.sent_at.map(gridcast_protocol::time::rfc3339),
            last: self.error.clone(),
        }
    }

    /// Claims it for a sender at `now` for `lease` ms if it is due; true when claimed.
    /// The rule both stores apply (the Redis store in `lua/fallback_claim.lua`).
    pub fn claim(&mut self, now: u64, lease: u64) -> bool {
        if !self.state.is_due_kind() || self.next_at > now {
            return false;
        }
        self.state = FallbackState::Sending;
        self.claims += 1;
        self.next_at = now + lease;
        true
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}
