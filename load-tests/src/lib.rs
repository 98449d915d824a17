//! The drill and load generator behind `gridcast-drill`: simulated phones on WebSocket
//! and MQTT, one drill activation, every delivery timed in an HDR histogram.
//!
//! It talks only to the hubs and broker it is given, opens a bounded number of
//! connections, and stops by itself (`timeout`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use gridcast_clients::console::ConsoleClient;
use gridcast_clients::lead::LeadClient;
use gridcast_hub::auth::{Auth, Claims, TokenRole};
use gridcast_protocol::api::CreateIncident;
use gridcast_protocol::frame::{ClientFrame, ServerFrame, Targets};
use gridcast_protocol::model::Response;
use gridcast_protocol::registry::RegistryDoc;
use gridcast_protocol::{Category, Level, Target};
use serde::Serialize;
use tokio::sync::{mpsc, watch};

pub mod baseline;
pub mod mqtt;
mod phone;
mod phones;
mod report;
mod storm;
mod sustained;
pub mod workers;

pub use phone::*;
pub use phones::*;
pub use report::*;
pub use storm::*;
pub use sustained::*;

/// What a fan-out drill does.
#[derive(Debug, Clone)]
pub struct FanoutOpts {
    /// Hub base URLs; phones are spread over them, API calls go to the first.
    pub hubs: Vec<String>,
    /// A token with the whole city in scope.
    pub admin_token: String,
    /// The hubs' HS256 key, to mint the phones' tokens.
    pub jwt_secret: String,
    /// Area to drill.
    pub prefix: Target,
    /// Most phones.
    pub leads: usize,
    /// Broker `host:port` for the MQTT share.
    pub mqtt: Option<(String, u16)>,
    /// Share of phones on MQTT (0..=1).
    pub mqtt_share: f64,
    /// Human-like delay before an ack: uniform in this range (ms).
    pub ack_delay_ms: (u64, u64),
    /// Give up after this long.
    pub timeout: Duration,
    /// The hubs' process ids, to read their RSS and CPU from /proc (summed).
    pub hub_pids: Vec<u32>,
    /// Phones per process: more phones than this are spread over worker processes
    /// of the tool's own (the open-file limit is per process).
    pub per_process: usize,
    /// Print progress to stderr.
    pub progress: bool,
    /// Chaos: kill -9 this process once this share of the phones got the drill.
    pub kill: Option<(u32, f64)>,
}

/// A tiny deterministic generator for human-like delays (no dependency needed).
pub fn delay_for(i: usize, (lo, hi): (u64, u64)) -> Duration {
    let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 29;
    Duration::from_millis(lo + if hi > lo { x % (hi - lo + 1) } else { 0 })
}

/// The staff of the registry with an assignment inside `prefix`, at most `n`.
pub fn leads_in(doc: &RegistryDoc, prefix: &Target, n: usize) -> Vec<(String, Vec<String>)> {
    doc.staff
        .iter()
        .filter(|s| s.assignments.iter().any(|a| prefix.covers(&a.grid)))
        .take(n)
        .map(|s| {
            let mut grids: Vec<String> = s.assignments.iter().map(|a| a.grid.clone()).collect();
            grids.dedup();
            (s.id.clone(), grids)
        })
        .collect()
}

/// Mints a lead token.
pub fn lead_token(auth: &Auth, lead: &str) -> String {
    let exp = gridcast_hub::now_ms() / 1000 + 3600;
    auth.sign(&Claims {
        sub: lead.into(),
        role: TokenRole::Lead,
        scope: String::new(),
        exp,
        jti: None,
    })
}

/// Runs one fan-out drill. See the crate docs.
pub async fn fanout(opts: FanoutOpts) -> anyhow::Result<FanoutReport> {
    let console = ConsoleClient::new(&opts.hubs[0], &opts.admin_token);
    let leads = drill_leads(&opts).await?;
    let rss_before = procs_usage(&opts.hub_pids).map(|(rss, _)| rss);
    let (tx, mut rx) = mpsc::channel(leads.len() * 3 + 16);
    let (go_tx, go_rx) = watch::channel(None);
    let started = Instant::now();
    let phones = Phones::start(Job::Fanout, &opts, &leads, tx, go_rx)?;
    let deadline = tokio::time::Instant::now() + opts.timeout;
    let (ready, ready_mqtt, errors) =
        await_ready(&mut rx, leads.len(), deadline, opts.progress).await?;
    let mut last_progress = Instant::now();
    let connect_s = started.elapsed().as_secs_f64();
    let idle = procs_usage(&opts.hub_pids);
    let cpu_before = idle.map(|(_, cpu)| cpu);
    let kib_per_phone = idle
        .zip(rss_before)
        .map(|((rss, _), before)| (rss - before) * 1024.0 / ready.max(1) as f64);
    let req = CreateIncident {
        title: "DRILL: evacuation exercise".into(),
        body: "This is a drill.".into(),
        level: Level::III,
        category: Category::Natural,
        drill: true,
        targets: Targets {
            codes: vec![opts.prefix.clone()],
            roles: vec![],
            area: Vec::new(),
        },
        ack_within_s: Some(600),
        approval_override: None,
        fallback: false,
    };
    let issued = Instant::now();
    let _ = go_tx.send(Some(issued));
    let created = console.activate(&req).await.context("issuing the drill")?;
    let histogram =
        || hdrhistogram::Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).context("histogram");
    let (mut hist, mut hist_ws, mut hist_mqtt) = (histogram()?, histogram()?, histogram()?);
    let (mut delivered, mut acked, mut failed) = (0, 0, 0);
    let mut cpu_at_delivery = None;
    let mut killed_at: Option<Duration> = None;
    let (mut last_delivery, mut last_ack) = (Duration::ZERO, Duration::ZERO);
    let mut first_ack = Duration::MAX;
    while acked + failed < ready {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(Event::Received(d, mqtt))) => {
                delivered += 1;
                last_delivery = last_delivery.max(d);
                let us = (d.as_micros() as u64).max(1);
                let _ = hist.record(us);
                let _ = if mqtt { &mut hist_mqtt } else { &mut hist_ws }.record(us);
                if delivered == ready {
                    cpu_at_delivery = procs_usage(&opts.hub_pids).map(|(_, c)| c);
                }
                if let Some((pid, share)) = opts.kill
                    && killed_at.is_none()
                    && delivered as f64 >= share * ready as f64
                {
                    let _ = std::process::Command::new("kill")
                        .args(["-9", &pid.to_string()])
                        .status();
                    killed_at = Some(issued.elapsed());
                    if opts.progress {
                        eprintln!("chaos: killed {pid} after {delivered} deliveries");
                    }
                }
            }
            Ok(Some(Event::Acked(d))) => {
                acked += 1;
                last_ack = last_ack.max(d);
                first_ack = first_ack.min(d);
            }
            Ok(Some(Event::Failed(_))) => failed += 1,
            Ok(Some(Event::Ready(_) | Event::Synced(..))) => {}
            Ok(None) | Err(_) => break,
        }
        if opts.progress && last_progress.elapsed() > Duration::from_millis(500) {
            eprintln!("drill: {delivered}/{ready} delivered, {acked} acked, {failed} failed");
            last_progress = Instant::now();
        }
    }
    drop(phones);
    let usage = procs_usage(&opts.hub_pids);
    Ok(FanoutReport {
        recipients: created.recipients,
        connected: ready,
        connected_mqtt: ready_mqtt,
        delivered,
        acked,
        delivery_ms: Percentiles::of(&hist),
        delivery_by_channel: (ready_mqtt > 0).then(|| ByChannel {
            ws: Percentiles::of(&hist_ws),
            mqtt: Percentiles::of(&hist_mqtt),
        }),
        last_delivery_ms: last_delivery.as_secs_f64() * 1e3,
        last_ack_ms: last_ack.as_secs_f64() * 1e3,
        connect_per_s: ready as f64 / connect_s.max(1e-9),
        // Connect failures, and phones that never saw their ack answered.
        errors: errors + ready.saturating_sub(acked),
        hub_rss_mb: usage.map(|(rss, _)| rss),
        hub_kib_per_idle_phone: kib_per_phone,
        acks_per_s: if acked > 1 {
            (acked - 1) as f64 / last_ack.saturating_sub(first_ack).as_secs_f64().max(1e-9)
        } else {
            0.0
        },
        hub_cpu_s: match (usage, cpu_before) {
            (Some((_, after)), Some(before)) => Some(after - before),
            _ => None,
        },
        hub_cpu_fanout_s: cpu_at_delivery.zip(cpu_before).map(|(a, b)| a - b),
        incident: created.id,
        recovery_ms: killed_at.map(|k| last_ack.saturating_sub(k).as_secs_f64() * 1e3),
    })
}

/// The phones a drill connects: staff with an assignment under its prefix, at most
/// `opts.leads`, in registry order (every worker process computes the same list).
pub async fn drill_leads(opts: &FanoutOpts) -> anyhow::Result<Vec<(String, Vec<String>)>> {
    let console = ConsoleClient::new(&opts.hubs[0], &opts.admin_token);
    let registry: RegistryDoc = console
        .get("/v1/registry")
        .await
        .context("reading the registry")?;
    let leads = leads_in(&registry, &opts.prefix, opts.leads);
    if leads.is_empty() {
        bail!("no lead has an assignment under {}", opts.prefix);
    }
    Ok(leads)
}
