//! Micro-benchmarks of the fan-out hot path: serialising an incident frame (once per
//! fan-out group, the bytes shared), resolving a county-wide target over 100,000 staff,
//! resolving area targets over 10,000 grid polygons, and queueing a frame to 10,000
//! local sessions.
//!
//! `cargo bench -p gridcast-hub --bench hot_path`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use gridcast_hub::presence::Presence;
use gridcast_hub::registry::{RegistryIndex, assignments};
use gridcast_hub::session::{Channel, SessionHandle, encode};
use gridcast_hub::store::{IncidentMeta, RecipientState};
use gridcast_protocol::frame::{Me, ServerFrame, Targets};
use gridcast_protocol::model::{Category, IncidentState, Level, Status};
use gridcast_protocol::{Role, Target};
use tokio_util::sync::CancellationToken;

fn meta() -> IncidentMeta {
    IncidentMeta {
        id: "INC-000001".into(),
        rev: 1,
        state: IncidentState::Active,
        title: "DRILL: evacuation exercise".into(),
        body: "Move residents of low floors to the school gym.".into(),
        level: Level::II,
        category: Category::Natural,
        drill: true,
        issued_at: 1_795_718_762_123,
        ack_by: 1_795_718_882_123,
        targets: Targets {
            codes: vec![Target::parse("330106").unwrap()],
            roles: vec![],
            area: vec![],
        },
        area_grids: vec![],
        cap: None,
        issued_by: "op".into(),
        closed_at: None,
        fallback: false,
        approval: None,
    }
}

fn bench(c: &mut Criterion) {
    let m = meta();
    c.bench_function("encode incident frame", |b| {
        b.iter(|| {
            encode(black_box(&ServerFrame::Incident {
                incident: m.view(),
                me: Some(Me {
                    status: Status::Pending,
                    grid: gridcast_protocol::GridCode::parse("3301060040051001").unwrap(),
                    role: Role::GridLead,
                }),
            }))
        })
    });

    let city = gridcast_hub::sample::drill_city(100_000)
        .validate()
        .unwrap();
    let index = RegistryIndex::new(city);
    let county = Targets {
        codes: vec![Target::parse("330106").unwrap()],
        roles: vec![],
        area: vec![],
    };
    c.bench_function("resolve county over 100,000 staff", |b| {
        b.iter(|| index.resolve(black_box(&county)).unwrap().recipients.len())
    });

    let mapped = RegistryIndex::new(mapped_city(100).validate().unwrap());
    for (name, radius, vertices) in [
        (
            "resolve county polygon (r 0.1°, 200 vertices) over 10,000 grid polygons",
            0.1,
            200,
        ),
        (
            "resolve region polygon (r 0.2°, 200 vertices) over 10,000 grid polygons",
            0.2,
            200,
        ),
        (
            "resolve street polygon (r 0.02°, 60 vertices) over 10,000 grid polygons",
            0.02,
            60,
        ),
    ] {
        let targets = Targets {
            codes: vec![],
            roles: vec![],
            area: vec![star(radius, vertices)],
        };
        let n = mapped.resolve(&targets).unwrap().area_grids.len();
        eprintln!("{name}: reaches {n} grids");
        c.bench_function(name, |b| {
            b.iter(|| {
                mapped
                    .resolve(black_box(&targets))
                    .unwrap()
                    .area_grids
                    .len()
            })
        });
    }

    // 10,000 local sessions, each with room in its queue (drained between rounds).
    let presence = Presence::default();
    let token = CancellationToken::new();
    let mut queues = Vec::new();
    let recipients: Vec<RecipientState> = index.registry.staff[..10_000]
        .iter()
        .map(|p| {
            let (handle, rx) = SessionHandle::new(Channel::Ws, 256, &token);
            presence.register(&p.id, assignments(p), handle, usize::MAX);
            queues.push(rx);
            let a = &p.assignments[0];
            RecipientState {
                lead: p.id.clone(),
                grid: a.grid.clone(),
                role: a.role,
                status: Status::Pending,
                delivered_at: None,
                acked_at: None,
                answers: 0,
            }
        })
        .collect();
    let recipients = Arc::new(recipients);
    c.bench_function("fan-out to 10,000 local sessions", |b| {
        b.iter(|| {
            let reach = presence.fanout(&m, black_box(&recipients));
            for q in &mut queues {
                while q.try_recv().is_ok() {}
            }
            reach.frames
        })
    });
}

/// Centre of the mapped city (Xihu district, Hangzhou).
const CENTRE: (f64, f64) = (30.25, 120.10);
/// Side of one grid in degrees (about 480 m × 555 m there).
const SIDE: f64 = 0.005;

/// `side × side` grids of 24-vertex near-square polygons around [`CENTRE`] (the shape
/// measured in the prior art), one grid lead each.
fn mapped_city(side: usize) -> gridcast_protocol::registry::RegistryDoc {
    let (lat0, lon0) = (
        CENTRE.0 - SIDE * side as f64 / 2.0,
        CENTRE.1 - SIDE * side as f64 / 2.0,
    );
    let mut grids = Vec::new();
    let mut staff = Vec::new();
    for n in 0..side * side {
        let (i, j) = (n % side, n / side);
        let code = format!("330106004{:03}1{:03}", n / 1000, n % 1000);
        let (x, y) = (lon0 + SIDE * i as f64, lat0 + SIDE * j as f64);
        // Six points per side, counter-clockwise, closed.
        let mut ring = Vec::new();
        for (k, (dx, dy)) in [(1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0)]
            .iter()
            .enumerate()
        {
            let (sx, sy) = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)][k];
            for t in 0..6 {
                let f = t as f64 / 6.0;
                ring.push(vec![x + SIDE * (sx + dx * f), y + SIDE * (sy + dy * f)]);
            }
        }
        ring.push(ring[0].clone());
        grids.push(serde_json::json!({
            "code": code, "kind": "community",
            "geometry": {"type": "Polygon", "coordinates": [ring]},
        }));
        staff.push(serde_json::json!({
            "id": format!("G{n:05}"),
            "assignments": [{"grid": code, "role": "grid_lead"}],
        }));
    }
    serde_json::from_value(serde_json::json!({"grids": grids, "staff": staff})).unwrap()
}

/// A star-like polygon around [`CENTRE`]: `vertices` points at radius `r` degrees,
/// every other one pulled in by a fifth (a plume's ragged edge), `[lat, lon]`.
fn star(r: f64, vertices: usize) -> gridcast_protocol::area::Area {
    let polygon = (0..vertices)
        .map(|k| {
            let a = std::f64::consts::TAU * k as f64 / vertices as f64;
            let r = if k % 2 == 0 { r } else { r * 0.8 };
            [CENTRE.0 + r * a.sin(), CENTRE.1 + r * a.cos()]
        })
        .collect();
    gridcast_protocol::area::Area {
        polygon: Some(polygon),
        circle: None,
        datum: Default::default(),
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
