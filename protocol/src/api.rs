//! Bodies of the command-center HTTP API (DESIGN.md §3), shared by the hub and the
//! console client.

use serde::{Deserialize, Serialize};

mod approval;
mod evaluation;
mod fallback;
mod presence;
pub use approval::{Approval, ApprovalState, Override};
pub use evaluation::{RateTask, Rated, Satisfaction, TeamCounts};
pub use fallback::{
    Channel, DeliveryStatus, FallbackInbound, FallbackSend, FallbackStatus, InboundRecorded,
    MessageRow, MessageState, ReplyCodes, StatusRecorded,
};
pub use presence::{Presence, PresenceChild, PresenceLead};

use crate::code::GridCode;
use crate::error::ErrorCode;
use crate::frame::{IncidentView, Targets};
use crate::model::{Category, Level, Role, Status};

/// `POST /v1/incidents`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CreateIncident {
    /// Short title (1–200 characters).
    #[schemars(length(min = 1, max = 200))]
    pub title: String,
    /// Message body (at most 16,000 characters).
    #[serde(default)]
    #[schemars(length(max = 16000))]
    pub body: String,
    /// Emergency level.
    pub level: Level,
    /// Emergency category.
    pub category: Category,
    /// True for drills.
    #[serde(default)]
    pub drill: bool,
    /// Areas and roles.
    pub targets: Targets,
    /// Ack window in seconds (1–86,400); the level's default when absent.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::integral::opt_u32"
    )]
    #[schemars(range(min = 1, max = 86400))]
    pub ack_within_s: Option<u32>,
    /// An admin's break-glass: issue at once although the two-person rule applies,
    /// for this reason (loud on the timeline and the console).
    #[serde(rename = "override", default, skip_serializing_if = "Option::is_none")]
    pub approval_override: Option<Override>,
    /// A drill that also exercises the fallback channel (SMS and voice calls to the
    /// silent): without it a drill never reaches a gateway. Real activations always
    /// use it where it is configured.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fallback: bool,
}

/// `201` answer to `POST /v1/incidents`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CreatedIncident {
    /// Incident id.
    pub id: String,
    /// Its rev.
    pub rev: u64,
    /// How many leads it was issued to.
    pub recipients: usize,
    /// How many of them had a session open when it was fanned out.
    pub online: usize,
}

/// Counts of recipients by latest status; each recipient counted once.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct Counts {
    /// No receipt yet.
    pub pending: usize,
    /// Received, not answered.
    pub delivered: usize,
    /// Accepted.
    pub accepted: usize,
    /// Declined.
    pub declined: usize,
}

impl Counts {
    /// Adds one recipient in `status`.
    pub fn add(&mut self, status: Status) {
        match status {
            Status::Pending => self.pending += 1,
            Status::Delivered => self.delivered += 1,
            Status::Accepted => self.accepted += 1,
            Status::Declined => self.declined += 1,
        }
    }

    /// All recipients.
    pub fn total(&self) -> usize {
        self.pending + self.delivered + self.accepted + self.declined
    }
}

/// One grid's rollup in `GET /v1/incidents/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GridRollup {
    /// The grid or micro-grid of the recipients' assignments.
    pub code: GridCode,
    /// Recipients through this grid.
    pub recipients: usize,
    /// Of them, delivered and not answered.
    pub delivered: usize,
    /// Of them, accepted.
    pub accepted: usize,
    /// Of them, declined.
    pub declined: usize,
}

/// `GET /v1/incidents/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IncidentDetail {
    /// The incident.
    pub incident: IncidentView,
    /// Counts by status.
    pub counts: Counts,
    /// Per-grid rollup, by code.
    pub grids: Vec<GridRollup>,
}

/// `GET /v1/incidents?state=…`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IncidentList {
    /// Incidents, newest first, with counts.
    pub incidents: Vec<IncidentSummary>,
}

/// One row of the incident list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IncidentSummary {
    /// The incident.
    pub incident: IncidentView,
    /// Counts by status.
    pub counts: Counts,
}

/// One recipient in `GET /v1/incidents/{id}/recipients`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RecipientRow {
    /// Lead id.
    pub lead: String,
    /// Grid of the matching assignment.
    pub grid: GridCode,
    /// Role of the matching assignment.
    pub role: Role,
    /// Latest status.
    pub status: Status,
    /// When the receipt (or first ack) arrived (RFC 3339), if it did.
    pub delivered_at: Option<String>,
    /// When the latest ack arrived (RFC 3339), if any.
    pub acked_at: Option<String>,
}

/// `GET /v1/incidents/{id}/recipients`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RecipientList {
    /// Recipients in registry order (one page of them with `limit`).
    pub recipients: Vec<RecipientRow>,
    /// Recipients matching the filter, on every page.
    #[serde(default)]
    pub total: usize,
    /// With `limit`: the `offset` of the next page, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_offset: Option<usize>,
}

/// Where a check-in was made, and whether that is inside what the incident covers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Place {
    /// Latitude (WGS 84).
    pub lat: f64,
    /// Longitude (WGS 84).
    pub lon: f64,
    /// Inside `against`; absent when there was nothing to compare with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inside: Option<bool>,
    /// `area` (the incident's target area) or `grid` (the lead's grid geometry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub against: Option<PlaceRef>,
}

/// What a check-in is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlaceRef {
    /// The incident's `targets.area`.
    Area,
    /// The geometry of the lead's grid in the incident.
    Grid,
}

/// One event on an incident's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TimelineEvent {
    /// When (RFC 3339).
    pub at: String,
    /// `issued`, `delivered`, `acked`, …
    pub kind: String,
    /// Who caused it: an operator or lead id, or `hub`.
    pub actor: String,
    /// The lead concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lead: Option<String>,
    /// More about it (an ack's answer and note, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// A check-in's position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place: Option<Place>,
    /// A resident's satisfaction with a finished task (Art. 24).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub satisfaction: Option<Satisfaction>,
}

/// `GET /v1/incidents/{id}/timeline`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Timeline {
    /// Events in order (the latest `limit` of them when asked).
    pub events: Vec<TimelineEvent>,
    /// Events on the whole timeline.
    #[serde(default)]
    pub total: usize,
}

/// `POST /v1/incidents/{id}/tasks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTask {
    /// A kind from the published list (`GET /v1/task-kinds`).
    pub kind: String,
    /// Short title (1–200 characters).
    #[schemars(length(min = 1, max = 200))]
    pub title: String,
    /// What to do.
    #[serde(default)]
    #[schemars(length(max = 16000))]
    pub detail: String,
    /// A lead (`{"lead":…}`) or a grid (`{"grid":…}`: any of its recipients; first
    /// accept wins).
    pub assignee: crate::frame::Assignee,
    /// Seconds until due (default 3,600; at most 7 days).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::integral::opt_u32"
    )]
    #[schemars(range(min = 1, max = 604800))]
    pub due_in_s: Option<u32>,
}

/// `201` answer to `POST /v1/incidents/{id}/tasks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CreatedTask {
    /// Task id (`INC-000001-T1`).
    pub id: String,
    /// Its rev (1).
    pub rev: u64,
}

/// A task as operators see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TaskRow {
    /// The task.
    #[serde(flatten)]
    pub task: crate::frame::TaskView,
    /// Who accepted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_by: Option<String>,
    /// The latest result note or reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// `GET /v1/incidents/{id}/tasks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TaskList {
    /// In creation order.
    pub tasks: Vec<TaskRow>,
}

/// Median and 90th percentile of durations (nearest rank), in milliseconds.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct Spread {
    /// How many durations.
    pub n: usize,
    /// Median (nearest rank), if any.
    pub median_ms: Option<u64>,
    /// 90th percentile (nearest rank), if any.
    pub p90_ms: Option<u64>,
}

impl Spread {
    /// Of these durations (any order).
    pub fn of(mut v: Vec<u64>) -> Self {
        v.sort_unstable();
        let rank = |q: f64| {
            (!v.is_empty()).then(|| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1])
        };
        Self {
            n: v.len(),
            median_ms: rank(0.5),
            p90_ms: rank(0.9),
        }
    }
}

/// Escalation steps taken in an incident.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct EscalationCounts {
    /// Silent leads escalated to their grid lead (step 1).
    pub step1: usize,
    /// Silent leads escalated to their instructor (step 2).
    pub step2: usize,
    /// True when the console was alerted (step 3).
    pub alerted: bool,
}

/// One grid in the after-action report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReportGrid {
    /// Grid code.
    pub code: GridCode,
    /// Recipients.
    pub recipients: usize,
    /// Delivered (received or answered).
    pub delivered: usize,
    /// Answered (accepted or declined).
    pub acked: usize,
    /// Accepted.
    pub accepted: usize,
    /// Declined.
    pub declined: usize,
    /// Time from issue to delivery.
    pub deliver: Spread,
    /// Time from issue to the (latest) answer.
    pub ack: Spread,
    /// Escalation steps about its leads.
    pub escalations: usize,
    /// Satisfaction with its people's finished tasks.
    #[serde(default)]
    pub satisfaction: Rated,
}

/// One person in the after-action report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReportPerson {
    /// Lead id.
    pub lead: String,
    /// Grid of the assignment.
    pub grid: GridCode,
    /// Role.
    pub role: Role,
    /// Final status.
    pub status: Status,
    /// Time from issue to delivery.
    pub deliver_ms: Option<u64>,
    /// Time from issue to the (latest) answer.
    pub ack_ms: Option<u64>,
    /// Escalation steps about this lead.
    pub escalations: usize,
    /// Time from issue to the lead's latest on-site check-in (签到).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkin_ms: Option<u64>,
    /// Whether that check-in was inside the incident's area (or the lead's grid);
    /// absent without a check-in or without a geometry to compare with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_site: Option<bool>,
    /// Satisfaction with the tasks this person finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub satisfaction: Option<Rated>,
}

/// On-site check-ins of an incident's recipients (their latest each).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct CheckinCounts {
    /// Recipients who checked in.
    pub people: usize,
    /// Of them, inside the area (or their grid).
    pub inside: usize,
    /// Outside it.
    pub outside: usize,
}

/// `GET /v1/incidents/{id}/report` (JSON; `Accept: text/csv` gives the people as CSV).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AfterAction {
    /// The incident.
    pub incident: IncidentView,
    /// Drills are reported apart from real incidents.
    pub drill: bool,
    /// Counts by status.
    pub counts: Counts,
    /// Time from issue to delivery, all recipients.
    pub deliver: Spread,
    /// Time from issue to answer, all recipients.
    pub ack: Spread,
    /// Escalation steps.
    pub escalations: EscalationCounts,
    /// On-site check-ins.
    #[serde(default)]
    pub checkins: CheckinCounts,
    /// Per grid.
    pub grids: Vec<ReportGrid>,
    /// Per person, in registry order.
    pub people: Vec<ReportPerson>,
    /// Tasks and their outcome.
    pub tasks: Vec<TaskRow>,
    /// Fallback texts and 叫应 calls, each with its outcome.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallback: Vec<MessageRow>,
}

/// Response figures of a group of incidents in `GET /v1/stats`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct StatsBlock {
    /// Incidents.
    pub incidents: usize,
    /// Recipients in all.
    pub recipients: usize,
    /// Delivered.
    pub delivered: usize,
    /// Answered.
    pub acked: usize,
    /// Time to deliver.
    pub deliver: Spread,
    /// Time to answer.
    pub ack: Spread,
    /// Escalation steps about leads (steps 1 and 2).
    pub escalations: usize,
    /// Satisfaction with finished tasks.
    #[serde(default)]
    pub satisfaction: Rated,
    /// The service team, apart (not in the figures above).
    #[serde(default)]
    pub service_team: TeamCounts,
}

/// `GET /v1/stats?prefix=&from=&to=`: incidents issued in `[from, to)` whose targets
/// lie in `prefix`, real ones and drills apart (Art. 24 evaluation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Stats {
    /// Area.
    pub prefix: String,
    /// Start (RFC 3339), if given.
    pub from: Option<String>,
    /// End (RFC 3339), if given.
    pub to: Option<String>,
    /// Real incidents.
    pub real: StatsBlock,
    /// Drills.
    pub drill: StatsBlock,
}

/// An upward report from a lead (`report` frame), as operators see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReportView {
    /// Report id (`REP-000001`).
    pub id: String,
    /// When the hub took it (RFC 3339).
    pub at: String,
    /// The lead who reported.
    pub lead: String,
    /// Where it happened.
    pub grid: GridCode,
    /// Category.
    pub category: Category,
    /// Short title.
    pub title: String,
    /// Description.
    pub detail: String,
    /// Position, if the phone sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<crate::frame::Location>,
    /// The incident opened from it, once promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<String>,
}

/// `GET /v1/reports`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReportList {
    /// Newest first, at most `limit` of them.
    pub reports: Vec<ReportView>,
    /// When there are older ones: the `before` that asks for the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_before: Option<String>,
}

/// `POST /v1/reports/{id}/promote`: open an incident from a report. Title, body and
/// category come from the report; targets default to the report's grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PromoteReport {
    /// Emergency level.
    pub level: Level,
    /// Areas and roles (default: the report's grid, every role).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<Targets>,
    /// True for drills.
    #[serde(default)]
    pub drill: bool,
    /// Ack window in seconds.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::integral::opt_u32"
    )]
    #[schemars(range(min = 1, max = 86400))]
    pub ack_within_s: Option<u32>,
}

/// Body of every HTTP error: `{"error":{"code","message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The error inside [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ErrorDetail {
    /// Contract code.
    pub code: ErrorCode,
    /// Human-readable reason.
    pub message: String,
    /// Every problem, for a refused registry document (extension).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_use_the_nearest_rank() {
        assert_eq!(Spread::of(vec![]), Spread::default());
        let s = Spread::of(vec![500, 100, 300, 200, 400]);
        assert_eq!((s.n, s.median_ms, s.p90_ms), (5, Some(300), Some(500)));
        let s = Spread::of((1..=10).map(|i| i * 10).collect());
        assert_eq!((s.median_ms, s.p90_ms), (Some(50), Some(90)));
    }
}
