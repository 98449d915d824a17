//! The tools as a newcomer calls them: `gridcast-drill city` then `fanout --registry
//! FILE` with nothing but the hub's key (no admin token to mint first); `--help` names
//! every subcommand; a closed pipe ends a tool quietly.

use std::process::Stdio;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

const SECRET: &str = "drill-cli-secret-0123456789";

fn drill() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_gridcast-drill"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_takes_a_registry_file_and_needs_only_the_key() {
    let dir = std::env::temp_dir().join(format!("gridcast-drill-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let city = dir.join("city.json");
    let made = drill()
        .args(["city", "--leads", "40", "--out"])
        .arg(&city)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let mut config = gridcast_hub::Config::with_data_dir(dir.join("data"));
    config.jwt_secret = Some(SECRET.into());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let hub = tokio::spawn(gridcast_hub::run_with_clock(
        config,
        listener,
        shutdown.clone(),
        std::sync::Arc::new(gridcast_hub::clock::SystemClock),
    ));
    let out = tokio::task::spawn_blocking(move || {
        drill()
            .args([
                "fanout",
                "--hub",
                &format!("http://{addr}"),
                "--jwt-secret",
                SECRET,
            ])
            .args([
                "--leads",
                "40",
                "--timeout-s",
                "60",
                "--ack-delay-ms",
                "0,10",
            ])
            .arg("--registry")
            .arg(&city)
            .env_remove("GRIDCAST_TOKEN")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("recipients      40"), "{stdout}");
    assert!(stdout.contains("acked           40"), "{stdout}");
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), hub)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[test]
fn help_lists_every_subcommand_with_its_purpose() {
    let out = drill().arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for cmd in ["city", "fanout", "baseline", "sustained", "storm"] {
        let line = help
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{cmd} ")))
            .unwrap_or_else(|| panic!("{cmd} in --help:\n{help}"));
        assert!(
            line.split_whitespace().count() > 2,
            "{cmd} has a purpose: {line}"
        );
    }
}

#[test]
fn a_closed_pipe_ends_the_tool_quietly() {
    let mut child = drill()
        .arg("--help")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    // The report's lines are written the same way (`out!`): a fanout | head ends quietly.
    let mut child = drill()
        .args(["city", "--leads", "5", "--out", "/dev/null"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
