//! Which incidents a node must resend after a lost subscription.

use gridcast_protocol::frame::Targets;
use gridcast_protocol::model::{Category, IncidentState, Level};
use gridcast_protocol::{GridCode, Target};

use super::Seen;
use crate::store::IncidentMeta;

const G1: &str = "3301060040011001";
const G2: &str = "3301060040021001";
const OTHER: &str = "3301061010011001";

fn meta(rev: u64) -> IncidentMeta {
    IncidentMeta {
        id: "INC-000001".into(),
        rev,
        state: IncidentState::Active,
        title: "t".into(),
        body: String::new(),
        level: Level::III,
        category: Category::Natural,
        drill: true,
        issued_at: 0,
        ack_by: 1,
        targets: Targets {
            codes: vec![Target::parse("330106004").unwrap()],
            roles: vec![],
            area: Vec::new(),
        },
        area_grids: Vec::new(),
        cap: None,
        issued_by: "op".into(),
        closed_at: None,
        fallback: false,
        approval: None,
    }
}

fn grids(codes: &[&str]) -> Vec<GridCode> {
    codes.iter().map(|c| GridCode::parse(c).unwrap()).collect()
}

#[test]
fn an_incident_is_missed_until_every_targeted_local_grid_got_its_message() {
    let local = grids(&[G1, G2, OTHER]);
    let mut s = Seen::default();
    assert!(s.missed(&meta(1), &local), "nothing seen yet");
    s.grid(1, G1);
    // The subscription was lost before G2's message: the resync must resend.
    assert!(s.missed(&meta(1), &local));
    assert!(
        !s.missed(&meta(1), &grids(&[G1, OTHER])),
        "OTHER is not targeted"
    );
    s.grid(1, G2);
    assert!(!s.missed(&meta(1), &local));
    // An update starts over: rev 2 reached G1 only.
    s.grid(2, G1);
    assert!(s.missed(&meta(2), &local));
    // A late message of the old rev changes nothing.
    s.grid(1, G2);
    assert!(s.missed(&meta(2), &local));
    // Resent whole (or issued here): nothing missed, whatever the grids.
    s.whole(2);
    assert!(!s.missed(&meta(2), &local));
    s.grid(2, G2);
    assert!(!s.missed(&meta(2), &local));
    assert!(s.missed(&meta(3), &local));
}
