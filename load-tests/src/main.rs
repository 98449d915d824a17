//! `gridcast-drill`: drills, load tests and benchmarks against running hubs.
//!
//! ```text
//! gridcast-drill city --leads 10000 --out city.json
//! gridcast-drill fanout --hub http://127.0.0.1:8080 --admin-token "$ADMIN" \
//!     --jwt-secret "$SECRET" --leads 10000 [--mqtt 127.0.0.1:1883 --mqtt-share 0.2] [--json out.json]
//! gridcast-drill baseline --leads 10000
//! gridcast-drill storm --hub http://127.0.0.1:8080 --jwt-secret "$SECRET" --leads 10000
//! ```
//!
//! It sends only to the hubs and broker it is given, a bounded number of connections,
//! and stops by itself (`--timeout-s`). One process holds at most ~19,000 connections
//! (the machine's open-file limit is 20,000 per process); larger runs are refused with
//! that reason.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use gridcast_clients::console::ConsoleClient;
use gridcast_hub::auth::Auth;
use gridcast_load_tests::{
    FanoutOpts, FanoutReport, Percentiles, baseline, fanout, leads_in, storm,
};
use gridcast_protocol::Target;
use gridcast_protocol::registry::RegistryDoc;

/// Connections one process may hold (two file descriptors are needed per phone when the
/// hub runs in the same process; here one, plus headroom).
const MAX_PER_PROCESS: usize = 19_000;

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
        /// Token with the whole city in scope (reads the registry, issues the drill).
        #[arg(long, env = "GRIDCAST_TOKEN", hide_env_values = true)]
        admin_token: String,
        /// First replace the registry with the sample city grown to this many people.
        #[arg(long)]
        city: Option<usize>,
        /// Broker host:port for the MQTT share.
        #[arg(long)]
        mqtt: Option<String>,
        /// Share of phones on MQTT (0 to 1).
        #[arg(long, default_value_t = 0.0)]
        mqtt_share: f64,
        /// Human-like delay before each ack, min,max in ms.
        #[arg(long, value_delimiter = ',', default_value = "100,1000")]
        ack_delay_ms: Vec<u64>,
        /// The hub's pid, to read its RSS and CPU (same machine).
        #[arg(long)]
        hub_pid: Option<u32>,
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
    /// The minimal broadcaster every figure is compared with (started as a child).
    Baseline {
        /// Clients.
        #[arg(long, default_value_t = 2_000)]
        leads: usize,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 120)]
        timeout_s: u64,
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
        /// Token with the whole city in scope.
        #[arg(long, env = "GRIDCAST_TOKEN", hide_env_values = true)]
        admin_token: String,
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
        /// Token with the whole city in scope (reads the registry).
        #[arg(long, env = "GRIDCAST_TOKEN", hide_env_values = true)]
        admin_token: String,
    },
}

fn check_limit(n: usize) -> anyhow::Result<()> {
    if n > MAX_PER_PROCESS {
        bail!(
            "{n} connections exceed what one process may hold here ({MAX_PER_PROCESS}; the open-file limit is 20,000 per process): run several drills"
        );
    }
    Ok(())
}

fn print_fanout(r: &FanoutReport) {
    let p = |x: &Percentiles| {
        format!(
            "p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1} ms",
            x.p50, x.p90, x.p99, x.max
        )
    };
    println!("incident        {}", r.incident);
    println!("recipients      {}", r.recipients);
    println!(
        "connected       {} ({} over MQTT), {:.0}/s",
        r.connected, r.connected_mqtt, r.connect_per_s
    );
    println!("delivered       {}", r.delivered);
    println!("acked           {}", r.acked);
    println!("delivery        {}", p(&r.delivery_ms));
    println!("last delivery   {:.1} ms", r.last_delivery_ms);
    println!("last ack        {:.1} ms", r.last_ack_ms);
    println!("acks            {:.0}/s answered ok", r.acks_per_s);
    println!("errors          {}", r.errors);
    if let (Some(rss), Some(cpu)) = (r.hub_rss_mb, r.hub_cpu_s) {
        println!("hub             {rss:.1} MiB RSS, {cpu:.2} s CPU for the drill");
    }
    if let Some(k) = r.hub_kib_per_idle_phone {
        println!("hub memory      {k:.1} KiB per connected idle phone");
    }
    if let Some(ms) = r.recovery_ms {
        println!("chaos recovery  {ms:.0} ms from the kill to the last ack");
    }
    if let Some(cpu) = r.hub_cpu_fanout_s {
        println!("hub fan-out     {cpu:.2} s CPU from the issue to the last delivery");
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
            println!(
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
            mqtt,
            mqtt_share,
            ack_delay_ms,
            hub_pid,
            json,
            kill_pid,
            kill_after,
        } => {
            check_limit(hub.leads)?;
            if let Some(n) = city {
                let console = ConsoleClient::new(&hub.hub[0], &admin_token);
                let doc = gridcast_hub::sample::drill_city(n);
                let _: serde_json::Value = console
                    .send_json(reqwest::Method::PUT, "/v1/registry", &doc)
                    .await
                    .context("replacing the registry (--city needs an admin token)")?;
                for h in &hub.hub {
                    wait_for_registry(h, &admin_token, doc.staff.len()).await?;
                }
            }
            let mqtt = match mqtt {
                None => None,
                Some(m) => {
                    let (h, p) = m.rsplit_once(':').context("--mqtt is host:port")?;
                    Some((h.to_owned(), p.parse().context("--mqtt port")?))
                }
            };
            let [lo, hi] = ack_delay_ms[..] else {
                bail!("--ack-delay-ms is min,max");
            };
            let report = fanout(FanoutOpts {
                hubs: hub.hub,
                admin_token,
                jwt_secret: hub.jwt_secret,
                prefix: Target::parse(&hub.prefix).context("--prefix")?,
                leads: hub.leads,
                mqtt,
                mqtt_share,
                ack_delay_ms: (lo, hi.max(lo)),
                timeout: Duration::from_secs(hub.timeout_s),
                hub_pid,
                progress: true,
                kill: kill_pid.map(|p| (p, kill_after)),
            })
            .await?;
            print_fanout(&report);
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_vec_pretty(&report)?)?;
            }
            if report.acked < report.connected {
                bail!(
                    "{} of {} phones did not get their ack recorded",
                    report.connected - report.acked,
                    report.connected
                );
            }
        }
        Command::Baseline { leads, timeout_s } => {
            check_limit(leads)?;
            let exe = std::env::current_exe()?;
            let mut child = tokio::process::Command::new(exe)
                .args(["baseline-serve", "--listen", "127.0.0.1:0"])
                .stdout(std::process::Stdio::piped())
                .kill_on_drop(true)
                .spawn()?;
            let pid = child.id();
            let mut out = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(
                child.stdout.take().context("baseline stdout")?,
            ));
            let addr = out
                .next_line()
                .await?
                .context("baseline server did not start")?;
            let (clients, connect_per_s) =
                baseline::connect(&format!("ws://{addr}"), leads).await?;
            let before = pid.and_then(gridcast_load_tests::proc_usage);
            let times = baseline::broadcast(clients, Duration::from_secs(timeout_s)).await?;
            let after = pid.and_then(gridcast_load_tests::proc_usage);
            let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
            for t in &times {
                h.record((t.as_micros() as u64).max(1))?;
            }
            let q = |x: f64| h.value_at_quantile(x) as f64 / 1000.0;
            println!(
                "baseline        {} clients, connected {connect_per_s:.0}/s",
                times.len()
            );
            println!(
                "delivery        p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1} ms",
                q(0.5),
                q(0.9),
                q(0.99),
                h.max() as f64 / 1000.0
            );
            if let (Some((_, c0)), Some((rss, c1))) = (before, after) {
                println!(
                    "server          {rss:.1} MiB RSS with {} connections, {:.2} s CPU for the broadcast",
                    times.len(),
                    c1 - c0
                );
            }
            let _ = child.kill().await;
        }
        Command::BaselineServe { listen } => {
            let l = tokio::net::TcpListener::bind(&listen).await?;
            println!("{}", l.local_addr()?);
            baseline::serve(l).await?;
        }
        Command::Sustained {
            hub,
            admin_token,
            rate,
            seconds,
        } => {
            check_limit(hub.leads)?;
            let opts = FanoutOpts {
                hubs: hub.hub,
                admin_token,
                jwt_secret: hub.jwt_secret,
                prefix: Target::parse(&hub.prefix).context("--prefix")?,
                leads: hub.leads,
                mqtt: None,
                mqtt_share: 0.0,
                ack_delay_ms: (0, 0),
                timeout: Duration::from_secs(hub.timeout_s),
                hub_pid: None,
                progress: false,
                kill: None,
            };
            let r = gridcast_load_tests::sustained(&opts, rate, seconds).await?;
            let d = r.delivery_ms;
            println!(
                "sustained       {} activations at {:.1}/s to {} phones: {}/{} delivered",
                r.activations, r.rate, r.connected, r.delivered, r.expected
            );
            println!(
                "delivery        p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1} ms",
                d.p50, d.p90, d.p99, d.max
            );
            if r.delivered < r.expected {
                bail!("{} deliveries missing", r.expected - r.delivered);
            }
        }
        Command::Storm { hub, admin_token } => {
            check_limit(hub.leads)?;
            let console = ConsoleClient::new(&hub.hub[0], &admin_token);
            let doc: RegistryDoc = console.get("/v1/registry").await?;
            let prefix = Target::parse(&hub.prefix).context("--prefix")?;
            let leads = leads_in(&doc, &prefix, hub.leads);
            let url = format!("{}/v1/lead/ws", hub.hub[0].replacen("http", "ws", 1));
            let auth = Auth::new(hub.jwt_secret.as_bytes());
            let (secs, recovered, errors) =
                storm(&url, &auth, &leads, Duration::from_secs(hub.timeout_s)).await?;
            println!(
                "storm           {} phones dropped and reconnected: all synced in {:.0} ms, {recovered} incident frames recovered, {errors} errors",
                leads.len(),
                secs * 1e3
            );
        }
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
