//! The after-action report and the period statistics of a scripted incident on a clock
//! the test moves: every count and percentile is computed by hand below.

// Test harnesses spawn and wait freely; the hub's conventions (hub/clippy.toml) are
// for the hub itself.
#![allow(clippy::disallowed_methods)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use gridcast_clients::lead::LeadClient;
use gridcast_hub::clock::ManualClock;
use gridcast_protocol::api::{AfterAction, Spread, Stats};
use gridcast_protocol::frame::ClientFrame;
use gridcast_protocol::model::Response;
use support::*;

fn spread(n: usize, median: Option<u64>, p90: Option<u64>) -> Spread {
    Spread {
        n,
        median_ms: median,
        p90_ms: p90,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_after_action_report_matches_a_hand_computed_expectation() {
    let clock = Arc::new(ManualClock::new(gridcast_hub::now_ms()));
    let hub = TestHub::start_in(
        tmp_dir("after-action"),
        Some(two_grid_city()),
        |_| {},
        clock.clone(),
    )
    .await;
    let mut leads = std::collections::HashMap::new();
    for id in ["GL1", "IN1", "S1", "A1", "GL2", "IN2", "S2"] {
        let (mut c, _) = LeadClient::connect(&hub.ws_url(), &lead_token(id))
            .await
            .unwrap();
        c.sync().await.unwrap();
        leads.insert(id, c);
    }
    let ops = hub.console("");
    let mut req = activation("Flood", &["330106004"], &[]);
    req.ack_within_s = Some(10);
    let created = ops.activate(&req).await.unwrap();
    assert_eq!(created.recipients, 7);
    let id = created.id.clone();
    let receipt = |r: &str| ClientFrame::Receipt {
        incident: id.clone(),
        rev: 1,
        reference: Some(r.into()),
    };
    let ack = |r: &str, response| ClientFrame::Ack {
        incident: id.clone(),
        response,
        note: None,
        reference: Some(r.into()),
    };
    // The script: (ms after issue, lead, frame).
    let script = [
        (100, "GL1", receipt("r1")),
        (200, "IN1", receipt("r2")),
        (300, "S1", ack("a1", Response::Accept)),
        (500, "GL1", ack("a2", Response::Accept)),
        (1_000, "A1", ack("a3", Response::Decline)),
        (2_000, "GL2", receipt("r3")),
    ];
    let mut at = 0;
    for (t, lead, frame) in script {
        clock.advance(t - at);
        at = t;
        leads
            .get_mut(lead)
            .unwrap()
            .request(&frame)
            .await
            .unwrap()
            .0
            .unwrap();
    }
    // At ack_by the four who have not answered (IN1, GL2, IN2, S2) are escalated.
    clock.advance(10_000 - at);
    eventually(
        Duration::from_secs(15),
        "step 1 on the timeline",
        || async {
            ops.timeline(&id)
                .await
                .unwrap()
                .events
                .iter()
                .filter(|e| e.kind == "escalated")
                .count()
                == 4
        },
    )
    .await;

    let r: AfterAction = ops
        .get(&format!("/v1/incidents/{id}/report"))
        .await
        .unwrap();
    assert!(!r.drill);
    let c = &r.counts;
    assert_eq!(
        (c.pending, c.delivered, c.accepted, c.declined),
        (2, 2, 2, 1)
    );
    // Delivery: 100, 200, 300, 1000, 2000 → median (rank 3) 300, p90 (rank 5) 2000.
    assert_eq!(r.deliver, spread(5, Some(300), Some(2_000)));
    // Answers: 300, 500, 1000 → median (rank 2) 500, p90 (rank 3) 1000.
    assert_eq!(r.ack, spread(3, Some(500), Some(1_000)));
    assert_eq!(
        (
            r.escalations.step1,
            r.escalations.step2,
            r.escalations.alerted
        ),
        (4, 0, false)
    );
    /// code, recipients, delivered, acked, accepted, declined, deliver, ack, escalations
    type Row<'a> = (
        &'a str,
        usize,
        usize,
        usize,
        usize,
        usize,
        Spread,
        Spread,
        usize,
    );
    let grids: Vec<Row> = r
        .grids
        .iter()
        .map(|g| {
            (
                g.code.as_str(),
                g.recipients,
                g.delivered,
                g.acked,
                g.accepted,
                g.declined,
                g.deliver,
                g.ack,
                g.escalations,
            )
        })
        .collect();
    assert_eq!(
        grids,
        [
            // GL1 100/500, IN1 200/-, A1 1000/1000.
            (
                G1,
                3,
                3,
                2,
                1,
                1,
                spread(3, Some(200), Some(1_000)),
                spread(2, Some(500), Some(1_000)),
                1
            ),
            (
                G1_MICRO,
                1,
                1,
                1,
                1,
                0,
                spread(1, Some(300), Some(300)),
                spread(1, Some(300), Some(300)),
                0
            ),
            (
                G2,
                3,
                1,
                0,
                0,
                0,
                spread(1, Some(2_000), Some(2_000)),
                spread(0, None, None),
                3
            ),
        ]
    );
    let people: Vec<(&str, Option<u64>, Option<u64>, usize)> = r
        .people
        .iter()
        .map(|p| (p.lead.as_str(), p.deliver_ms, p.ack_ms, p.escalations))
        .collect();
    assert_eq!(
        people,
        [
            ("GL1", Some(100), Some(500), 0),
            ("IN1", Some(200), None, 1),
            ("S1", Some(300), Some(300), 0),
            ("A1", Some(1_000), Some(1_000), 0),
            ("GL2", Some(2_000), None, 1),
            ("IN2", None, None, 1),
            ("S2", None, None, 1),
        ]
    );
    // The same people as CSV.
    let csv = reqwest::Client::new()
        .get(format!("{}/v1/incidents/{id}/report", hub.http()))
        .bearer_auth(token("op", gridcast_hub::auth::TokenRole::Operator, ""))
        .header("Accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = csv.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "lead,grid,role,status,deliver_ms,ack_ms,escalations,checkin_ms,on_site"
    );
    assert_eq!(
        lines[4],
        format!("A1,{G1},full_time,declined,1000,1000,0,,")
    );
    assert_eq!(lines[6], format!("IN2,{G2},instructor,pending,,,1,,"));
    assert_eq!(lines.len(), 8);

    // Statistics: a drill is counted apart; the period filter works.
    let mut d = activation("Drill", &["330106004"], &[]);
    d.drill = true;
    ops.activate(&d).await.unwrap();
    let s: Stats = ops.get("/v1/stats?prefix=330106").await.unwrap();
    assert_eq!(
        (
            s.real.incidents,
            s.real.recipients,
            s.real.delivered,
            s.real.acked,
            s.real.escalations
        ),
        (1, 7, 5, 3, 4)
    );
    assert_eq!((s.real.deliver, s.real.ack), (r.deliver, r.ack));
    assert_eq!(
        (s.drill.incidents, s.drill.recipients, s.drill.acked),
        (1, 7, 0)
    );
    let none: Stats = ops
        .get("/v1/stats?prefix=330106&to=2000-01-01")
        .await
        .unwrap();
    assert_eq!((none.real.incidents, none.drill.incidents), (0, 0));
    let bad = ops.get::<Stats>("/v1/stats?from=yesterday").await;
    assert!(
        matches!(
            bad,
            Err(gridcast_clients::ClientError::Hub { status: 400, .. })
        ),
        "{bad:?}"
    );
    // Someone else's jurisdiction sees nothing of it.
    let other = hub.console("330106101");
    let s: Stats = other.get("/v1/stats").await.unwrap();
    assert_eq!(s.real.incidents, 0);
    hub.stop().await;
}
