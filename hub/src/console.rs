//! The command center's live stream (`GET /v1/console/events`, server-sent events).
//!
//! Changes mark an incident or a grid as dirty; a ticker turns the dirty sets into a few
//! aggregated events a second (`progress` with an incident's counts, `presence` with the
//! changed grids' online counts), never one event per ack. Issues go out at once
//! (`incident`). Each stream filters events by the operator's jurisdiction.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gridcast_protocol::GridCode;
use gridcast_protocol::api::Counts;
use serde_json::json;
use tokio::sync::broadcast;

/// One console event.
#[derive(Debug, Clone)]
pub(crate) struct ConsoleEvent {
    /// SSE event name: `incident`, `progress`, `presence`.
    pub(crate) name: &'static str,
    /// Codes the event is about; a stream shows it if any lies in its jurisdiction.
    pub(crate) codes: Arc<[String]>,
    /// The JSON data.
    pub(crate) data: Arc<serde_json::Value>,
}

impl ConsoleEvent {
    /// The event as seen by an operator with jurisdiction `scope`; `None` if none of it
    /// is inside. Presence events are narrowed to the grids inside the scope.
    pub(crate) fn for_scope(&self, scope: &str) -> Option<serde_json::Value> {
        if scope.is_empty() {
            return Some((*self.data).clone());
        }
        if self.name == "presence" {
            let grids: Vec<&serde_json::Value> = self.data["grids"]
                .as_array()?
                .iter()
                .filter(|g| g["code"].as_str().is_some_and(|c| c.starts_with(scope)))
                .collect();
            return (!grids.is_empty()).then(|| json!({ "grids": grids }));
        }
        self.codes
            .iter()
            .all(|c| c.starts_with(scope))
            .then(|| (*self.data).clone())
    }
}

/// The console hub: dirty sets and the broadcast channel.
pub(crate) struct Console {
    tx: broadcast::Sender<ConsoleEvent>,
    dirty_incidents: Mutex<HashSet<String>>,
    /// Incidents another cluster node changed (shown here, not announced again).
    dirty_remote: Mutex<HashSet<String>>,
    dirty_grids: Mutex<HashSet<GridCode>>,
}

/// How often aggregated events go out.
pub(crate) const TICK: Duration = Duration::from_millis(250);

impl Console {
    /// A console hub whose streams may fall `buffer` events behind before `lagged`.
    pub(crate) fn new(buffer: usize) -> Self {
        Self {
            tx: broadcast::channel(buffer.max(1)).0,
            dirty_incidents: Mutex::default(),
            dirty_remote: Mutex::default(),
            dirty_grids: Mutex::default(),
        }
    }
}

impl Console {
    /// A new stream of events.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<ConsoleEvent> {
        self.tx.subscribe()
    }

    /// Sends an event now.
    pub(crate) fn emit(&self, name: &'static str, codes: Vec<String>, data: serde_json::Value) {
        // No console connected is fine: events are a view, the store is the record.
        let _ = self.tx.send(ConsoleEvent {
            name,
            codes: codes.into(),
            data: Arc::new(data),
        });
    }

    /// An incident's counts changed here.
    pub(crate) fn incident_changed(&self, id: &str) {
        mark(&self.dirty_incidents, id);
    }

    /// Another cluster node changed an incident's counts.
    pub(crate) fn incident_changed_remote(&self, id: &str) {
        mark(&self.dirty_remote, id);
    }

    /// Online counts of these grids changed.
    pub(crate) fn grids_changed<'a>(&self, grids: impl IntoIterator<Item = &'a GridCode>) {
        let mut d = self.dirty_grids.lock().unwrap_or_else(|p| p.into_inner());
        d.extend(grids.into_iter().cloned());
    }

    /// Takes the dirty sets: incidents changed here, incidents changed by other nodes
    /// (not already in the first), grids.
    pub(crate) fn take_dirty(&self) -> (Vec<String>, Vec<String>, Vec<GridCode>) {
        let here = take(&self.dirty_incidents);
        let remote = take(&self.dirty_remote)
            .into_iter()
            .filter(|id| !here.contains(id))
            .collect();
        let g = take(&self.dirty_grids);
        (here.into_iter().collect(), remote, g.into_iter().collect())
    }
}

fn mark(set: &Mutex<HashSet<String>>, id: &str) {
    let mut d = set.lock().unwrap_or_else(|p| p.into_inner());
    if !d.contains(id) {
        d.insert(id.to_owned());
    }
}

fn take<T>(set: &Mutex<HashSet<T>>) -> HashSet<T> {
    std::mem::take(&mut *set.lock().unwrap_or_else(|p| p.into_inner()))
}

/// The `progress` event data.
pub(crate) fn progress(id: &str, rev: u64, state: &str, counts: &Counts) -> serde_json::Value {
    json!({ "incident": id, "rev": rev, "state": state, "counts": counts })
}
