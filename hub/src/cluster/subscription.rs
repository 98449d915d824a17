//! The node's subscription: grid channels following this node's sessions, its own
//! probe, the console and registry channels; a lost or silent subscription is made
//! again, then resynced.

use super::*;

impl Cluster {
    pub(super) async fn subscriber(self: Arc<Self>, hub: Hub) {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        loop {
            let result = self.subscription(&hub).await;
            self.ready.store(false, Relaxed);
            self.subscribed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
            match result {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(node = %self.node, error = %e, "cluster subscription lost; reconnecting and resyncing")
                }
            }
            if !backoff.sleep(&self.shutdown).await {
                return;
            }
        }
    }

    /// One life of the subscription: Ok at shutdown, Err when it is lost.
    pub(super) async fn subscription(&self, hub: &Hub) -> Result<(), String> {
        let pubsub = tokio::time::timeout(Duration::from_secs(2), self.client.get_async_pubsub())
            .await
            .map_err(|_| "connect timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        let (mut sink, mut stream) = pubsub.split();
        sink.subscribe(&[
            probe_channel(&self.node),
            REGISTRY_CHANNEL.to_owned(),
            CONSOLE_CHANNEL.to_owned(),
        ])
        .await
        .map_err(|e| e.to_string())?;
        let mut channels = HashSet::new();
        self.reconcile_with(&mut sink, &mut channels)
            .await
            .map_err(|e| e.to_string())?;
        self.last_probe.store(now_ms(), Relaxed);
        // Redis may have come back without our presence (no AOF, failover): republish.
        self.presence_stale.store(true, Relaxed);
        self.resync(hub).await.map_err(|e| e.to_string())?;
        self.ready.store(true, Relaxed);
        tracing::info!(node = %self.node, grids = channels.len(), "cluster subscription ready");
        let mut check = tokio::time::interval(HEARTBEAT / 2);
        loop {
            tokio::select! {
                m = stream.next() => match m {
                    None => return Err("connection closed".into()),
                    Some(msg) => self.handle(hub, &msg).await,
                },
                () = self.reconcile.notified() => {
                    self.reconcile_with(&mut sink, &mut channels).await.map_err(|e| e.to_string())?;
                }
                _ = check.tick() => {
                    let silent = now_ms().saturating_sub(self.last_probe.load(Relaxed));
                    if silent > PROBE_DEAD.as_millis() as u64 {
                        // The probe goes out on the command connection: it may be the
                        // one that died silently, so it is renewed too.
                        if let Err(e) = self.store.renew().await {
                            tracing::warn!(error = %e, "redis connection renewal failed");
                        }
                        return Err(format!("no probe for {silent} ms"));
                    }
                }
                () = self.shutdown.cancelled() => return Ok(()),
            }
        }
    }

    /// Subscribes to the grids with sessions here and unsubscribes from the others.
    pub(super) async fn reconcile_with(
        &self,
        sink: &mut PubSubSink,
        channels: &mut HashSet<String>,
    ) -> redis::RedisResult<()> {
        let desired: HashSet<String> = self
            .presence
            .grids()
            .iter()
            .map(|g| g.as_str().to_owned())
            .collect();
        let add: Vec<String> = desired
            .difference(channels)
            .map(|g| grid_channel(g))
            .collect();
        let drop: Vec<String> = channels
            .difference(&desired)
            .map(|g| grid_channel(g))
            .collect();
        if !add.is_empty() {
            sink.subscribe(&add).await?;
        }
        if !drop.is_empty() {
            sink.unsubscribe(&drop).await?;
        }
        channels.clone_from(&desired);
        *self.subscribed.lock().unwrap_or_else(|p| p.into_inner()) = desired;
        self.subscribed_gen.send_modify(|g| *g += 1);
        Ok(())
    }

    pub(super) async fn handle(&self, hub: &Hub, msg: &redis::Msg) {
        let channel = msg.get_channel_name();
        let payload = match self.seal.open(channel, msg.get_payload_bytes(), now_ms()) {
            Ok(p) => p,
            Err(why) => {
                let n = self.metrics.cluster_forged.fetch_add(1, Relaxed);
                // Loud, but not one line per message of a flood.
                if n.is_power_of_two() || n == 0 {
                    tracing::error!(channel, error = %why, dropped_total = n + 1, "cluster message dropped: not sealed by a node of this cluster (someone else can PUBLISH on this Redis)");
                }
                return;
            }
        };
        if let Some(grid) = channel.strip_prefix("gc:g:") {
            let Ok(w) = serde_json::from_slice::<WireIn>(payload) else {
                tracing::warn!(channel, "undecodable cluster message dropped");
                return;
            };
            if w.origin == self.node {
                return; // delivered locally when it was published
            }
            if let Some((lead, frame)) = w.to {
                self.presence.send_to_lead(&lead, &frame.into());
                return;
            }
            let Some(meta) = w.meta else { return };
            let meta = Arc::new(meta);
            let event = if w.whole {
                self.seen
                    .entry(meta.id.clone())
                    .or_default()
                    .grid(meta.rev, grid);
                BusEvent::Incident {
                    meta,
                    recipients: Arc::new(w.recipients),
                }
            } else {
                let Some(state) = w.recipients.into_iter().next() else {
                    return;
                };
                BusEvent::Recipient {
                    meta,
                    state,
                    except: None,
                }
            };
            deliver(&self.presence, &self.metrics, &event);
        } else if channel == probe_channel(&self.node) {
            self.last_probe.store(now_ms(), Relaxed);
        } else if channel == REGISTRY_CHANNEL {
            if let Err(e) = self.reload_registry(hub).await {
                tracing::warn!(error = %e, "registry reload failed; retried at the next resync");
            }
        } else if channel == CONSOLE_CHANNEL {
            let Ok(w) = serde_json::from_slice::<ConsoleWire>(payload) else {
                return;
            };
            if w.origin == self.node {
                return;
            }
            for id in &w.changed {
                hub.console.incident_changed_remote(id);
            }
            if let Some((name, codes, data)) = w.event {
                match name.as_str() {
                    "incident" => hub.console.emit("incident", codes, data),
                    "report" => hub.console.emit("report", codes, data),
                    "escalation" => hub.console.emit("escalation", codes, data),
                    _ => {}
                }
            }
        }
    }
}
