//! Logs that tools read: a hub whose stdout is a file writes one JSON object per line
//! (`jq` parses every line; the activation's and the ack's spans are on their events);
//! `--log-format text` into a file has no colour codes; the latency histograms count.

// Test harnesses spawn and wait freely; the hub's conventions (hub/clippy.toml) are
// for the hub itself.
#![allow(clippy::disallowed_methods)]

mod support;

use std::time::Duration;

use gridcast_clients::lead::LeadClient;
use gridcast_protocol::frame::{ClientFrame, ServerFrame};
use gridcast_protocol::model::Response;
use support::*;

/// Runs a hub with `args` into `log`, issues one activation that one lead accepts,
/// and stops the hub with SIGTERM; returns its log, its `/metrics` from before the
/// stop, and the log's path.
async fn one_activation(name: &str, args: &[&str]) -> (String, String, std::path::PathBuf) {
    let dir = tmp_dir(name);
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("hub.log");
    let port = free_port();
    let registry = dir.join("registry.json");
    std::fs::write(&registry, serde_json::to_vec(&two_grid_city()).unwrap()).unwrap();
    let mut all = vec![
        "--data-dir".to_owned(),
        dir.join("data").display().to_string(),
        "--registry".to_owned(),
        registry.display().to_string(),
    ];
    all.extend(args.iter().map(|a| a.to_string()));
    let mut child = spawn_hub_logged(port, &all, &log).await;
    let http = format!("http://127.0.0.1:{port}");
    let ws = format!("ws://127.0.0.1:{port}/v1/lead/ws");
    let (mut phone, _) = LeadClient::connect(&ws, &lead_token("GL1")).await.unwrap();
    phone.sync().await.unwrap();
    let ops = gridcast_clients::console::ConsoleClient::new(
        &http,
        &token("op-1", gridcast_hub::auth::TokenRole::Operator, ""),
    );
    let mut req = activation("Flood", &["330106004"], &["grid_lead"]);
    req.level = gridcast_protocol::Level::III;
    let inc = ops.activate(&req).await.unwrap().id;
    loop {
        let f = tokio::time::timeout(Duration::from_secs(10), phone.next())
            .await
            .unwrap()
            .unwrap();
        if matches!(&f, ServerFrame::Incident { incident, .. } if incident.id == inc) {
            break;
        }
    }
    let ack = ClientFrame::Ack {
        incident: inc.clone(),
        response: Response::Accept,
        note: None,
        reference: Some("a".into()),
    };
    phone.request(&ack).await.unwrap().0.unwrap();
    let metrics = reqwest::get(format!("{http}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("the hub stops on SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
    (std::fs::read_to_string(&log).unwrap(), metrics, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirected_log_is_json_lines_that_jq_reads_with_the_activation_span() {
    let (text, metrics, path) = one_activation("logs-json", &[]).await;
    assert!(!text.contains('\u{1b}'), "no colour codes in a file");
    // jq reads every line as JSON (fromjson fails on any line that is not).
    let out = std::process::Command::new("jq")
        .args([
            "-R",
            "-c",
            "fromjson | [.level, .message, (.spans // [] | map(.name))]",
        ])
        .arg(&path)
        .output()
        .expect("jq is installed; .ci/run installs it");
    assert!(
        out.status.success(),
        "a line jq cannot read: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = String::from_utf8(out.stdout).unwrap();
    assert_eq!(lines.lines().count(), text.lines().count());
    assert!(
        lines
            .lines()
            .any(|l| l.starts_with("[\"INFO\",\"incident issued\"") && l.contains("\"activation\"")),
        "the issue line is inside the activation span:\n{lines}"
    );
    assert!(lines.contains("\"shutting down\""), "{lines}");
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        for field in ["timestamp", "level", "target", "message"] {
            assert!(v.get(field).is_some(), "{field} missing: {line}");
            // An event field of the same name would shadow it (the last one wins).
            assert_eq!(
                line.matches(&format!("\"{field}\":")).count(),
                1,
                "{field} twice: {line}"
            );
        }
    }
    // The latency histograms saw the receipt and the ack.
    for name in [
        "gridcast_delivery_seconds_count",
        "gridcast_ack_seconds_count",
    ] {
        let n: u64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} in /metrics"))
            .parse()
            .unwrap();
        assert!(n >= 1, "{name} = {n}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_logs_into_a_file_have_no_colour_codes() {
    let (text, _, _) = one_activation("logs-text", &["--log-format", "text"]).await;
    assert!(text.contains("incident issued"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "colour codes in a redirected log:\n{text}"
    );
    assert!(serde_json::from_str::<serde_json::Value>(text.lines().next().unwrap()).is_err());
}
