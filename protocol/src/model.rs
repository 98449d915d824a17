//! Domain vocabulary: emergency levels and categories, lead roles, recipient status.

use serde::{Deserialize, Serialize};

/// Emergency level (national emergency law); `I` is the most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum Level {
    /// 特别重大, CAP severity Extreme.
    I,
    /// 重大, CAP severity Severe.
    II,
    /// 较大, CAP severity Moderate.
    III,
    /// 一般, CAP severity Minor.
    IV,
}

impl Level {
    /// The default ack window for the level, in seconds.
    pub fn default_ack_window_s(self) -> u32 {
        match self {
            Self::I => 60,
            Self::II => 120,
            Self::III => 300,
            Self::IV => 600,
        }
    }

    /// The CAP 1.2 severity of the level.
    pub fn cap_severity(self) -> &'static str {
        match self {
            Self::I => "Extreme",
            Self::II => "Severe",
            Self::III => "Moderate",
            Self::IV => "Minor",
        }
    }
}

/// Emergency category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Natural disaster (flood, typhoon, earthquake…).
    Natural,
    /// Accident (fire, chemical leak, traffic…).
    Accident,
    /// Public health event.
    PublicHealth,
    /// Social safety event.
    SocialSafety,
}

/// A person's role in one grid assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// 网格长.
    GridLead,
    /// 专职网格员.
    FullTime,
    /// 兼职网格员.
    PartTime,
    /// 网格指导员, an official who covers several grids.
    Instructor,
    /// 微网格长.
    MicroLead,
    /// 网格服务团队 (Art. 21): volunteers, social workers, legal and medical helpers
    /// attached to a grid. Reached by activations, may take grid tasks, never in the
    /// escalation chain; counted apart in statistics.
    ServiceTeam,
}

impl Role {
    /// Every role, in a fixed order.
    pub const ALL: [Role; 6] = [
        Role::GridLead,
        Role::FullTime,
        Role::PartTime,
        Role::Instructor,
        Role::MicroLead,
        Role::ServiceTeam,
    ];

    /// The wire name of the role.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GridLead => "grid_lead",
            Self::FullTime => "full_time",
            Self::PartTime => "part_time",
            Self::Instructor => "instructor",
            Self::MicroLead => "micro_lead",
            Self::ServiceTeam => "service_team",
        }
    }
}

/// A recipient's status for one incident.
///
/// `pending` until the hub has the phone's `receipt` (or an ack), `delivered` after, then
/// `accepted` or `declined`; an ack may change its answer and the latest counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Issued, no receipt yet.
    Pending,
    /// The phone has it.
    Delivered,
    /// The lead accepted.
    Accepted,
    /// The lead declined.
    Declined,
}

impl Status {
    /// The wire name of the status.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Accepted => "accepted",
            Self::Declined => "declined",
        }
    }

    /// The status after a receipt: a receipt never undoes an answer.
    pub fn after_receipt(self) -> Status {
        match self {
            Self::Pending => Self::Delivered,
            other => other,
        }
    }
}

/// The answer in an `ack`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    /// The lead takes it on.
    Accept,
    /// The lead cannot.
    Decline,
}

impl Response {
    /// The status an ack with this answer leads to.
    pub fn status(self) -> Status {
        match self {
            Self::Accept => Status::Accepted,
            Self::Decline => Status::Declined,
        }
    }
}

/// Incident state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IncidentState {
    /// Open; recipients may ack.
    Active,
    /// Closed; acks get `incident_closed`.
    Closed,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipt_never_undoes_an_answer() {
        assert_eq!(Status::Pending.after_receipt(), Status::Delivered);
        assert_eq!(Status::Delivered.after_receipt(), Status::Delivered);
        assert_eq!(Status::Accepted.after_receipt(), Status::Accepted);
        assert_eq!(Status::Declined.after_receipt(), Status::Declined);
    }

    #[test]
    fn role_names_match_serde() {
        for r in Role::ALL {
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
    }
}
