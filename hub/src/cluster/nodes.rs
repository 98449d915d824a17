//! Cluster presence: each node's heartbeat (its entry in `{gcp}:nodes` and its changed
//! leads), which nodes are live, and who is online anywhere.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use super::{
    Cluster, HEARTBEAT, NODES, PRESENCE_FLUSH_DELAY, PRESENCE_TTL, node_key, probe_channel,
};
use crate::now_ms;
use crate::presence::OnlineLead;
use crate::registry::RegistryIndex;
use crate::store::StoreError;

impl Cluster {
    pub(super) async fn heartbeat(self: Arc<Self>) {
        let mut tick = tokio::time::interval(HEARTBEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seq = 0u64;
        let key = node_key(&self.node);
        loop {
            // A beat every HEARTBEAT; presence changes are also written soon after they
            // happen (a burst of connects settles into one write).
            let beat = tokio::select! {
                _ = tick.tick() => true,
                () = self.presence.changed() => {
                    #[allow(clippy::disallowed_methods, reason = "a debounce, not a retry")]
                    let settle = tokio::time::sleep(PRESENCE_FLUSH_DELAY);
                    tokio::select! {
                        () = settle => false,
                        () = self.shutdown.cancelled() => break,
                    }
                }
                () = self.shutdown.cancelled() => break,
            };
            let now = now_ms();
            let mut pipe = redis::pipe();
            pipe.atomic();
            let dirty = self.presence.take_dirty();
            let full = self.presence_stale.load(Relaxed);
            if full {
                pipe.del(&key).ignore();
                // Only the sessions this node carries: every node sees the broker's
                // leads for itself.
                let all: Vec<(String, String)> = self
                    .presence
                    .carried()
                    .into_iter()
                    .map(|(id, ch)| (id, ch.join(",")))
                    .collect();
                if !all.is_empty() {
                    pipe.hset_multiple(&key, &all).ignore();
                }
            } else {
                for lead in &dirty {
                    match self.presence.carried_channels_of(lead) {
                        Some(ch) => pipe.hset(&key, lead, ch.join(",")).ignore(),
                        None => pipe.hdel(&key, lead).ignore(),
                    };
                }
            }
            pipe.pexpire(&key, 3 * PRESENCE_TTL.as_millis() as i64)
                .ignore();
            if beat {
                seq += 1;
                pipe.zadd(NODES, &self.node, now + PRESENCE_TTL.as_millis() as u64)
                    .ignore()
                    .zrembyscore(NODES, "-inf", now.saturating_sub(3_600_000))
                    .ignore()
                    .publish(
                        probe_channel(&self.node),
                        self.seal
                            .seal(&probe_channel(&self.node), &seq.to_be_bytes(), now),
                    )
                    .ignore();
            }
            pipe.cmd("ZRANGEBYSCORE").arg(NODES).arg(now).arg("+inf");
            let mut c = self.store.connection();
            match pipe.query_async::<(Vec<String>,)>(&mut c).await {
                Ok((nodes,)) => {
                    if full {
                        self.presence_stale.store(false, Relaxed);
                    }
                    // A replication shortfall behind Sentinel: ask for the master again.
                    if self.store.take_renew_wanted()
                        && let Err(e) = self.store.renew().await
                    {
                        tracing::warn!(error = %e, "redis connection renewal failed");
                    }
                    *self.live.lock().unwrap_or_else(|p| p.into_inner()) =
                        nodes.into_iter().filter(|n| *n != self.node).collect();
                }
                Err(e) => {
                    // The changes taken are lost with this write: rewrite whole next time.
                    tracing::warn!(error = %e, "cluster heartbeat failed");
                    self.presence_stale.store(true, Relaxed);
                    // Behind Sentinel any failure may be a failover (the master gone, or
                    // demoted: READONLY): ask the sentinels again.
                    if e.is_timeout() || self.store.target().is_sentinel() {
                        // An open connection that stopped answering is not replaced by
                        // the connection manager: replace it here.
                        match self.store.renew().await {
                            Ok(()) => tracing::info!("redis connection renewed after timeouts"),
                            Err(e) => tracing::warn!(error = %e, "redis connection renewal failed"),
                        }
                    }
                }
            }
        }
        // Leaving cleanly: our leads leave cluster presence now, not at expiry.
        let mut c = self.store.connection();
        let _ = redis::pipe()
            .zrem(NODES, &self.node)
            .ignore()
            .del(&key)
            .ignore()
            .query_async::<()>(&mut c)
            .await;
    }

    pub(super) async fn live_nodes(&self) -> redis::RedisResult<Vec<String>> {
        let mut c = self.store.connection();
        let nodes: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(NODES)
            .arg(now_ms())
            .arg("+inf")
            .query_async(&mut c)
            .await?;
        Ok(nodes.into_iter().filter(|n| *n != self.node).collect())
    }

    /// Every lead online anywhere in the cluster, for `GET /v1/presence`.
    pub async fn online(&self, registry: &RegistryIndex) -> Result<Vec<OnlineLead>, StoreError> {
        let io = |e: redis::RedisError| StoreError::Io(format!("redis: {e}"));
        let nodes = self.live_nodes().await.map_err(io)?;
        let mut merged: HashMap<String, Vec<String>> = HashMap::new();
        if !nodes.is_empty() {
            let mut pipe = redis::pipe();
            for n in &nodes {
                pipe.hgetall(node_key(n));
            }
            let mut c = self.store.connection();
            let maps: Vec<HashMap<String, String>> = pipe.query_async(&mut c).await.map_err(io)?;
            for (lead, ch) in maps.into_iter().flatten() {
                merged
                    .entry(lead)
                    .or_default()
                    .extend(ch.split(',').filter(|c| !c.is_empty()).map(str::to_owned));
            }
        }
        let mut out = self.presence.online();
        for l in &mut out {
            if let Some(more) = merged.remove(&l.id) {
                l.channels.extend(more);
                l.channels.sort();
                l.channels.dedup();
            }
        }
        for (id, mut channels) in merged {
            let Some(p) = registry.person(&id) else {
                continue;
            };
            channels.sort();
            channels.dedup();
            out.push(OnlineLead {
                assignments: crate::registry::assignments(p),
                id,
                channels,
            });
        }
        Ok(out)
    }
}
