//! Frames round-trip and bad input is told apart.

use super::*;
use crate::model::Level;

fn round_trip_client(f: ClientFrame) {
    let text = serde_json::to_string(&f).unwrap();
    assert!(text.starts_with("{\"type\":"), "type first: {text}");
    assert_eq!(decode_client(&text).unwrap(), f);
}

fn round_trip_server(f: ServerFrame) {
    let text = serde_json::to_string(&f).unwrap();
    assert!(text.starts_with("{\"type\":"), "type first: {text}");
    assert_eq!(serde_json::from_str::<ServerFrame>(&text).unwrap(), f);
}

fn grid() -> GridCode {
    GridCode::parse("3301060040051012").unwrap()
}

#[test]
fn every_client_frame_round_trips() {
    round_trip_client(ClientFrame::Hello {
        token: "t".into(),
        client: Some(ClientInfo {
            name: "app".into(),
            version: "1".into(),
        }),
    });
    round_trip_client(ClientFrame::Receipt {
        incident: "I1".into(),
        rev: 3,
        reference: Some("r1".into()),
    });
    round_trip_client(ClientFrame::Ack {
        incident: "I1".into(),
        response: Response::Decline,
        note: Some("sick".into()),
        reference: None,
    });
    round_trip_client(ClientFrame::TaskUpdate {
        task: "T1".into(),
        status: TaskStatus::Done,
        note: None,
        reference: Some("x".into()),
    });
    round_trip_client(ClientFrame::Report {
        category: Category::Accident,
        title: "smoke".into(),
        detail: "from the market".into(),
        grid: grid(),
        location: Some(Location {
            lat: 30.25,
            lon: 120.17,
            datum: Default::default(),
        }),
        reference: None,
    });
    round_trip_client(ClientFrame::Checkin {
        incident: "INC-000001".into(),
        location: Location {
            lat: 30.25,
            lon: 120.17,
            datum: crate::area::Datum::Gcj02,
        },
        note: Some("at the gate".into()),
        reference: Some("c1".into()),
    });
    round_trip_client(ClientFrame::Ping { reference: None });
}

#[test]
fn every_server_frame_round_trips() {
    let view = IncidentView {
        id: "I1".into(),
        rev: 1,
        state: IncidentState::Active,
        title: "Fire".into(),
        body: "Evacuate block 3".into(),
        level: Level::II,
        category: Category::Accident,
        drill: false,
        issued_at: "2026-11-26T18:46:02.123Z".into(),
        ack_by: "2026-11-26T18:48:02.123Z".into(),
        targets: Targets {
            codes: vec![Target::parse("330106004").unwrap()],
            roles: vec![Role::GridLead],
            area: Vec::new(),
        },
    };
    round_trip_server(ServerFrame::Welcome {
        lead: "L1".into(),
        assignments: vec![Assignment {
            grid: grid(),
            role: Role::GridLead,
        }],
        heartbeat_s: 20,
    });
    round_trip_server(ServerFrame::Incident {
        incident: view.clone(),
        me: Some(Me {
            status: Status::Pending,
            grid: grid(),
            role: Role::GridLead,
        }),
    });
    round_trip_server(ServerFrame::Incident {
        incident: view,
        me: None,
    });
    round_trip_server(ServerFrame::Task {
        task: TaskView {
            id: "T1".into(),
            incident: "I1".into(),
            rev: 1,
            kind: "evacuation".into(),
            title: "t".into(),
            detail: "d".into(),
            assignee: Assignee::Grid(grid()),
            due_at: "2026-11-26T18:46:02.123Z".into(),
            status: TaskStatus::Open,
        },
    });
    round_trip_server(ServerFrame::Escalation {
        incident: "I1".into(),
        lead: "L2".into(),
        grid: grid(),
        role: Role::PartTime,
        step: 1,
        drill: true,
    });
    round_trip_server(ServerFrame::Synced);
    round_trip_server(ServerFrame::Pong {
        reference: Some("p".into()),
    });
    round_trip_server(ServerFrame::Ok {
        reference: "r".into(),
    });
    round_trip_server(ServerFrame::Error {
        reference: None,
        code: ErrorCode::NotRecipient,
        message: "m".into(),
    });
}

#[test]
fn decode_tells_bad_inputs_apart() {
    assert_eq!(
        decode_client("{nope").unwrap_err().code,
        ErrorCode::BadRequest
    );
    assert_eq!(
        decode_client("[1]").unwrap_err().code,
        ErrorCode::BadRequest
    );
    assert_eq!(
        decode_client(r#"{"ref":"a"}"#).unwrap_err().code,
        ErrorCode::BadRequest
    );
    let e = decode_client(r#"{"type":"dance","ref":"a"}"#).unwrap_err();
    assert_eq!(
        (e.code, e.reference.as_deref()),
        (ErrorCode::UnknownType, Some("a"))
    );
    let e = decode_client(r#"{"type":"ack","incident":"I1","response":"maybe","ref":"b"}"#)
        .unwrap_err();
    assert_eq!(
        (e.code, e.reference.as_deref()),
        (ErrorCode::BadRequest, Some("b"))
    );
    let big = format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(70 * 1024));
    assert_eq!(decode_client(&big).unwrap_err().code, ErrorCode::TooLarge);
}

#[test]
fn unknown_fields_are_ignored_for_forward_compatibility() {
    let f = decode_client(r#"{"type":"receipt","incident":"I1","rev":2,"extra":true}"#).unwrap();
    assert_eq!(
        f,
        ClientFrame::Receipt {
            incident: "I1".into(),
            rev: 2,
            reference: None
        }
    );
}
