//! The fallback channel (SMS and voice through a gateway, for leads who did not answer
//! in time): what the hub sends the gateway, and what the gateway sends back.
//!
//! Every request either way carries `X-Gridcast-Timestamp` (Unix seconds) and
//! `X-Gridcast-Signature: sha256=<hex>` = HMAC-SHA256 of `timestamp + "." + body` with
//! the shared secret (`--fallback-secret`); the hub refuses a callback more than five
//! minutes off its clock.

use serde::{Deserialize, Serialize};

use crate::model::Level;

/// How a fallback message reaches a phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// A text message.
    Sms,
    /// A voice call that reads the text (叫应, call until answered).
    Voice,
}

/// What the hub `POST`s to `--fallback-webhook` (one message, with
/// `Idempotency-Key: message_id`: a message sent again after a restart carries the same
/// key, and the gateway sends it once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FallbackSend {
    /// The message's id and idempotency key (`INC-000001:lead:sms`,
    /// `INC-000001:lead:call2`).
    pub message_id: String,
    /// SMS or voice.
    pub channel: Channel,
    /// The lead's phone number, as registered.
    pub to: String,
    /// The text to send or read.
    pub text: String,
    /// Its language (`zh-CN`, `en`).
    pub lang: String,
    /// The incident.
    pub incident: String,
    /// The lead.
    pub lead: String,
    /// The incident's level.
    pub level: Level,
    /// A drill (sent only when the drill asked for it).
    pub drill: bool,
    /// The hub's try of this message (1, 2, …).
    pub attempt: u32,
    /// Replies that answer it: `1` (or 接受) accepts, `2` (or 无法前往) declines.
    pub reply_codes: ReplyCodes,
    /// Where the gateway reports what became of it (`POST`, [`FallbackStatus`] list).
    pub status_url: String,
    /// Where the gateway forwards the lead's reply (`POST`, [`FallbackInbound`]).
    pub inbound_url: String,
}

/// The replies a lead may give.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReplyCodes {
    /// Accepts.
    pub accept: String,
    /// Declines.
    pub decline: String,
}

impl Default for ReplyCodes {
    fn default() -> Self {
        Self {
            accept: "1".into(),
            decline: "2".into(),
        }
    }
}

/// What became of a message, as the gateway saw it. A gateway's `2xx` to the send
/// means only that it took the message; these say whether it arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Handed to the carrier.
    Sent,
    /// The phone has the text.
    Delivered,
    /// A call was picked up and the text read (the calls stop).
    Answered,
    /// A call rang out unanswered.
    NoAnswer,
    /// A call found the line busy.
    Busy,
    /// It failed; with `temporary: true` the hub tries again, else it gives up.
    Failed,
}

/// One entry of `POST /v1/fallback/status` (the body is a JSON list of these, or one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FallbackStatus {
    /// The message, as sent.
    pub message_id: String,
    /// What became of it.
    pub status: DeliveryStatus,
    /// For `failed`: worth trying again (carrier busy, phone off) rather than never
    /// (no such number).
    #[serde(default)]
    pub temporary: bool,
    /// The gateway's error code or text (at most 200 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `POST /v1/fallback/inbound`: a lead's reply by SMS or on the keypad of a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FallbackInbound {
    /// The number it came from.
    pub from: String,
    /// What the lead sent: `1`/接受/accept or `2`/无法前往/decline, optionally
    /// followed by a note (`2 在医院`).
    pub body: String,
    /// The message it answers, when the gateway knows it (else the lead's newest
    /// unanswered activation that had a fallback message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
}

/// The answer to an inbound reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct InboundRecorded {
    /// The incident answered.
    pub incident: String,
    /// The lead.
    pub lead: String,
    /// `accepted` or `declined`.
    pub status: crate::model::Status,
}

/// The answer to a status callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StatusRecorded {
    /// Entries recorded.
    pub recorded: usize,
    /// Entries naming no message this hub sent.
    pub unknown: Vec<String>,
}

/// Where a fallback message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageState {
    /// Waiting for its time (first try, a retry, or held by a throttle).
    Queued,
    /// A sender has it; sent again (same key) if that sender dies.
    Sending,
    /// The gateway took it (`2xx`); not yet known to have arrived.
    Sent,
    /// The gateway says it arrived.
    Delivered,
    /// A call was picked up (the calls stop).
    Answered,
    /// Given up: a permanent failure, or the tries ran out.
    Failed,
    /// Not sent: the lead answered first, or the incident closed.
    Cancelled,
}

impl MessageState {
    /// True while a sender still has something to do with it.
    pub fn is_due_kind(self) -> bool {
        matches!(self, Self::Queued | Self::Sending)
    }
}

/// A fallback message in the after-action report: every text and every call of a 叫应.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MessageRow {
    /// Its id (the idempotency key the gateway saw).
    pub message_id: String,
    /// The lead.
    pub lead: String,
    /// SMS or voice.
    pub channel: Channel,
    /// For a call, its number in the 叫应; 0 for a text.
    pub call: u32,
    /// Where it is.
    pub state: MessageState,
    /// Requests made to the gateway.
    pub attempts: u32,
    /// When the gateway took it (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<String>,
    /// The last status or error the gateway gave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<String>,
}
