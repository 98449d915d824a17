//! What a node publishes: local sessions at once, other nodes through Redis by grid
//! code, sealed; a failed publish is retried in the background and reported, so that
//! the outbox keeps the change until another node finishes it.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use gridcast_protocol::GridCode;
use tokio::sync::mpsc;

use super::{Cluster, Message, PUBLISH_RETRY_FOR, WireOut, grid_channel, lead_channel, node_key};
use crate::backoff::Backoff;
use crate::bus::{BusEvent, deliver};
use crate::now_ms;
use crate::store::RecipientState;

impl Cluster {
    /// `messages` sealed for their channels, ready to publish.
    pub(super) fn sealed(&self, messages: Vec<Message>) -> Vec<Message> {
        let now = now_ms();
        messages
            .into_iter()
            .map(|(ch, body)| {
                let sealed = self.seal.seal(&ch, &body, now);
                (ch, sealed)
            })
            .collect()
    }

    /// Publishes messages and, in the same round trip, asks the other live nodes'
    /// presence which of `away` are online there; returns how many are. On failure the
    /// publish is retried in the background for a while (so that a blip on this node's
    /// connection does not cost the other nodes an activation) and 0 is counted.
    pub(super) async fn publish_and_count(
        &self,
        messages: Vec<Message>,
        away: &[&str],
    ) -> (usize, bool) {
        if messages.is_empty() {
            return (0, true);
        }
        let messages = self.sealed(messages);
        let nodes = if away.is_empty() {
            Vec::new()
        } else {
            self.live.lock().unwrap_or_else(|p| p.into_inner()).clone()
        };
        let mut pipe = publish_pipe(&messages);
        for n in &nodes {
            pipe.cmd("HMGET").arg(node_key(n)).arg(away);
        }
        let mut c = self.store.connection();
        match pipe.query_async::<Vec<Vec<Option<String>>>>(&mut c).await {
            Ok(found) => {
                let mut online = vec![false; away.len()];
                for per_node in found {
                    for (i, v) in per_node.into_iter().enumerate() {
                        online[i] |= v.is_some();
                    }
                }
                return (online.iter().filter(|o| **o).count(), true);
            }
            Err(e) => tracing::warn!(error = %e, "cluster publish failed; retrying"),
        }
        self.metrics.cluster_publish_errors.fetch_add(1, Relaxed);
        let Ok(permit) = self.retrying.clone().try_acquire_owned() else {
            tracing::warn!(
                "too many publishes retrying; the resync after Redis returns delivers this one"
            );
            return (0, false);
        };
        let shutdown = self.shutdown.clone();
        let metrics = self.metrics.clone();
        let store = self.store.clone();
        self.tracker.spawn(async move {
            let _permit = permit;
            let deadline = tokio::time::Instant::now() + PUBLISH_RETRY_FOR;
            let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
            while tokio::time::Instant::now() < deadline {
                if !backoff.sleep(&shutdown).await {
                    return;
                }
                let mut c = store.connection();
                if publish_pipe(&messages)
                    .query_async::<()>(&mut c)
                    .await
                    .is_ok()
                {
                    return;
                }
                metrics.cluster_publish_errors.fetch_add(1, Relaxed);
            }
            tracing::warn!("cluster publish given up; nodes pick the change up on resync");
        });
        (0, false)
    }
}

/// A pipeline publishing `messages`, which are sealed already.
pub(super) fn publish_pipe(messages: &[Message]) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    for (ch, payload) in messages {
        pipe.publish(ch, payload).ignore();
    }
    pipe
}

impl Cluster {
    /// Delivers `event` to this node's sessions at once and publishes it to the other
    /// nodes by grid code: how many recipients are online, and whether Redis took the
    /// publish (a lead's own status goes through a batching queue and always counts as
    /// taken: its phones resync it).
    pub(crate) async fn publish_event(&self, event: BusEvent) -> (usize, bool) {
        let local = deliver(&self.presence, &self.metrics, &event);
        // Who is not here, taken now: phones that answer and hang up before the
        // publish returns still count as online at issue.
        let away: Vec<&str> = match &event {
            BusEvent::Incident { recipients, .. } => recipients
                .iter()
                .map(|r| r.lead.as_str())
                .filter(|l| !self.presence.has(l))
                .collect(),
            BusEvent::Recipient { .. } | BusEvent::ToLead { .. } => Vec::new(),
        };
        let (meta, whole, recipients, to) = match &event {
            BusEvent::Incident { meta, recipients } => {
                self.saw(meta);
                (Some(&**meta), true, recipients.iter().collect(), None)
            }
            BusEvent::Recipient { meta, state, .. } => (Some(&**meta), false, vec![state], None),
            BusEvent::ToLead { lead, frame } => (
                None,
                false,
                Vec::new(),
                Some((lead.as_str(), frame.as_str())),
            ),
        };
        let messages: Vec<Message> = match to {
            Some((lead, frame)) => {
                let w = WireOut {
                    origin: &self.node,
                    whole: false,
                    meta: None,
                    recipients: Vec::new(),
                    to: Some((lead, frame)),
                    incident: None,
                };
                serde_json::to_vec(&w)
                    .ok()
                    .map(|p| (lead_channel(lead), p))
                    .into_iter()
                    .collect()
            }
            None if !whole => recipients
                .first()
                .and_then(|state| {
                    let w = WireOut {
                        origin: &self.node,
                        whole,
                        meta: None,
                        recipients: vec![state],
                        to: None,
                        incident: meta.map(|m| (m.id.as_str(), m.rev)),
                    };
                    serde_json::to_vec(&w)
                        .ok()
                        .map(|p| (lead_channel(state.lead.as_str()), p))
                })
                .into_iter()
                .collect(),
            None => {
                let mut by_grid: HashMap<&GridCode, Vec<&RecipientState>> = HashMap::new();
                for r in recipients {
                    by_grid.entry(&r.grid).or_default().push(r);
                }
                by_grid
                    .into_iter()
                    .filter_map(|(grid, recipients)| {
                        let w = WireOut {
                            origin: &self.node,
                            whole,
                            meta,
                            recipients,
                            to: None,
                            incident: None,
                        };
                        serde_json::to_vec(&w)
                            .ok()
                            .map(|p| (grid_channel(grid.as_str()), p))
                    })
                    .collect()
            }
        };
        if whole {
            let (there, sent) = self.publish_and_count(messages, &away).await;
            return (local + there, sent);
        }
        // A lead's new answer: the `ok` to the phone need not wait for the publish.
        let mut inline = Vec::new();
        for m in messages {
            if let Err(mpsc::error::TrySendError::Full(m) | mpsc::error::TrySendError::Closed(m)) =
                self.status_tx.try_send(m)
            {
                inline.push(m);
            }
        }
        if !inline.is_empty() {
            self.publish_and_count(inline, &[]).await;
        }
        (local, true)
    }
}
