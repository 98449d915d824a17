//! docs/asyncapi.yaml (AsyncAPI 3.0, hand-written) validates offline with the AsyncAPI
//! parser, a broken copy does not, and one frame of every kind the protocol crate
//! serialises matches its message's payload schema: the document cannot drift from
//! the frames (a new frame kind fails to compile `kind` below until it is added).

use std::path::{Path, PathBuf};

use gridcast_protocol::ErrorCode;
use gridcast_protocol::frame::*;
use gridcast_protocol::model::*;
use gridcast_protocol::{GridCode, Target};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The message name of a frame (exhaustive: every kind must be in the document).
fn kind_client(f: &ClientFrame) -> &'static str {
    match f {
        ClientFrame::Hello { .. } => "hello",
        ClientFrame::Receipt { .. } => "receipt",
        ClientFrame::Ack { .. } => "ack",
        ClientFrame::TaskUpdate { .. } => "task_update",
        ClientFrame::Report { .. } => "report",
        ClientFrame::Checkin { .. } => "checkin",
        ClientFrame::Ping { .. } => "ping",
    }
}

fn kind_server(f: &ServerFrame) -> &'static str {
    match f {
        ServerFrame::Welcome { .. } => "welcome",
        ServerFrame::Incident { .. } => "incident",
        ServerFrame::Task { .. } => "task",
        ServerFrame::Escalation { .. } => "escalation",
        ServerFrame::Synced => "synced",
        ServerFrame::Pong { .. } => "pong",
        ServerFrame::Ok { .. } => "ok",
        ServerFrame::Error { .. } => "error",
    }
}

fn samples() -> serde_json::Value {
    let grid = GridCode::parse("3301060040051001").unwrap();
    let r = || Some("r1".to_owned());
    let at = || Location {
        lat: 30.27,
        lon: 120.15,
        datum: Default::default(),
    };
    let client = vec![
        ClientFrame::Hello {
            token: "eyJ…".into(),
            client: Some(ClientInfo {
                name: "app".into(),
                version: "1.0".into(),
            }),
        },
        ClientFrame::Receipt {
            incident: "INC-000001".into(),
            rev: 1,
            reference: r(),
        },
        ClientFrame::Ack {
            incident: "INC-000001".into(),
            response: Response::Decline,
            note: Some("在医院".into()),
            reference: r(),
        },
        ClientFrame::TaskUpdate {
            task: "INC-000001-T1".into(),
            status: TaskStatus::Done,
            note: None,
            reference: r(),
        },
        ClientFrame::Report {
            category: Category::Accident,
            title: "Smoke".into(),
            detail: "From the 3rd floor".into(),
            grid: grid.clone(),
            location: Some(at()),
            reference: r(),
        },
        ClientFrame::Checkin {
            incident: "INC-000001".into(),
            location: at(),
            note: None,
            reference: r(),
        },
        ClientFrame::Ping { reference: None },
    ];
    let view: IncidentView = serde_json::from_value(serde_json::json!({
        "id": "INC-000001", "rev": 2, "state": "active", "title": "Flood", "body": "Leave.",
        "level": "II", "category": "natural", "drill": false,
        "issued_at": "2026-12-01T08:00:00Z", "ack_by": "2026-12-01T08:02:00Z",
        "targets": {"codes": ["330106004"], "roles": ["grid_lead"],
                    "area": {"circle": {"lat": 30.27, "lon": 120.15, "radius_m": 500.0}}}
    }))
    .unwrap();
    let task: TaskView = serde_json::from_value(serde_json::json!({
        "id": "INC-000001-T1", "incident": "INC-000001", "rev": 1, "kind": "evacuate",
        "title": "Evacuate", "detail": "Block 3", "assignee": {"grid": grid.as_str()},
        "due_at": "2026-12-01T09:00:00Z", "status": "open"
    }))
    .unwrap();
    let server = vec![
        ServerFrame::Welcome {
            lead: "L0001".into(),
            assignments: vec![Assignment {
                grid: grid.clone(),
                role: Role::GridLead,
            }],
            heartbeat_s: 20,
        },
        ServerFrame::Incident {
            incident: view.clone(),
            me: Some(Me {
                status: Status::Pending,
                grid: grid.clone(),
                role: Role::GridLead,
            }),
        },
        ServerFrame::Incident {
            incident: view,
            me: None,
        },
        ServerFrame::Task { task },
        ServerFrame::Escalation {
            incident: "INC-000001".into(),
            lead: "L0002".into(),
            grid,
            role: Role::MicroLead,
            step: 1,
            drill: true,
        },
        ServerFrame::Synced,
        ServerFrame::Pong { reference: r() },
        ServerFrame::Ok {
            reference: "r1".into(),
        },
        ServerFrame::Error {
            reference: r(),
            code: ErrorCode::IncidentClosed,
            message: "closed".into(),
        },
    ];
    let _ = Target::parse("330106").unwrap();
    let mut out = serde_json::Map::new();
    let mut add = |name: &str, v: serde_json::Value| {
        out.entry(name)
            .or_insert_with(|| serde_json::json!([]))
            .as_array_mut()
            .unwrap()
            .push(v);
    };
    for f in &client {
        add(kind_client(f), serde_json::to_value(f).unwrap());
    }
    for f in &server {
        add(kind_server(f), serde_json::to_value(f).unwrap());
    }
    add("presence", serde_json::json!("online"));
    serde_json::Value::Object(out)
}

fn check(doc: &Path, samples: Option<&Path>) -> std::process::Output {
    let mut cmd = std::process::Command::new("node");
    cmd.arg(root().join("tools/asyncapi/check.mjs")).arg(doc);
    if let Some(s) = samples {
        cmd.arg(s);
    }
    cmd.output()
        .expect("node is installed, with tools/asyncapi's packages (.ci/run runs npm ci there)")
}

#[test]
fn the_asyncapi_document_validates_and_describes_every_frame() {
    let doc = root().join("docs/asyncapi.yaml");
    let path = std::env::temp_dir().join(format!("gridcast-frames-{}.json", std::process::id()));
    let all = samples();
    assert_eq!(
        all.as_object().unwrap().len(),
        16,
        "every frame kind and presence"
    );
    std::fs::write(&path, serde_json::to_vec(&all).unwrap()).unwrap();
    let out = check(&doc, Some(&path));
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The check can fail: a frame the document does not allow is refused.
    let bad =
        serde_json::json!({"ack": [{"type": "ack", "incident": "INC-1", "response": "maybe"}]});
    std::fs::write(&path, serde_json::to_vec(&bad).unwrap()).unwrap();
    assert!(!check(&doc, Some(&path)).status.success());
    // And so can the document's own validation.
    let text = std::fs::read_to_string(&doc).unwrap();
    let broken =
        std::env::temp_dir().join(format!("gridcast-asyncapi-{}.yaml", std::process::id()));
    std::fs::write(&broken, text.replace("action: receive", "action: listen")).unwrap();
    assert!(!check(&broken, None).status.success());
}
