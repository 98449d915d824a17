//! The fan-out outbox: no activation is lost between the store and the wire.
//!
//! When the change to an incident (issued, updated, closed) must reach more than this
//! node's own sessions — other nodes through the bus, phones carried by an outlet of
//! the delivery port — the store records it with an outbox entry in the same durable write. The
//! node that made the change publishes it on every channel and clears the entry once
//! every channel took it. If it died in between, or a channel was away, any node's
//! sweeper claims entries older than [`GRACE`] and publishes them again: phones get an
//! incident once or (harmlessly, the same `rev`) twice, never zero times, within a few
//! seconds instead of at the next escalation. The bus and the outlets stay the fast
//! path; the outbox is only what makes them safe.

use std::time::Duration;

use super::Dispatch;
use crate::store::IncidentSnapshot;

/// How often a node looks for unfinished fan-outs.
const SWEEP: Duration = Duration::from_secs(1);
/// How old an entry must be before another node finishes it (the issuing node has
/// this long to publish and clear it itself).
pub(crate) const GRACE: Duration = Duration::from_secs(2);

impl Dispatch {
    /// True when a change must be recorded with an outbox entry: some of its
    /// recipients may be reached only through another node or the broker.
    pub(crate) fn outbox_wanted(&self) -> bool {
        self.delivery.needs_outbox()
    }

    /// Hands an incident's current `rev` to the delivery port (this node's sessions,
    /// the other nodes, every outlet); clears its outbox entry when every channel took
    /// it. Returns how many recipients are online.
    pub(crate) async fn fan_out(&self, snap: &IncidentSnapshot) -> usize {
        let (online, all_sent) = self.delivery.incident(snap).await;
        if all_sent && self.outbox_wanted() {
            self.outbox_finished(&snap.meta.id, snap.meta.rev).await;
        }
        online
    }

    /// Every channel took this `rev`: its entry goes (if clearing fails, a sweeper
    /// publishes it once more: a duplicate, never a loss).
    async fn outbox_finished(&self, incident: &str, rev: u64) {
        if let Err(e) = self.store.outbox_done(incident, rev).await {
            tracing::warn!(incident, error = %e, "outbox entry not cleared");
        }
    }
}

/// Finishes the fan-outs a node recorded but did not get out (it died, its Redis link
/// blipped past the retries, or the broker was away): every [`SWEEP`], claims the
/// entries older than [`GRACE`] (a claim is a lease: other nodes skip it for one grace)
/// and publishes them again on the channels that need it.
pub(crate) async fn sweeper(core: Dispatch) {
    let mut tick = tokio::time::interval(SWEEP);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = core.shutdown.cancelled() => return,
        }
        // A single node with an outlet away: nothing to do until it is back.
        if !core.delivery.sweep_useful() {
            continue;
        }
        let now = core.clock.now_ms();
        let due = match core
            .store
            .outbox_claim(now.saturating_sub(GRACE.as_millis() as u64), now)
            .await
        {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "outbox sweep failed");
                continue;
            }
        };
        for (id, rev) in due {
            let snap = match core.store.incident(&id).await {
                Ok(Some(s)) => s,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "outbox sweep failed");
                    break;
                }
            };
            // Other nodes and every outlet (this node's sessions had it when it was
            // made here, or get it now, the same rev).
            let sent = core.delivery.incident_again(&snap).await;
            tracing::info!(incident = %id, rev, current = snap.meta.rev, sent, "outbox: fan-out finished by the sweeper");
            if sent {
                core.outbox_finished(&id, rev).await;
            }
        }
    }
}
