//! The two-person rule on the wire: a held request and an admin's override.

use serde::{Deserialize, Serialize};

use super::CreateIncident;

/// An admin's reason to issue without a second person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Override {
    /// Why (1–1,000 characters), kept on the timeline.
    pub reason: String,
}

/// Where a request under the two-person rule stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalState {
    /// Waiting for a second person; reaches no phone.
    PendingApproval,
    /// Approved; being issued (a node that died here leaves it so, for a person to see).
    Approving,
    /// Approved and issued: `incident` names the incident.
    Active,
    /// Rejected by a second person.
    Rejected,
    /// Nobody decided in time.
    Expired,
    /// Approved, but issuing it failed (`reason` says why; nothing was sent).
    Failed,
}

/// A request held under the two-person rule (`202` of `POST /v1/incidents`,
/// `GET /v1/approvals`, `GET /v1/incidents/{APR-…}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Approval {
    /// `APR-000001`.
    pub id: String,
    /// Where it stands.
    pub state: ApprovalState,
    /// What was asked, as it will be issued (the snapshot an approval binds to).
    pub request: CreateIncident,
    /// SHA-256 of the request (hex): an approval naming another digest is refused.
    pub digest: String,
    /// Who asked.
    pub requested_by: String,
    /// Their jurisdiction.
    pub requested_scope: String,
    /// When (RFC 3339).
    pub requested_at: String,
    /// Until when a second person may approve it (RFC 3339).
    pub expires_at: String,
    /// Recipients when it was asked.
    pub recipients: usize,
    /// Where it reaches, as prefixes (its codes and where its area reached): who may
    /// see and decide it.
    #[serde(default)]
    pub reach: Vec<String>,
    /// Who approved or rejected it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// When.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<String>,
    /// A rejection's reason, or why issuing failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The incident issued on approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<String>,
    /// The report it was promoted from, if it was (linked on approval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
    /// The CAP alert it came as, if it did (kept for the incident).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap: Option<serde_json::Value>,
}
