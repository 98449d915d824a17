//! After (re)subscribing: the registry if it moved, then what this node missed.

use super::*;

impl Cluster {
    /// After (re)subscribing: the registry if it moved, then every active or recently
    /// closed incident whose `rev` this node has not delivered goes to its local
    /// recipients.
    pub(super) async fn resync(&self, hub: &Hub) -> Result<(), StoreError> {
        self.reload_registry(hub).await?;
        // Active incidents and those closed recently (a missed close must reach phones).
        let since = now_ms().saturating_sub(hub.config.closed_sync_hours * 3_600_000);
        let metas = hub.store.recent_metas(since).await?;
        let mut resent = 0;
        let local = self.presence.grids();
        for meta in &metas {
            self.remember(meta);
            let missed = self
                .seen
                .get(&meta.id)
                .is_none_or(|s| s.missed(meta, &local));
            if !missed {
                continue; // nothing missed: its recipients need not be read
            }
            let Some(s) = hub.store.incident(&meta.id).await? else {
                continue;
            };
            resent += deliver(
                &self.presence,
                &self.metrics,
                &BusEvent::Incident {
                    meta: s.meta.clone(),
                    recipients: s.recipients.clone(),
                },
            );
            self.saw(&s.meta);
        }
        let active: HashSet<&str> = metas.iter().map(|m| m.id.as_str()).collect();
        self.seen.retain(|id, _| active.contains(id.as_str()));
        self.metas.retain(|id, _| active.contains(id.as_str()));
        self.metrics.cluster_resyncs.fetch_add(1, Relaxed);
        self.metrics
            .cluster_resent
            .fetch_add(resent as u64, Relaxed);
        tracing::info!(node = %self.node, active = metas.len(), resent, "cluster resync done");
        Ok(())
    }

    /// Puts the stored registry in force if its version is newer than ours.
    pub(super) async fn reload_registry(&self, hub: &Hub) -> Result<(), StoreError> {
        let _one_at_a_time = hub.registry_writes.lock().await;
        let (ver, doc) = self.store.load_registry_versioned().await?;
        if ver <= self.registry_ver.load(Relaxed) {
            return Ok(());
        }
        let Some(doc) = doc else { return Ok(()) };
        match doc.validate() {
            Ok(registry) => {
                hub.apply_registry(registry);
                self.registry_ver.store(ver, Relaxed);
                tracing::info!(version = ver, "registry reloaded from the cluster");
            }
            Err(problems) => {
                tracing::error!(
                    version = ver,
                    ?problems,
                    "stored registry is invalid; keeping the one in force"
                )
            }
        }
        Ok(())
    }
}
