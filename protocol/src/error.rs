//! Error codes of the contract, shared by WebSocket `error` frames, MQTT replies and the
//! HTTP API's `{"error":{"code","message"}}` bodies.

use serde::{Deserialize, Serialize};

/// Every error code the contract defines (DESIGN.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// Missing, malformed, wrongly signed or expired token.
    Unauthorized,
    /// Authenticated, but not allowed (unknown lead, outside the jurisdiction, wrong role).
    Forbidden,
    /// Malformed input or a value outside its rules.
    BadRequest,
    /// A message or body over its size limit.
    TooLarge,
    /// A frame whose `type` the hub does not know.
    UnknownType,
    /// No such incident, task, report or route.
    NotFound,
    /// The lead is not a recipient of that incident.
    NotRecipient,
    /// The incident is closed; acks and task updates are refused.
    IncidentClosed,
    /// Another lead accepted the task first.
    TaskTaken,
    /// The request conflicts with the current state.
    Conflict,
    /// Over a rate limit; try again later.
    RateLimited,
    /// The hub could not complete the request (store unavailable); retry.
    Unavailable,
}

impl ErrorCode {
    /// The wire name of the code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::BadRequest => "bad_request",
            Self::TooLarge => "too_large",
            Self::UnknownType => "unknown_type",
            Self::NotFound => "not_found",
            Self::NotRecipient => "not_recipient",
            Self::IncidentClosed => "incident_closed",
            Self::TaskTaken => "task_taken",
            Self::Conflict => "conflict",
            Self::RateLimited => "rate_limited",
            Self::Unavailable => "unavailable",
        }
    }

    /// The HTTP status that goes with the code.
    pub fn http_status(self) -> u16 {
        match self {
            Self::Unauthorized => 401,
            Self::Forbidden | Self::NotRecipient => 403,
            Self::BadRequest | Self::UnknownType => 400,
            Self::TooLarge => 413,
            Self::NotFound => 404,
            Self::IncidentClosed | Self::TaskTaken | Self::Conflict => 409,
            Self::RateLimited => 429,
            Self::Unavailable => 503,
        }
    }
}

/// WebSocket close codes of the contract.
pub mod close {
    /// First frame was not `hello`.
    pub const BAD_REQUEST: u16 = 4400;
    /// Bad or expired token.
    pub const UNAUTHORIZED: u16 = 4401;
    /// Valid token for a lead the registry does not know.
    pub const FORBIDDEN: u16 = 4403;
    /// No `hello` within the deadline.
    pub const HELLO_TIMEOUT: u16 = 4408;
    /// The session could not keep up with its frames and was dropped; reconnect to resync.
    pub const SLOW_CONSUMER: u16 = 4429;
    /// No answer to two heartbeats.
    pub const HEARTBEAT_TIMEOUT: u16 = 4410;
    /// The hub is shutting down; reconnect.
    pub const GOING_AWAY: u16 = 1001;
    /// The lead opened more sessions than `--max-sessions-per-lead`: this, its oldest,
    /// was closed for the newest. Do not reconnect in a loop (the other device wins).
    pub const SESSION_REPLACED: u16 = 4409;
    /// The hub is at its session limit (after a good hello); reconnect with backoff.
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_match_serde() {
        for c in [
            ErrorCode::Unauthorized,
            ErrorCode::Forbidden,
            ErrorCode::BadRequest,
            ErrorCode::TooLarge,
            ErrorCode::UnknownType,
            ErrorCode::NotFound,
            ErrorCode::NotRecipient,
            ErrorCode::IncidentClosed,
            ErrorCode::TaskTaken,
            ErrorCode::Conflict,
            ErrorCode::RateLimited,
            ErrorCode::Unavailable,
        ] {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
    }
}
