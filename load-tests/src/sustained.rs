//! Sustained load: drill activations at a rate for a while, every delivery timed.

use crate::*;

/// The result of a sustained run.
#[derive(Debug, Clone, Serialize)]
pub struct SustainedReport {
    /// Phones connected.
    pub connected: usize,
    /// Activations issued.
    pub activations: usize,
    /// Deliveries expected (activations × phones).
    pub expected: usize,
    /// Deliveries seen.
    pub delivered: usize,
    /// From each POST to each delivery.
    pub delivery_ms: Percentiles,
    /// Activations per second actually issued.
    pub rate: f64,
}

/// Sustained load: `rate` drill activations a second for `seconds`, each to every
/// phone; phones confirm receipt; delivery latency under that load.
pub async fn sustained(
    opts: &FanoutOpts,
    rate: f64,
    seconds: u64,
) -> anyhow::Result<SustainedReport> {
    let console = ConsoleClient::new(&opts.hubs[0], &opts.admin_token);
    let registry: RegistryDoc = console.get("/v1/registry").await?;
    let leads = leads_in(&registry, &opts.prefix, opts.leads);
    let auth = Auth::new(opts.jwt_secret.as_bytes());
    let url = format!("{}/v1/lead/ws", opts.hubs[0].replacen("http", "ws", 1));
    let gate = Arc::new(tokio::sync::Semaphore::new(CONNECTING_AT_ONCE));
    let (tx, mut rx) = mpsc::channel::<(String, Instant)>(1 << 16);
    let (ready_tx, mut ready_rx) = mpsc::channel::<bool>(leads.len() + 1);
    let mut phones = tokio::task::JoinSet::new();
    for (id, _) in &leads {
        let (url, token, gate, tx, ready) = (
            url.clone(),
            lead_token(&auth, id),
            gate.clone(),
            tx.clone(),
            ready_tx.clone(),
        );
        phones.spawn(async move {
            let Ok(mut c) = ws_connect(&url, &token, &gate).await else {
                let _ = ready.send(false).await;
                return;
            };
            let _ = ready.send(true).await;
            while let Ok(f) = c.next().await {
                if let ServerFrame::Incident { incident, .. } = f
                    && incident.drill
                {
                    let _ = tx.send((incident.id.clone(), Instant::now())).await;
                    let receipt = ClientFrame::Receipt {
                        incident: incident.id,
                        rev: incident.rev,
                        reference: None,
                    };
                    if c.send(&receipt).await.is_err() {
                        return;
                    }
                }
            }
        });
    }
    drop(ready_tx);
    let mut connected = 0;
    for _ in 0..leads.len() {
        match tokio::time::timeout(opts.timeout, ready_rx.recv()).await {
            Ok(Some(true)) => connected += 1,
            Ok(Some(false)) => {}
            _ => bail!("phones did not connect in time"),
        }
    }
    let mut issued: std::collections::HashMap<String, Instant> = Default::default();
    let mut seen: Vec<(String, Instant)> = Vec::new();
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.01)));
    while started.elapsed() < Duration::from_secs(seconds) {
        tick.tick().await;
        let req = CreateIncident {
            title: "DRILL: sustained load".into(),
            body: "This is a drill.".into(),
            level: Level::IV,
            category: Category::Natural,
            drill: true,
            targets: Targets {
                codes: vec![opts.prefix.clone()],
                roles: vec![],
                area: Vec::new(),
            },
            ack_within_s: Some(86_400),
            approval_override: None,
            fallback: false,
        };
        let t = Instant::now();
        let created = console.activate(&req).await.context("issuing")?;
        issued.insert(created.id, t);
        while let Ok(d) = rx.try_recv() {
            seen.push(d);
        }
    }
    let expected = issued.len() * connected;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while seen.len() < expected {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(d)) => seen.push(d),
            _ => break,
        }
    }
    phones.abort_all();
    let mut hist = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let mut delivered = 0;
    for (id, at) in &seen {
        if let Some(t) = issued.get(id) {
            delivered += 1;
            let _ = hist.record((at.saturating_duration_since(*t).as_micros() as u64).max(1));
        }
    }
    Ok(SustainedReport {
        connected,
        activations: issued.len(),
        expected,
        delivered,
        delivery_ms: Percentiles::of(&hist),
        rate: issued.len() as f64 / started.elapsed().as_secs_f64(),
    })
}
