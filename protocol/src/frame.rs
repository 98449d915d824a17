//! Protocol v1 frames: one JSON object per WebSocket text frame or MQTT payload, with
//! `type` first. Client frames may carry `ref`, which the hub echoes in `ok`/`error`.

use serde::{Deserialize, Serialize};

use crate::code::{GridCode, Target};
use crate::error::ErrorCode;
use crate::model::{Category, IncidentState, Level, Response, Role, Status};

/// A frame from a lead to the hub.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// First frame of a session: authenticates with a lead token.
    Hello {
        /// The lead's JWT.
        token: String,
        /// The app's name and version (for logs and metrics).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client: Option<ClientInfo>,
    },
    /// The phone has the incident at this `rev`.
    Receipt {
        /// Incident id.
        incident: String,
        /// The rev the phone holds.
        rev: u64,
        /// Echoed in the reply.
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// The person's answer to an incident.
    Ack {
        /// Incident id.
        incident: String,
        /// `accept` or `decline`.
        response: Response,
        /// Free text, at most 1,000 characters.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
        /// Echoed in the reply.
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// A change to a task by its assignee.
    TaskUpdate {
        /// Task id.
        task: String,
        /// `accepted`, `done`, `failed` or `declined`.
        status: TaskStatus,
        /// Result note or reason.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
        /// Echoed in the reply.
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// An event the lead discovered (upward reporting).
    Report {
        /// Category of the event.
        category: Category,
        /// Short title.
        title: String,
        /// Description.
        detail: String,
        /// Grid where it happened.
        grid: GridCode,
        /// Where, if the phone knows.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        location: Option<Location>,
        /// Echoed in the reply.
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// On-site check-in (签到): the lead is at the scene of an incident it was sent.
    /// Answered `ok` once it is durable on the timeline.
    Checkin {
        /// Incident id.
        incident: String,
        /// Where the phone is (WGS 84 unless `datum` says `gcj02`).
        location: Location,
        /// Free text, at most 1,000 characters.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
        /// Echoed in the reply.
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// Application-level heartbeat for clients that cannot send WebSocket pings.
    Ping {
        /// Echoed in the `pong`.
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
}

impl ClientFrame {
    /// The frame's `ref`, if it carries one.
    pub fn reference(&self) -> Option<&str> {
        match self {
            Self::Hello { .. } => None,
            Self::Receipt { reference, .. }
            | Self::Ack { reference, .. }
            | Self::TaskUpdate { reference, .. }
            | Self::Report { reference, .. }
            | Self::Checkin { reference, .. }
            | Self::Ping { reference } => reference.as_deref(),
        }
    }
}

/// The app that opened a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ClientInfo {
    /// App name.
    #[serde(default)]
    pub name: String,
    /// App version.
    #[serde(default)]
    pub version: String,
}

/// A position in degrees: WGS 84, or GCJ-02 where `datum` declares it (what Chinese
/// map SDKs report; the hub converts it).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Location {
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
    /// `wgs84` (default) or `gcj02`.
    #[serde(default, skip_serializing_if = "crate::area::Datum::is_wgs84")]
    pub datum: crate::area::Datum,
}

/// Task status as a lead reports it, or as the hub shows it (`open` before anyone accepts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Handed out, nobody has accepted yet.
    Open,
    /// An assignee took it on.
    Accepted,
    /// Finished, with a result note.
    Done,
    /// Could not be done.
    Failed,
    /// The assignee declined it.
    Declined,
}

/// A frame from the hub to a lead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// Answer to a good `hello`.
    Welcome {
        /// The authenticated lead id.
        lead: String,
        /// The lead's grid assignments in registry order.
        assignments: Vec<Assignment>,
        /// Seconds between the hub's pings.
        heartbeat_s: u32,
    },
    /// The whole current view of one incident, with this lead's status.
    Incident {
        /// The incident.
        incident: IncidentView,
        /// This lead's status (absent on MQTT grid topics).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        me: Option<Me>,
    },
    /// The whole current view of one task.
    Task {
        /// The task.
        task: TaskView,
    },
    /// A lead did not answer in time; sent up the chain.
    Escalation {
        /// Incident id.
        incident: String,
        /// The silent lead.
        lead: String,
        /// The grid of the silent lead's assignment.
        grid: GridCode,
        /// The silent lead's role.
        role: Role,
        /// 1 = grid lead, 2 = instructor.
        step: u8,
        /// True for drills.
        drill: bool,
    },
    /// End of the sync that follows `welcome` (or an MQTT `hello`).
    Synced,
    /// Answer to a `ping` frame.
    Pong {
        /// The ping's `ref`.
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// What the frame with this `ref` changed is durable.
    Ok {
        /// The client frame's `ref`.
        #[serde(rename = "ref")]
        reference: String,
    },
    /// The frame was refused.
    Error {
        /// The client frame's `ref`, when it had one and could be read.
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        /// Contract error code.
        code: ErrorCode,
        /// Human-readable reason.
        message: String,
    },
}

/// One grid assignment of a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Assignment {
    /// Grid or micro-grid code.
    pub grid: GridCode,
    /// Role in that grid.
    pub role: Role,
}

/// What an activation targets: code prefixes and shapes on the map (their union),
/// optionally narrowed to some roles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Targets {
    /// Target prefixes (administrative areas, grids).
    #[serde(default)]
    pub codes: Vec<Target>,
    /// Shapes (`[lat, lon]`): every grid or micro-grid whose geometry intersects one.
    #[serde(
        default,
        with = "crate::area::one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(with = "Vec<crate::area::Area>")]
    pub area: Vec<crate::area::Area>,
    /// Only assignments with one of these roles; empty = every role.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<Role>,
}

/// The whole current view of an incident, as leads and operators see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IncidentView {
    /// Incident id.
    pub id: String,
    /// Grows with every change to the incident itself.
    pub rev: u64,
    /// `active` or `closed`.
    pub state: IncidentState,
    /// Short title.
    pub title: String,
    /// Message body.
    pub body: String,
    /// Emergency level.
    pub level: Level,
    /// Emergency category.
    pub category: Category,
    /// True for drills (CAP status `Exercise`).
    pub drill: bool,
    /// When it was issued (RFC 3339 UTC).
    pub issued_at: String,
    /// When the ack window ends (RFC 3339 UTC).
    pub ack_by: String,
    /// What was targeted.
    pub targets: Targets,
}

/// One lead's own status for an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Me {
    /// Recipient status.
    pub status: Status,
    /// The assignment's grid through which the lead became a recipient.
    pub grid: GridCode,
    /// The assignment's role.
    pub role: Role,
}

/// The whole current view of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TaskView {
    /// Task id.
    pub id: String,
    /// Incident id.
    pub incident: String,
    /// The task's own revision.
    pub rev: u64,
    /// Kind from the published list.
    pub kind: String,
    /// Short title.
    pub title: String,
    /// What to do.
    pub detail: String,
    /// A lead (`{"lead":…}`) or a grid (`{"grid":…}`).
    pub assignee: Assignee,
    /// Due time (RFC 3339 UTC).
    pub due_at: String,
    /// Current status.
    pub status: TaskStatus,
}

/// Who a task is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Assignee {
    /// One lead.
    Lead(String),
    /// Any lead of a grid; first accept wins.
    Grid(GridCode),
}

/// A client frame that could not be read, with what to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    /// `too_large`, `bad_request` or `unknown_type`.
    pub code: ErrorCode,
    /// Why.
    pub message: String,
    /// The frame's `ref`, when it could be read.
    pub reference: Option<String>,
}

impl FrameError {
    /// The `error` frame that answers this.
    pub fn to_frame(&self) -> ServerFrame {
        ServerFrame::Error {
            reference: self.reference.clone(),
            code: self.code,
            message: self.message.clone(),
        }
    }
}

const KNOWN_CLIENT_TYPES: [&str; 7] = [
    "hello",
    "receipt",
    "ack",
    "task_update",
    "report",
    "checkin",
    "ping",
];

/// Frames up to this size get their `ref` read back when they are refused before
/// decoding (a rate limit); larger ones are refused without it.
pub const REFERENCE_SCAN_BYTES: usize = 2 * 1024;

/// The `ref` of a small frame, without decoding the rest: used to answer a frame that a
/// limit refused before it was decoded, so the phone can match the refusal to its
/// request. `None` for frames over [`REFERENCE_SCAN_BYTES`] or without a string `ref`.
pub fn reference_of(text: &str) -> Option<String> {
    #[derive(serde::Deserialize, schemars::JsonSchema)]
    struct Only {
        #[serde(rename = "ref")]
        reference: Option<String>,
    }
    if text.len() > REFERENCE_SCAN_BYTES {
        return None;
    }
    serde_json::from_str::<Only>(text).ok()?.reference
}

/// Decodes a client frame, telling a frame that is too large, malformed or of an unknown
/// type apart so that each gets the contract's error code.
pub fn decode_client(text: &str) -> Result<ClientFrame, FrameError> {
    if text.len() > crate::MAX_MESSAGE_BYTES {
        return Err(FrameError {
            code: ErrorCode::TooLarge,
            message: format!(
                "message has {} bytes; the limit is {}",
                text.len(),
                crate::MAX_MESSAGE_BYTES
            ),
            reference: None,
        });
    }
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| FrameError {
        code: ErrorCode::BadRequest,
        message: format!("not valid JSON: {e}"),
        reference: None,
    })?;
    let Some(obj) = value.as_object() else {
        return Err(FrameError {
            code: ErrorCode::BadRequest,
            message: "a frame must be a JSON object".into(),
            reference: None,
        });
    };
    let reference = obj.get("ref").and_then(|r| r.as_str()).map(str::to_owned);
    let ty = match obj.get("type") {
        Some(serde_json::Value::String(t)) => t.clone(),
        _ => {
            return Err(FrameError {
                code: ErrorCode::BadRequest,
                message: "a frame needs a string field \"type\"".into(),
                reference,
            });
        }
    };
    if !KNOWN_CLIENT_TYPES.contains(&ty.as_str()) {
        return Err(FrameError {
            code: ErrorCode::UnknownType,
            message: format!("unknown frame type {ty:?}"),
            reference,
        });
    }
    if obj.get("ref").is_some_and(|r| !r.is_string()) {
        return Err(FrameError {
            code: ErrorCode::BadRequest,
            message: "\"ref\" must be a string".into(),
            reference: None,
        });
    }
    serde_json::from_value(value).map_err(|e| FrameError {
        code: ErrorCode::BadRequest,
        message: format!("bad {ty} frame: {e}"),
        reference,
    })
}

#[cfg(test)]
mod tests;
