//! Service teams (Art. 21) and satisfaction (Art. 24): a `service_team` member gets a
//! role-filtered activation and takes a grid task; a resident's satisfaction with the
//! finished task is recorded once and appears in the after-action report per person and
//! grid and in the period statistics, where the service team is counted apart.

// Test harnesses spawn and wait freely; the hub's conventions (hub/clippy.toml) are
// for the hub itself.
#![allow(clippy::disallowed_methods)]

mod support;

use std::time::Duration;

use gridcast_clients::lead::LeadClient;
use gridcast_protocol::api::{AfterAction, Stats};
use gridcast_protocol::frame::{ClientFrame, ServerFrame};
use gridcast_protocol::registry::{AssignmentDoc, StaffDoc};
use serde_json::json;
use support::*;

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_team_member_takes_a_grid_task_and_its_satisfaction_is_counted() {
    let mut doc = two_grid_city();
    doc.task_kinds = gridcast_hub::sample::sample_city().task_kinds;
    doc.staff.push(StaffDoc {
        id: "ST1".into(),
        name: "社工 1".into(),
        phone: String::new(),
        work_contact: None,
        assignments: vec![AssignmentDoc {
            grid: G1.into(),
            role: "service_team".into(),
        }],
    });
    let hub = TestHub::start("service-team", Some(doc), |_| {}).await;
    let ops = hub.console("");
    let (mut st, _) = LeadClient::connect(&hub.ws_url(), &lead_token("ST1"))
        .await
        .unwrap();
    st.sync().await.unwrap();

    // Only the service team, by a role filter.
    let created = post_json(
        &ops,
        "/v1/incidents",
        json!({
            "title": "Check on elderly residents", "level": "III", "category": "natural",
            "targets": {"codes": [G1], "roles": ["service_team"]},
        }),
    )
    .await
    .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["recipients"], 1);
    let rows = recipient_leads(&ops, &id).await;
    assert_eq!(rows.into_iter().collect::<Vec<_>>(), ["ST1"]);
    loop {
        let f = tokio::time::timeout(WAIT, st.next())
            .await
            .expect("incident")
            .unwrap();
        if matches!(f, ServerFrame::Incident { .. }) {
            break;
        }
    }

    // A grid task, taken and finished by the service team member.
    let task = post_json(
        &ops,
        &format!("/v1/incidents/{id}/tasks"),
        json!({
            "kind": "vulnerable_check", "title": "Visit No. 5", "assignee": {"grid": G1},
        }),
    )
    .await
    .unwrap();
    let tid = task["id"].as_str().unwrap().to_owned();
    // Not done yet: not rated.
    let rate = format!("/v1/tasks/{tid}/satisfaction");
    assert_eq!(
        post_json(&ops, &rate, json!({"score": 4}))
            .await
            .unwrap_err(),
        (409, "conflict".into())
    );
    for (status, r) in [("accepted", "t1"), ("done", "t2")] {
        let frame: ClientFrame = serde_json::from_value(json!({
            "type": "task_update", "task": tid, "status": status, "note": "all well", "ref": r,
        }))
        .unwrap();
        st.request(&frame).await.unwrap().0.unwrap();
    }

    // Rated once, 1 to 5.
    assert_eq!(
        post_json(&ops, &rate, json!({"score": 6}))
            .await
            .unwrap_err(),
        (400, "bad_request".into())
    );
    let rated = post_json(&ops, &rate, json!({"score": 4, "note": "居民很满意"}))
        .await
        .unwrap();
    assert_eq!(
        (rated["score"].as_u64(), rated["lead"].as_str()),
        (Some(4), Some("ST1"))
    );
    assert_eq!(
        post_json(&ops, &rate, json!({"score": 5}))
            .await
            .unwrap_err(),
        (409, "conflict".into())
    );
    assert_eq!(
        post_json(
            &ops,
            "/v1/tasks/INC-999999-T1/satisfaction",
            json!({"score": 5})
        )
        .await
        .unwrap_err()
        .0,
        404
    );

    let report: AfterAction = ops
        .get(&format!("/v1/incidents/{id}/report"))
        .await
        .unwrap();
    let person = report.people.iter().find(|p| p.lead == "ST1").unwrap();
    assert_eq!(person.satisfaction.map(|r| (r.count, r.sum)), Some((1, 4)));
    let grid = report.grids.iter().find(|g| g.code.as_str() == G1).unwrap();
    assert_eq!((grid.satisfaction.count, grid.satisfaction.sum), (1, 4));

    // The period statistics: the satisfaction, and the service team apart from the
    // grid staff (a second incident to all of G1 shows both).
    post_json(
        &ops,
        "/v1/incidents",
        json!({
            "title": "Flood", "level": "III", "category": "natural", "targets": {"codes": [G1]},
        }),
    )
    .await
    .unwrap();
    let stats: Stats = ops.get("/v1/stats?prefix=330106").await.unwrap();
    // ST1 is of the service team: its task's rating is counted with the team, apart.
    assert_eq!(
        (
            stats.real.service_team.satisfaction.count,
            stats.real.service_team.satisfaction.sum
        ),
        (1, 4)
    );
    assert_eq!(stats.real.satisfaction.count, 0);
    assert_eq!(
        stats.real.service_team.recipients, 2,
        "ST1 in both incidents"
    );
    let g1_staff = two_grid_city()
        .staff
        .iter()
        .filter(|p| p.assignments.iter().any(|a| a.grid.starts_with(G1)))
        .count();
    assert_eq!(stats.real.recipients, g1_staff, "the grid staff alone");
    hub.stop().await;
}
