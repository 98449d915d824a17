//! One simulated WebSocket phone of a fan-out drill: connect, sync, receipt, ack (resent
//! until answered), every delivery timed.

use crate::*;

/// What a phone reports.
#[derive(Debug)]
pub enum Event {
    /// Connected and synced.
    Ready(bool),
    /// Got the drill (true: over MQTT).
    Received(Duration, bool),
    /// Its ack was answered `ok`.
    Acked(Duration),
    /// Storm: synced again this long after the drop, with this many incidents.
    Synced(Duration, usize),
    /// Gave up.
    Failed(String),
}

/// Connection attempts in flight at once (a ramp, not a single SYN flood), and how
/// often a phone tries before it counts as failed (phones retry, with backoff).
pub(crate) const CONNECTING_AT_ONCE: usize = 256;
pub(crate) const CONNECT_TRIES: u32 = 5;
/// How often a phone sends its ack on one connection before it gives up.
pub(crate) const ACK_TRIES: u32 = 20;

/// The ack every drill phone (and the answering baseline's client) sends: accept, with
/// a `ref` so that the hub answers it.
pub(crate) fn drill_ack(incident: String) -> ClientFrame {
    ClientFrame::Ack {
        incident,
        response: Response::Accept,
        note: None,
        reference: Some("a".into()),
    }
}

/// Connects and syncs a WebSocket phone, retrying like a phone does; the last error
/// if it never got through.
pub(crate) async fn ws_connect(
    url: &str,
    token: &str,
    gate: &tokio::sync::Semaphore,
) -> Result<LeadClient, String> {
    let mut last = String::new();
    for attempt in 1..=CONNECT_TRIES {
        let tried = async {
            let _slot = gate.acquire().await.map_err(|e| e.to_string())?;
            let (mut c, _) = LeadClient::connect(url, token)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            c.sync().await.map_err(|e| format!("sync: {e}"))?;
            Ok::<_, String>(c)
        };
        match tried.await {
            Ok(c) => return Ok(c),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
    }
    Err(last)
}

/// Connects and syncs, returning the sync's frames too.
pub(crate) async fn connect_sync(
    url: &str,
    token: &str,
    gate: &tokio::sync::Semaphore,
) -> Option<(LeadClient, Vec<ServerFrame>)> {
    let _slot = gate.acquire().await.ok()?;
    let (mut c, _) = LeadClient::connect(url, token).await.ok()?;
    let sync = c.sync().await.ok()?;
    Some((c, sync))
}

/// The drill incident in a sync that still needs this phone's answer.
pub(crate) fn unanswered(sync: &[ServerFrame]) -> Option<gridcast_protocol::frame::IncidentView> {
    sync.iter().find_map(|f| match f {
        ServerFrame::Incident { incident, me } if incident.drill => {
            let answered = me.as_ref().is_some_and(|m| {
                matches!(
                    m.status,
                    gridcast_protocol::Status::Accepted | gridcast_protocol::Status::Declined
                )
            });
            (!answered).then(|| incident.clone())
        }
        _ => None,
    })
}

/// One WebSocket phone: sync, wait for the drill, receipt, ack after a delay. When its
/// node goes away it moves to the next node, as a phone behind a load balancer does,
/// and finds the drill again in that node's sync.
pub(crate) async fn ws_phone(
    urls: Arc<Vec<String>>,
    start: usize,
    token: String,
    delay: Duration,
    tx: mpsc::Sender<Event>,
    mut go: watch::Receiver<Option<Instant>>,
    gate: Arc<tokio::sync::Semaphore>,
) {
    let mut c = match ws_connect(&urls[start % urls.len()], &token, &gate).await {
        Ok(c) => c,
        Err(e) => {
            let _ = tx
                .send(Event::Failed(format!("websocket phone: {e}")))
                .await;
            return;
        }
    };
    let run = async {
        tx.send(Event::Ready(false)).await.ok()?;
        let issued = wait_go(&mut go).await?;
        let (mut node, mut moves) = (start, 0);
        let mut from_sync = None;
        let mut received = false;
        loop {
            let live = match from_sync.take() {
                Some(v) => Some(v),
                None => loop {
                    match c.next().await {
                        Ok(ServerFrame::Incident { incident, .. }) if incident.drill => {
                            break Some(incident);
                        }
                        Ok(_) => {}
                        Err(_) => break None,
                    }
                },
            };
            let answered = match live {
                Some(incident) => {
                    if !received {
                        received = true;
                        tx.send(Event::Received(issued.elapsed(), false))
                            .await
                            .ok()?;
                        let receipt = ClientFrame::Receipt {
                            incident: incident.id.clone(),
                            rev: incident.rev,
                            reference: None,
                        };
                        let _ = c.send(&receipt).await;
                        tokio::time::sleep(delay).await; // the person reading and answering
                    }
                    let ack = drill_ack(incident.id);
                    // A phone retries its ack until it is answered `ok` (the hub may
                    // answer `unavailable` while its store recovers); a dead
                    // connection sends it to the next node.
                    let mut answered = false;
                    for attempt in 1..=ACK_TRIES {
                        match c.request(&ack).await {
                            Ok((Ok(()), _)) => {
                                answered = true;
                                break;
                            }
                            Ok((Err(_), _)) => {
                                let backoff = 100 * u64::from(attempt);
                                tokio::time::sleep(Duration::from_millis(backoff)).await;
                            }
                            Err(_) => break,
                        }
                    }
                    answered
                }
                None => false,
            };
            if answered {
                tx.send(Event::Acked(issued.elapsed())).await.ok()?;
                c.close().await;
                return Some(());
            }
            // The node went away: the next one, and the drill from its sync.
            loop {
                moves += 1;
                if moves > 10 {
                    return None;
                }
                node += 1;
                tokio::time::sleep(Duration::from_millis(100 * moves)).await;
                if let Some((next, sync)) =
                    connect_sync(&urls[node % urls.len()], &token, &gate).await
                {
                    c = next;
                    from_sync = unanswered(&sync);
                    break;
                }
            }
        }
    };
    if run.await.is_none() {
        let _ = tx.send(Event::Failed("websocket phone".into())).await;
    }
}
