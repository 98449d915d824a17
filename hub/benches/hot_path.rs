//! Micro-benchmarks of the fan-out hot path: serialising an incident frame (once per
//! fan-out group, the bytes shared), resolving a county-wide target over 100,000 staff,
//! and queueing a frame to 10,000 local sessions.
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
        },
        issued_by: "op".into(),
        closed_at: None,
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
    };
    c.bench_function("resolve county over 100,000 staff", |b| {
        b.iter(|| index.resolve(black_box(&county)).unwrap().len())
    });

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

criterion_group!(benches, bench);
criterion_main!(benches);
