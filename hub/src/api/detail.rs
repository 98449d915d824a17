//! What the console reads in pages so that a city-wide incident stays cheap to show:
//! recipients by page, the timeline's tail, the escalations an operator must see (also
//! after its live stream skipped or lost events), and the field limits the pages use.

use crate::http::Query;
use axum::Json;
use axum::extract::{Path, State};
use gridcast_protocol::Status;
use gridcast_protocol::api::{RecipientList, Timeline, TimelineEvent};
use serde::{Deserialize, Serialize};

use super::{ApiResult, Operator, query_filter, query_number, visible_snapshot};
use crate::Hub;
use crate::incident::{self, MAX_BODY, MAX_NOTE, MAX_TARGETS, MAX_TITLE};

/// Most rows one page may ask for.
const MAX_PAGE: usize = 5_000;

#[derive(Deserialize)]
pub(super) struct RecipientQuery {
    status: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
}

/// `GET /v1/incidents/{id}/recipients[?status=][&limit=&offset=]`: without `limit`
/// every recipient (as in the contract); with it one page, `total` and `next_offset`.
pub(super) async fn get_recipients(
    State(hub): State<Hub>,
    Operator(op): Operator,
    Path(id): Path<String>,
    Query(q): Query<RecipientQuery>,
) -> ApiResult<Json<RecipientList>> {
    let want: Option<Status> = query_filter(
        q.status.as_deref(),
        "status",
        "pending, delivered, accepted or declined",
    )?;
    let limit = query_number(q.limit.as_deref(), "limit", 1, MAX_PAGE)?;
    let offset = query_number(q.offset.as_deref(), "offset", 0, usize::MAX)?.unwrap_or(0);
    let snap = visible_snapshot(&hub, &op, &id).await?;
    let matching = snap
        .recipients
        .iter()
        .filter(|r| want.is_none_or(|w| r.status == w));
    let total = matching.clone().count();
    let recipients = matching
        .skip(offset)
        .take(limit.unwrap_or(usize::MAX))
        .map(incident::recipient_row)
        .collect();
    let next_offset = limit
        .map(|l| offset.saturating_add(l))
        .filter(|&n| n < total);
    Ok(Json(RecipientList {
        recipients,
        total,
        next_offset,
    }))
}

#[derive(Deserialize)]
pub(super) struct TimelineQuery {
    limit: Option<String>,
}

/// `GET /v1/incidents/{id}/timeline[?limit=N]`: the whole timeline, or its latest `N`
/// events (still in order), with `total`.
pub(super) async fn get_timeline(
    State(hub): State<Hub>,
    Operator(op): Operator,
    Path(id): Path<String>,
    Query(q): Query<TimelineQuery>,
) -> ApiResult<Json<Timeline>> {
    let limit = query_number(q.limit.as_deref(), "limit", 1, MAX_PAGE)?;
    visible_snapshot(&hub, &op, &id).await?;
    let mut events = hub.store.timeline(&id).await?.unwrap_or_default();
    let total = events.len();
    if let Some(l) = limit {
        events.drain(..total.saturating_sub(l));
    }
    Ok(Json(Timeline { events, total }))
}

/// One escalation step as the console shows it (the same fields as the live
/// `escalation` event, plus `id`, `title` and `at`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(super) struct EscalationItem {
    /// `{incident}/{step}` or `{incident}/task/{task}/{step}`: what the console
    /// remembers as acknowledged.
    pub(crate) id: String,
    /// Incident id.
    pub(crate) incident: String,
    /// Incident title.
    pub(crate) title: String,
    /// Escalation step, 1 to 3.
    pub(crate) step: u8,
    /// A drill's escalation.
    pub(crate) drill: bool,
    /// When the step was taken (RFC 3339).
    pub(crate) at: String,
    /// The overdue task, for a task's escalation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) task: Option<String>,
    /// Silent recipients at that step (an incident's escalation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) silent_count: Option<usize>,
    /// The first of them by id.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) silent: Vec<String>,
}

/// The step number a hub timeline entry names ("step 2 (drill): …", "T3 step 1: …").
fn step_of(detail: &str) -> Option<u8> {
    let rest = &detail[detail.find("step ")? + 5..];
    rest.bytes()
        .next()
        .filter(u8::is_ascii_digit)
        .map(|d| d - b'0')
}

/// The escalation steps recorded on one incident's timeline, latest first.
pub(super) fn escalations_of(
    meta: &crate::store::IncidentMeta,
    events: &[TimelineEvent],
) -> Vec<EscalationItem> {
    let names = 50;
    let mut out: Vec<EscalationItem> = Vec::new();
    for e in events.iter().filter(|e| e.actor == "hub") {
        let detail = e.detail.as_deref().unwrap_or("");
        let Some(step) = step_of(detail) else {
            continue;
        };
        let task = match e.kind.as_str() {
            "escalated" | "alerted" => None,
            "task_overdue" => detail.split(' ').next().map(str::to_owned),
            _ => continue,
        };
        let id = match &task {
            Some(t) => format!("{}/task/{t}/{step}", meta.id),
            None => format!("{}/{step}", meta.id),
        };
        let item = match out.iter_mut().find(|i| i.id == id) {
            Some(i) => i,
            None => {
                out.push(EscalationItem {
                    id,
                    incident: meta.id.clone(),
                    title: meta.title.clone(),
                    step,
                    drill: meta.drill,
                    at: e.at.clone(),
                    task: task.clone(),
                    silent_count: task.is_none().then_some(0),
                    silent: Vec::new(),
                });
                out.last_mut().expect("just pushed")
            }
        };
        if e.kind == "alerted" {
            // "step 3: 12 silent: L1, L2, …"
            let after = detail.split(": ").nth(1).unwrap_or("");
            let n = after.split(' ').next().and_then(|n| n.parse().ok());
            item.silent_count = n.or(item.silent_count);
            item.silent = detail
                .split(": ")
                .nth(2)
                .map(|l| l.split(", ").take(names).map(str::to_owned).collect())
                .unwrap_or_default();
        } else if let (Some(lead), None) = (&e.lead, &task) {
            item.silent_count = Some(item.silent_count.unwrap_or(0) + 1);
            if item.silent.len() < names {
                item.silent.push(lead.clone());
            }
        }
    }
    out.reverse();
    out
}

#[derive(Serialize)]
pub(super) struct EscalationList {
    escalations: Vec<EscalationItem>,
}

/// How long a closed incident's escalations stay listed.
const CLOSED_KEPT_MS: u64 = 24 * 3600 * 1000;

/// `GET /v1/escalations`: every escalation step of the active incidents in the
/// operator's jurisdiction and of those closed in the last 24 hours, latest first (at
/// most 500). The console reads it on sign-in, after its stream reconnects and after it
/// was told `lagged`, so that no escalation is missing from an operator's screen.
pub(super) async fn get_escalations(
    State(hub): State<Hub>,
    Operator(op): Operator,
) -> ApiResult<Json<EscalationList>> {
    let since = hub.clock.now_ms().saturating_sub(CLOSED_KEPT_MS);
    let metas = hub.store.recent_metas(since).await?;
    let mut escalations = Vec::new();
    for m in metas.iter().filter(|m| incident::visible(&op.scope, m)) {
        let events = hub.store.timeline(&m.id).await?.unwrap_or_default();
        escalations.extend(escalations_of(m, &events));
    }
    escalations.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| b.id.cmp(&a.id)));
    escalations.truncate(500);
    Ok(Json(EscalationList { escalations }))
}

/// `GET /v1/limits` (no token: the pages read it before signing in): the longest text
/// the hub takes in each field, so that a page never offers more than the hub accepts.
pub(super) async fn get_limits() -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "title": MAX_TITLE,
        "body": MAX_BODY,
        "note": MAX_NOTE,
        "reason": MAX_NOTE,
        "report_title": MAX_TITLE,
        "report_detail": MAX_BODY,
        "task_title": MAX_TITLE,
        "task_detail": MAX_BODY,
        "targets": MAX_TARGETS,
        "ack_within_s": { "min": 1, "max": incident::MAX_ACK_WITHIN_S },
        "due_in_s": { "min": 1, "max": crate::task::MAX_DUE_S },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: &str, lead: Option<&str>, detail: &str, at: &str) -> TimelineEvent {
        TimelineEvent {
            at: at.into(),
            kind: kind.into(),
            actor: "hub".into(),
            lead: lead.map(str::to_owned),
            detail: Some(detail.into()),
            place: None,
            satisfaction: None,
        }
    }

    #[test]
    fn steps_are_read_from_the_hubs_own_entries() {
        assert_eq!(
            step_of("step 1 (drill): re-notified; grid_lead GL1"),
            Some(1)
        );
        assert_eq!(step_of("T3 step 2: instructor I1"), Some(2));
        assert_eq!(step_of("accept"), None);
        assert_eq!(step_of("step x"), None);
    }

    #[test]
    fn a_timeline_gives_one_item_per_step_latest_first() {
        let meta = crate::store::IncidentMeta {
            id: "INC-1".into(),
            rev: 1,
            state: gridcast_protocol::model::IncidentState::Active,
            title: "Flood".into(),
            body: String::new(),
            level: gridcast_protocol::model::Level::III,
            category: gridcast_protocol::model::Category::Natural,
            drill: true,
            issued_at: 0,
            ack_by: 0,
            targets: gridcast_protocol::frame::Targets {
                codes: Vec::new(),
                roles: Vec::new(),
                area: Vec::new(),
            },
            area_grids: Vec::new(),
            cap: None,
            issued_by: "op".into(),
            closed_at: None,
            fallback: false,
            approval: None,
        };
        let events = [
            ev("issued", None, "step 9 is not an escalation", "t0"),
            ev(
                "escalated",
                Some("A"),
                "step 1 (drill): re-notified; x",
                "t1",
            ),
            ev(
                "escalated",
                Some("B"),
                "step 1 (drill): re-notified; x",
                "t1",
            ),
            ev("task_overdue", None, "T1 step 1 (drill): grid_lead G", "t2"),
            ev("alerted", None, "step 3 (drill): 2 silent: A, B", "t3"),
        ];
        let items = escalations_of(&meta, &events);
        let ids: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["INC-1/3", "INC-1/task/T1/1", "INC-1/1"]);
        assert_eq!(items[0].silent_count, Some(2));
        assert_eq!(items[0].silent, ["A", "B"]);
        assert_eq!(items[1].task.as_deref(), Some("T1"));
        assert_eq!(items[2].silent_count, Some(2));
        assert_eq!(items[2].silent, ["A", "B"]);
        assert!(items.iter().all(|i| i.drill && i.title == "Flood"));
    }
}
