//! The embedded store's own tests: restarts, torn tails, corruption, locks, compaction.

use super::*;
use gridcast_protocol::GridCode;
use gridcast_protocol::frame::Targets;
use gridcast_protocol::model::{Category, Level, Response, Role, Status};
use std::fs::OpenOptions;
use std::io::Write;

fn new_incident(leads: &[&str]) -> NewIncident {
    let grid = GridCode::parse("3301060040051012").unwrap();
    NewIncident {
        meta: IncidentMeta {
            id: String::new(),
            rev: 0,
            state: IncidentState::Active,
            title: "Fire".into(),
            body: "b".into(),
            level: Level::I,
            category: Category::Accident,
            drill: false,
            issued_at: 1,
            ack_by: 2,
            targets: Targets {
                codes: vec![],
                roles: vec![],
                area: Vec::new(),
            },
            area_grids: Vec::new(),
            cap: None,
            issued_by: "op".into(),
            closed_at: None,
            fallback: false,
            approval: None,
        },
        recipients: leads
            .iter()
            .map(|l| (l.to_string(), grid.clone(), Role::GridLead))
            .collect(),
        outbox: false,
    }
}

fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gridcast-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[tokio::test]
async fn reports_and_their_links_survive_a_restart() {
    let dir = tmp_dir("reports");
    let report = ReportView {
        id: String::new(),
        at: "2026-11-26T00:00:00.000Z".into(),
        lead: "L1".into(),
        grid: GridCode::parse("3301060040051012").unwrap(),
        category: gridcast_protocol::Category::Accident,
        title: "smoke".into(),
        detail: String::new(),
        location: None,
        incident: None,
    };
    {
        let s = EmbeddedStore::open(&dir).unwrap();
        assert_eq!(s.add_report(report.clone()).await.unwrap().id, "REP-000001");
        assert_eq!(s.add_report(report).await.unwrap().id, "REP-000002");
        assert!(s.link_report("REP-000001", "INC-000007").await.unwrap());
        assert!(
            !s.link_report("REP-000001", "INC-000008").await.unwrap(),
            "first wins"
        );
        assert!(!s.link_report("REP-000009", "INC-000008").await.unwrap());
    }
    let s = EmbeddedStore::open(&dir).unwrap();
    let list = s.reports().await.unwrap();
    let ids: Vec<(&str, Option<&str>)> = list
        .iter()
        .map(|r| (r.id.as_str(), r.incident.as_deref()))
        .collect();
    assert_eq!(
        ids,
        [("REP-000002", None), ("REP-000001", Some("INC-000007"))]
    );
}

#[tokio::test]
async fn revisions_survive_a_restart() {
    let dir = tmp_dir("revise");
    {
        let s = EmbeddedStore::open(&dir).unwrap();
        s.create_incident(new_incident(&["L1"])).await.unwrap();
        let update = Revision::Update { body: "b2".into() };
        s.revise("INC-000001", update, "op", 10, true)
            .await
            .unwrap();
        let close = Revision::Close {
            reason: "done".into(),
        };
        s.revise("INC-000001", close, "op", 11, false)
            .await
            .unwrap();
    }
    let s = EmbeddedStore::open(&dir).unwrap();
    let snap = s.incident("INC-000001").await.unwrap().unwrap();
    assert_eq!(
        (snap.meta.rev, snap.meta.state, snap.meta.body.as_str()),
        (3, IncidentState::Closed, "b2")
    );
    assert_eq!(snap.meta.closed_at, Some(11));
    assert_eq!(
        s.outbox_claim(100, 200).await.unwrap(),
        [("INC-000001".to_owned(), 2)]
    );
    let kinds: Vec<String> = s
        .timeline("INC-000001")
        .await
        .unwrap()
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["issued", "updated", "closed"]);
}

#[tokio::test]
async fn outbox_entries_survive_a_restart_until_done() {
    let dir = tmp_dir("outbox");
    {
        let s = EmbeddedStore::open(&dir).unwrap();
        let mut pending = new_incident(&["L1"]);
        pending.outbox = true;
        s.create_incident(pending.clone()).await.unwrap();
        s.create_incident(pending).await.unwrap();
        s.create_incident(new_incident(&["L1"])).await.unwrap();
        s.outbox_done("INC-000002", 1).await.unwrap();
    }
    let s = EmbeddedStore::open(&dir).unwrap();
    // issued_at is 1: due for any grace period.
    assert_eq!(
        s.outbox_claim(10, 100).await.unwrap(),
        [("INC-000001".to_owned(), 1)]
    );
    assert!(
        s.outbox_claim(50, 200).await.unwrap().is_empty(),
        "a claim restarts the entry's age"
    );
    assert_eq!(s.outbox_claim(150, 300).await.unwrap().len(), 1);
    s.outbox_done("INC-000001", 1).await.unwrap();
    assert!(s.outbox_claim(u64::MAX, 400).await.unwrap().is_empty());
}

#[tokio::test]
async fn state_survives_reopen_and_torn_tail_is_cut() {
    let dir = tmp_dir("reopen");
    {
        let s = EmbeddedStore::open(&dir).unwrap();
        let snap = s
            .create_incident(new_incident(&["L1", "L2"]))
            .await
            .unwrap();
        assert_eq!(snap.meta.id, "INC-000001");
        let ack = Mark::Ack {
            response: Response::Accept,
            note: Some("on my way".into()),
        };
        assert!(matches!(
            s.mark("INC-000001", "L1", ack, 5).await.unwrap(),
            MarkOutcome::Changed(..)
        ));
        assert!(matches!(
            s.mark("INC-000001", "L2", Mark::Receipt, 6).await.unwrap(),
            MarkOutcome::Changed(..)
        ));
        assert_eq!(
            s.mark("INC-000001", "L9", Mark::Receipt, 6).await.unwrap(),
            MarkOutcome::NotRecipient
        );
        assert_eq!(
            s.mark("INC-9", "L1", Mark::Receipt, 6).await.unwrap(),
            MarkOutcome::NotFound
        );
    }
    // A crash mid-write leaves half a line.
    let mut f = OpenOptions::new()
        .append(true)
        .open(dir.join(LOG_FILE))
        .unwrap();
    f.write_all(b"0000abcd {\"t\":\"mark\",\"inc").unwrap();
    drop(f);
    let s = EmbeddedStore::open(&dir).unwrap();
    let snap = s.incident("INC-000001").await.unwrap().unwrap();
    let st: Vec<Status> = snap.recipients.iter().map(|r| r.status).collect();
    assert_eq!(st, vec![Status::Accepted, Status::Delivered]);
    let t = s.timeline("INC-000001").await.unwrap().unwrap();
    let kinds: Vec<&str> = t.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["issued", "acked", "delivered"]);
    assert_eq!(t[1].detail.as_deref(), Some("accept: on my way"));
    let next = s.create_incident(new_incident(&["L1"])).await.unwrap();
    assert_eq!(next.meta.id, "INC-000002", "ids continue after restart");
    let mine = s.incidents_for_lead("L1", 0).await.unwrap();
    assert_eq!(mine.len(), 2);
}

#[tokio::test]
async fn corruption_before_valid_records_refuses_to_start() {
    let dir = tmp_dir("corrupt");
    {
        let s = EmbeddedStore::open(&dir).unwrap();
        s.create_incident(new_incident(&["L1"])).await.unwrap();
        s.mark("INC-000001", "L1", Mark::Receipt, 3).await.unwrap();
    }
    let path = dir.join(LOG_FILE);
    let mut data = std::fs::read(&path).unwrap();
    data[12] ^= 0x20;
    std::fs::write(&path, data).unwrap();
    assert!(matches!(
        EmbeddedStore::open(&dir),
        Err(OpenError::Corrupt { offset: 0, .. })
    ));
}

#[tokio::test]
async fn a_second_hub_cannot_open_the_same_dir() {
    let dir = tmp_dir("lock");
    let _first = EmbeddedStore::open(&dir).unwrap();
    assert!(matches!(
        EmbeddedStore::open(&dir),
        Err(OpenError::Locked(_))
    ));
}

#[tokio::test]
async fn compaction_lets_go_of_what_retention_no_longer_keeps_and_ids_go_on() {
    let dir = tmp_dir("compact");
    let report = |at: &str| ReportView {
        id: String::new(),
        at: at.into(),
        lead: "L1".into(),
        grid: GridCode::parse("3301060040051012").unwrap(),
        category: gridcast_protocol::Category::Accident,
        title: "smoke".into(),
        detail: String::new(),
        location: None,
        incident: None,
    };
    let ack = Mark::Ack {
        response: Response::Accept,
        note: None,
    };
    let close = || Revision::Close {
        reason: "over".into(),
    };
    let before;
    {
        let s = EmbeddedStore::open(&dir).unwrap();
        for _ in 0..2 {
            s.create_incident(new_incident(&["L1", "L2"]))
                .await
                .unwrap();
        }
        let many: Vec<String> = (0..50).map(|i| format!("M{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        s.create_incident(new_incident(&many)).await.unwrap();
        // INC-1 stays open with an ack and an update; INC-2 closed recently; INC-3 (the
        // highest id) closed long ago.
        for i in 0..40 {
            let m = if i % 2 == 0 {
                Mark::Receipt
            } else {
                ack.clone()
            };
            s.mark("INC-000001", "L1", m, 5 + i).await.unwrap();
        }
        s.revise(
            "INC-000001",
            Revision::Update { body: "b2".into() },
            "op",
            6,
            true,
        )
        .await
        .unwrap();
        s.revise("INC-000002", close(), "op", 5_000, false)
            .await
            .unwrap();
        s.revise("INC-000003", close(), "op", 100, false)
            .await
            .unwrap();
        s.add_report(report("1970-01-01T00:00:00.050Z"))
            .await
            .unwrap();
        s.add_report(report("1970-01-01T00:00:09.000Z"))
            .await
            .unwrap();
        before = std::fs::metadata(dir.join(LOG_FILE)).unwrap().len();
        // Nothing expired and the log is small: nothing to do.
        assert_eq!(s.maintain(50).await.unwrap(), None);
        let done = s.maintain(1_000).await.unwrap().expect("compacted");
        assert_eq!((done.incidents, done.reports), (1, 1));
        assert_eq!(done.bytes_before, before);
        assert!(done.bytes_after < before, "{done:?}");
        assert!(s.incident("INC-000003").await.unwrap().is_none());
        // Appends go to the new log.
        s.mark("INC-000001", "L2", Mark::Receipt, 7_000)
            .await
            .unwrap();
    }
    let after = std::fs::metadata(dir.join(LOG_FILE)).unwrap().len();
    assert!(after < before, "{after} >= {before}");
    assert!(!dir.join(COMPACT_FILE).exists());
    let s = EmbeddedStore::open(&dir).unwrap();
    let ids: Vec<String> = s
        .incidents(None)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.meta.id.clone())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(!ids.contains(&"INC-000003".to_owned()));
    let one = s.incident("INC-000001").await.unwrap().unwrap();
    assert_eq!((one.meta.rev, one.meta.body.as_str()), (2, "b2"));
    let states: Vec<Status> = one.recipients.iter().map(|r| r.status).collect();
    assert_eq!(states, [Status::Accepted, Status::Delivered]);
    let kinds: Vec<String> = s
        .timeline("INC-000001")
        .await
        .unwrap()
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds.first().map(String::as_str), Some("issued"));
    assert_eq!(kinds.iter().filter(|k| *k == "acked").count(), 1);
    assert_eq!(
        s.outbox_claim(100, 200).await.unwrap(),
        [("INC-000001".to_owned(), 2)],
        "the outbox survives a compaction"
    );
    let reports = s.reports().await.unwrap();
    assert_eq!(reports.len(), 1);
    // Ids go on past the ones that left: no INC-000003 or REP-000002 twice.
    let next = s.create_incident(new_incident(&["L1"])).await.unwrap();
    assert_eq!(next.meta.id, "INC-000004");
    assert_eq!(
        s.add_report(report("2026-01-01T00:00:00.000Z"))
            .await
            .unwrap()
            .id,
        "REP-000003"
    );
}
