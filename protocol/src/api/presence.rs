//! `GET /v1/presence`: who is online, one level of the grid tree at a time.

use serde::{Deserialize, Serialize};

use crate::code::GridCode;
use crate::model::Role;

/// `GET /v1/presence`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Presence {
    /// The area asked about (empty = whole city).
    pub prefix: String,
    /// The registry's name for that area, where it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Leads online with an assignment inside it (each counted once).
    pub online: usize,
    /// One row per child area that has a registered grid.
    pub children: Vec<PresenceChild>,
    /// With `leads=true`: each online lead's first assignment inside the area.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leads: Option<Vec<PresenceLead>>,
}

/// A child area in `GET /v1/presence`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PresenceChild {
    /// Child prefix.
    pub code: String,
    /// The registry's name for it (grids and micro-grids; areas named in `areas`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Leads online inside it.
    pub online: usize,
}

/// An online lead in `GET /v1/presence?leads=true`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PresenceLead {
    /// Lead id.
    pub id: String,
    /// Grid of its first assignment in the area.
    pub grid: GridCode,
    /// Role of that assignment.
    pub role: Role,
    /// Transports it is connected on (`ws`, `mqtt`).
    pub channels: Vec<String>,
}
