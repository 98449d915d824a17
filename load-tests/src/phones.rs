//! Where a drill's phones run: in this process or in worker processes of the tool, and
//! the start signal they wait for.

use crate::*;

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
    /// The same, each client then also sending an ack with a `ref` after the drill's
    /// delay and waiting for the broadcaster's `ok`.
    BaselineAcks,
    /// MQTT clients of the broker alone, each reading one topic (`opts.mqtt`).
    BaselineMqtt,
    /// The same, each client then publishing a receipt (QoS 1) that one reader takes,
    /// as gridcast's MQTT phones answer and the hub reads.
    BaselineMqttReceipts,
}

impl Job {
    /// A baseline's clients: no hub, no registry, no tokens.
    pub fn baseline(self) -> bool {
        !matches!(self, Self::Fanout | Self::Storm)
    }

    /// Its name on a worker's command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fanout => "fanout",
            Self::Storm => "storm",
            Self::Baseline => "baseline",
            Self::BaselineReceipts => "baseline-receipts",
            Self::BaselineAcks => "baseline-acks",
            Self::BaselineMqtt => "baseline-mqtt",
            Self::BaselineMqttReceipts => "baseline-mqtt-receipts",
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
            Self::BaselineAcks,
            Self::BaselineMqtt,
            Self::BaselineMqttReceipts,
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
        j if j.baseline() => opts.hubs.clone(),
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
        let url = urls.get(i % urls.len().max(1)).cloned().unwrap_or_default();
        match job {
            Job::Baseline | Job::BaselineReceipts | Job::BaselineAcks => {
                let answers = baseline::Answers {
                    receipt: job != Job::Baseline,
                    ack_after: (job == Job::BaselineAcks).then(|| delay_for(i, opts.ack_delay_ms)),
                };
                tasks.spawn(baseline::phone(url, answers, tx, go, gate));
            }
            Job::BaselineMqtt | Job::BaselineMqttReceipts => {
                if let Some((host, port)) = &opts.mqtt {
                    let receipt = job == Job::BaselineMqttReceipts;
                    let client = mqtt::BaselineClient {
                        host: host.clone(),
                        port: *port,
                        i,
                        receipt,
                    };
                    tasks.spawn(mqtt::baseline_phone(client, tx, go, gate));
                }
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
