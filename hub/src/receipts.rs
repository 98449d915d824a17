//! The receipt lane. A phone sends a `receipt` for every incident frame it gets, most of
//! them without a `ref` (nothing waits for an `ok`; DESIGN.md §3: receipts may be
//! batched). Those go into one bounded queue instead of each costing its session a
//! store round trip: one task takes everything queued and records it in one store call,
//! so during a fan-out to thousands of phones the hub spends its time delivering, and a
//! session reads its next frame at once.
//!
//! A receipt the store refuses (not a recipient, no such incident) still gets its
//! `error` frame, pushed to the lead's sessions here. A full queue, or a hub shutting
//! down, makes the caller record the receipt itself; at shutdown the task records what
//! is queued before it ends.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use gridcast_protocol::frame::ServerFrame;
use tokio::sync::mpsc;

use crate::Hub;
use crate::session::encode;
use crate::store::{Mark, MarkRequest};

/// Receipts that may wait for the lane; past this, sessions record their own.
pub(crate) const LANE_CAPACITY: usize = 16_384;
/// Most receipts one store call takes.
const BATCH: usize = 2_048;

/// The sending side, held by the hub.
pub(crate) type Lane = mpsc::Sender<MarkRequest>;

/// A lane and the receiver its task drains.
pub(crate) fn lane() -> (Lane, mpsc::Receiver<MarkRequest>) {
    mpsc::channel(LANE_CAPACITY)
}

/// Drains the lane until the hub shuts down, then records what is left and ends.
pub(crate) async fn run(hub: Hub, mut rx: mpsc::Receiver<MarkRequest>) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            n = rx.recv_many(&mut batch, BATCH) => {
                if n == 0 {
                    return;
                }
                record(&hub, &mut batch).await;
            }
            () = hub.shutdown.cancelled() => break,
        }
    }
    rx.close();
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        record(&hub, &mut batch).await;
    }
}

async fn record(hub: &Hub, batch: &mut Vec<MarkRequest>) {
    let started = Instant::now();
    let outcomes = hub.store.mark_many(batch).await;
    for (req, outcome) in batch.drain(..).zip(outcomes) {
        let refusal = match outcome.map(|o| hub.core.marked(&req.incident, false, o, started)) {
            Ok(Ok(_)) => continue,
            Ok(Err(refusal)) => refusal,
            Err(e) => {
                // The phone sends its receipt again with its next sync; the incident
                // stays `pending` for it until then.
                tracing::error!(error = %e, incident = %req.incident, "receipt not recorded");
                continue;
            }
        };
        hub.metrics.frame_errors.fetch_add(1, Relaxed);
        let frame = encode(&ServerFrame::Error {
            reference: None,
            code: refusal.code,
            message: refusal.message,
        });
        hub.presence.send_to_lead(&req.lead, &frame);
    }
}

impl Hub {
    /// Queues a receipt that carries no `ref` for the lane; false when it must be
    /// recorded by the caller (the lane is full or the hub is shutting down).
    pub(crate) fn receipt_later(&self, lead: &str, incident: &str) -> bool {
        let Ok(permit) = self.receipts.try_reserve() else {
            return false;
        };
        permit.send(MarkRequest {
            incident: incident.to_owned(),
            lead: lead.to_owned(),
            mark: Mark::Receipt,
            at: self.clock.now_ms(),
        });
        true
    }
}
