//! The reconnect storm: every phone dropped at once, all reconnect and sync.

use crate::*;

/// A storm phone: connects and syncs; at the go it drops its connection with all the
/// others and reconnects at once (no ramp: that is the storm), syncs, reports, and
/// stays connected.
pub(crate) async fn storm_phone(
    url: String,
    token: String,
    tx: mpsc::Sender<Event>,
    mut go: watch::Receiver<Option<Instant>>,
    gate: Arc<tokio::sync::Semaphore>,
) {
    let first = match ws_connect(&url, &token, &gate).await {
        Ok(c) => c,
        Err(e) => {
            let _ = tx.send(Event::Failed(format!("storm phone: {e}"))).await;
            return;
        }
    };
    let run = async {
        tx.send(Event::Ready(false)).await.ok()?;
        let dropped = wait_go(&mut go).await?;
        drop(first);
        // All at once (no ramp: that is the storm), retrying like a phone whose SYN was
        // dropped by a full listen queue.
        let (c, sync) = reconnect(&url, &token).await?;
        let incidents = sync
            .iter()
            .filter(|f| matches!(f, ServerFrame::Incident { .. }))
            .count();
        tx.send(Event::Synced(dropped.elapsed(), incidents))
            .await
            .ok()?;
        std::future::pending::<()>().await;
        Some(c)
    };
    if run.await.is_none() {
        let _ = tx.send(Event::Failed("storm phone".into())).await;
    }
}

/// A storm phone's reconnect: at once, then with jittered backoff, as phones do.
pub(crate) async fn reconnect(url: &str, token: &str) -> Option<(LeadClient, Vec<ServerFrame>)> {
    for attempt in 0..CONNECT_TRIES {
        if attempt > 0 {
            let seed = token.bytes().fold(attempt as usize, |h, b| {
                h.wrapping_mul(31).wrapping_add(b.into())
            });
            let jitter = delay_for(seed, (0, 250));
            tokio::time::sleep(Duration::from_millis(250 * u64::from(attempt)) + jitter).await;
        }
        if let Ok((mut c, _)) = LeadClient::connect(url, token).await
            && let Ok(sync) = c.sync().await
        {
            return Some((c, sync));
        }
    }
    None
}

/// The result of a reconnect storm.
#[derive(Debug, Clone, Serialize)]
pub struct StormReport {
    /// Phones connected before the storm.
    pub phones: usize,
    /// Of those, synced again after it.
    pub synced: usize,
    /// From the drop to the last phone synced again.
    pub seconds: f64,
    /// Incident frames the phones found in their syncs.
    pub recovered: usize,
    /// Phones that failed to connect first or to reconnect.
    pub errors: usize,
}

/// Reconnect storm: the phones connect and sync, then all drop at once (as after a
/// hub restart or a network blip) and reconnect.
pub async fn storm(opts: &FanoutOpts) -> anyhow::Result<StormReport> {
    let leads = drill_leads(opts).await?;
    let (tx, mut rx) = mpsc::channel(leads.len() * 2 + 16);
    let (go_tx, go_rx) = watch::channel(None);
    let phones = Phones::start(Job::Storm, opts, &leads, tx, go_rx)?;
    let deadline = tokio::time::Instant::now() + opts.timeout;
    let (ready, _, mut errors) = await_ready(&mut rx, leads.len(), deadline, opts.progress).await?;
    let _ = go_tx.send(Some(Instant::now()));
    let (mut synced, mut recovered, mut last) = (0, 0, Duration::ZERO);
    let mut last_progress = Instant::now();
    while synced < ready {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(Event::Synced(after, n))) => {
                synced += 1;
                recovered += n;
                last = last.max(after);
            }
            Ok(Some(Event::Failed(_))) => errors += 1,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
        if synced + errors >= leads.len() {
            break;
        }
        if opts.progress && last_progress.elapsed() > Duration::from_millis(500) {
            eprintln!("storm: {synced}/{ready} synced again, {errors} failed");
            last_progress = Instant::now();
        }
    }
    drop(phones);
    Ok(StormReport {
        phones: ready,
        synced,
        seconds: last.as_secs_f64(),
        recovered,
        errors,
    })
}
