//! The Kubernetes manifests (deploy/k8s) validate offline against a pinned Kubernetes
//! (kubernetes-validate, strict), a broken one does not, and every GRIDCAST_ variable
//! they set is one the hub reads.

use std::path::{Path, PathBuf};

/// The Kubernetes version the manifests are checked against.
const KUBERNETES: &str = "1.33.0";

fn manifests() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/k8s");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 8, "{files:?}");
    files
}

fn validate(files: &[PathBuf]) -> std::process::Output {
    std::process::Command::new("python3")
        .args([
            "-m",
            "kubernetes_validate",
            "--strict",
            "--quiet",
            "-k",
            KUBERNETES,
        ])
        .args(files)
        .output()
        .expect("python3 runs; .ci/run installs it and kubernetes-validate (PyPI)")
}

#[test]
fn the_manifests_validate_and_a_broken_one_does_not() {
    let files = manifests();
    let out = validate(&files);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The check can fail: a misspelt field is refused.
    let deployment = std::fs::read_to_string(
        files
            .iter()
            .find(|f| f.ends_with("deployment.yaml"))
            .unwrap(),
    )
    .unwrap();
    let broken = std::env::temp_dir().join(format!("gridcast-broken-{}.yaml", std::process::id()));
    std::fs::write(
        &broken,
        deployment.replace("containerPort:", "containerPorts:"),
    )
    .unwrap();
    assert!(!validate(&[broken]).status.success());
}

#[test]
fn every_variable_the_manifests_set_is_one_the_hub_reads() {
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_gridcast-hub"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    let mut seen = 0;
    for f in manifests() {
        let text = std::fs::read_to_string(&f).unwrap();
        for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("GRIDCAST_") && word != "GRIDCAST_LOG" {
                seen += 1;
                // `[env: NAME=value]`, or `[env: NAME]` for a secret's.
                assert!(
                    help.contains(&format!("[env: {word}="))
                        || help.contains(&format!("[env: {word}]")),
                    "{}: {word} is no flag's twin",
                    f.display()
                );
            }
        }
    }
    assert!(seen > 10, "{seen}");
}
