//! Acceptance 1: 1,000 leads over real sockets; an activation for one town with a role
//! filter reaches exactly the recipients the registry implies, and receipts and acks
//! from a known subset give exactly the expected counts.

// Test harnesses spawn and wait freely; the hub's conventions (hub/clippy.toml) are
// for the hub itself.
#![allow(clippy::disallowed_methods)]

mod support;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use gridcast_clients::lead::LeadClient;
use gridcast_protocol::frame::{ClientFrame, ServerFrame};
use gridcast_protocol::model::Response;
use support::*;
use tokio::sync::{mpsc, oneshot};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Plan {
    Nothing,
    Receipt,
    Ack(Response),
}

#[derive(Debug)]
enum Report {
    Synced,
    Acted(String, Result<(), String>),
    Seen(String, Vec<String>),
}

/// One phone: syncs, waits for the first incident with `first_id`, acts on it, and
/// reports every incident id it saw until the sentinel arrives.
async fn phone(
    url: String,
    id: String,
    plan: Plan,
    go: oneshot::Receiver<(String, String)>,
    tx: mpsc::UnboundedSender<Report>,
) {
    let (mut c, _) = LeadClient::connect(&url, &lead_token(&id))
        .await
        .expect("connect");
    assert!(c.sync().await.unwrap().is_empty());
    tx.send(Report::Synced).unwrap();
    let (first, sentinel) = go.await.unwrap();
    let mut seen = Vec::new();
    let mut acted = plan == Plan::Nothing;
    loop {
        let f = tokio::time::timeout(Duration::from_secs(60), c.next())
            .await
            .expect("frame in time")
            .unwrap();
        let ServerFrame::Incident { incident, me } = f else {
            continue;
        };
        let me = me.expect("lead frames carry me");
        if !seen.contains(&incident.id) {
            seen.push(incident.id.clone());
        }
        if incident.id == first && !acted {
            acted = true;
            let frame = match plan {
                Plan::Receipt => ClientFrame::Receipt {
                    incident: first.clone(),
                    rev: incident.rev,
                    reference: Some("r".into()),
                },
                Plan::Ack(response) => ClientFrame::Ack {
                    incident: first.clone(),
                    response,
                    note: None,
                    reference: Some("a".into()),
                },
                Plan::Nothing => unreachable!(),
            };
            let (res, other) = c.request(&frame).await.unwrap();
            for o in other {
                if let ServerFrame::Incident { incident, .. } = o
                    && !seen.contains(&incident.id)
                {
                    seen.push(incident.id);
                }
            }
            tx.send(Report::Acted(id.clone(), res.map_err(|e| e.to_string())))
                .unwrap();
        }
        assert_eq!(
            me.status.as_str(),
            if incident.id == first && plan != Plan::Nothing {
                me.status.as_str()
            } else {
                "pending"
            }
        );
        if seen.contains(&sentinel) {
            tx.send(Report::Seen(id, seen)).unwrap();
            c.close().await;
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_town_activation_with_role_filter_reaches_exactly_its_recipients() {
    let doc = city(1000);
    let hub = TestHub::start("fanout", Some(doc.clone()), |_| {}).await;
    let roles = ["grid_lead", "micro_lead"];

    // What the registry implies, computed here independently of the hub.
    let expected: Vec<String> = doc
        .staff
        .iter()
        .filter(|p| {
            p.assignments
                .iter()
                .any(|a| a.grid.starts_with(TOWN_A) && roles.contains(&a.role.as_str()))
        })
        .map(|p| p.id.clone())
        .collect();
    assert!(
        expected.len() > 100 && expected.len() < 500,
        "{}",
        expected.len()
    );
    let mut plans: HashMap<String, Plan> = HashMap::new();
    for (i, id) in expected.iter().enumerate() {
        let plan = match i {
            0..100 => Plan::Receipt,
            100..150 => Plan::Ack(Response::Accept),
            150..180 => Plan::Ack(Response::Decline),
            _ => Plan::Nothing,
        };
        plans.insert(id.clone(), plan);
    }

    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut gos = Vec::new();
    for p in &doc.staff {
        let (go_tx, go_rx) = oneshot::channel();
        gos.push(go_tx);
        let plan = plans.get(&p.id).copied().unwrap_or(Plan::Nothing);
        tokio::spawn(phone(hub.ws_url(), p.id.clone(), plan, go_rx, tx.clone()));
    }
    for _ in 0..doc.staff.len() {
        let r = tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .expect("all leads sync")
            .unwrap();
        assert!(matches!(r, Report::Synced));
    }
    let console = hub.console("");
    let presence = console.presence("", false).await.unwrap();
    assert_eq!(presence.online, 1000);

    let created = console
        .activate(&activation("Flood", &[TOWN_A], &roles))
        .await
        .unwrap();
    assert_eq!(created.recipients, expected.len());
    assert_eq!(created.online, expected.len());
    for go in gos {
        go.send((created.id.clone(), "INC-000002".into())).unwrap();
    }

    // Wait for every planned action to be answered ok.
    let acting = plans.values().filter(|p| **p != Plan::Nothing).count();
    for _ in 0..acting {
        match tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .expect("acks answered")
            .unwrap()
        {
            Report::Acted(id, res) => assert_eq!(res, Ok(()), "{id}"),
            other => panic!("unexpected {other:?}"),
        }
    }
    let d = console.incident(&created.id).await.unwrap();
    assert_eq!(d.counts.pending, expected.len() - 180);
    assert_eq!(d.counts.delivered, 100);
    assert_eq!(d.counts.accepted, 50);
    assert_eq!(d.counts.declined, 30);
    assert_eq!(
        d.grids.iter().map(|g| g.recipients).sum::<usize>(),
        expected.len()
    );
    assert_eq!(d.grids.iter().map(|g| g.accepted).sum::<usize>(), 50);
    assert!(d.grids.iter().all(|g| g.code.as_str().starts_with(TOWN_A)));
    let accepted = console
        .recipients(&created.id, Some("accepted"))
        .await
        .unwrap()
        .recipients;
    let want: HashSet<&String> = expected[100..150].iter().collect();
    assert_eq!(
        accepted.iter().map(|r| &r.lead).collect::<HashSet<_>>(),
        want
    );
    assert!(
        accepted
            .iter()
            .all(|r| r.acked_at.is_some() && r.delivered_at.is_some())
    );
    let timeline = console.timeline(&created.id).await.unwrap().events;
    assert_eq!(timeline.iter().filter(|e| e.kind == "acked").count(), 80);
    assert_eq!(
        timeline.iter().filter(|e| e.kind == "delivered").count(),
        100
    );

    // A sentinel to everyone: frames to one session are ordered, so a lead that sees
    // the sentinel without the first incident never got it.
    let sentinel = console
        .activate(&activation("Sentinel", &["330106"], &[]))
        .await
        .unwrap();
    assert_eq!(sentinel.id, "INC-000002");
    assert_eq!(sentinel.online, 1000);
    let want: HashSet<&String> = expected.iter().collect();
    let mut got = HashSet::new();
    for _ in 0..doc.staff.len() {
        match tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .expect("sentinel everywhere")
            .unwrap()
        {
            Report::Seen(id, seen) => {
                let has_first = seen.contains(&created.id);
                assert_eq!(has_first, want.contains(&id), "{id} saw {seen:?}");
                if has_first {
                    got.insert(id);
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(got.len(), expected.len());
    hub.stop().await;
}
