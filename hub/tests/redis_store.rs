//! The Redis store answers exactly as the embedded store: the same mark sequences give
//! the same outcomes, states, timelines and syncs. Its mark rules live in a Lua script,
//! so this is what keeps the two copies of the contract's rules in step.

// Test harnesses spawn and wait freely; the hub's conventions (hub/clippy.toml) are
// for the hub itself.
#![allow(clippy::disallowed_methods)]

mod support;

use gridcast_hub::store::embedded::EmbeddedStore;
use gridcast_hub::store::redis::RedisStore;
use gridcast_hub::store::{
    IncidentMeta, Mark, MarkOutcome, NewIncident, ReviseOutcome, Revision, Store,
};
use gridcast_protocol::GridCode;
use gridcast_protocol::frame::Targets;
use gridcast_protocol::model::{Category, IncidentState, Level, Response, Role};
use support::redis::RedisServer;
use support::*;

fn new_incident(leads: &[String]) -> NewIncident {
    let grid = GridCode::parse("3301060040051012").unwrap();
    let now = gridcast_hub::now_ms();
    NewIncident {
        meta: IncidentMeta {
            id: String::new(),
            rev: 0,
            state: IncidentState::Active,
            title: "Fire".into(),
            body: "火情：请立即疏散".into(),
            level: Level::I,
            category: Category::Accident,
            drill: false,
            issued_at: now,
            ack_by: now + 60_000,
            targets: Targets {
                codes: vec![gridcast_protocol::Target::parse("330106").unwrap()],
                roles: vec![],
                area: vec![],
            },
            area_grids: vec![],
            cap: None,
            issued_by: "op".into(),
            closed_at: None,
            fallback: false,
            approval: None,
        },
        recipients: leads
            .iter()
            .map(|l| (l.clone(), grid.clone(), Role::GridLead))
            .collect(),
        outbox: false,
    }
}

/// A new incident for `lead` with an open task of theirs: its id, issue time and task.
async fn incident_with_task(
    s: &dyn Store,
    lead: &str,
) -> (String, u64, gridcast_hub::store::TaskRecord) {
    let snap = s
        .create_incident(new_incident(&[lead.to_owned()]))
        .await
        .unwrap();
    let id = snap.meta.id.clone();
    let created = snap.meta.issued_at;
    let gridcast_hub::store::TaskOutcome::Changed(t) = s
        .create_task(&id, task_for(&id, lead, created), created)
        .await
        .unwrap()
    else {
        panic!("task not created");
    };
    (id, created, t)
}

/// An open task of `incident` assigned to `lead`, due 5 s after `created`.
fn task_for(incident: &str, lead: &str, created: u64) -> gridcast_hub::store::TaskRecord {
    gridcast_hub::store::TaskRecord {
        view: gridcast_protocol::frame::TaskView {
            id: String::new(),
            incident: incident.into(),
            rev: 0,
            kind: "evacuation".into(),
            title: "t".into(),
            detail: String::new(),
            assignee: gridcast_protocol::frame::Assignee::Lead(lead.into()),
            due_at: gridcast_protocol::time::rfc3339(created + 5_000),
            status: gridcast_protocol::frame::TaskStatus::Open,
        },
        accepted_by: None,
        created_by: "op".into(),
        note: None,
        note_by: None,
        created_ms: created,
        escalated: 0,
        declined_by: Vec::new(),
    }
}

/// Every sequence of up to three marks.
fn sequences() -> Vec<Vec<Mark>> {
    let one = [
        Mark::Receipt,
        Mark::Ack {
            response: Response::Accept,
            note: None,
        },
        Mark::Ack {
            response: Response::Decline,
            note: Some("on another task".into()),
        },
    ];
    let mut all: Vec<Vec<Mark>> = vec![vec![]];
    let mut frontier: Vec<Vec<Mark>> = vec![vec![]];
    for _ in 0..3 {
        let mut next = Vec::new();
        for s in &frontier {
            for m in &one {
                let mut t = s.clone();
                t.push(m.clone());
                next.push(t);
            }
        }
        all.extend(next.iter().cloned());
        frontier = next;
    }
    all
}

fn shape(o: &MarkOutcome) -> String {
    match o {
        MarkOutcome::Changed(m, r) => format!("changed {} rev {} {r:?}", m.id, m.rev),
        MarkOutcome::Unchanged(m, r) => format!("unchanged {} rev {} {r:?}", m.id, m.rev),
        other => format!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_answers_every_mark_sequence_like_the_embedded_store() {
    let server = RedisServer::start("store").await;
    let client = ::redis::Client::open(server.url()).unwrap();
    let redis_store = RedisStore::open(gridcast_hub::store::redis::RedisTarget::Direct(client), 0)
        .await
        .unwrap();
    let dir = tmp_dir("store-equiv");
    let embedded = EmbeddedStore::open(&dir).unwrap();
    let stores: [&dyn Store; 2] = [&embedded, &redis_store];

    let seqs = sequences();
    assert_eq!(seqs.len(), 40);
    let leads: Vec<String> = (0..seqs.len()).map(|i| format!("L{i:03}")).collect();
    let mut ids = Vec::new();
    let first = new_incident(&leads);
    for s in stores {
        let snap = s.create_incident(first.clone()).await.unwrap();
        assert_eq!((snap.meta.id.as_str(), snap.meta.rev), ("INC-000001", 1));
        ids.push(snap.meta.id.clone());
    }
    let base = gridcast_hub::now_ms();
    let mut compared = 0;
    for (i, seq) in seqs.iter().enumerate() {
        for (step, mark) in seq.iter().enumerate() {
            let at = base + (i * 10 + step) as u64;
            let mut answers = Vec::new();
            for s in stores {
                answers.push(shape(
                    &s.mark("INC-000001", &leads[i], mark.clone(), at)
                        .await
                        .unwrap(),
                ));
            }
            assert_eq!(
                answers[0], answers[1],
                "lead {} step {step} {mark:?}",
                leads[i]
            );
            compared += 1;
        }
    }
    assert!(compared > 100);
    // Strangers and unknown incidents are refused alike.
    for s in stores {
        assert_eq!(
            shape(
                &s.mark("INC-000001", "nobody", Mark::Receipt, base)
                    .await
                    .unwrap()
            ),
            "NotRecipient"
        );
        assert_eq!(
            shape(
                &s.mark("INC-000099", "L000", Mark::Receipt, base)
                    .await
                    .unwrap()
            ),
            "NotFound"
        );
    }
    let [e, r] = [
        stores[0].incident("INC-000001").await.unwrap().unwrap(),
        stores[1].incident("INC-000001").await.unwrap().unwrap(),
    ];
    assert_eq!(e.meta, r.meta, "meta round-trips exactly");
    assert_eq!(e.recipients, r.recipients, "same states in registry order");
    // The counts the Redis mark script keeps agree with counting the recipients.
    let counted = gridcast_hub::incident::counts(&e.recipients);
    for s in &stores {
        let (_, kept) = s.counts("INC-000001").await.unwrap().unwrap();
        assert_eq!(kept, counted, "counts kept by the store");
    }
    assert!(counted.accepted > 0 && counted.declined > 0 && counted.delivered > 0);
    let [te, tr] = [
        stores[0].timeline("INC-000001").await.unwrap().unwrap(),
        stores[1].timeline("INC-000001").await.unwrap().unwrap(),
    ];
    assert_eq!(te, tr, "same timeline");
    assert!(te.len() > 40, "issued + every change: {}", te.len());
    for lead in ["L000", "L013", "L039"] {
        let a = stores[0].incidents_for_lead(lead, 0).await.unwrap();
        let b = stores[1].incidents_for_lead(lead, 0).await.unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!((&a[0].0, &a[0].1), (&b[0].0, &b[0].1));
    }
    assert!(
        stores[1]
            .incidents_for_lead("nobody", 0)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(stores[1].timeline("INC-000099").await.unwrap().is_none());

    // A second incident: listing is newest first in both.
    let second = new_incident(&leads[..2]);
    for s in stores {
        s.create_incident(second.clone()).await.unwrap();
        let list = s.incidents(None).await.unwrap();
        let order: Vec<&str> = list.iter().map(|x| x.meta.id.as_str()).collect();
        assert_eq!(order, ["INC-000002", "INC-000001"]);
        assert_eq!(
            s.incidents(Some(IncidentState::Active))
                .await
                .unwrap()
                .len(),
            2
        );
        assert!(
            s.incidents(Some(IncidentState::Closed))
                .await
                .unwrap()
                .is_empty()
        );
    }

    // Revisions: the same revs, states, timelines and syncs in both stores.
    let at = base + 10_000;
    for s in stores {
        let upd = Revision::Update {
            body: "更新：水位上涨".into(),
        };
        let close = Revision::Close {
            reason: "over".into(),
        };
        assert!(matches!(
            s.revise("INC-000002", upd.clone(), "op", at, false).await.unwrap(),
            ReviseOutcome::Revised(x) if x.meta.rev == 2
        ));
        assert!(matches!(
            s.revise("INC-000002", close.clone(), "op2", at + 1, false).await.unwrap(),
            ReviseOutcome::Revised(x) if x.meta.state == IncidentState::Closed && x.meta.rev == 3
        ));
        assert!(matches!(
            s.revise("INC-000002", upd, "op", at + 2, false)
                .await
                .unwrap(),
            ReviseOutcome::Closed
        ));
        assert!(matches!(
            s.revise("INC-000099", close, "op", at, false)
                .await
                .unwrap(),
            ReviseOutcome::NotFound
        ));
        let ack = Mark::Ack {
            response: Response::Accept,
            note: None,
        };
        assert_eq!(
            shape(&s.mark("INC-000002", "L000", ack, at + 3).await.unwrap()),
            "Closed"
        );
    }
    let [e, r] = [
        stores[0].incident("INC-000002").await.unwrap().unwrap(),
        stores[1].incident("INC-000002").await.unwrap().unwrap(),
    ];
    assert_eq!(e.meta, r.meta);
    assert_eq!(
        stores[0].timeline("INC-000002").await.unwrap(),
        stores[1].timeline("INC-000002").await.unwrap()
    );
    for s in stores {
        // Closed at `at + 1`: in a sync since then, not in one since after.
        assert_eq!(s.incidents_for_lead("L000", at + 1).await.unwrap().len(), 2);
        assert_eq!(s.incidents_for_lead("L000", at + 2).await.unwrap().len(), 1);
        let ids = |v: Vec<gridcast_hub::store::IncidentSnapshot>| {
            let mut ids: Vec<String> = v.iter().map(|x| x.meta.id.clone()).collect();
            ids.sort();
            ids
        };
        assert_eq!(
            ids(s.recent(at + 1).await.unwrap()),
            ["INC-000001", "INC-000002"]
        );
        assert_eq!(ids(s.recent(at + 2).await.unwrap()), ["INC-000001"]);
        assert_eq!(
            s.incidents(Some(IncidentState::Closed))
                .await
                .unwrap()
                .len(),
            1
        );
    }

    // Escalation due times: claimed by one caller per lease, each step recorded once.
    for s in stores {
        let snap = s.create_incident(new_incident(&leads[..1])).await.unwrap();
        let (id, ack_by) = (snap.meta.id.clone(), snap.meta.ack_by);
        let window = ack_by - snap.meta.issued_at;
        let mine =
            |v: Vec<(String, u8)>| v.into_iter().filter(|(i, _)| *i == id).collect::<Vec<_>>();
        assert!(mine(s.escalations_due(ack_by - 1, 1_000).await.unwrap()).is_empty());
        assert_eq!(
            mine(s.escalations_due(ack_by, 1_000).await.unwrap()),
            [(id.clone(), 1)]
        );
        assert!(
            mine(s.escalations_due(ack_by + 10, 1_000).await.unwrap()).is_empty(),
            "claimed: nobody else acts within the lease"
        );
        assert_eq!(
            mine(s.escalations_due(ack_by + 1_001, 1_000).await.unwrap()),
            [(id.clone(), 1)],
            "a claimer that died is replaced after the lease"
        );
        let event = gridcast_protocol::api::TimelineEvent {
            at: "2026-11-26T00:00:00.000Z".into(),
            kind: "escalated".into(),
            actor: "hub".into(),
            lead: Some("L000".into()),
            place: None,
            satisfaction: None,
            detail: Some("step 1".into()),
        };
        let next = Some(ack_by + window);
        assert!(
            s.escalation_done(&id, 1, vec![event.clone()], next)
                .await
                .unwrap()
        );
        assert!(
            !s.escalation_done(&id, 1, vec![event], next).await.unwrap(),
            "the same step is never recorded twice"
        );
        assert!(mine(s.escalations_due(ack_by + window - 1, 1_000).await.unwrap()).is_empty());
        assert_eq!(
            mine(s.escalations_due(ack_by + window, 1_000).await.unwrap()),
            [(id.clone(), 2)]
        );
        let kinds: Vec<String> = s
            .timeline(&id)
            .await
            .unwrap()
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds, ["issued", "escalated"]);
    }

    // Overdue tasks come through the same claims, keyed by task id, while open.
    for s in stores {
        let (id, created, t) = incident_with_task(s, &leads[0]).await;
        let key = t.view.id.clone();
        let mine =
            |v: Vec<(String, u8)>| v.into_iter().filter(|(k, _)| *k == key).collect::<Vec<_>>();
        assert!(mine(s.escalations_due(created + 4_999, 1_000).await.unwrap()).is_empty());
        assert_eq!(
            mine(s.escalations_due(created + 5_000, 1_000).await.unwrap()),
            [(key.clone(), 1)]
        );
        let ev = gridcast_protocol::api::TimelineEvent {
            at: "2026-11-26T00:00:00.000Z".into(),
            kind: "task_overdue".into(),
            actor: "hub".into(),
            lead: None,
            place: None,
            satisfaction: None,
            detail: Some("step 1".into()),
        };
        let next = Some(t.escalation_due(2));
        assert!(
            s.escalation_done(&key, 1, vec![ev.clone()], next)
                .await
                .unwrap()
        );
        assert!(
            !s.escalation_done(&key, 1, vec![ev], next).await.unwrap(),
            "once"
        );
        // Done: it leaves the chain.
        let done = gridcast_protocol::frame::TaskStatus::Done;
        s.update_task(&id, &key, "L000", done, None, created + 6_000)
            .await
            .unwrap();
        assert!(mine(s.escalations_due(created + 60_000, 1_000).await.unwrap()).is_empty());
        let kinds: Vec<String> = s
            .timeline(&id)
            .await
            .unwrap()
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds, ["issued", "task", "task_overdue", "task"]);
    }

    // A sync has the lead's open tasks of its active incidents, with few incidents in
    // the window (on Redis read in the pipeline of their metas) and with many (read in
    // a third round trip, of the lead's active incidents only).
    let mut synced = Vec::new();
    for s in stores {
        let (id, _, t) = incident_with_task(s, &leads[0]).await;
        let open_of = |sync: &[gridcast_hub::store::LeadSync]| -> Vec<(String, String)> {
            sync.iter()
                .flat_map(|(m, _, tasks)| {
                    tasks
                        .iter()
                        .filter(|t| t.is_open())
                        .map(|t| (m.id.clone(), t.view.id.clone()))
                })
                .collect()
        };
        let window = s.recent_metas(0).await.unwrap().len();
        assert!(window <= 8, "few incidents in the window: {window}");
        let few = open_of(&s.sync_for_lead("L000", 0).await.unwrap());
        assert!(few.contains(&(id.clone(), t.view.id.clone())), "{few:?}");
        for _ in 0..9 {
            s.create_incident(new_incident(&leads[1..2])).await.unwrap();
        }
        let many = open_of(&s.sync_for_lead("L000", 0).await.unwrap());
        assert_eq!(
            few, many,
            "the same open tasks with many incidents in the window"
        );
        synced.push(many);
    }
    assert_eq!(synced[0], synced[1], "both stores sync the same open tasks");

    // Outbox entries: claimed by one caller at a time, gone once done.
    let mut pending = new_incident(&leads[..1]);
    pending.outbox = true;
    let snap = redis_store.create_incident(pending).await.unwrap();
    let far = gridcast_hub::now_ms() + 60_000;
    assert_eq!(
        redis_store.outbox_claim(far, far).await.unwrap(),
        [(snap.meta.id.clone(), 1)]
    );
    assert!(
        redis_store
            .outbox_claim(far, far + 1)
            .await
            .unwrap()
            .is_empty(),
        "a claim restarts the entry's age"
    );
    redis_store.outbox_done(&snap.meta.id, 1).await.unwrap();
    assert!(
        redis_store
            .outbox_claim(u64::MAX, far + 2)
            .await
            .unwrap()
            .is_empty()
    );

    // The registry round-trips with a version that grows.
    let doc = city(30);
    assert_eq!(
        redis_store.load_registry_versioned().await.unwrap(),
        (0, None)
    );
    redis_store.save_registry(&doc).await.unwrap();
    redis_store.save_registry(&doc).await.unwrap();
    let (ver, back) = redis_store.load_registry_versioned().await.unwrap();
    assert_eq!(ver, 2);
    assert_eq!(back.unwrap().staff.len(), 30);
    assert!(redis_store.healthy());
}

/// Hundreds of phones marking at once: the Redis store batches their marks into few
/// script calls; every mark must still be applied by the rules, in each lead's order,
/// with the kept counts and the timeline matching the embedded store's one-by-one
/// result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_marks_are_batched_without_losing_or_reordering_any() {
    let server = RedisServer::start("store-batch").await;
    let client = ::redis::Client::open(server.url()).unwrap();
    let redis_store = std::sync::Arc::new(
        RedisStore::open(gridcast_hub::store::redis::RedisTarget::Direct(client), 0)
            .await
            .unwrap(),
    );
    let embedded = EmbeddedStore::open(&tmp_dir("store-batch")).unwrap();
    let leads: Vec<String> = (0..600).map(|i| format!("B{i:04}")).collect();
    let incident = new_incident(&leads);
    redis_store.create_incident(incident.clone()).await.unwrap();
    embedded.create_incident(incident).await.unwrap();
    // Each lead: receipt, an answer, and for every fourth a changed answer.
    let plan = |i: usize| -> Vec<Mark> {
        let answer = |r| Mark::Ack {
            response: r,
            note: None,
        };
        let mut m = vec![Mark::Receipt];
        m.push(answer(if i.is_multiple_of(2) {
            Response::Accept
        } else {
            Response::Decline
        }));
        if i % 4 == 1 {
            m.push(answer(Response::Accept));
        }
        m
    };
    let base = gridcast_hub::now_ms();
    let mut phones = tokio::task::JoinSet::new();
    for (i, lead) in leads.iter().enumerate() {
        let (store, lead, marks) = (redis_store.clone(), lead.clone(), plan(i));
        phones.spawn(async move {
            let mut changed = 0;
            for (step, m) in marks.into_iter().enumerate() {
                let at = base + (i * 10 + step) as u64;
                match store.mark("INC-000001", &lead, m, at).await.unwrap() {
                    MarkOutcome::Changed(..) => changed += 1,
                    other => panic!("{lead} step {step}: {other:?}"),
                }
            }
            changed
        });
    }
    let mut changes = 0;
    while let Some(r) = phones.join_next().await {
        changes += r.unwrap();
    }
    for (i, lead) in leads.iter().enumerate() {
        for (step, m) in plan(i).into_iter().enumerate() {
            let at = base + (i * 10 + step) as u64;
            embedded.mark("INC-000001", lead, m, at).await.unwrap();
        }
    }
    let r = redis_store.incident("INC-000001").await.unwrap().unwrap();
    let e = embedded.incident("INC-000001").await.unwrap().unwrap();
    assert_eq!(r.recipients, e.recipients, "same final state of every lead");
    let counted = gridcast_hub::incident::counts(&r.recipients);
    assert_eq!(
        (counted.accepted, counted.declined, counted.pending),
        (450, 150, 0)
    );
    let (_, kept) = redis_store.counts("INC-000001").await.unwrap().unwrap();
    assert_eq!(kept, counted, "counts kept by the batched script");
    let timeline = redis_store.timeline("INC-000001").await.unwrap().unwrap();
    assert_eq!(changes, 600 * 2 + 150);
    assert_eq!(timeline.len(), 1 + changes, "issued + one event per change");
}

/// The fallback queue: queued once per id, claimed with a lease (and again once the
/// lease passes), updated only under the latest claim, with its events and the next
/// call in the same write; the same in both stores, and kept across a reopen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_stores_keep_the_fallback_queue_alike() {
    use gridcast_hub::store::{FallbackRecord, FallbackState};
    use gridcast_protocol::api::Channel;
    let server = RedisServer::start("fallback").await;
    let client = ::redis::Client::open(server.url()).unwrap();
    let redis_store = RedisStore::open(gridcast_hub::store::redis::RedisTarget::Direct(client), 0)
        .await
        .unwrap();
    let dir = tmp_dir("fallback-store");
    let embedded = EmbeddedStore::open(&dir).unwrap();
    let stores: [&dyn Store; 2] = [&embedded, &redis_store];
    let t = gridcast_hub::now_ms();
    for s in stores {
        let inc = s
            .create_incident(new_incident(&["A".into(), "B".into()]))
            .await
            .unwrap()
            .meta
            .id
            .clone();
        let text = FallbackRecord::new(&inc, "A", Channel::Sms, 0, t);
        let call = FallbackRecord::new(&inc, "B", Channel::Voice, 1, t + 10_000);
        assert_eq!(
            s.fallback_add(vec![text.clone(), call.clone()])
                .await
                .unwrap(),
            2
        );
        assert_eq!(
            s.fallback_add(vec![text.clone()]).await.unwrap(),
            0,
            "queued once per id"
        );
        let orphan = FallbackRecord::new("INC-999999", "A", Channel::Sms, 0, t);
        assert_eq!(
            s.fallback_add(vec![orphan]).await.unwrap(),
            0,
            "no such incident"
        );
        // Only what is due, and once per lease.
        let got = s.fallback_claim(t, 1_000, 10).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].state, got[0].claims, got[0].next_at),
            (FallbackState::Sending, 1, t + 1_000)
        );
        assert!(
            s.fallback_claim(t + 999, 1_000, 10)
                .await
                .unwrap()
                .is_empty()
        );
        let again = s.fallback_claim(t + 1_000, 1_000, 10).await.unwrap();
        assert_eq!(again.len(), 1, "a lapsed claim is claimed again");
        assert_eq!(again[0].claims, 2);
        // The first claimer's late answer is refused; the latest claim's stands.
        let mut stale = got[0].clone();
        stale.state = FallbackState::Sent;
        assert!(!s.fallback_update(&stale, 1, vec![], None).await.unwrap());
        let mut sent = again[0].clone();
        sent.state = FallbackState::Sent;
        sent.attempts = 1;
        let event = gridcast_protocol::api::TimelineEvent {
            at: gridcast_protocol::time::rfc3339(t),
            kind: "fallback_sent".into(),
            actor: "hub".into(),
            lead: Some("A".into()),
            detail: Some("text taken".into()),
            place: None,
            satisfaction: None,
        };
        let next = FallbackRecord::new(&inc, "B", Channel::Voice, 2, t + 20_000);
        assert!(
            s.fallback_update(&sent, 2, vec![event], Some(next))
                .await
                .unwrap()
        );
        let timeline = s.timeline(&inc).await.unwrap().unwrap();
        assert_eq!(timeline.last().unwrap().kind, "fallback_sent");
        assert_eq!(
            s.fallback_get(&text.id).await.unwrap().unwrap().state,
            FallbackState::Sent
        );
        // A sent message is never claimed again; the calls come when due.
        let later = s.fallback_claim(t + 30_000, 1_000, 10).await.unwrap();
        let mut ids: Vec<String> = later.iter().map(|r| r.id.clone()).collect();
        ids.sort();
        assert_eq!(ids, [format!("{inc}:B:call1"), format!("{inc}:B:call2")]);
        assert_eq!(s.fallback_of(&inc).await.unwrap().len(), 3);
    }
    drop(embedded);
    let reopened = EmbeddedStore::open(&dir).unwrap();
    let kept = reopened.fallback_of("INC-000001").await.unwrap();
    assert_eq!(
        kept.iter().map(|r| r.state).collect::<Vec<_>>(),
        [
            FallbackState::Sent,
            FallbackState::Sending,
            FallbackState::Sending
        ],
        "kept across a reopen"
    );
}
