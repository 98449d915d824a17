//! The revocation list (`--revoked-tokens FILE`): tokens refused although their
//! signature and expiry are good, by token id (`jti:ID`) or by subject (`sub:ID`, every
//! token of that lead or operator).
//!
//! The file is read at start and again whenever its modification time or length
//! changes (checked every [`POLL`]), so a revocation needs no restart and works with a
//! mounted ConfigMap or Secret. A file that cannot be read or parsed keeps the list in
//! force and logs why: a typo must never un-revoke a stolen token. Sessions and console
//! streams watch [`Revocations::changed`] and end when their own token is listed.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::auth::Claims;

/// How often the file is looked at.
pub(crate) const POLL: Duration = Duration::from_secs(2);

#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct List {
    jti: HashSet<String>,
    sub: HashSet<String>,
}

/// Parses a revocation file: one `jti:ID` or `sub:ID` a line, `#` comments, blank lines.
fn parse(text: &str) -> Result<List, String> {
    let mut list = List::default();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        match line.split_once(':').map(|(k, v)| (k.trim(), v.trim())) {
            Some(("jti", v)) if !v.is_empty() => list.jti.insert(v.to_owned()),
            Some(("sub", v)) if !v.is_empty() => list.sub.insert(v.to_owned()),
            _ => {
                return Err(format!(
                    "line {}: expected `jti:ID` or `sub:ID`, found {line:?}",
                    n + 1
                ));
            }
        };
    }
    Ok(list)
}

/// The revocation list in force.
pub(crate) struct Revocations {
    path: Option<PathBuf>,
    list: RwLock<Arc<List>>,
    changed: watch::Sender<u64>,
}

impl Revocations {
    /// No list (`--revoked-tokens` not given).
    pub(crate) fn none() -> Self {
        Self {
            path: None,
            list: RwLock::default(),
            changed: watch::Sender::new(0),
        }
    }

    /// Reads the list at `path`; start-up fails on a file that cannot be read or parsed.
    pub(crate) fn open(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let list = parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Self {
            path: Some(path.to_owned()),
            list: RwLock::new(Arc::new(list)),
            changed: watch::Sender::new(0),
        })
    }

    /// True when `claims` are listed (by id or by subject).
    pub(crate) fn is_revoked(&self, claims: &Claims) -> bool {
        let list = self.list.read().unwrap_or_else(|p| p.into_inner()).clone();
        list.sub.contains(&claims.sub) || claims.jti.as_ref().is_some_and(|j| list.jti.contains(j))
    }

    /// Ticks whenever a new list is in force.
    pub(crate) fn changed(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn replace(&self, list: List) -> bool {
        let mut cur = self.list.write().unwrap_or_else(|p| p.into_inner());
        if **cur == list {
            return false;
        }
        *cur = Arc::new(list);
        drop(cur);
        self.changed.send_modify(|n| *n += 1);
        true
    }

    /// Re-reads the file whenever it changes, until `shutdown`.
    pub(crate) async fn watch(self: Arc<Self>, shutdown: CancellationToken) {
        let Some(path) = self.path.clone() else {
            return;
        };
        let stamp =
            |m: std::fs::Metadata| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len());
        let mut seen = tokio::fs::metadata(&path).await.ok().map(stamp);
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return,
            }
            let now = tokio::fs::metadata(&path).await.ok().map(stamp);
            if now == seen {
                continue;
            }
            seen = now;
            match tokio::fs::read_to_string(&path)
                .await
                .map_err(|e| e.to_string())
                .and_then(|t| parse(&t))
            {
                Ok(list) => {
                    let (jti, sub) = (list.jti.len(), list.sub.len());
                    if self.replace(list) {
                        tracing::info!(path = %path.display(), jti, sub, "revocation list reloaded");
                    }
                }
                Err(e) => tracing::error!(
                    path = %path.display(),
                    error = %e,
                    "revocation list not reloaded; the previous list stays in force"
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::TokenRole;

    fn claims(sub: &str, jti: Option<&str>) -> Claims {
        Claims {
            sub: sub.into(),
            role: TokenRole::Lead,
            scope: String::new(),
            exp: 1,
            jti: jti.map(str::to_owned),
        }
    }

    #[test]
    fn lists_revoke_by_id_or_subject_and_refuse_garbage() {
        let r = Revocations::none();
        assert!(!r.is_revoked(&claims("L1", Some("t1"))));
        let list = parse("# stolen phone\njti: t1\nsub:L9  # left the job\n\n").unwrap();
        assert!(r.replace(list.clone()));
        assert!(!r.replace(list));
        assert!(r.is_revoked(&claims("L1", Some("t1"))));
        assert!(!r.is_revoked(&claims("L1", Some("t2"))));
        assert!(!r.is_revoked(&claims("L1", None)));
        assert!(r.is_revoked(&claims("L9", None)));
        let e = parse("jti:a\nL1\n").unwrap_err();
        assert!(e.contains("line 2"), "{e}");
        assert!(parse("sub:").is_err());
    }
}
