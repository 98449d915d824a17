//! `gridcast-drill`: a drill against a running hub. Connects every lead of an area as a
//! simulated phone, issues one activation marked `drill: true`, and measures how long
//! the phones took to get it and to have their acks answered `ok`.
//!
//! ```text
//! gridcast-drill --hub http://127.0.0.1:8080 --admin-token "$ADMIN" \
//!     --jwt-secret "$SECRET" --prefix 330106
//! ```
//!
//! Cluster mode: `--hub` takes several nodes (comma-separated); phones are spread over
//! them in turn and the API calls go to the first. `--city N` first replaces the
//! registry with the sample city grown to N people (`load-tests/bench-cluster.sh`
//! compares 10,000 phones on one node and across three).
//!
//! It sends only to the hubs you name, a bounded number of connections, and stops by
//! itself (`--timeout-s`).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use gridcast_clients::console::ConsoleClient;
use gridcast_clients::lead::LeadClient;
use gridcast_hub::auth::{Auth, Claims, TokenRole};
use gridcast_protocol::api::CreateIncident;
use gridcast_protocol::frame::{ClientFrame, ServerFrame, Targets};
use gridcast_protocol::model::Response;
use gridcast_protocol::registry::RegistryDoc;
use gridcast_protocol::{Category, Level, Target};
use tokio::sync::mpsc;

#[derive(Parser)]
#[command(
    name = "gridcast-drill",
    about = "Run a drill against a gridcast hub and measure it"
)]
struct Args {
    /// Hub base URL; several (comma-separated) spread the phones over cluster nodes.
    #[arg(long, default_value = "http://127.0.0.1:8080", value_delimiter = ',')]
    hub: Vec<String>,
    /// First replace the registry with the sample city grown to this many people
    /// (needs an admin token).
    #[arg(long)]
    city: Option<usize>,
    /// Token with the whole city in scope (reads the registry, issues the drill).
    #[arg(long, env = "GRIDCAST_TOKEN", hide_env_values = true)]
    admin_token: String,
    /// The hub's HS256 key, to mint a token for each simulated phone.
    #[arg(long, env = "GRIDCAST_JWT_SECRET", hide_env_values = true)]
    jwt_secret: String,
    /// Area to drill (every lead with an assignment inside it connects).
    #[arg(long, default_value = "330106")]
    prefix: String,
    /// Most phones to connect.
    #[arg(long, default_value_t = 2_000)]
    max_leads: usize,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 60)]
    timeout_s: u64,
}

enum Event {
    Ready,
    Received(Duration),
    Acked(Duration),
}

fn summary(name: &str, mut v: Vec<Duration>) {
    if v.is_empty() {
        println!("{name}: none");
        return;
    }
    v.sort();
    let p = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
    println!(
        "{name}: n={} p50={:.1}ms p99={:.1}ms max={:.1}ms",
        v.len(),
        p(0.5).as_secs_f64() * 1e3,
        p(0.99).as_secs_f64() * 1e3,
        v[v.len() - 1].as_secs_f64() * 1e3
    );
}

/// Waits until every node has the registry of `people` staff (cluster notification).
async fn wait_for_registry(hubs: &[String], token: &str, people: usize) -> anyhow::Result<()> {
    for h in hubs {
        let c = ConsoleClient::new(h, token);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let doc: RegistryDoc = c.get("/v1/registry").await?;
            if doc.staff.len() == people {
                break;
            }
            if Instant::now() > deadline {
                bail!("{h} did not take the new registry in 30 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let prefix = Target::parse(&args.prefix).context("--prefix")?;
    let console = ConsoleClient::new(&args.hub[0], &args.admin_token);
    if let Some(n) = args.city {
        let doc = gridcast_hub::sample::drill_city(n);
        let _: serde_json::Value = console
            .send_json(reqwest::Method::PUT, "/v1/registry", &doc)
            .await
            .context("replacing the registry (--city needs an admin token)")?;
        println!(
            "registry replaced: sample city grown to {} people",
            doc.staff.len()
        );
        if args.hub.len() > 1 {
            wait_for_registry(&args.hub, &args.admin_token, doc.staff.len()).await?;
        }
    }
    let registry: RegistryDoc = console
        .get("/v1/registry")
        .await
        .context("reading the registry")?;
    let leads: Vec<String> = registry
        .staff
        .iter()
        .filter(|s| s.assignments.iter().any(|a| prefix.covers(&a.grid)))
        .take(args.max_leads)
        .map(|s| s.id.clone())
        .collect();
    if leads.is_empty() {
        bail!("no lead has an assignment under {prefix}");
    }
    let auth = Auth::new(args.jwt_secret.as_bytes());
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        + 3600;
    let urls: Vec<String> = args
        .hub
        .iter()
        .map(|h| format!("{}/v1/lead/ws", h.replacen("http", "ws", 1)))
        .collect();
    let deadline = Duration::from_secs(args.timeout_s);
    let (tx, mut rx) = mpsc::channel(leads.len() * 3);
    let (go_tx, _) = tokio::sync::broadcast::channel::<Instant>(1);
    let connect_started = Instant::now();
    for (i, id) in leads.iter().enumerate() {
        let url = &urls[i % urls.len()];
        let token = auth.sign(&Claims {
            sub: id.clone(),
            role: TokenRole::Lead,
            scope: String::new(),
            exp,
        });
        let (url, tx, mut go) = (url.clone(), tx.clone(), go_tx.subscribe());
        tokio::spawn(tokio::time::timeout(deadline, async move {
            let (mut c, _) = LeadClient::connect(&url, &token).await.ok()?;
            c.sync().await.ok()?;
            tx.send(Event::Ready).await.ok()?;
            let issued = go.recv().await.ok()?;
            loop {
                if let ServerFrame::Incident { incident, .. } = c.next().await.ok()?
                    && incident.drill
                {
                    tx.send(Event::Received(issued.elapsed())).await.ok()?;
                    let ack = ClientFrame::Ack {
                        incident: incident.id,
                        response: Response::Accept,
                        note: None,
                        reference: Some("a".into()),
                    };
                    let (res, _) = c.request(&ack).await.ok()?;
                    res.ok()?;
                    tx.send(Event::Acked(issued.elapsed())).await.ok()?;
                    c.close().await;
                    return Some(());
                }
            }
        }));
    }
    drop(tx);
    let mut ready = 0;
    while ready < leads.len() {
        match tokio::time::timeout(deadline, rx.recv()).await {
            Ok(Some(Event::Ready)) => ready += 1,
            _ => bail!("only {ready} of {} phones connected", leads.len()),
        }
    }
    println!(
        "{} phones connected and synced over {} node(s) in {:.0}ms",
        ready,
        urls.len(),
        connect_started.elapsed().as_secs_f64() * 1e3
    );
    let req = CreateIncident {
        title: "DRILL: evacuation exercise".into(),
        body: "This is a drill.".into(),
        level: Level::III,
        category: Category::Natural,
        drill: true,
        targets: Targets {
            codes: vec![prefix.clone()],
            roles: vec![],
        },
        ack_within_s: Some(300),
    };
    let issued = Instant::now();
    let _ = go_tx.send(issued);
    let created = console.activate(&req).await.context("issuing the drill")?;
    println!(
        "issued {} to {} recipients ({} online) in {:.1}ms",
        created.id,
        created.recipients,
        created.online,
        issued.elapsed().as_secs_f64() * 1e3
    );
    let (mut received, mut acked) = (Vec::new(), Vec::new());
    // Every connected phone is a recipient and acks; `online` is the hub's own count.
    while acked.len() < ready {
        match tokio::time::timeout(deadline, rx.recv()).await {
            Ok(Some(Event::Received(d))) => received.push(d),
            Ok(Some(Event::Acked(d))) => acked.push(d),
            Ok(Some(Event::Ready)) => {}
            _ => break,
        }
    }
    summary("received", received);
    summary("ack ok", acked);
    let d = console.incident(&created.id).await?;
    println!(
        "hub counts: accepted {} of {}",
        d.counts.accepted,
        d.counts.total()
    );
    Ok(())
}
