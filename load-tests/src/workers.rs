//! Worker processes: one process may hold at most ~19,000 connections here (the
//! open-file limit is 20,000 per process and cannot be raised), so larger runs are
//! spread over several `gridcast-drill worker` processes of the tool's own.
//!
//! A worker runs the phones `skip..skip+take` of the same lead list (every process
//! computes it the same way) and speaks a line protocol: it writes one line per phone
//! event to stdout (`ready 0|1`, `recv <µs>`, `ack <µs>`, `synced <µs> <incidents>`,
//! `fail <why>`), and reads `go <µs since the epoch>` from stdin. Durations are from
//! the go, taken on the shared wall clock of the machine, so every process measures
//! from the same instant as the parent.

use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch};

use crate::{Event, FanoutOpts, Job};

/// Running workers; dropping them kills them.
pub struct Workers {
    _children: Vec<Child>,
    tasks: tokio::task::JoinSet<()>,
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

fn epoch_us() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros()
}

/// Starts `ceil(n / opts.per_process)` workers for the phones `0..n` of `job`; their
/// events go to `tx`, the go is passed on to them.
pub fn spawn(
    job: Job,
    opts: &FanoutOpts,
    n: usize,
    tx: mpsc::Sender<Event>,
    go: watch::Receiver<Option<Instant>>,
) -> anyhow::Result<Workers> {
    let exe = std::env::current_exe().context("finding gridcast-drill for its workers")?;
    let per = opts.per_process.max(1);
    let count = n.div_ceil(per);
    eprintln!("{n} phones over {count} worker processes (at most {per} each)");
    let mut children = Vec::with_capacity(count);
    let mut tasks = tokio::task::JoinSet::new();
    for k in 0..count {
        let (skip, take) = (k * per, per.min(n - k * per));
        let mut cmd = Command::new(&exe);
        cmd.arg("worker")
            .args(["--job", job.name()])
            .args(["--skip", &skip.to_string(), "--take", &take.to_string()])
            .args(["--hub", &opts.hubs.join(",")])
            .args(["--prefix", &opts.prefix.to_string()])
            .args(["--leads", &n.to_string()])
            .args([
                "--ack-delay-ms",
                &format!("{},{}", opts.ack_delay_ms.0, opts.ack_delay_ms.1),
            ])
            .args(["--timeout-s", &opts.timeout.as_secs().to_string()])
            .args(["--mqtt-share", &opts.mqtt_share.to_string()])
            .env("GRIDCAST_TOKEN", &opts.admin_token)
            .env("GRIDCAST_JWT_SECRET", &opts.jwt_secret)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if let Some((host, port)) = &opts.mqtt {
            cmd.args(["--mqtt", &format!("{host}:{port}")]);
        }
        let mut child = cmd.spawn().context("starting a worker process")?;
        let stdout = child.stdout.take().context("worker stdout")?;
        let mut stdin = child.stdin.take().context("worker stdin")?;
        let tx = tx.clone();
        tasks.spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                match parse(&line) {
                    Some(e) => {
                        if tx.send(e).await.is_err() {
                            return;
                        }
                    }
                    None => eprintln!("worker {k}: {line}"),
                }
            }
            let _ = tx
                .send(Event::Failed(format!("worker {k} ended early")))
                .await;
        });
        let mut go = go.clone();
        tasks.spawn(async move {
            let Some(issued) = crate::wait_go(&mut go).await else {
                return;
            };
            let at = epoch_us() - issued.elapsed().as_micros();
            let _ = stdin.write_all(format!("go {at}\n").as_bytes()).await;
            let _ = stdin.flush().await;
            // Kept open: a worker ends when its stdin closes.
            std::future::pending::<()>().await;
            drop(stdin);
        });
        children.push(child);
    }
    Ok(Workers {
        _children: children,
        tasks,
    })
}

fn parse(line: &str) -> Option<Event> {
    let us = |s: &str| s.parse().ok().map(Duration::from_micros);
    let mut w = line.splitn(3, ' ');
    Some(match (w.next()?, w.next(), w.next()) {
        ("ready", Some(m), _) => Event::Ready(m == "1"),
        ("recv", Some(d), m) => Event::Received(us(d)?, m == Some("1")),
        ("ack", Some(d), _) => Event::Acked(us(d)?),
        ("synced", Some(d), Some(n)) => Event::Synced(us(d)?, n.parse().ok()?),
        ("fail", why, rest) => Event::Failed(
            [why, rest]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" "),
        ),
        _ => return None,
    })
}

fn line(e: &Event) -> String {
    match e {
        Event::Ready(m) => format!("ready {}\n", u8::from(*m)),
        Event::Received(d, m) => format!("recv {} {}\n", d.as_micros(), u8::from(*m)),
        Event::Acked(d) => format!("ack {}\n", d.as_micros()),
        Event::Synced(d, n) => format!("synced {} {n}\n", d.as_micros()),
        Event::Failed(why) => format!("fail {}\n", why.replace('\n', " ")),
    }
}

/// A worker's main: runs the phones `skip..skip+take` of `job` and relays their
/// events to stdout until they are done or stdin closes (the parent went away).
pub async fn run(job: Job, opts: FanoutOpts, skip: usize, take: usize) -> anyhow::Result<()> {
    let leads = if job.baseline() {
        vec![Default::default(); opts.leads]
    } else {
        crate::drill_leads(&opts).await?
    };
    if skip + take > leads.len() {
        bail!(
            "phones {skip}..{} asked of {} leads",
            skip + take,
            leads.len()
        );
    }
    let (tx, mut rx) = mpsc::channel(take * 3 + 16);
    let (go_tx, go_rx) = watch::channel(None);
    let mut phones = crate::spawn_local(job, &opts, &leads, skip..skip + take, tx, go_rx);
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let mut out = BufWriter::new(tokio::io::stdout());
    let mut stdin_open = true;
    loop {
        tokio::select! {
            e = rx.recv() => {
                let Some(e) = e else { break };
                out.write_all(line(&e).as_bytes()).await?;
                while let Ok(e) = rx.try_recv() {
                    out.write_all(line(&e).as_bytes()).await?;
                }
                out.flush().await?;
            }
            l = stdin.next_line(), if stdin_open => match l {
                Ok(Some(l)) => {
                    let at: u128 = l
                        .strip_prefix("go ")
                        .and_then(|t| t.trim().parse().ok())
                        .with_context(|| format!("worker: bad line {l:?}"))?;
                    let lag = Duration::from_micros(epoch_us().saturating_sub(at) as u64);
                    let now = Instant::now();
                    let _ = go_tx.send(Some(now.checked_sub(lag).unwrap_or(now)));
                }
                _ => {
                    stdin_open = false;
                    phones.abort_all();
                }
            },
        }
    }
    out.flush().await?;
    Ok(())
}
