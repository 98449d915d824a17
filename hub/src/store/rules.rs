//! The domain's pure rules, shared by every store: what issuing, a mark, a revision and
//! an escalation step do to an incident. No I/O and no clock here: the stores call these
//! and make the result durable; `hub/tests/redis_store.rs` checks that the Redis store's
//! Lua scripts agree with them.

use gridcast_protocol::api::{Counts, TimelineEvent};
use gridcast_protocol::model::IncidentState;
use gridcast_protocol::model::Response;
use gridcast_protocol::time::rfc3339;
use gridcast_protocol::{GridCode, Role, Status};

use super::{IncidentMeta, MAX_ANSWERS, Mark, RecipientState, Revision};

/// Counts of recipients by status.
pub fn counts(recipients: &[RecipientState]) -> Counts {
    let mut c = Counts::default();
    recipients.iter().for_each(|r| c.add(r.status));
    c
}

/// The recipients of a new incident, all pending, and its `issued` timeline event.
/// Shared by every store.
pub fn issue_state(
    meta: &IncidentMeta,
    recipients: Vec<(String, GridCode, Role)>,
) -> (Vec<RecipientState>, TimelineEvent) {
    let rs: Vec<RecipientState> = recipients
        .into_iter()
        .map(|(lead, grid, role)| RecipientState {
            lead,
            grid,
            role,
            status: Status::Pending,
            delivered_at: None,
            acked_at: None,
            answers: 0,
        })
        .collect();
    let issued = TimelineEvent {
        at: rfc3339(meta.issued_at),
        kind: "issued".into(),
        actor: meta.issued_by.clone(),
        lead: None,
        detail: Some(format!("{} recipients", rs.len())),
        place: None,
        satisfaction: None,
    };
    (rs, issued)
}

/// The incident after a revision, and its timeline event. Shared by every store.
pub fn apply_revision(
    meta: &IncidentMeta,
    revision: &Revision,
    by: &str,
    at: u64,
) -> (IncidentMeta, TimelineEvent) {
    let mut next = meta.clone();
    next.rev += 1;
    let (kind, detail) = match revision {
        Revision::Update { body } => {
            next.body = body.clone();
            ("updated", format!("rev {}", next.rev))
        }
        Revision::Close { reason } => {
            next.state = IncidentState::Closed;
            next.closed_at = Some(at);
            ("closed", reason.clone())
        }
    };
    let event = TimelineEvent {
        at: rfc3339(at),
        kind: kind.into(),
        actor: by.into(),
        lead: None,
        detail: Some(detail),
        place: None,
        satisfaction: None,
    };
    (next, event)
}

/// When escalation step `step` (1..=3) of an incident is due.
pub fn escalation_due(meta: &IncidentMeta, step: u8) -> u64 {
    let window = meta.ack_by.saturating_sub(meta.issued_at);
    meta.ack_by + u64::from(step.saturating_sub(1)) * window
}

/// True when `mark` would change `r`'s answer but `r` has used up its answers.
pub fn answers_used_up(r: &RecipientState, mark: &Mark) -> bool {
    matches!(mark, Mark::Ack { response, .. } if r.status != response.status())
        && r.answers >= MAX_ANSWERS
}

/// Applies a mark to a recipient; `None` when nothing changes. Shared by every store so
/// the rules (a receipt never undoes an answer; the latest answer counts) live once.
pub fn apply_mark(r: &RecipientState, mark: &Mark, at: u64) -> Option<RecipientState> {
    let mut next = r.clone();
    match mark {
        Mark::Receipt => {
            next.status = r.status.after_receipt();
            if next.status == r.status {
                return None;
            }
            next.delivered_at = Some(at);
        }
        Mark::Ack { response, .. } => {
            if r.status == response.status() {
                return None;
            }
            next.status = response.status();
            next.delivered_at.get_or_insert(at);
            next.acked_at = Some(at);
            next.answers = r.answers.saturating_add(1);
        }
    }
    Some(next)
}

/// The timeline event a mark adds.
pub fn mark_event(lead: &str, mark: &Mark, at: u64) -> TimelineEvent {
    let (kind, detail) = match mark {
        Mark::Receipt => ("delivered", None),
        Mark::Ack { response, note } => {
            let answer = match response {
                Response::Accept => "accept",
                Response::Decline => "decline",
            };
            let detail = match note {
                Some(n) if !n.is_empty() => format!("{answer}: {n}"),
                _ => answer.to_owned(),
            };
            ("acked", Some(detail))
        }
    };
    TimelineEvent {
        at: rfc3339(at),
        kind: kind.into(),
        actor: lead.into(),
        lead: Some(lead.into()),
        detail,
        place: None,
        satisfaction: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridcast_protocol::frame::Targets;
    use gridcast_protocol::model::{Category, Level};

    const GRID: &str = "3301060040051012";

    fn meta(issued_at: u64, window_ms: u64) -> IncidentMeta {
        IncidentMeta {
            id: "INC-000001".into(),
            rev: 1,
            state: IncidentState::Active,
            title: "Fire".into(),
            body: "Evacuate block 3".into(),
            level: Level::II,
            category: Category::Accident,
            drill: false,
            issued_at,
            ack_by: issued_at + window_ms,
            targets: Targets {
                codes: Vec::new(),
                roles: Vec::new(),
                area: Vec::new(),
            },
            area_grids: Vec::new(),
            cap: None,
            issued_by: "op-1".into(),
            closed_at: None,
            fallback: false,
            approval: None,
        }
    }

    fn recipient(lead: &str) -> (String, GridCode, Role) {
        (lead.into(), GridCode::parse(GRID).unwrap(), Role::GridLead)
    }

    #[test]
    fn issuing_makes_every_recipient_pending_and_says_how_many() {
        let (rs, event) = issue_state(&meta(1_000, 60_000), vec![recipient("L1"), recipient("L2")]);
        assert_eq!(rs.len(), 2);
        assert!(rs.iter().all(|r| r.status == Status::Pending
            && r.answers == 0
            && r.delivered_at.is_none()
            && r.acked_at.is_none()));
        assert_eq!(
            (
                event.kind.as_str(),
                event.actor.as_str(),
                event.detail.as_deref()
            ),
            ("issued", "op-1", Some("2 recipients"))
        );
    }

    #[test]
    fn counts_follow_statuses() {
        let (mut rs, _) = issue_state(
            &meta(0, 1),
            vec![recipient("L1"), recipient("L2"), recipient("L3")],
        );
        rs[0] = apply_mark(&rs[0], &Mark::Receipt, 5).unwrap();
        let accept = Mark::Ack {
            response: Response::Accept,
            note: None,
        };
        let decline = Mark::Ack {
            response: Response::Decline,
            note: None,
        };
        rs[1] = apply_mark(&rs[1], &accept, 6).unwrap();
        rs[2] = apply_mark(&rs[2], &decline, 7).unwrap();
        let c = counts(&rs);
        assert_eq!((c.accepted, c.declined), (1, 1));
        assert_eq!(c.pending, 0, "{c:?}");
    }

    #[test]
    fn a_revision_bumps_the_rev_and_a_close_records_when() {
        let m = meta(0, 60_000);
        let (updated, event) = apply_revision(
            &m,
            &Revision::Update {
                body: "Evacuate blocks 3 and 4".into(),
            },
            "op-2",
            9_000,
        );
        assert_eq!(
            (updated.rev, updated.body.as_str()),
            (2, "Evacuate blocks 3 and 4")
        );
        assert_eq!(updated.state, IncidentState::Active);
        assert_eq!(
            (event.kind.as_str(), event.detail.as_deref()),
            ("updated", Some("rev 2"))
        );
        let (closed, event) = apply_revision(
            &updated,
            &Revision::Close {
                reason: "fire out".into(),
            },
            "op-2",
            20_000,
        );
        assert_eq!(
            (closed.rev, closed.state, closed.closed_at),
            (3, IncidentState::Closed, Some(20_000))
        );
        assert_eq!(
            (event.kind.as_str(), event.actor.as_str()),
            ("closed", "op-2")
        );
        assert_eq!(closed.body, updated.body, "a close keeps the last body");
    }

    #[test]
    fn escalation_steps_fall_one_ack_window_apart() {
        let m = meta(100_000, 60_000);
        assert_eq!(
            escalation_due(&m, 1),
            160_000,
            "step 1 at the end of the window"
        );
        assert_eq!(escalation_due(&m, 2), 220_000);
        assert_eq!(escalation_due(&m, 3), 280_000);
        assert_eq!(
            escalation_due(&m, 0),
            160_000,
            "a step before the first is the first"
        );
    }

    #[test]
    fn a_mark_event_says_who_answered_what_with_the_note() {
        let ack = Mark::Ack {
            response: Response::Decline,
            note: Some("road flooded".into()),
        };
        let e = mark_event("L1", &ack, 0);
        assert_eq!(
            (e.kind.as_str(), e.lead.as_deref(), e.detail.as_deref()),
            ("acked", Some("L1"), Some("decline: road flooded"))
        );
        let e = mark_event("L1", &Mark::Receipt, 0);
        assert_eq!((e.kind.as_str(), e.detail), ("delivered", None));
    }
}
