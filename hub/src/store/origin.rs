//! Where an incident came from when it came as CAP.

use serde::{Deserialize, Serialize};

/// Which dialect an alert is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dialect {
    /// OASIS CAP 1.2.
    Cap12,
    /// The GB/T 35965.1 national early-warning profile.
    Gbt35965,
}

/// Where an incident came from, when it came as CAP: kept with it (export references
/// it, a repeated alert finds it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapOrigin {
    /// `identifier`.
    pub identifier: String,
    /// `sender`.
    pub sender: String,
    /// `sent` (or `sendTime`) as written.
    pub sent: String,
    /// The dialect it came in.
    pub dialect: Dialect,
    /// `onset` of the chosen `<info>`, as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onset: Option<String>,
    /// `expires` of the chosen `<info>`, as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// GB/T 35965.1 `senderCode`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_code: Option<String>,
}
