//! The node's subscription: grid channels following this node's sessions, its own
//! probe, the console and registry channels; a lost or silent subscription is made
//! again, then resynced.

use futures_util::FutureExt;

use super::*;

/// The grids and leads whose channels one subscription holds.
#[derive(Default)]
pub(super) struct Channels {
    grids: HashSet<String>,
    leads: HashSet<String>,
}

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
        // Behind Sentinel, the master as it is now.
        let pubsub = tokio::time::timeout(Duration::from_secs(4), async {
            self.store.target().client().await?.get_async_pubsub().await
        })
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
        let mut channels = Channels::default();
        self.reconcile_with(&mut sink, &mut channels, true)
            .await
            .map_err(|e| e.to_string())?;
        self.last_probe.store(now_ms(), Relaxed);
        let mut last_message = now_ms();
        // Redis may have come back without our presence (no AOF, failover): republish.
        self.presence_stale.store(true, Relaxed);
        self.resync(hub).await.map_err(|e| e.to_string())?;
        self.ready.store(true, Relaxed);
        tracing::info!(node = %self.node, grids = channels.grids.len(), leads = channels.leads.len(), "cluster subscription ready");
        let mut check = tokio::time::interval(HEARTBEAT / 2);
        loop {
            tokio::select! {
                m = stream.next() => match m {
                    None => return Err("connection closed".into()),
                    Some(msg) => {
                        last_message = now_ms();
                        self.handle(hub, &msg).await;
                    }
                },
                () = self.reconcile.notified() => {
                    self.reconcile_with(&mut sink, &mut channels, false).await.map_err(|e| e.to_string())?;
                }
                _ = check.tick() => {
                    // A message waiting to be read (this task ran late on a busy node)
                    // shows the subscription alive.
                    if let Some(m) = stream.next().now_or_never() {
                        let Some(msg) = m else { return Err("connection closed".into()) };
                        last_message = now_ms();
                        self.handle(hub, &msg).await;
                    }
                    let now = now_ms();
                    let silent = now.saturating_sub(self.last_probe.load(Relaxed));
                    // Messages still arriving while the probe is late: the subscription
                    // is behind on a busy node, not lost; remaking it (and resyncing)
                    // would only add work. It counts as lost once nothing at all came
                    // for PROBE_DEAD, or the probe is later than PROBE_BEHIND.
                    let flowing = now.saturating_sub(last_message) <= PROBE_DEAD.as_millis() as u64;
                    if silent > PROBE_DEAD.as_millis() as u64
                        && (!flowing || silent > PROBE_BEHIND.as_millis() as u64)
                    {
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

    /// Subscribes to the channels of the grids and leads with queued sessions here and
    /// unsubscribes from the others: every grid (a few hundred), but only the leads
    /// whose sessions changed since the last call unless `full` (a new subscription),
    /// so that a storm of connects costs a lookup each, not a pass over every lead.
    pub(super) async fn reconcile_with(
        &self,
        sink: &mut PubSubSink,
        channels: &mut Channels,
        full: bool,
    ) -> redis::RedisResult<()> {
        // Taken before the leads are looked at: a change after this is seen next time.
        let changed = self.presence.take_routed();
        let leads = if full {
            self.presence.carried_leads()
        } else {
            changed
        };
        let grids: HashSet<String> = self
            .presence
            .grids()
            .iter()
            .map(|g| g.as_str().to_owned())
            .collect();
        let mut add: Vec<String> = grids
            .difference(&channels.grids)
            .map(|g| grid_channel(g))
            .collect();
        let mut drop: Vec<String> = channels
            .grids
            .difference(&grids)
            .map(|g| grid_channel(g))
            .collect();
        let (mut joined, mut left) = (Vec::new(), Vec::new());
        for lead in leads {
            match (self.presence.carries(&lead), channels.leads.contains(&lead)) {
                (true, false) => {
                    add.push(lead_channel(&lead));
                    joined.push(lead);
                }
                (false, true) => {
                    drop.push(lead_channel(&lead));
                    left.push(lead);
                }
                _ => {}
            }
        }
        // A channel leaves the confirmed set before it is unsubscribed: a session that
        // comes back meanwhile (a phone switching networks) waits for the next
        // reconcile, which its registration already asked for, instead of reading its
        // sync while the channel goes away.
        if !drop.is_empty() {
            {
                let mut s = self.subscribed.lock().unwrap_or_else(|p| p.into_inner());
                for c in &drop {
                    s.remove(c);
                }
            }
            self.subscribed_gen.send_modify(|g| *g += 1);
            sink.unsubscribe(&drop).await?;
        }
        if !add.is_empty() {
            sink.subscribe(&add).await?;
        }
        channels.grids = grids;
        channels.leads.extend(joined);
        for l in &left {
            channels.leads.remove(l);
        }
        self.subscribed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(add);
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
        if channel.starts_with("gc:l:") {
            let Ok(w) = serde_json::from_slice::<WireIn>(payload) else {
                tracing::warn!(channel, "undecodable cluster message dropped");
                return;
            };
            if w.origin != self.node {
                self.lead_message(w).await;
            }
        } else if let Some(grid) = channel.strip_prefix("gc:g:") {
            let Ok(w) = serde_json::from_slice::<WireIn>(payload) else {
                tracing::warn!(channel, "undecodable cluster message dropped");
                return;
            };
            if w.origin == self.node {
                return; // delivered locally when it was published
            }
            if !w.whole {
                // A node of an earlier release routes a lead's own changes by grid.
                self.lead_message(w).await;
                return;
            }
            let Some(meta) = w.meta else { return };
            let meta = Arc::new(meta);
            self.seen
                .entry(meta.id.clone())
                .or_default()
                .grid(meta.rev, grid);
            self.remember(&meta);
            let event = BusEvent::Incident {
                meta,
                recipients: Arc::new(w.recipients),
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

impl Cluster {
    /// A lead's own change from another node: a frame for its devices, or its new
    /// status (its other devices get the incident with their new `me`).
    async fn lead_message(&self, w: WireIn) {
        if let Some((lead, frame)) = w.to {
            self.presence.send_to_lead(&lead, &frame.into());
            return;
        }
        let Some(state) = w.recipients.into_iter().next() else {
            return;
        };
        if !self.presence.carries(&state.lead) {
            return;
        }
        let meta = match (w.meta, w.incident) {
            (Some(meta), _) => Arc::new(meta),
            (None, Some((id, rev))) => match self.meta_of(&id, rev).await {
                Some(meta) => meta,
                None => return,
            },
            (None, None) => return,
        };
        let event = BusEvent::Recipient {
            meta,
            state,
            except: None,
        };
        deliver(&self.presence, &self.metrics, &event);
    }

    /// The meta of incident `id` at `rev` or newer: the one this node keeps, else read
    /// once from Redis (this node's sessions had the incident from their sync).
    async fn meta_of(&self, id: &str, rev: u64) -> Option<Arc<IncidentMeta>> {
        if let Some(m) = self.metas.get(id).filter(|m| m.rev >= rev) {
            return Some(m.clone());
        }
        match self.store.read_meta(id).await {
            Ok(Some(meta)) => {
                let meta = Arc::new(meta);
                self.remember(&meta);
                Some(meta)
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(incident = id, error = %e, "meta for a lead's status not read; its other phones show the answer at their next sync");
                None
            }
        }
    }
}
