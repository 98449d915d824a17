//! The log's lines: one checksummed JSON record a line (`CRC32(hex) JSON\n`), and the
//! replay that rebuilds the state from them, cutting a torn tail.

use std::io::Write;
use std::path::Path;

use gridcast_protocol::GridCode;
use gridcast_protocol::api::{ReportView, TimelineEvent};
use gridcast_protocol::model::Role;
use serde::{Deserialize, Serialize};

use super::OpenError;
use super::state::State;
use crate::store::{IncidentMeta, Mark, RecipientState, Revision, TaskRecord};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub(super) enum Record {
    Incident {
        meta: IncidentMeta,
        recipients: Vec<(String, GridCode, Role)>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        outbox: bool,
    },
    OutboxDone {
        incident: String,
        rev: u64,
    },
    Revise {
        incident: String,
        revision: Revision,
        by: String,
        at: u64,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        outbox: bool,
    },
    Mark {
        incident: String,
        lead: String,
        mark: Mark,
        at: u64,
    },
    Report {
        report: ReportView,
    },
    Escalated {
        incident: String,
        step: u8,
        events: Vec<TimelineEvent>,
    },
    /// A task as it is after a change (created or updated).
    Task {
        incident: String,
        task: TaskRecord,
        actor: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lead: Option<String>,
        at: u64,
    },
    ReportLinked {
        report: String,
        incident: String,
    },
    /// A request held under the two-person rule, as it now is (added or decided).
    Approval {
        approval: gridcast_protocol::api::Approval,
    },
    /// A fallback message as it now is (queued, claimed, sent, …).
    Fallback {
        record: crate::store::FallbackRecord,
    },
    /// Events added to a timeline (a check-in, …).
    Events {
        incident: String,
        events: Vec<TimelineEvent>,
    },
    /// One incident whole, as a compaction wrote it: it stands for every record of the
    /// incident before it.
    Snapshot {
        meta: IncidentMeta,
        recipients: Vec<RecipientState>,
        timeline: Vec<TimelineEvent>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tasks: Vec<TaskRecord>,
        #[serde(default, skip_serializing_if = "is_zero")]
        escalated: u8,
        /// Revisions not yet known to be on the broker, with the time they were made.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        outbox: Vec<(u64, u64)>,
    },
    /// The highest incident and report numbers given out so far: kept at the head of a
    /// compacted log, so that ids never repeat when the incidents that had them leave.
    Seq {
        incidents: u64,
        reports: u64,
    },
}

fn is_zero(n: &u8) -> bool {
    *n == 0
}

pub(super) fn line(record: &Record, out: &mut Vec<u8>) {
    let json = serde_json::to_vec(record).expect("records always serialize");
    let crc = crc32fast::hash(&json);
    let _ = write!(out, "{crc:08x} ");
    out.extend_from_slice(&json);
    out.push(b'\n');
}

pub(super) fn parse_line(l: &[u8]) -> Option<Record> {
    if l.len() < 10 || l[8] != b' ' {
        return None;
    }
    let crc = u32::from_str_radix(std::str::from_utf8(&l[..8]).ok()?, 16).ok()?;
    let json = &l[9..];
    (crc32fast::hash(json) == crc)
        .then(|| serde_json::from_slice(json).ok())
        .flatten()
}

/// Reads the log; returns the state and the length of its valid prefix.
pub(super) fn replay(path: &Path) -> Result<(State, usize), OpenError> {
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(OpenError::Io(path.to_owned(), e)),
    };
    let mut state = State::default();
    let mut offset = 0;
    while offset < data.len() {
        let end = data[offset..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|p| offset + p);
        let record = end.and_then(|end| parse_line(&data[offset..end]));
        match (record, end) {
            (Some(r), Some(end)) => {
                state.apply(r);
                offset = end + 1;
            }
            _ => {
                // A bad record is a torn tail only if nothing valid follows it.
                let rest_valid = data[offset..]
                    .split(|&b| b == b'\n')
                    .skip(1)
                    .any(|l| parse_line(l).is_some());
                if rest_valid {
                    return Err(OpenError::Corrupt {
                        path: path.to_owned(),
                        offset,
                    });
                }
                tracing::warn!(path = %path.display(), offset, dropped = data.len() - offset, "cut torn tail of the store log");
                break;
            }
        }
    }
    Ok((state, offset))
}
