//! `gridcast-drill`: drills, load tests and benchmarks against running hubs.
//!
//! ```text
//! gridcast-drill city --leads 10000 --out city.json
//! gridcast-drill fanout --hub http://127.0.0.1:8080 --jwt-secret "$SECRET" --leads 10000 \
//!     [--registry city.json] [--mqtt mqtt://127.0.0.1:1883 --mqtt-share 0.2] [--json out.json]
//! gridcast-drill baseline --leads 10000
//! gridcast-drill storm --hub http://127.0.0.1:8080 --jwt-secret "$SECRET" --leads 10000
//! ```
//!
//! It sends only to the hubs and broker it is given, a bounded number of connections,
//! and stops by itself (`--timeout-s`). One process holds at most `--per-process`
//! connections (18,000 by default: the machine's open-file limit is 20,000 per
//! process); larger runs are spread over worker processes of the tool's own.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use gridcast_clients::console::ConsoleClient;
use gridcast_load_tests::{FanoutOpts, FanoutReport, Percentiles, baseline, fanout, storm};
use gridcast_protocol::Target;
use gridcast_protocol::registry::RegistryDoc;

/// Connections one process may hold (two file descriptors are needed per phone when the
/// hub runs in the same process; here one, plus headroom).
const MAX_PER_PROCESS: usize = 18_000;

#[derive(Parser)]
#[command(
    name = "gridcast-drill",
    about = "Drills, load tests and benchmarks for gridcast"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct HubArgs {
    /// Hub base URL; several (comma-separated) spread the phones over cluster nodes.
    #[arg(long, default_value = "http://127.0.0.1:8080", value_delimiter = ',')]
    hub: Vec<String>,
    /// The hubs' HS256 key, to mint a token for each simulated phone.
    #[arg(long, env = "GRIDCAST_JWT_SECRET", hide_env_values = true)]
    jwt_secret: String,
    /// Area to drill.
    #[arg(long, default_value = "330106")]
    prefix: String,
    /// Phones.
    #[arg(long, default_value_t = 2_000)]
    leads: usize,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout_s: u64,
    /// Phones one process holds; more are spread over worker processes of the tool
    /// (the open-file limit is per process: 20,000 here).
    #[arg(long, default_value_t = MAX_PER_PROCESS)]
    per_process: usize,
}

/// What the simulated phones do (fan-out drills and their workers).
#[derive(clap::Args, Clone)]
struct PhoneArgs {
    /// Broker for the MQTT share: `mqtt://host[:port]` or `host:port`.
    #[arg(long)]
    mqtt: Option<String>,
    /// Share of phones on MQTT (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    mqtt_share: f64,
    /// Human-like delay before each ack, min,max in ms.
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    ack_delay_ms: Vec<u64>,
}

impl PhoneArgs {
    fn apply(self, opts: &mut FanoutOpts) -> anyhow::Result<()> {
        opts.mqtt = mqtt_addr(self.mqtt)?;
        opts.mqtt_share = self.mqtt_share;
        opts.ack_delay_ms = delay_range(&self.ack_delay_ms)?;
        Ok(())
    }
}

#[derive(Subcommand)]
enum Command {
    /// Write a synthetic registry (the sample city grown) with exactly N staff.
    City {
        /// Staff.
        #[arg(long)]
        leads: usize,
        /// Output file.
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Connect N phones, issue one drill, time every delivery and ack.
    Fanout {
        #[command(flatten)]
        hub: HubArgs,
        /// Token with the whole city in scope (reads the registry, issues the drill);
        /// default: an admin token minted with `--jwt-secret`.
        #[arg(long, env = "GRIDCAST_TOKEN", hide_env_values = true)]
        admin_token: Option<String>,
        /// First replace the registry with the sample city grown to this many people.
        #[arg(long, conflicts_with = "registry")]
        city: Option<usize>,
        /// First replace the registry with this document (e.g. from `city`).
        #[arg(long)]
        registry: Option<std::path::PathBuf>,
        #[command(flatten)]
        phones: PhoneArgs,
        /// The hubs' pids (comma-separated), to read their RSS and CPU (same machine).
        #[arg(long, value_delimiter = ',')]
        hub_pid: Vec<u32>,
        /// Also write the report as JSON here.
        #[arg(long)]
        json: Option<std::path::PathBuf>,
        /// Chaos: kill -9 this process (a cluster node) mid-drill ...
        #[arg(long)]
        kill_pid: Option<u32>,
        /// ... once this share of the phones got the drill.
        #[arg(long, default_value_t = 0.5)]
        kill_after: f64,
    },
    /// The minimal broadcaster every figure is compared with (started as children).
    Baseline {
        /// Clients.
        #[arg(long, default_value_t = 2_000)]
        leads: usize,
        /// Broadcaster processes (clients spread round-robin), e.g. 6 beside a 6-node
        /// cluster.
        #[arg(long, default_value_t = 1)]
        servers: usize,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 120)]
        timeout_s: u64,
        /// Clients one process holds; more are spread over worker processes.
        #[arg(long, default_value_t = MAX_PER_PROCESS)]
        per_process: usize,
        /// Clients decode the frame and answer with a receipt, as the drill's phones do.
        #[arg(long)]
        receipts: bool,
        /// Clients also send an ack with a `ref` after the drill's delay, which the
        /// broadcaster answers `ok` (implies --receipts): the baseline of a drill's acks.
        #[arg(long)]
        acks: bool,
        /// Human-like delay before each ack, min,max in ms (as the drill's).
        #[arg(long, value_delimiter = ',', default_value = "100,1000")]
        ack_delay_ms: Vec<u64>,
        /// The broker alone instead (host:port): MQTT clients read one topic at QoS 1
        /// and one message of an incident frame's size is published to it (with
        /// --receipts each client answers with a receipt at QoS 1 that one reader takes).
        #[arg(long)]
        mqtt: Option<String>,
        /// The broker's pid, for its CPU and memory (`--mqtt`).
        #[arg(long)]
        broker_pid: Option<u32>,
        /// Also write the report as JSON here.
        #[arg(long)]
        json: Option<std::path::PathBuf>,
    },
    /// One worker process of a large run (started by the tool itself).
    #[command(hide = true)]
    Worker {
        #[command(flatten)]
        hub: HubArgs,
        /// fanout, storm, baseline, baseline-receipts or baseline-acks.
        #[arg(long)]
        job: gridcast_load_tests::Job,
        /// First phone (index into the run's lead list).
        #[arg(long)]
        skip: usize,
        /// Phones.
        #[arg(long)]
        take: usize,
        #[arg(
            long,
            env = "GRIDCAST_TOKEN",
            hide_env_values = true,
            default_value = ""
        )]
        admin_token: String,
        #[command(flatten)]
        phones: PhoneArgs,
    },
    /// Run the baseline server (used by `baseline`).
    #[command(hide = true)]
    BaselineServe {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
    },
    /// Sustained load: K drill activations a second for T seconds to N phones.
    Sustained {
        #[command(flatten)]
        hub: HubArgs,
        /// Token with the whole city in scope; default: an admin token minted with
        /// `--jwt-secret`.
        #[arg(long, env = "GRIDCAST_TOKEN", hide_env_values = true)]
        admin_token: Option<String>,
        /// Activations per second.
        #[arg(long, default_value_t = 2.0)]
        rate: f64,
        /// For this many seconds.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Reconnect storm: N phones connect, all drop at once, all reconnect and sync.
    Storm {
        #[command(flatten)]
        hub: HubArgs,
        /// Token with the whole city in scope (reads the registry); default: an admin
        /// token minted with `--jwt-secret`.
        #[arg(long, env = "GRIDCAST_TOKEN", hide_env_values = true)]
        admin_token: Option<String>,
        /// Also write the report as JSON here.
        #[arg(long)]
        json: Option<std::path::PathBuf>,
    },
}

/// Refuses a run this process could not hold, naming the limit: `per_process`
/// connections (or fewer, `n`) need as many open files.
fn check_limit(n: usize, per_process: usize) -> anyhow::Result<()> {
    let need = n.min(per_process) + 256;
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(soft) = soft
        && soft < need
    {
        bail!(
            "{} connections in one process need about {need} open files, but this process may open {soft} (`ulimit -n`): raise it (`ulimit -n $(ulimit -Hn)`) or lower --per-process",
            n.min(per_process)
        );
    }
    Ok(())
}

/// `mqtt://host[:port]` (port 1883 by default) or `host:port`.
fn mqtt_addr(m: Option<String>) -> anyhow::Result<Option<(String, u16)>> {
    m.map(|m| {
        let (url, rest) = match m.strip_prefix("mqtt://") {
            Some(rest) => (true, rest.trim_end_matches('/')),
            None => (false, m.as_str()),
        };
        match rest.rsplit_once(':') {
            Some((h, p)) => Ok((h.to_owned(), p.parse().context("--mqtt port")?)),
            None if url => Ok((rest.to_owned(), 1883)),
            None => bail!("--mqtt is mqtt://host[:port] or host:port"),
        }
    })
    .transpose()
}

/// `--admin-token`, else an admin token for the whole city minted with the hubs' key.
fn admin_token_or_minted(given: Option<String>, jwt_secret: &str) -> String {
    given.unwrap_or_else(|| {
        gridcast_hub::auth::Auth::new(jwt_secret.as_bytes()).sign(&gridcast_hub::auth::Claims {
            sub: "gridcast-drill".into(),
            role: gridcast_hub::auth::TokenRole::Admin,
            scope: String::new(),
            exp: gridcast_hub::now_ms() / 1000 + 3600,
            jti: None,
        })
    })
}

fn delay_range(v: &[u64]) -> anyhow::Result<(u64, u64)> {
    let [lo, hi] = v[..] else {
        bail!("--ack-delay-ms is min,max");
    };
    Ok((lo, hi.max(lo)))
}

impl HubArgs {
    fn opts(self, admin_token: String) -> anyhow::Result<FanoutOpts> {
        Ok(FanoutOpts {
            hubs: self.hub,
            admin_token,
            jwt_secret: self.jwt_secret,
            prefix: Target::parse(&self.prefix).context("--prefix")?,
            leads: self.leads,
            mqtt: None,
            mqtt_share: 0.0,
            ack_delay_ms: (0, 0),
            timeout: Duration::from_secs(self.timeout_s),
            hub_pids: vec![],
            per_process: self.per_process,
            progress: true,
            kill: None,
        })
    }
}

fn print_fanout(r: &FanoutReport) {
    let p = percentiles;
    gridcast_protocol::out!("incident        {}", r.incident);
    gridcast_protocol::out!("recipients      {}", r.recipients);
    gridcast_protocol::out!(
        "connected       {} ({} over MQTT), {:.0}/s",
        r.connected,
        r.connected_mqtt,
        r.connect_per_s
    );
    gridcast_protocol::out!("delivered       {}", r.delivered);
    gridcast_protocol::out!("acked           {}", r.acked);
    gridcast_protocol::out!("delivery        {}", p(&r.delivery_ms));
    if let Some(c) = &r.delivery_by_channel {
        gridcast_protocol::out!("  on WebSocket  {}", p(&c.ws));
        gridcast_protocol::out!("  on MQTT       {}", p(&c.mqtt));
    }
    gridcast_protocol::out!("last delivery   {:.1} ms", r.last_delivery_ms);
    gridcast_protocol::out!("last ack        {:.1} ms", r.last_ack_ms);
    gridcast_protocol::out!("acks            {:.0}/s answered ok", r.acks_per_s);
    gridcast_protocol::out!("errors          {}", r.errors);
    if let (Some(rss), Some(cpu)) = (r.hub_rss_mb, r.hub_cpu_s) {
        gridcast_protocol::out!("hub             {rss:.1} MiB RSS, {cpu:.2} s CPU for the drill");
    }
    if let Some(k) = r.hub_kib_per_idle_phone {
        gridcast_protocol::out!("hub memory      {k:.1} KiB per connected idle phone");
    }
    if let Some(ms) = r.recovery_ms {
        gridcast_protocol::out!("chaos recovery  {ms:.0} ms from the kill to the last ack");
    }
    if let Some(cpu) = r.hub_cpu_fanout_s {
        gridcast_protocol::out!(
            "hub fan-out     {cpu:.2} s CPU from the issue to the last delivery"
        );
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::City { leads, out } => {
            let mut doc = gridcast_hub::sample::drill_city(leads);
            doc.staff.truncate(leads);
            std::fs::write(&out, serde_json::to_vec_pretty(&doc)?)
                .with_context(|| format!("{}", out.display()))?;
            gridcast_protocol::out!(
                "{}: {} grids, {} staff",
                out.display(),
                doc.grids.len(),
                doc.staff.len()
            );
        }
        Command::Fanout {
            hub,
            admin_token,
            city,
            registry,
            phones,
            hub_pid,
            json,
            kill_pid,
            kill_after,
        } => {
            check_limit(hub.leads, hub.per_process)?;
            let admin_token = admin_token_or_minted(admin_token, &hub.jwt_secret);
            let doc = match (city, registry) {
                (Some(n), _) => Some(gridcast_hub::sample::drill_city(n)),
                (None, Some(path)) => Some(
                    serde_json::from_slice::<RegistryDoc>(
                        &std::fs::read(&path).with_context(|| format!("{}", path.display()))?,
                    )
                    .with_context(|| format!("{}", path.display()))?,
                ),
                (None, None) => None,
            };
            if let Some(doc) = doc {
                let console = ConsoleClient::new(&hub.hub[0], &admin_token);
                let _: serde_json::Value = console
                    .send_json(reqwest::Method::PUT, "/v1/registry", &doc)
                    .await
                    .context(
                        "replacing the registry (--city and --registry need an admin token)",
                    )?;
                for h in &hub.hub {
                    wait_for_registry(h, &admin_token, doc.staff.len()).await?;
                }
            }
            let mut opts = hub.opts(admin_token)?;
            phones.apply(&mut opts)?;
            opts.hub_pids = hub_pid;
            opts.kill = kill_pid.map(|p| (p, kill_after));
            let report = fanout(opts).await?;
            print_fanout(&report);
            write_json(json, &report)?;
            if report.acked < report.connected {
                bail!(
                    "{} of {} phones did not get their ack recorded",
                    report.connected - report.acked,
                    report.connected
                );
            }
        }
        Command::Baseline {
            leads,
            servers,
            timeout_s,
            per_process,
            receipts,
            acks,
            ack_delay_ms,
            mqtt,
            broker_pid,
            json,
        } => {
            check_limit(leads, per_process)?;
            let mut opts = HubArgs {
                hub: vec![],
                jwt_secret: String::new(),
                prefix: "33".into(),
                leads,
                timeout_s,
                per_process,
            }
            .opts(String::new())?;
            opts.ack_delay_ms = delay_range(&ack_delay_ms)?;
            let job = match (receipts, acks) {
                (_, true) => gridcast_load_tests::Job::BaselineAcks,
                (true, false) => gridcast_load_tests::Job::BaselineReceipts,
                (false, false) => gridcast_load_tests::Job::Baseline,
            };
            let r = match mqtt_addr(mqtt)? {
                Some(broker) => baseline::run_mqtt(opts, broker, broker_pid, receipts).await?,
                None => baseline::run(opts, servers, job).await?,
            };
            gridcast_protocol::out!(
                "baseline        {} clients on {} server process(es), connected {:.0}/s",
                r.clients,
                r.servers,
                r.connect_per_s
            );
            gridcast_protocol::out!("delivered       {}", r.delivered);
            gridcast_protocol::out!("delivery        {}", percentiles(&r.delivery_ms));
            gridcast_protocol::out!("last delivery   {:.1} ms", r.last_delivery_ms);
            gridcast_protocol::out!(
                "server          {:.1} MiB RSS with {} connections ({:.1} KiB each), {:.2} s CPU for the broadcast",
                r.server_rss_mb,
                r.clients,
                r.server_kib_per_conn,
                r.server_cpu_s
            );
            if acks {
                gridcast_protocol::out!("acked           {}", r.acked);
                gridcast_protocol::out!("last ack        {:.1} ms", r.last_ack_ms);
                gridcast_protocol::out!(
                    "server          {:.2} s CPU from the broadcast to the last ack",
                    r.server_cpu_acks_s
                );
            }
            gridcast_protocol::out!("errors          {}", r.errors);
            write_json(json, &r)?;
        }
        Command::Worker {
            hub,
            job,
            skip,
            take,
            admin_token,
            phones,
        } => {
            check_limit(take, take)?;
            let mut opts = hub.opts(admin_token)?;
            phones.apply(&mut opts)?;
            opts.progress = false;
            gridcast_load_tests::workers::run(job, opts, skip, take).await?;
        }
        Command::BaselineServe { listen } => {
            let l = tokio::net::TcpListener::bind(&listen).await?;
            gridcast_protocol::out!("{}", l.local_addr()?);
            baseline::serve(l).await?;
        }
        Command::Sustained {
            hub,
            admin_token,
            rate,
            seconds,
        } => {
            check_limit(hub.leads, usize::MAX)?;
            let token = admin_token_or_minted(admin_token, &hub.jwt_secret);
            let mut opts = hub.opts(token)?;
            opts.progress = false;
            let r = gridcast_load_tests::sustained(&opts, rate, seconds).await?;
            gridcast_protocol::out!(
                "sustained       {} activations at {:.1}/s to {} phones: {}/{} delivered",
                r.activations,
                r.rate,
                r.connected,
                r.delivered,
                r.expected
            );
            gridcast_protocol::out!("delivery        {}", percentiles(&r.delivery_ms));
            if r.delivered < r.expected {
                bail!("{} deliveries missing", r.expected - r.delivered);
            }
        }
        Command::Storm {
            hub,
            admin_token,
            json,
        } => {
            check_limit(hub.leads, hub.per_process)?;
            let token = admin_token_or_minted(admin_token, &hub.jwt_secret);
            let r = storm(&hub.opts(token)?).await?;
            gridcast_protocol::out!(
                "storm           {} phones dropped and reconnected: {} synced again in {:.0} ms, {} incident frames recovered, {} errors",
                r.phones,
                r.synced,
                r.seconds * 1e3,
                r.recovered,
                r.errors
            );
            write_json(json, &r)?;
            if r.synced < r.phones {
                bail!("{} phones did not sync again", r.phones - r.synced);
            }
        }
    }
    Ok(())
}

fn percentiles(x: &Percentiles) -> String {
    format!(
        "p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1} ms",
        x.p50, x.p90, x.p99, x.max
    )
}

fn write_json(path: Option<std::path::PathBuf>, r: &impl serde::Serialize) -> anyhow::Result<()> {
    if let Some(path) = path {
        std::fs::write(&path, serde_json::to_vec_pretty(r)?)
            .with_context(|| format!("{}", path.display()))?;
    }
    Ok(())
}

/// Waits until a node has the registry of `people` staff (cluster notification).
async fn wait_for_registry(hub: &str, token: &str, people: usize) -> anyhow::Result<()> {
    let c = ConsoleClient::new(hub, token);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let doc: RegistryDoc = c.get("/v1/registry").await?;
        if doc.staff.len() == people {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            bail!("{hub} did not take the new registry in 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_broker_is_a_url_or_host_and_port() {
        let m = |s: &str| mqtt_addr(Some(s.into())).map(Option::unwrap).ok();
        assert_eq!(m("mqtt://127.0.0.1:1884"), Some(("127.0.0.1".into(), 1884)));
        assert_eq!(m("mqtt://broker/"), Some(("broker".into(), 1883)));
        assert_eq!(m("127.0.0.1:1883"), Some(("127.0.0.1".into(), 1883)));
        assert_eq!(m("broker"), None);
        assert_eq!(m("mqtt://broker:x"), None);
    }
}
