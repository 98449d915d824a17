//! The served OpenAPI document (`GET /v1/openapi.json`) validates
//! (openapi-spec-validator), and schemathesis, run against a real hub child with an
//! admin token and every check, finds nothing: no undocumented status or content type,
//! no answer outside its schema, no schema-valid request refused, no schema-violating
//! one taken (tools/schemathesis/schemathesis.toml names the operations whose
//! registry-dependent refusals a schema cannot express).

// Test harnesses spawn and wait freely; the hub's conventions (hub/clippy.toml) are
// for the hub itself.
#![allow(clippy::disallowed_methods)]

mod support;

use std::path::Path;

use support::*;

const RUN_SCHEMATHESIS: &str = "import sys; from schemathesis.cli import schemathesis; sys.argv[0] = 'schemathesis'; sys.exit(schemathesis())";
const VALIDATE: &str = "import json, sys; from openapi_spec_validator import validate; validate(json.load(open(sys.argv[1]))); print('valid')";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_openapi_validates_and_schemathesis_finds_nothing() {
    let port = free_port();
    let dir = tmp_dir("openapi");
    let _hub = spawn_hub(port, &["--data-dir".as_ref(), dir.as_os_str()]).await;
    let base = format!("http://127.0.0.1:{port}");
    let doc = reqwest::get(format!("{base}/v1/openapi.json"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let path = dir.join("openapi.json");
    std::fs::write(&path, &doc).unwrap();
    let out = std::process::Command::new("python3")
        .args(["-c", VALIDATE])
        .arg(&path)
        .output()
        .expect("python3 with openapi-spec-validator (.ci/run installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = admin_token();
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/schemathesis");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .current_dir(tools)
            .args(["-c", RUN_SCHEMATHESIS, "run"])
            .arg(format!("{base}/v1/openapi.json"))
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .args(["--checks", "all", "--max-examples", "40", "--seed", "1"])
            .args(["--exclude-path", "/v1/console/events", "--no-color"])
            .output()
            .expect("python3 with schemathesis (.ci/run installs it)")
    })
    .await
    .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && !report.contains("FAILURES"),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("Tested: "), "{report}");
}
