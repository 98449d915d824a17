//! Background upkeep of a hub: ending the sessions of revoked tokens when a new list is
//! in force, letting the store drop and compact what retention no longer keeps, and the
//! console ticker. All are tracked tasks that end at shutdown.

use std::time::Duration;

use crate::{Hub, auth, console};

/// Whenever a new revocation list is in force: the sessions of the tokens it lists end
/// with 4401 (console streams and MQTT leads check it themselves).
pub(crate) async fn end_revoked_sessions(hub: Hub) {
    let mut changed = hub.revocations.changed();
    loop {
        tokio::select! {
            r = changed.changed() => if r.is_err() { return },
            () = hub.shutdown.cancelled() => return,
        }
        let ended =
            hub.presence
                .end_where(gridcast_protocol::error::close::UNAUTHORIZED, |lead, s| {
                    hub.revocations.is_revoked(&auth::Claims {
                        sub: lead.to_owned(),
                        role: auth::TokenRole::Lead,
                        scope: String::new(),
                        exp: s.expiry(),
                        jti: s.token_id(),
                    })
                });
        if ended > 0 {
            hub.metrics
                .sessions_expired
                .fetch_add(ended as u64, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(ended, "sessions of revoked tokens ended");
        }
    }
}

/// Every `--compact-every-s`: lets the store drop what `--retention-hours` no longer
/// keeps, and compact.
pub(crate) async fn maintenance(hub: Hub) {
    let every = Duration::from_secs(hub.config.compact_every_s);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = hub.shutdown.cancelled() => return,
        }
        let keep_ms = hub.config.retention_hours.saturating_mul(3_600_000);
        let cutoff = hub.clock.now_ms().saturating_sub(keep_ms);
        match hub.store.maintain(cutoff).await {
            Ok(None) => {}
            Ok(Some(c)) => tracing::info!(
                incidents = c.incidents,
                reports = c.reports,
                bytes_before = c.bytes_before,
                bytes_after = c.bytes_after,
                "store compacted: what retention no longer keeps has left it"
            ),
            Err(e) => {
                tracing::error!(error = %e, "store compaction failed; retried at the next look")
            }
        }
    }
}

/// Turns dirty incidents and grids into aggregated console events a few times a second.
pub(crate) async fn console_ticker(hub: Hub) {
    let mut tick = tokio::time::interval(console::TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = hub.shutdown.cancelled() => return,
        }
        let (here, remote, grids) = hub.console.take_dirty();
        if !here.is_empty() {
            hub.delivery.announce_changed(here.clone()).await;
        }
        for id in here.into_iter().chain(remote) {
            if let Ok(Some((meta, counts))) = hub.store.counts(&id).await {
                let state = if meta.state == gridcast_protocol::model::IncidentState::Active {
                    "active"
                } else {
                    "closed"
                };
                hub.console.emit(
                    "progress",
                    meta.route_codes(),
                    console::progress(&id, meta.rev, state, &counts),
                );
            }
        }
        if !grids.is_empty() {
            let rows: Vec<serde_json::Value> = grids
                .iter()
                .map(|g| serde_json::json!({ "code": g, "online": hub.presence.grid_online(g) }))
                .collect();
            hub.console.emit(
                "presence",
                Vec::new(),
                serde_json::json!({ "online": hub.presence.online_leads(), "grids": rows }),
            );
        }
    }
}
