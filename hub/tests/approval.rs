//! The two-person rule on a hub with its default policy (real activations of level I
//! or II, or covering a whole county): held, reaching no phone, until a second
//! supervisor approves; never approved by the one who asked; expired requests and
//! rejected ones reach nobody; drills and level III go out at once; an admin's override
//! is loud on the timeline; with an approvers' list, a request nobody else may approve
//! is refused at once.

// Test harnesses spawn and wait freely; the hub's conventions (hub/clippy.toml) are
// for the hub itself.
#![allow(clippy::disallowed_methods)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use gridcast_clients::console::ConsoleClient;
use gridcast_clients::lead::LeadClient;
use gridcast_hub::auth::TokenRole;
use gridcast_hub::clock::ManualClock;
use gridcast_protocol::frame::{ClientFrame, ServerFrame};
use serde_json::{Value, json};
use support::*;

const WAIT: Duration = Duration::from_secs(15);

fn as_role(http: &str, sub: &str, role: TokenRole, scope: &str) -> ConsoleClient {
    ConsoleClient::new(http, &token(sub, role, scope))
}

/// Incident frames the phone got before its `pong` (one node: frames are in order).
async fn incidents_before_pong(c: &mut LeadClient) -> Vec<String> {
    c.send(&ClientFrame::Ping {
        reference: Some("p".into()),
    })
    .await
    .unwrap();
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout(WAIT, c.next())
            .await
            .expect("pong")
            .unwrap()
        {
            ServerFrame::Pong { .. } => return seen,
            ServerFrame::Incident { incident, .. } => seen.push(incident.id),
            _ => {}
        }
    }
}

fn activation(title: &str, level: &str, codes: &[&str], drill: bool) -> Value {
    json!({"title": title, "body": "Leave the river bank.", "level": level,
           "category": "natural", "drill": drill, "targets": {"codes": codes}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_major_activation_waits_for_a_second_person() {
    let doc = city(40);
    let clock = Arc::new(ManualClock::new(1_795_718_762_000));
    let hub = TestHub::start_in(
        tmp_dir("approval"),
        Some(doc.clone()),
        |c| {
            c.approval_levels = vec![
                Some(gridcast_protocol::Level::I),
                Some(gridcast_protocol::Level::II),
            ];
            c.approval_county_wide = true;
        },
        clock.clone(),
    )
    .await;
    let http = hub.http();
    let op = as_role(&http, "op-1", TokenRole::Operator, "");
    let op_as_sup = as_role(&http, "op-1", TokenRole::Supervisor, "");
    let sup = as_role(&http, "sup-1", TokenRole::Supervisor, "");
    let other_op = as_role(&http, "op-2", TokenRole::Operator, "");
    let town_sup = as_role(&http, "sup-b", TokenRole::Supervisor, TOWN_B);
    let lead = doc
        .staff
        .iter()
        .find(|p| p.assignments[0].grid.starts_with(TOWN_A))
        .unwrap();
    let (mut phone, _) = LeadClient::connect(&hub.ws_url(), &lead_token(&lead.id))
        .await
        .unwrap();
    phone.sync().await.unwrap();

    // Level I, real, by an operator: held, nothing recorded as an incident, no phone.
    let held = post_json(
        &op,
        "/v1/incidents",
        activation("Dam breach", "I", &[TOWN_A], false),
    )
    .await
    .unwrap();
    assert_eq!(held["state"], "pending_approval", "{held}");
    let id = held["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("APR-") && held["recipients"].as_u64().unwrap() > 0);
    assert!(incidents_before_pong(&mut phone).await.is_empty());
    assert!(op.incidents(None).await.unwrap().incidents.is_empty());
    let shown: Value = op.get(&format!("/v1/incidents/{id}")).await.unwrap();
    assert_eq!(
        (shown["state"].as_str(), shown["requested_by"].as_str()),
        (Some("pending_approval"), Some("op-1"))
    );

    // Not by the one who asked (also with a supervisor token), not by an operator,
    // not by a supervisor whose jurisdiction does not cover it, not for other content.
    let approve = format!("/v1/incidents/{id}/approve");
    assert_eq!(
        post_json(&op_as_sup, &approve, json!({}))
            .await
            .unwrap_err(),
        (403, "forbidden".into())
    );
    assert_eq!(
        post_json(&other_op, &approve, json!({})).await.unwrap_err(),
        (403, "forbidden".into())
    );
    assert_eq!(
        post_json(&town_sup, &approve, json!({}))
            .await
            .unwrap_err()
            .0,
        404
    );
    assert_eq!(
        post_json(&sup, &approve, json!({"digest": "00"}))
            .await
            .unwrap_err(),
        (409, "conflict".into())
    );
    assert!(incidents_before_pong(&mut phone).await.is_empty());

    // A second supervisor approves the content asked: issued, the phone gets it, the
    // timeline names both people.
    let digest = held["digest"].as_str().unwrap();
    let done = post_json(&sup, &approve, json!({"digest": digest}))
        .await
        .unwrap();
    assert_eq!(done["state"], "active", "{done}");
    let incident = done["incident"].as_str().unwrap().to_owned();
    loop {
        let f = tokio::time::timeout(WAIT, phone.next())
            .await
            .expect("the incident")
            .unwrap();
        if let ServerFrame::Incident { incident: v, .. } = f {
            assert_eq!(v.id, incident);
            break;
        }
    }
    let timeline = op.timeline(&incident).await.unwrap();
    let steps: Vec<(String, String)> = timeline
        .events
        .iter()
        .map(|e| (e.kind.clone(), e.actor.clone()))
        .collect();
    assert!(
        steps.contains(&("issued".into(), "op-1".into())),
        "{steps:?}"
    );
    assert!(
        steps.contains(&("approval_requested".into(), "op-1".into())),
        "{steps:?}"
    );
    assert!(
        steps.contains(&("approved".into(), "sup-1".into())),
        "{steps:?}"
    );
    // Approving twice: 409, and still one incident.
    assert_eq!(
        post_json(&sup, &approve, json!({})).await.unwrap_err(),
        (409, "conflict".into())
    );
    assert_eq!(op.incidents(None).await.unwrap().incidents.len(), 1);

    // A rejected request and an expired one reach nobody.
    let r = post_json(
        &op,
        "/v1/incidents",
        activation("Evacuate", "II", &[TOWN_A], false),
    )
    .await
    .unwrap();
    let rid = r["id"].as_str().unwrap();
    let rejected = post_json(
        &sup,
        &format!("/v1/incidents/{rid}/reject"),
        json!({"reason": "wrong street"}),
    )
    .await
    .unwrap();
    assert_eq!(
        (rejected["state"].as_str(), rejected["reason"].as_str()),
        (Some("rejected"), Some("wrong street"))
    );
    assert_eq!(
        post_json(&sup, &format!("/v1/incidents/{rid}/approve"), json!({}))
            .await
            .unwrap_err()
            .0,
        409
    );
    let e = post_json(
        &op,
        "/v1/incidents",
        activation("Late", "I", &[TOWN_A], false),
    )
    .await
    .unwrap();
    let eid = e["id"].as_str().unwrap();
    clock.advance(601_000);
    assert_eq!(
        post_json(&sup, &format!("/v1/incidents/{eid}/approve"), json!({}))
            .await
            .unwrap_err(),
        (409, "conflict".into())
    );
    let list: Value = sup.get("/v1/approvals").await.unwrap();
    let states: Vec<&str> = list["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["active", "rejected", "expired"]);
    assert_eq!(
        incidents_before_pong(&mut phone).await,
        Vec::<String>::new()
    );
    assert_eq!(op.incidents(None).await.unwrap().incidents.len(), 1);

    // A report promoted to a level I incident waits the same way, and is linked to
    // the incident only once it is approved.
    let grid = lead.assignments[0].grid.clone();
    let report: ClientFrame = serde_json::from_value(json!({
        "type": "report", "category": "natural", "title": "Cracks in the dam",
        "detail": "Seen from the path.", "grid": grid, "ref": "rep",
    }))
    .unwrap();
    phone.request(&report).await.unwrap().0.unwrap();
    let reports: Value = op.get("/v1/reports").await.unwrap();
    let rep = reports["reports"][0]["id"].as_str().unwrap().to_owned();
    let promoted = post_json(
        &op,
        &format!("/v1/reports/{rep}/promote"),
        json!({"level": "I"}),
    )
    .await
    .unwrap();
    assert_eq!(promoted["state"], "pending_approval", "{promoted}");
    let pid = promoted["id"].as_str().unwrap();
    let reports: Value = op.get("/v1/reports").await.unwrap();
    assert!(
        reports["reports"][0]["incident"].is_null(),
        "not linked while held"
    );
    let done = post_json(&sup, &format!("/v1/incidents/{pid}/approve"), json!({}))
        .await
        .unwrap();
    let reports: Value = op.get("/v1/reports").await.unwrap();
    assert_eq!(reports["reports"][0]["incident"], done["incident"]);

    // At once: a drill of level I, a real level III, an admin's override (loudly).
    for (body, what) in [
        (activation("Drill", "I", &[TOWN_A], true), "drill"),
        (
            activation("Road closed", "III", &[TOWN_A], false),
            "level III",
        ),
    ] {
        let created = post_json(&op, "/v1/incidents", body).await.unwrap();
        assert!(
            created["id"].as_str().unwrap().starts_with("INC-"),
            "{what}: {created}"
        );
    }
    // A real level III over a whole county is held.
    let county = post_json(
        &op,
        "/v1/incidents",
        activation("Heat", "III", &["330106"], false),
    )
    .await
    .unwrap();
    assert_eq!(county["state"], "pending_approval", "{county}");
    let admin = as_role(&http, "root", TokenRole::Admin, "");
    let mut urgent = activation("Missile", "I", &[TOWN_A], false);
    urgent["override"] = json!({"reason": "approver unreachable, levee failing"});
    assert_eq!(
        post_json(&op, "/v1/incidents", urgent.clone())
            .await
            .unwrap_err(),
        (403, "forbidden".into())
    );
    let created = post_json(&admin, "/v1/incidents", urgent).await.unwrap();
    let oid = created["id"].as_str().unwrap();
    let tl = op.timeline(oid).await.unwrap();
    let over = tl
        .events
        .iter()
        .find(|e| e.kind == "approval_overridden")
        .expect("the override on the timeline");
    assert_eq!(over.actor, "root");
    assert!(over.detail.as_deref().unwrap().contains("levee failing"));
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_nobody_else_may_approve_is_refused_at_once() {
    let hub = TestHub::start("approval-list", Some(city(10)), |c| {
        c.approval_levels = vec![Some(gridcast_protocol::Level::I)];
        c.approvers = vec!["op-1".into(), "sup-b@330106101".into()];
    })
    .await;
    let http = hub.http();
    // op-1 is the only approver whose jurisdiction covers town A: it cannot approve its
    // own request, and sup-b's town is elsewhere.
    let op = as_role(&http, "op-1", TokenRole::Operator, "");
    let refused = post_json(
        &op,
        "/v1/incidents",
        activation("Dam", "I", &[TOWN_A], false),
    )
    .await;
    assert_eq!(refused.unwrap_err(), (403, "forbidden".into()));
    // Someone else asks: held, and only a listed approver may approve.
    let op2 = as_role(&http, "op-2", TokenRole::Operator, "");
    let held = post_json(
        &op2,
        "/v1/incidents",
        activation("Dam", "I", &[TOWN_A], false),
    )
    .await
    .unwrap();
    let approve = format!("/v1/incidents/{}/approve", held["id"].as_str().unwrap());
    let unlisted = as_role(&http, "sup-9", TokenRole::Supervisor, "");
    assert_eq!(
        post_json(&unlisted, &approve, json!({})).await.unwrap_err(),
        (403, "forbidden".into())
    );
    let listed = as_role(&http, "op-1", TokenRole::Supervisor, "");
    assert_eq!(
        post_json(&listed, &approve, json!({})).await.unwrap()["state"],
        "active"
    );
    assert_eq!(op.incidents(None).await.unwrap().incidents.len(), 1);
    hub.stop().await;
}

/// A hub that stopped between approving a request and issuing it left it `approving`:
/// the next look at the requests finds the incident it issued (and marks it `active`)
/// or, when none was issued, puts it back for a person to approve again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_left_approving_by_a_stopped_hub_is_recovered() {
    use gridcast_hub::store::Store;
    use gridcast_hub::store::embedded::EmbeddedStore;
    use gridcast_protocol::api::ApprovalState;
    let doc = city(10);
    let dir = tmp_dir("approval-stuck");
    let rule = |c: &mut gridcast_hub::Config| {
        c.approval_levels = vec![Some(gridcast_protocol::Level::I)];
    };
    let start = |dir: std::path::PathBuf| {
        let doc = doc.clone();
        async move {
            TestHub::start_in(
                dir,
                Some(doc),
                rule,
                Arc::new(gridcast_hub::clock::SystemClock),
            )
            .await
        }
    };
    let hub = start(dir.clone()).await;
    let op = as_role(&hub.http(), "op-1", TokenRole::Operator, "");
    let sup = as_role(&hub.http(), "sup-1", TokenRole::Supervisor, "");
    let ask = |title: &str| activation(title, "I", &[TOWN_A], false);
    let lost = post_json(&op, "/v1/incidents", ask("Dam breach"))
        .await
        .unwrap();
    let issued = post_json(&op, "/v1/incidents", ask("Levee breach"))
        .await
        .unwrap();
    let issued_id = issued["id"].as_str().unwrap().to_owned();
    let approved = post_json(
        &sup,
        &format!("/v1/incidents/{issued_id}/approve"),
        json!({}),
    )
    .await
    .unwrap();
    let incident = approved["incident"].as_str().unwrap().to_owned();
    hub.stop().await;
    // What a hub that stopped halfway leaves: both `approving`, six minutes ago, and the
    // second one's incident not yet noted.
    {
        let store = EmbeddedStore::open(&dir.join("data")).unwrap();
        let minute_ago = gridcast_protocol::time::rfc3339(gridcast_hub::now_ms() - 360_000);
        for mut a in store.approvals().await.unwrap() {
            let was = a.state;
            a.state = ApprovalState::Approving;
            a.decided_by = Some("sup-1".into());
            a.decided_at = Some(minute_ago.clone());
            a.incident = None;
            assert!(store.update_approval(&a, was).await.unwrap());
        }
    }
    let hub = start(dir.clone()).await;
    let sup = as_role(&hub.http(), "sup-1", TokenRole::Supervisor, "");
    let list: Value = sup.get("/v1/approvals").await.unwrap();
    let find = |id: &str| {
        list["approvals"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == id)
            .unwrap()
            .clone()
    };
    let recovered = find(&issued_id);
    assert_eq!(
        (recovered["state"].as_str(), recovered["incident"].as_str()),
        (Some("active"), Some(incident.as_str())),
        "{recovered}"
    );
    let lost_id = lost["id"].as_str().unwrap();
    let again = find(lost_id);
    assert_eq!(again["state"], "pending_approval", "{again}");
    // Approved again, it is issued once.
    let done = post_json(&sup, &format!("/v1/incidents/{lost_id}/approve"), json!({}))
        .await
        .unwrap();
    assert_eq!(done["state"], "active");
    let op = as_role(&hub.http(), "op-1", TokenRole::Operator, "");
    assert_eq!(op.incidents(None).await.unwrap().incidents.len(), 2);
    hub.stop().await;
}
