//! Test support: hubs on 127.0.0.1:0 with their own data dirs, tokens, and generated
//! registries. Every wait is on an event with a timeout, never a sleep.

// Test harnesses spawn and wait freely; the hub's conventions (hub/clippy.toml) are
// for the hub itself.
#![allow(clippy::disallowed_methods)]
#![allow(dead_code, unreachable_pub)]

pub mod attack;
pub mod chromium;
pub mod mosquitto;
pub mod mqtt_phone;
pub mod proxy;
pub mod redis;
pub mod stall;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use gridcast_clients::console::ConsoleClient;
use gridcast_hub::Config;
use gridcast_hub::auth::{Auth, Claims, TokenRole};
use gridcast_protocol::registry::{AssignmentDoc, GridDoc, RegistryDoc, StaffDoc};
use tokio_util::sync::CancellationToken;

pub const SECRET: &str = "test-secret-0123456789";

/// Town prefixes of the generated city.
pub const TOWN_A: &str = "330106004";
pub const TOWN_B: &str = "330106101";

pub fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gridcast-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real `gridcast-hub` child process on `port` with these extra flags, once ready.
pub async fn spawn_hub(port: u16, args: &[&std::ffi::OsStr]) -> tokio::process::Child {
    spawn_hub_binary(env!("CARGO_BIN_EXE_gridcast-hub").as_ref(), port, args).await
}

/// [`spawn_hub`] with another build of the hub (a benchmark's baseline).
pub async fn spawn_hub_binary(
    binary: &std::path::Path,
    port: u16,
    args: &[&std::ffi::OsStr],
) -> tokio::process::Child {
    let child = tokio::process::Command::new(binary)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--jwt-secret")
        .arg(SECRET)
        .args([
            "--approval-levels",
            "none",
            "--approval-county-wide",
            "false",
        ])
        .args(args)
        .env("GRIDCAST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start gridcast-hub");
    let http = reqwest::Client::new();
    eventually(Duration::from_secs(30), "hub ready", || {
        let http = http.clone();
        async move {
            http.get(format!("http://127.0.0.1:{port}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        }
    })
    .await;
    child
}

/// A real hub child whose log (stdout and stderr) goes to `log`, once ready.
pub async fn spawn_hub_logged(
    port: u16,
    args: &[String],
    log: &std::path::Path,
) -> tokio::process::Child {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_gridcast-hub"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .args(["--jwt-secret", SECRET, "--approval-levels", "none"])
        .args(["--approval-county-wide", "false"])
        .args(args)
        .env("GRIDCAST_LOG", "info")
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .kill_on_drop(true)
        .spawn()
        .expect("start gridcast-hub");
    ready_is(
        &format!("http://127.0.0.1:{port}"),
        true,
        Duration::from_secs(30),
    )
    .await;
    child
}

/// A counter of a hub's `/metrics` (at base URL `http`), 0 while it has none.
pub async fn metric(http: &str, name: &str) -> u64 {
    let text = reqwest::get(format!("{http}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Polls `GET /readyz` of a hub until it answers `want`.
pub async fn ready_is(http: &str, want: bool, limit: Duration) {
    let client = reqwest::Client::new();
    eventually(limit, &format!("{http}/readyz == {want}"), || {
        let client = client.clone();
        async move {
            client
                .get(format!("{http}/readyz"))
                .send()
                .await
                .is_ok_and(|r| (r.status() == 200) == want)
        }
    })
    .await;
}

pub fn auth() -> Auth {
    Auth::new(SECRET.as_bytes())
}

/// The console's live stream of the hub at `http`, as a city-wide operator.
pub async fn console_stream(http: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{http}/v1/console/events"))
        .bearer_auth(token("op", TokenRole::Operator, ""))
        .send()
        .await
        .expect("the console stream opens")
}

pub fn token(sub: &str, role: TokenRole, scope: &str) -> String {
    let exp = gridcast_hub::now_ms() / 1000 + 3600;
    auth().sign(&Claims {
        sub: sub.into(),
        role,
        scope: scope.into(),
        exp,
        jti: None,
    })
}

/// A token with a chosen expiry (Unix s) and token id.
pub fn token_until(sub: &str, role: TokenRole, exp: u64, jti: Option<&str>) -> String {
    auth().sign(&Claims {
        sub: sub.into(),
        role,
        scope: String::new(),
        exp,
        jti: jti.map(str::to_owned),
    })
}

pub fn lead_token(id: &str) -> String {
    token(id, TokenRole::Lead, "")
}

pub fn admin_token() -> String {
    token("admin", TokenRole::Admin, "")
}

/// A city of `people` staff in two towns: per town 2 communities, community/rural/
/// dedicated grids with micro-grids; roles cycle so every role appears, and every fifth
/// person also has a second assignment in the other town.
pub fn city(people: usize) -> RegistryDoc {
    let mut grids = Vec::new();
    let mut codes = Vec::new();
    for town in [TOWN_A, TOWN_B] {
        for community in ["005", "006"] {
            for (kind, kind_name) in [('1', "community"), ('2', "rural"), ('3', "dedicated")] {
                for serial in 1..=4 {
                    let code = format!("{town}{community}{kind}{serial:03}");
                    grids.push(GridDoc {
                        code: code.clone(),
                        name: code.clone(),
                        kind: Some(kind_name.into()),
                        geometry: None,
                        supervision_phone: None,
                    });
                    grids.push(GridDoc {
                        code: format!("{code}001"),
                        name: String::new(),
                        kind: None,
                        geometry: None,
                        supervision_phone: None,
                    });
                    codes.push(code);
                }
            }
        }
    }
    let roles = [
        "grid_lead",
        "full_time",
        "part_time",
        "instructor",
        "micro_lead",
    ];
    let staff = (0..people)
        .map(|i| {
            let code = &codes[i % codes.len()];
            let role = roles[i % roles.len()];
            let grid = if role == "micro_lead" {
                format!("{code}001")
            } else {
                code.clone()
            };
            let mut assignments = vec![AssignmentDoc {
                grid,
                role: role.into(),
            }];
            if i % 5 == 1 {
                let other = &codes[(i + codes.len() / 2) % codes.len()];
                assignments.push(AssignmentDoc {
                    grid: other.clone(),
                    role: "part_time".into(),
                });
            }
            StaffDoc {
                id: format!("P{i:05}"),
                name: format!("Person {i}"),
                phone: format!("139{i:08}"),
                work_contact: None,
                assignments,
            }
        })
        .collect();
    RegistryDoc {
        grids,
        staff,
        task_kinds: vec![],
        areas: vec![],
    }
}

pub struct TestHub {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<()>,
    pub dir: PathBuf,
}

impl TestHub {
    pub async fn start(
        name: &str,
        registry: Option<RegistryDoc>,
        tweak: impl FnOnce(&mut Config),
    ) -> TestHub {
        let dir = tmp_dir(name);
        let clock = std::sync::Arc::new(gridcast_hub::clock::SystemClock);
        Self::start_in(dir, registry, tweak, clock).await
    }

    /// A hub in `dir` (kept as it is: a restart finds its data) reading `clock`.
    pub async fn start_in(
        dir: PathBuf,
        registry: Option<RegistryDoc>,
        tweak: impl FnOnce(&mut Config),
        clock: std::sync::Arc<dyn gridcast_hub::clock::Clock>,
    ) -> TestHub {
        std::fs::create_dir_all(&dir).unwrap();
        let mut config = Config::with_data_dir(dir.join("data"));
        config.jwt_secret = Some(SECRET.into());
        // The two-person rule has its own tests (approval.rs); the others issue level
        // I and II activations as one person.
        config.approval_levels = Vec::new();
        config.approval_county_wide = false;
        if let Some(doc) = registry {
            let path = dir.join("registry.json");
            std::fs::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();
            config.registry = Some(path);
        }
        tweak(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let s = shutdown.clone();
        let task = tokio::spawn(async move {
            gridcast_hub::run_with_clock(config, listener, s, clock)
                .await
                .unwrap()
        });
        TestHub {
            addr,
            shutdown,
            task,
            dir,
        }
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/lead/ws", self.addr)
    }

    pub fn http(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn console(&self, scope: &str) -> ConsoleClient {
        ConsoleClient::new(&self.http(), &token("op-1", TokenRole::Operator, scope))
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("hub stops")
            .unwrap();
    }
}

/// Waits for `f` to be true, polling state the hub exposes, up to `limit`.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if f().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn activation(
    title: &str,
    codes: &[&str],
    roles: &[&str],
) -> gridcast_protocol::api::CreateIncident {
    serde_json::from_value(serde_json::json!({
        "title": title, "body": "Move residents of low floors to the school gym.",
        "level": "II", "category": "natural", "drill": false,
        "targets": { "codes": codes, "roles": roles }
    }))
    .unwrap()
}

/// Grids of [`two_grid_city`].
pub const G1: &str = "3301060040051001";
pub const G1_MICRO: &str = "3301060040051001001";
pub const G2: &str = "3301060040051002";

/// Two grids, one with a micro-grid; each grid has a lead and an instructor.
pub fn two_grid_city() -> RegistryDoc {
    let grid = |code: &str, kind: Option<&str>| GridDoc {
        code: code.into(),
        name: code.into(),
        kind: kind.map(str::to_owned),
        geometry: None,
        supervision_phone: None,
    };
    let person = |id: &str, grid: &str, role: &str| StaffDoc {
        id: id.into(),
        name: id.into(),
        phone: "13900000000".into(),
        work_contact: None,
        assignments: vec![AssignmentDoc {
            grid: grid.into(),
            role: role.into(),
        }],
    };
    RegistryDoc {
        grids: vec![
            grid(G1, Some("community")),
            grid(G1_MICRO, None),
            grid(G2, Some("community")),
        ],
        staff: vec![
            person("GL1", G1, "grid_lead"),
            person("IN1", G1, "instructor"),
            person("S1", G1_MICRO, "micro_lead"),
            person("A1", G1, "full_time"),
            person("GL2", G2, "grid_lead"),
            person("IN2", G2, "instructor"),
            person("S2", G2, "part_time"),
        ],
        task_kinds: vec![],
        areas: vec![],
    }
}

/// The leads an incident was sent to.
pub async fn recipient_leads(ops: &ConsoleClient, id: &str) -> std::collections::BTreeSet<String> {
    ops.recipients(id, None)
        .await
        .unwrap()
        .recipients
        .into_iter()
        .map(|r| r.lead)
        .collect()
}

/// POSTs JSON with `c`: the answer, or the refusal's status and code.
pub async fn post_json(
    c: &ConsoleClient,
    path: &str,
    body: serde_json::Value,
) -> Result<serde_json::Value, (u16, String)> {
    match c
        .send_json::<serde_json::Value>(reqwest::Method::POST, path, &body)
        .await
    {
        Ok(v) => Ok(v),
        Err(gridcast_clients::ClientError::Hub { status, code, .. }) => Err((status, code)),
        Err(e) => panic!("{path}: {e}"),
    }
}
