//! The console's live stream (`GET /v1/console/events`, server-sent events), filtered
//! by the operator's jurisdiction, ended when its token expires or is revoked.

use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::{ApiResult, Operator};
use crate::Hub;
use crate::auth::Claims;

pub(super) async fn console_events(
    State(hub): State<Hub>,
    Operator(op): Operator,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let rx = hub.console.subscribe();
    // The city-wide count only for a city-wide operator; a scoped one gets its own.
    let online = if op.scope.is_empty() {
        hub.presence.online_leads()
    } else {
        let scope = op.scope.clone();
        hub.presence
            .online()
            .iter()
            .filter(|l| {
                l.assignments
                    .iter()
                    .any(|a| a.grid.as_str().starts_with(&scope))
            })
            .count()
    };
    let hello = Event::default().event("hello").data(
        serde_json::json!({ "node": hub.node_id, "scope": op.scope, "online": online }).to_string(),
    );
    let stop = hub.shutdown.clone();
    let metrics = hub.metrics.clone();
    // The stream ends when its token expires or is revoked: the console signs in again.
    let until = tokio::time::Instant::now() + op.expires_in();
    let revocations = (hub.revocations.clone(), hub.revocations.changed());
    struct StreamState {
        rx: tokio::sync::broadcast::Receiver<crate::console::ConsoleEvent>,
        first: Option<Event>,
        op: Claims,
        revocations: (
            std::sync::Arc<crate::revocation::Revocations>,
            tokio::sync::watch::Receiver<u64>,
        ),
    }
    let state = StreamState {
        rx,
        first: Some(hello),
        op,
        revocations,
    };
    let stream = futures_util::stream::unfold(state, move |mut st| {
        let stop = stop.clone();
        let metrics = metrics.clone();
        async move {
            if let Some(e) = st.first.take() {
                return Some((Ok(e), st));
            }
            loop {
                let msg = tokio::select! {
                    m = st.rx.recv() => m,
                    () = stop.cancelled() => return None,
                    () = tokio::time::sleep_until(until) => {
                        metrics.sessions_expired.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        return None;
                    }
                    Ok(()) = st.revocations.1.changed() => {
                        if st.revocations.0.is_revoked(&st.op) {
                            metrics.sessions_expired.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            return None;
                        }
                        continue;
                    }
                };
                match msg {
                    Ok(ev) => {
                        if let Some(data) = ev.for_scope(&st.op.scope) {
                            let e = Event::default().event(ev.name).data(data.to_string());
                            return Some((Ok(e), st));
                        }
                    }
                    Err(RecvError::Lagged(n)) => {
                        metrics
                            .console_lagged
                            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                        let e = Event::default()
                            .event("lagged")
                            .data(serde_json::json!({ "skipped": n }).to_string());
                        return Some((Ok(e), st));
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
