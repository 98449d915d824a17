//! What cluster nodes say to each other on Redis pub/sub: a bus event for one grid,
//! console announcements, and what of each incident reached this node's sessions.

use std::collections::HashSet;

use gridcast_protocol::GridCode;
use serde::{Deserialize, Serialize};

use crate::store::{IncidentMeta, RecipientState};

/// A message to publish: channel and payload.
pub(super) type Message = (String, Vec<u8>);

/// A bus event on the wire: only the recipients of one grid.
#[derive(Serialize)]
pub(super) struct WireOut<'a> {
    pub(super) origin: &'a str,
    pub(super) whole: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) meta: Option<&'a IncidentMeta>,
    pub(super) recipients: Vec<&'a RecipientState>,
    /// A frame for one lead's devices: (lead, frame text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) to: Option<(&'a str, &'a str)>,
    /// A lead's new status names its incident (id, rev) instead of carrying its meta:
    /// the receiving node has it from the fan-out (or reads it once).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) incident: Option<(&'a str, u64)>,
}

#[derive(Deserialize)]
pub(super) struct WireIn {
    pub(super) origin: String,
    #[serde(default)]
    pub(super) whole: bool,
    #[serde(default)]
    pub(super) meta: Option<IncidentMeta>,
    #[serde(default)]
    pub(super) recipients: Vec<RecipientState>,
    #[serde(default)]
    pub(super) to: Option<(String, String)>,
    #[serde(default)]
    pub(super) incident: Option<(String, u64)>,
}

/// What a node tells the others' consoles.
#[derive(Serialize, Deserialize, Default)]
pub(super) struct ConsoleWire {
    pub(super) origin: String,
    #[serde(default)]
    pub(super) changed: Vec<String>,
    #[serde(default)]
    pub(super) event: Option<(String, Vec<String>, serde_json::Value)>,
}

/// What of an incident reached a node's sessions: its newest `rev`, and whether all of
/// that rev did (issued or resent from this node) or only the grids listed (another
/// node's fan-out is one message per grid, and a subscription lost in the middle of one
/// leaves the rest of its grids unsent).
#[derive(Debug, Default)]
pub(super) struct Seen {
    pub(super) rev: u64,
    pub(super) whole: bool,
    pub(super) grids: HashSet<String>,
}

impl Seen {
    /// All of `rev` was delivered here.
    pub(super) fn whole(&mut self, rev: u64) {
        if rev >= self.rev {
            self.rev = rev;
            self.whole = true;
            self.grids.clear();
        }
    }

    /// `rev`'s message for `grid` was delivered here.
    pub(super) fn grid(&mut self, rev: u64, grid: &str) {
        if rev > self.rev {
            *self = Seen {
                rev,
                ..Seen::default()
            };
        }
        if rev == self.rev && !self.whole {
            self.grids.insert(grid.to_owned());
        }
    }

    /// True if `meta` may not have reached every session here: a newer rev, or a grid
    /// with sessions here that the incident targets and whose message never came.
    pub(super) fn missed(&self, meta: &IncidentMeta, local: &[GridCode]) -> bool {
        if meta.rev > self.rev {
            return true;
        }
        if meta.rev < self.rev || self.whole {
            return false;
        }
        local.iter().any(|g| {
            let targeted = meta.reaches(g.as_str());
            targeted && !self.grids.contains(g.as_str())
        })
    }
}
