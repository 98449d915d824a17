//! The shared rules of every store (marks, answers, tasks), as unit tests.

use super::*;
use gridcast_protocol::frame::{Assignee, TaskView};

fn pending() -> RecipientState {
    RecipientState {
        lead: "L1".into(),
        grid: GridCode::parse("3301060040051012").unwrap(),
        role: Role::GridLead,
        status: Status::Pending,
        delivered_at: None,
        acked_at: None,
        answers: 0,
    }
}

fn task(assignee: Assignee) -> TaskRecord {
    TaskRecord {
        view: TaskView {
            id: "INC-000001-T1".into(),
            incident: "INC-000001".into(),
            rev: 1,
            kind: "evacuation".into(),
            title: "t".into(),
            detail: String::new(),
            assignee,
            due_at: rfc3339(0),
            status: TaskStatus::Open,
        },
        accepted_by: None,
        created_by: "op".into(),
        note: None,
        note_by: None,
        created_ms: 0,
        escalated: 0,
        declined_by: Vec::new(),
    }
}

#[test]
fn task_rules_follow_the_contract() {
    let grid = Assignee::Grid(GridCode::parse("3301060040051012").unwrap());
    let open = task(grid.clone());
    // A grid task declined by one lead stays open for the others.
    let d = apply_task_update(&open, "L1", TaskStatus::Declined, Some("busy".into()))
        .unwrap()
        .unwrap();
    assert_eq!((d.view.status, d.view.rev), (TaskStatus::Open, 2));
    // Saying no again is a retry (nothing for the timeline); another lead's no counts.
    assert_eq!(
        apply_task_update(&d, "L1", TaskStatus::Declined, Some("still busy".into())),
        Ok(None)
    );
    let d2 = apply_task_update(&d, "L2", TaskStatus::Declined, None)
        .unwrap()
        .unwrap();
    assert_eq!(
        (d2.view.status, d2.declined_by.len()),
        (TaskStatus::Open, 2)
    );
    // First accept wins; a retry is a no-op; another lead is refused.
    let a = apply_task_update(&open, "L1", TaskStatus::Accepted, None)
        .unwrap()
        .unwrap();
    assert_eq!(a.accepted_by.as_deref(), Some("L1"));
    assert_eq!(
        apply_task_update(&a, "L1", TaskStatus::Accepted, None),
        Ok(None)
    );
    assert_eq!(
        apply_task_update(&a, "L2", TaskStatus::Accepted, None),
        Err(TaskRefusal::Taken("L1".into()))
    );
    assert_eq!(
        apply_task_update(&a, "L2", TaskStatus::Done, None),
        Err(TaskRefusal::Taken("L1".into()))
    );
    // Doing an open task takes it.
    let done = apply_task_update(&open, "L2", TaskStatus::Done, Some("ok".into()))
        .unwrap()
        .unwrap();
    assert_eq!(
        (done.view.status, done.accepted_by.as_deref()),
        (TaskStatus::Done, Some("L2"))
    );
    assert_eq!(
        apply_task_update(&done, "L2", TaskStatus::Done, None),
        Ok(None)
    );
    assert!(matches!(
        apply_task_update(&done, "L2", TaskStatus::Failed, None),
        Err(TaskRefusal::Conflict(_))
    ));
    assert!(matches!(
        apply_task_update(&a, "L1", TaskStatus::Open, None),
        Err(TaskRefusal::Conflict(_))
    ));
    // A lead task declined goes back to the command center.
    let mine = task(Assignee::Lead("L1".into()));
    let back = apply_task_update(&mine, "L1", TaskStatus::Declined, None)
        .unwrap()
        .unwrap();
    assert_eq!(back.view.status, TaskStatus::Declined);
    assert!(!back.is_open());
}

#[test]
fn marks_follow_the_contract() {
    let r = pending();
    let d = apply_mark(&r, &Mark::Receipt, 5).unwrap();
    assert_eq!((d.status, d.delivered_at), (Status::Delivered, Some(5)));
    assert_eq!(
        apply_mark(&d, &Mark::Receipt, 6),
        None,
        "receipt retry is a no-op"
    );
    let accept = Mark::Ack {
        response: Response::Accept,
        note: None,
    };
    let a = apply_mark(&d, &accept, 7).unwrap();
    assert_eq!(
        (a.status, a.delivered_at, a.acked_at),
        (Status::Accepted, Some(5), Some(7))
    );
    assert_eq!(apply_mark(&a, &accept, 8), None, "ack retry is a no-op");
    assert_eq!(
        apply_mark(&a, &Mark::Receipt, 8),
        None,
        "receipt never undoes an answer"
    );
    let decline = Mark::Ack {
        response: Response::Decline,
        note: None,
    };
    assert_eq!(
        apply_mark(&a, &decline, 9).unwrap().status,
        Status::Declined,
        "latest answer counts"
    );
    let direct = apply_mark(&r, &decline, 3).unwrap();
    assert_eq!(direct.delivered_at, Some(3), "an ack implies delivery");
}

#[test]
fn answers_are_bounded_but_retries_of_the_last_one_are_not() {
    let accept = Mark::Ack {
        response: Response::Accept,
        note: None,
    };
    let decline = Mark::Ack {
        response: Response::Decline,
        note: None,
    };
    let mut r = pending();
    for n in 0..MAX_ANSWERS {
        assert!(!answers_used_up(&r, &accept) && !answers_used_up(&r, &decline));
        let m = if n % 2 == 0 { &accept } else { &decline };
        r = apply_mark(&r, m, u64::from(n)).unwrap();
        assert_eq!(r.answers, n + 1);
    }
    // The tenth answer was a decline: another decline is a retry, an accept a change.
    assert!(!answers_used_up(&r, &decline));
    assert!(!answers_used_up(&r, &Mark::Receipt));
    assert!(answers_used_up(&r, &accept));
}
