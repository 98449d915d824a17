//! Evaluation (Art. 24): the after-action report of one incident and response figures
//! over a period. Times are from issue to the recipient's delivery and latest answer;
//! percentiles are nearest-rank ([`Spread`]). Drills are always counted apart.

use std::collections::BTreeMap;

use gridcast_protocol::GridCode;
use gridcast_protocol::api::{
    AfterAction, CheckinCounts, EscalationCounts, Rated, ReportGrid, ReportPerson, Spread,
    StatsBlock, TaskRow, TimelineEvent,
};
use gridcast_protocol::model::Status;

use crate::incident::counts;
use crate::store::{IncidentSnapshot, TaskRecord};

fn escalated_leads(timeline: &[TimelineEvent]) -> BTreeMap<&str, usize> {
    let mut m = BTreeMap::new();
    for e in timeline.iter().filter(|e| e.kind == "escalated") {
        if let Some(l) = &e.lead {
            *m.entry(l.as_str()).or_insert(0) += 1;
        }
    }
    m
}

fn step_of(e: &TimelineEvent) -> Option<&str> {
    e.detail.as_deref()?.split(':').next()?.split(' ').nth(1)
}

/// The after-action report of one incident.
pub(crate) fn report(
    snap: &IncidentSnapshot,
    timeline: &[TimelineEvent],
    tasks: &[TaskRecord],
) -> AfterAction {
    let meta = &snap.meta;
    let esc = escalated_leads(timeline);
    let since = |t: Option<u64>| t.map(|t| t.saturating_sub(meta.issued_at));
    // Each lead's latest check-in: (time since issue, inside).
    let mut checkins: BTreeMap<&str, (Option<u64>, Option<bool>)> = BTreeMap::new();
    for e in timeline.iter().filter(|e| e.kind == "checkin") {
        if let (Some(l), Some(p)) = (&e.lead, &e.place) {
            let at = gridcast_protocol::time::parse_rfc3339(&e.at);
            checkins.insert(l.as_str(), (since(at), p.inside));
        }
    }
    // Satisfaction by the lead who held each rated task.
    let mut rated: BTreeMap<&str, Rated> = BTreeMap::new();
    for e in timeline.iter().filter(|e| e.kind == "satisfaction") {
        if let (Some(l), Some(s)) = (&e.lead, &e.satisfaction) {
            rated.entry(l.as_str()).or_default().add(s.score);
        }
    }
    let people: Vec<ReportPerson> = snap
        .recipients
        .iter()
        .map(|r| ReportPerson {
            lead: r.lead.clone(),
            grid: r.grid.clone(),
            role: r.role,
            status: r.status,
            deliver_ms: since(r.delivered_at),
            ack_ms: since(r.acked_at),
            escalations: esc.get(r.lead.as_str()).copied().unwrap_or(0),
            checkin_ms: checkins.get(r.lead.as_str()).and_then(|c| c.0),
            on_site: checkins.get(r.lead.as_str()).and_then(|c| c.1),
            satisfaction: rated.get(r.lead.as_str()).copied(),
        })
        .collect();
    let checked_in: Vec<&(Option<u64>, Option<bool>)> = snap
        .recipients
        .iter()
        .filter_map(|r| checkins.get(r.lead.as_str()))
        .collect();
    let mut by_grid: BTreeMap<&GridCode, Vec<&ReportPerson>> = BTreeMap::new();
    for p in &people {
        by_grid.entry(&p.grid).or_default().push(p);
    }
    let grids = by_grid
        .into_iter()
        .map(|(code, ps)| ReportGrid {
            code: code.clone(),
            recipients: ps.len(),
            delivered: ps.iter().filter(|p| p.deliver_ms.is_some()).count(),
            acked: ps.iter().filter(|p| p.ack_ms.is_some()).count(),
            accepted: ps.iter().filter(|p| p.status == Status::Accepted).count(),
            declined: ps.iter().filter(|p| p.status == Status::Declined).count(),
            deliver: Spread::of(ps.iter().filter_map(|p| p.deliver_ms).collect()),
            ack: Spread::of(ps.iter().filter_map(|p| p.ack_ms).collect()),
            escalations: ps.iter().map(|p| p.escalations).sum(),
            satisfaction: ps.iter().filter_map(|p| p.satisfaction).fold(
                Rated::default(),
                |mut all, r| {
                    all.merge(r);
                    all
                },
            ),
        })
        .collect();
    let steps = |n: &str| {
        timeline
            .iter()
            .filter(|e| e.kind == "escalated" && step_of(e) == Some(n))
            .count()
    };
    AfterAction {
        incident: meta.view(),
        drill: meta.drill,
        counts: counts(&snap.recipients),
        deliver: Spread::of(people.iter().filter_map(|p| p.deliver_ms).collect()),
        ack: Spread::of(people.iter().filter_map(|p| p.ack_ms).collect()),
        escalations: EscalationCounts {
            step1: steps("1"),
            step2: steps("2"),
            alerted: timeline.iter().any(|e| e.kind == "alerted"),
        },
        checkins: CheckinCounts {
            people: checked_in.len(),
            inside: checked_in.iter().filter(|c| c.1 == Some(true)).count(),
            outside: checked_in.iter().filter(|c| c.1 == Some(false)).count(),
        },
        grids,
        tasks: tasks
            .iter()
            .map(|t| TaskRow {
                task: t.view.clone(),
                accepted_by: t.accepted_by.clone(),
                note: t.note.clone(),
            })
            .collect(),
        people,
        // Filled in by the caller, which reads the store's fallback messages.
        fallback: Vec::new(),
    }
}

/// The people of a report as CSV (one row per recipient, times in milliseconds).
pub(crate) fn people_csv(r: &AfterAction) -> String {
    let mut out =
        String::from("lead,grid,role,status,deliver_ms,ack_ms,escalations,checkin_ms,on_site\n");
    let field = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_owned()
        }
    };
    let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
    for p in &r.people {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{}\n",
            field(&p.lead),
            p.grid,
            p.role.as_str(),
            gridcast_protocol::wire_name(&p.status),
            opt(p.deliver_ms),
            opt(p.ack_ms),
            p.escalations,
            opt(p.checkin_ms),
            p.on_site.map(|b| b.to_string()).unwrap_or_default()
        ));
    }
    out
}

/// Adds one incident's figures to a block.
pub(crate) fn add(
    block: &mut StatsBlock,
    r: &AfterAction,
    deliver: &mut Vec<u64>,
    ack: &mut Vec<u64>,
) {
    block.incidents += 1;
    // The service team (Art. 21) is counted apart from the grid staff.
    let (team, staff): (Vec<&ReportPerson>, Vec<&ReportPerson>) = r
        .people
        .iter()
        .partition(|p| p.role == gridcast_protocol::Role::ServiceTeam);
    block.recipients += staff.len();
    block.delivered += staff.iter().filter(|p| p.deliver_ms.is_some()).count();
    block.acked += staff.iter().filter(|p| p.ack_ms.is_some()).count();
    block.service_team.recipients += team.len();
    block.service_team.delivered += team.iter().filter(|p| p.deliver_ms.is_some()).count();
    block.service_team.acked += team.iter().filter(|p| p.ack_ms.is_some()).count();
    block.escalations += r.escalations.step1 + r.escalations.step2;
    for p in &staff {
        if let Some(s) = p.satisfaction {
            block.satisfaction.merge(s);
        }
    }
    for p in &team {
        if let Some(s) = p.satisfaction {
            block.service_team.satisfaction.merge(s);
        }
    }
    deliver.extend(staff.iter().filter_map(|p| p.deliver_ms));
    ack.extend(staff.iter().filter_map(|p| p.ack_ms));
}
