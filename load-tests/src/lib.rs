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
pub mod workers;

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

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th.
    pub p90: f64,
    /// 99th.
    pub p99: f64,
    /// Worst.
    pub max: f64,
}

impl Percentiles {
    pub fn of(h: &hdrhistogram::Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        if h.is_empty() {
            return Self::default();
        }
        Self {
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
        }
    }
}

/// The result of a fan-out drill (the JSON keys are part of the tool's contract).
#[derive(Debug, Clone, Serialize)]
pub struct FanoutReport {
    /// Recipients of the drill activation.
    pub recipients: usize,
    /// Phones connected and synced before the drill.
    pub connected: usize,
    /// Of those, over MQTT.
    pub connected_mqtt: usize,
    /// Phones that got the activation.
    pub delivered: usize,
    /// Phones whose ack was answered `ok`.
    pub acked: usize,
    /// From the POST to each phone having the frame.
    pub delivery_ms: Percentiles,
    /// From the POST to the last delivery.
    pub last_delivery_ms: f64,
    /// From the POST to the last `ok` for an ack.
    pub last_ack_ms: f64,
    /// Phones connected and synced per second.
    pub connect_per_s: f64,
    /// Phones that failed (connect, sync, timeout, refused ack).
    pub errors: usize,
    /// The hub's resident memory after the drill, if its pid was given.
    pub hub_rss_mb: Option<f64>,
    /// Hub memory per connected, idle phone (KiB): RSS once all are synced minus RSS
    /// before the first connected, over the phones, if its pid was given.
    pub hub_kib_per_idle_phone: Option<f64>,
    /// Acks answered `ok` per second, from the first to the last.
    pub acks_per_s: f64,
    /// The hub's CPU seconds during the drill (issue to last ack), if its pid was given.
    pub hub_cpu_s: Option<f64>,
    /// The hub's CPU seconds from the issue to the last delivery (receipts arriving
    /// meanwhile included), if its pid was given.
    pub hub_cpu_fanout_s: Option<f64>,
    /// The incident.
    pub incident: String,
    /// Chaos: from the kill to the last ack, if a process was killed.
    pub recovery_ms: Option<f64>,
}

/// Reads a process's resident memory (MiB) and CPU time (s) from /proc.
pub fn proc_usage(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces): utime is 14th, stime 15th.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some((rss_kb / 1024.0, ticks / 100.0))
}

/// [`proc_usage`] summed over several processes; `None` if any cannot be read or
/// none is given.
pub fn procs_usage(pids: &[u32]) -> Option<(f64, f64)> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().try_fold((0.0, 0.0), |(m, c), &pid| {
        let (m2, c2) = proc_usage(pid)?;
        Some((m + m2, c + c2))
    })
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

/// What a phone reports.
#[derive(Debug)]
pub enum Event {
    /// Connected and synced.
    Ready(bool),
    /// Got the drill.
    Received(Duration),
    /// Its ack was answered `ok`.
    Acked(Duration),
    /// Storm: synced again this long after the drop, with this many incidents.
    Synced(Duration, usize),
    /// Gave up.
    Failed(String),
}

/// Connection attempts in flight at once (a ramp, not a single SYN flood), and how
/// often a phone tries before it counts as failed (phones retry, with backoff).
const CONNECTING_AT_ONCE: usize = 256;
const CONNECT_TRIES: u32 = 5;
/// How often a phone sends its ack on one connection before it gives up.
const ACK_TRIES: u32 = 20;

/// Connects and syncs a WebSocket phone, retrying like a phone does; the last error
/// if it never got through.
async fn ws_connect(
    url: &str,
    token: &str,
    gate: &tokio::sync::Semaphore,
) -> Result<LeadClient, String> {
    let mut last = String::new();
    for attempt in 1..=CONNECT_TRIES {
        let tried = async {
            let _slot = gate.acquire().await.map_err(|e| e.to_string())?;
            let (mut c, _) = LeadClient::connect(url, token)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            c.sync().await.map_err(|e| format!("sync: {e}"))?;
            Ok::<_, String>(c)
        };
        match tried.await {
            Ok(c) => return Ok(c),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
    }
    Err(last)
}

/// Connects and syncs, returning the sync's frames too.
async fn connect_sync(
    url: &str,
    token: &str,
    gate: &tokio::sync::Semaphore,
) -> Option<(LeadClient, Vec<ServerFrame>)> {
    let _slot = gate.acquire().await.ok()?;
    let (mut c, _) = LeadClient::connect(url, token).await.ok()?;
    let sync = c.sync().await.ok()?;
    Some((c, sync))
}

/// The drill incident in a sync that still needs this phone's answer.
fn unanswered(sync: &[ServerFrame]) -> Option<gridcast_protocol::frame::IncidentView> {
    sync.iter().find_map(|f| match f {
        ServerFrame::Incident { incident, me } if incident.drill => {
            let answered = me.as_ref().is_some_and(|m| {
                matches!(
                    m.status,
                    gridcast_protocol::Status::Accepted | gridcast_protocol::Status::Declined
                )
            });
            (!answered).then(|| incident.clone())
        }
        _ => None,
    })
}

/// One WebSocket phone: sync, wait for the drill, receipt, ack after a delay. When its
/// node goes away it moves to the next node, as a phone behind a load balancer does,
/// and finds the drill again in that node's sync.
async fn ws_phone(
    urls: Arc<Vec<String>>,
    start: usize,
    token: String,
    delay: Duration,
    tx: mpsc::Sender<Event>,
    mut go: watch::Receiver<Option<Instant>>,
    gate: Arc<tokio::sync::Semaphore>,
) {
    let mut c = match ws_connect(&urls[start % urls.len()], &token, &gate).await {
        Ok(c) => c,
        Err(e) => {
            let _ = tx
                .send(Event::Failed(format!("websocket phone: {e}")))
                .await;
            return;
        }
    };
    let run = async {
        tx.send(Event::Ready(false)).await.ok()?;
        let issued = wait_go(&mut go).await?;
        let (mut node, mut moves) = (start, 0);
        let mut from_sync = None;
        let mut received = false;
        loop {
            let live = match from_sync.take() {
                Some(v) => Some(v),
                None => loop {
                    match c.next().await {
                        Ok(ServerFrame::Incident { incident, .. }) if incident.drill => {
                            break Some(incident);
                        }
                        Ok(_) => {}
                        Err(_) => break None,
                    }
                },
            };
            let answered = match live {
                Some(incident) => {
                    if !received {
                        received = true;
                        tx.send(Event::Received(issued.elapsed())).await.ok()?;
                        let receipt = ClientFrame::Receipt {
                            incident: incident.id.clone(),
                            rev: incident.rev,
                            reference: None,
                        };
                        let _ = c.send(&receipt).await;
                        tokio::time::sleep(delay).await; // the person reading and answering
                    }
                    let ack = ClientFrame::Ack {
                        incident: incident.id,
                        response: Response::Accept,
                        note: None,
                        reference: Some("a".into()),
                    };
                    // A phone retries its ack until it is answered `ok` (the hub may
                    // answer `unavailable` while its store recovers); a dead
                    // connection sends it to the next node.
                    let mut answered = false;
                    for attempt in 1..=ACK_TRIES {
                        match c.request(&ack).await {
                            Ok((Ok(()), _)) => {
                                answered = true;
                                break;
                            }
                            Ok((Err(_), _)) => {
                                let backoff = 100 * u64::from(attempt);
                                tokio::time::sleep(Duration::from_millis(backoff)).await;
                            }
                            Err(_) => break,
                        }
                    }
                    answered
                }
                None => false,
            };
            if answered {
                tx.send(Event::Acked(issued.elapsed())).await.ok()?;
                c.close().await;
                return Some(());
            }
            // The node went away: the next one, and the drill from its sync.
            loop {
                moves += 1;
                if moves > 10 {
                    return None;
                }
                node += 1;
                tokio::time::sleep(Duration::from_millis(100 * moves)).await;
                if let Some((next, sync)) =
                    connect_sync(&urls[node % urls.len()], &token, &gate).await
                {
                    c = next;
                    from_sync = unanswered(&sync);
                    break;
                }
            }
        }
    };
    if run.await.is_none() {
        let _ = tx.send(Event::Failed("websocket phone".into())).await;
    }
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
        },
        ack_within_s: Some(600),
    };
    let issued = Instant::now();
    let _ = go_tx.send(Some(issued));
    let created = console.activate(&req).await.context("issuing the drill")?;
    let mut hist =
        hdrhistogram::Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).context("histogram")?;
    let (mut delivered, mut acked, mut failed) = (0, 0, 0);
    let mut cpu_at_delivery = None;
    let mut killed_at: Option<Duration> = None;
    let (mut last_delivery, mut last_ack) = (Duration::ZERO, Duration::ZERO);
    let mut first_ack = Duration::MAX;
    while acked + failed < ready {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(Event::Received(d))) => {
                delivered += 1;
                last_delivery = last_delivery.max(d);
                let _ = hist.record((d.as_micros() as u64).max(1));
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
            },
            ack_within_s: Some(86_400),
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

/// What the simulated phones of a run do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// Sync, wait for the drill, receipt, ack after a human-like delay.
    Fanout,
    /// Sync; at the go, drop and reconnect at once, sync again.
    Storm,
    /// Raw WebSocket clients of the baseline broadcaster (`hubs` are its `ws://` URLs).
    Baseline,
    /// The same, each client also decoding the frame and answering with a receipt
    /// as gridcast's phones do (the broadcaster reads and ignores it).
    BaselineReceipts,
}

impl Job {
    /// Its name on a worker's command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fanout => "fanout",
            Self::Storm => "storm",
            Self::Baseline => "baseline",
            Self::BaselineReceipts => "baseline-receipts",
        }
    }
}

impl std::str::FromStr for Job {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [
            Self::Fanout,
            Self::Storm,
            Self::Baseline,
            Self::BaselineReceipts,
        ]
        .into_iter()
        .find(|j| j.name() == s)
        .ok_or_else(|| format!("unknown job {s:?}"))
    }
}

/// The phones of a run, in this process or spread over worker processes. Dropping it
/// ends them (tasks aborted, workers killed).
pub enum Phones {
    /// Tasks of this process.
    Local(tokio::task::JoinSet<()>),
    /// Worker processes.
    Workers(workers::Workers),
}

impl Phones {
    /// Starts one phone per lead: here when they fit in one process, else over
    /// `ceil(n / per_process)` workers. Each phone reports to `tx` and waits for `go`.
    pub fn start(
        job: Job,
        opts: &FanoutOpts,
        leads: &[(String, Vec<String>)],
        tx: mpsc::Sender<Event>,
        go: watch::Receiver<Option<Instant>>,
    ) -> anyhow::Result<Self> {
        if leads.len() <= opts.per_process.max(1) {
            return Ok(Self::Local(spawn_local(
                job,
                opts,
                leads,
                0..leads.len(),
                tx,
                go,
            )));
        }
        Ok(Self::Workers(workers::spawn(
            job,
            opts,
            leads.len(),
            tx,
            go,
        )?))
    }
}

/// Spawns the phones `range` of `leads` (global indices: they choose the node, the
/// MQTT share and the answering delay) as tasks of this process.
pub fn spawn_local(
    job: Job,
    opts: &FanoutOpts,
    leads: &[(String, Vec<String>)],
    range: std::ops::Range<usize>,
    tx: mpsc::Sender<Event>,
    go: watch::Receiver<Option<Instant>>,
) -> tokio::task::JoinSet<()> {
    let auth = Auth::new(opts.jwt_secret.as_bytes());
    let urls: Arc<Vec<String>> = Arc::new(match job {
        Job::Baseline | Job::BaselineReceipts => opts.hubs.clone(),
        _ => opts
            .hubs
            .iter()
            .map(|h| format!("{}/v1/lead/ws", h.replacen("http", "ws", 1)))
            .collect(),
    });
    let mqtt_every = if job == Job::Fanout && opts.mqtt.is_some() && opts.mqtt_share > 0.0 {
        (1.0 / opts.mqtt_share).round().max(1.0) as usize
    } else {
        usize::MAX
    };
    let gate = Arc::new(tokio::sync::Semaphore::new(CONNECTING_AT_ONCE));
    let mut tasks = tokio::task::JoinSet::new();
    for i in range {
        let (tx, go, gate) = (tx.clone(), go.clone(), gate.clone());
        let url = urls[i % urls.len()].clone();
        match job {
            Job::Baseline | Job::BaselineReceipts => {
                let receipt = job == Job::BaselineReceipts;
                tasks.spawn(baseline::phone(url, receipt, tx, go, gate));
            }
            Job::Storm => {
                tasks.spawn(storm_phone(
                    url,
                    lead_token(&auth, &leads[i].0),
                    tx,
                    go,
                    gate,
                ));
            }
            Job::Fanout => {
                let (id, grids) = &leads[i];
                let token = lead_token(&auth, id);
                let delay = delay_for(i, opts.ack_delay_ms);
                if i % mqtt_every == mqtt_every - 1
                    && let Some((host, port)) = &opts.mqtt
                {
                    let phone = mqtt::Phone {
                        host: host.clone(),
                        port: *port,
                        lead: id.clone(),
                        grids: grids.clone(),
                        token,
                        delay,
                    };
                    tasks.spawn(phone.run(tx, go, gate));
                } else {
                    tasks.spawn(ws_phone(urls.clone(), i, token, delay, tx, go, gate));
                }
            }
        }
    }
    tasks
}

/// Waits for the go; the instant the drill was issued.
pub async fn wait_go(go: &mut watch::Receiver<Option<Instant>>) -> Option<Instant> {
    loop {
        if let Some(t) = *go.borrow_and_update() {
            return Some(t);
        }
        go.changed().await.ok()?;
    }
}

/// Collects `Ready`/`Failed` until all `n` phones reported: (ready, of those over
/// MQTT, failed), or an error naming how far it got at the deadline.
pub async fn await_ready(
    rx: &mut mpsc::Receiver<Event>,
    n: usize,
    deadline: tokio::time::Instant,
    progress: bool,
) -> anyhow::Result<(usize, usize, usize)> {
    let (mut ready, mut ready_mqtt, mut errors) = (0, 0, 0);
    let mut last_progress = Instant::now();
    while ready + errors < n {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(Event::Ready(mqtt))) => {
                ready += 1;
                ready_mqtt += usize::from(mqtt);
            }
            Ok(Some(Event::Failed(why))) => {
                errors += 1;
                if errors == 1 {
                    eprintln!("a phone failed to connect: {why}");
                }
            }
            Ok(Some(_)) => {}
            _ => bail!("only {ready} of {n} phones connected before the timeout ({errors} failed)"),
        }
        if progress && last_progress.elapsed() > Duration::from_millis(500) {
            eprintln!("connecting: {ready}/{n} synced, {errors} failed");
            last_progress = Instant::now();
        }
    }
    Ok((ready, ready_mqtt, errors))
}

/// A storm phone: connects and syncs; at the go it drops its connection with all the
/// others and reconnects at once (no ramp: that is the storm), syncs, reports, and
/// stays connected.
async fn storm_phone(
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
async fn reconnect(url: &str, token: &str) -> Option<(LeadClient, Vec<ServerFrame>)> {
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
