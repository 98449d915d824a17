//! The console with a whole drill online, measured in a real Chromium (a benchmark, not
//! a timed test: ignored by default, figures printed for BENCHMARKS.md).
//!
//! ```sh
//! cargo build --release -p gridcast-load-tests
//! cargo test --release -p gridcast-hub --test console_bench -- --ignored --nocapture
//! ```
//!
//! A `gridcast-hub` child holds the drill city of 19,000 staff; `gridcast-drill fanout`
//! (its worker processes) brings all 19,000 phones online, issues a drill to all of them
//! and answers 30–60 s later. The console is opened once they are online: the time to
//! the tree shown (roots with counts) and to the incident listed, from navigation
//! start; then, while the acks come in, the time from an ack recorded (the API's count
//! after it) to the console's bar showing it, and the page's long tasks meanwhile.

// Test harnesses spawn and wait freely; the hub's conventions (hub/clippy.toml) are
// for the hub itself.
#![allow(clippy::disallowed_methods)]

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::chromium::Browser;
use support::*;

const PHONES: usize = 19_000;

/// Records when the tree and the incident list first show, before the page's scripts.
const PROBE: &str = r#"
window.__marks = {}; window.__long = 0;
try { new PerformanceObserver(l => l.getEntries().forEach(e => window.__long += e.duration)).observe({type: 'longtask', buffered: true}); } catch (_) {}
new MutationObserver(() => {
  const m = window.__marks;
  if (!m.tree && document.querySelector('#tree .count')) m.tree = performance.now();
  if (!m.incident && document.querySelector('#incidents .incident .n.accepted')) m.incident = performance.now();
}).observe(document, {subtree: true, childList: true});
"#;

fn drill_binary() -> std::path::PathBuf {
    std::env::var_os("GRIDCAST_DRILL")
        .map(Into::into)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../target/release/gridcast-drill")
        })
}

async fn get(http: &str, path: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{http}{path}"))
        .bearer_auth(admin_token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: 19,000 phones; run with --ignored --release"]
async fn the_console_with_19000_phones_online() {
    let dir = tmp_dir("console-bench");
    std::fs::create_dir_all(&dir).unwrap();
    let registry = dir.join("city.json");
    let doc = gridcast_hub::sample::drill_city(PHONES);
    std::fs::write(&registry, serde_json::to_vec(&doc).unwrap()).unwrap();
    let port = free_port();
    let http = format!("http://127.0.0.1:{port}");
    let data = dir.join("data");
    // GRIDCAST_HUB: another build to measure the same way (the baseline of the figures).
    let binary = std::env::var_os("GRIDCAST_HUB")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_gridcast-hub").into());
    println!("hub: {}", binary.display());
    let _hub = spawn_hub_binary(
        &binary,
        port,
        &[
            "--data-dir".as_ref(),
            data.as_os_str(),
            "--registry".as_ref(),
            registry.as_os_str(),
        ],
    )
    .await;
    let drill_log = std::fs::File::create(dir.join("drill.log")).unwrap();
    let mut drill = tokio::process::Command::new(drill_binary())
        .args(["fanout", "--hub", &http, "--admin-token", &admin_token()])
        .args(["--jwt-secret", SECRET, "--leads", &PHONES.to_string()])
        .args(["--ack-delay-ms", "30000,60000", "--timeout-s", "300"])
        .stdout(drill_log)
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("gridcast-drill (cargo build --release -p gridcast-load-tests)");
    let started = Instant::now();
    eventually(Duration::from_secs(120), "every phone online", || {
        let http = http.clone();
        async move { get(&http, "/v1/presence?prefix=330106").await["online"] == json!(PHONES) }
    })
    .await;
    println!("{PHONES} phones online after {:?}", started.elapsed());
    eventually(Duration::from_secs(60), "the drill issued", || {
        let http = http.clone();
        async move {
            get(&http, "/v1/incidents?state=active").await["incidents"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
        }
    })
    .await;

    let b = Browser::start("bench").await;
    let console = b
        .page_with(
            Some("zh-CN"),
            Some(PROBE),
            &format!("{http}/console#token={}", admin_token()),
            1280,
            900,
            false,
        )
        .await;
    let marks = console
        .wait_for(
            "window.__marks.tree && window.__marks.incident && window.__marks",
            Duration::from_secs(60),
            "tree and incident shown",
        )
        .await;
    let nav = console
        .eval("performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd")
        .await;
    println!(
        "first load: DOMContentLoaded {:.0} ms, tree shown {:.0} ms, incident with its bar {:.0} ms",
        nav.as_f64().unwrap(),
        marks["tree"].as_f64().unwrap(),
        marks["incident"].as_f64().unwrap()
    );
    let first = console
        .eval("(() => { const r = performance.getEntriesByType('resource').filter(e => e.name.includes('/v1/') || e.name.includes('/web/')); return {n: r.length, bytes: r.reduce((a, e) => a + e.transferSize, 0), max: Math.max(...r.map(e => e.transferSize)), last_end_ms: Math.round(Math.max(...r.map(e => e.responseEnd)))}; })()")
        .await;
    println!("first load requests (scripts and API): {first}");
    let id = get(&http, "/v1/incidents?state=active").await["incidents"][0]["incident"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    console
        .click(&format!("#incidents [data-id=\"{id}\"]"))
        .await;
    console
        .wait_for(
            "document.querySelector('#detail tr[data-lead]')",
            Duration::from_secs(30),
            "detail",
        )
        .await;

    // While the acks come in: from an ack recorded to the bar moving.
    let shown = format!(
        "(() => {{ const e = document.querySelector('#incidents [data-id=\"{id}\"] .n.accepted'); return e ? Number(e.textContent.replace(/[^0-9]/g, '')) : 0; }})()"
    );
    eventually(Duration::from_secs(90), "the acks begin", || {
        let http = http.clone();
        let id = id.clone();
        async move {
            get(&http, &format!("/v1/incidents/{id}")).await["counts"]["accepted"].as_u64()
                > Some(100)
        }
    })
    .await;
    console.eval("window.__long = 0").await;
    let mut samples = Vec::new();
    for _ in 0..15 {
        let recorded = get(&http, &format!("/v1/incidents/{id}")).await["counts"]["accepted"]
            .as_u64()
            .unwrap();
        if recorded as usize >= PHONES {
            break;
        }
        let t0 = Instant::now();
        console
            .wait_for(
                &format!("{shown} >= {recorded}"),
                Duration::from_secs(10),
                "the bar moved",
            )
            .await;
        samples.push(t0.elapsed().as_millis() as u64);
        tokio::time::sleep(Duration::from_millis(700)).await; // spread the samples over the ack window
    }
    samples.sort_unstable();
    let long = console.eval("window.__long").await;
    let heap = console
        .eval("performance.memory ? performance.memory.usedJSHeapSize : 0")
        .await;
    let requests = console
        .eval("(() => { const r = performance.getEntriesByType('resource').filter(e => e.name.includes('/v1/')); return {n: r.length, bytes: r.reduce((a, e) => a + e.transferSize, 0), max: Math.max(...r.map(e => e.transferSize)), leads: r.filter(e => e.name.includes('leads=true')).map(e => e.name.split('prefix=')[1])}; })()")
        .await;
    println!(
        "ack recorded -> bar moved: n={} median {} ms, max {} ms (±50 ms polling); long tasks during the acks {:.0} ms; JS heap {:.1} MiB",
        samples.len(),
        samples[samples.len() / 2],
        samples[samples.len() - 1],
        long.as_f64().unwrap_or(0.0),
        heap.as_f64().unwrap_or(0.0) / 1048576.0
    );
    println!("console requests: {requests}");
    let status = tokio::time::timeout(Duration::from_secs(300), drill.wait())
        .await
        .expect("the drill ends")
        .unwrap();
    println!(
        "drill: {status}\n{}",
        std::fs::read_to_string(dir.join("drill.log")).unwrap()
    );
}
