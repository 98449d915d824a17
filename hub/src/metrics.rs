//! Prometheus metrics, rendered by the hub's own `/metrics` route.
//!
//! A handful of atomics and two fixed-bucket histograms: no registry, no labels with ids
//! (label sets are bounded by construction), nothing on the hot path but relaxed adds.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// A histogram with fixed buckets in seconds.
#[derive(Debug)]
pub(crate) struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_us: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub(crate) fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = self.bounds.iter().position(|&b| s <= b) {
            self.counts[i].fetch_add(1, Relaxed);
        }
        self.sum_us.fetch_add(d.as_micros() as u64, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            cumulative += c.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_us.load(Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {count}");
    }
}

const FANOUT_BOUNDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
/// People's response times: seconds to an hour.
const RESPONSE_BOUNDS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];
const STORE_BOUNDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5,
];

/// Every metric the hub exports.
#[derive(Debug)]
pub(crate) struct Metrics {
    /// Open lead sessions.
    pub(crate) sessions: AtomicI64,
    /// Sessions ever opened (after a good hello).
    pub(crate) sessions_opened: AtomicU64,
    /// Sessions refused at hello (bad token, unknown lead, timeout, bad first frame).
    pub(crate) sessions_refused: AtomicU64,
    /// Frames received from leads.
    pub(crate) frames_in: AtomicU64,
    /// Incident frames queued to lead sessions (fan-out and status updates).
    pub(crate) frames_out: AtomicU64,
    /// Client frames answered with `error`.
    pub(crate) frame_errors: AtomicU64,
    /// Receipts that changed a status.
    pub(crate) receipts: AtomicU64,
    /// Acks that changed a status.
    pub(crate) acks: AtomicU64,
    /// Sessions dropped because their send queue was full.
    pub(crate) slow_consumer_drops: AtomicU64,
    /// Sessions dropped for not answering two heartbeats (close 4410).
    pub(crate) heartbeat_drops: AtomicU64,
    /// Incidents issued.
    pub(crate) incidents_issued: AtomicU64,
    /// Console events lost by a lagging console stream.
    pub(crate) console_lagged: AtomicU64,
    /// Publishes the MQTT client's queue had no room for (the broker stalled).
    pub(crate) mqtt_queue_full: AtomicU64,
    /// Cluster mode: resyncs after a Redis reconnect or a missed subscription probe.
    pub(crate) cluster_resyncs: AtomicU64,
    /// Cluster mode: incident frames re-sent to local sessions by resyncs.
    pub(crate) cluster_resent: AtomicU64,
    /// Cluster mode: publishes to Redis that failed (retried in the background).
    pub(crate) cluster_publish_errors: AtomicU64,
    /// Connections closed at once because --max-connections was reached.
    pub(crate) connections_refused: AtomicU64,
    /// WebSocket upgrades refused because --max-pending-hellos were waiting.
    pub(crate) hellos_refused: AtomicU64,
    /// Sessions closed (4409) because their lead opened more than --max-sessions-per-lead.
    pub(crate) sessions_displaced: AtomicU64,
    /// Sessions and console streams ended because their token expired.
    pub(crate) sessions_expired: AtomicU64,
    /// Upstream frames refused by a per-lead rate limit or quota.
    pub(crate) rate_limited: AtomicU64,
    /// Cluster mode: messages dropped because they were not sealed by a node.
    pub(crate) cluster_forged: AtomicU64,
    /// Fallback messages (texts, calls) the gateway took.
    pub(crate) fallback_sent: AtomicU64,
    /// Fallback messages given up (refused, or out of tries).
    pub(crate) fallback_failed: AtomicU64,
    /// Fallback tries answered 429, 5xx or not at all (tried again).
    pub(crate) fallback_retries: AtomicU64,
    /// Fallback messages held back by the per-number gap.
    pub(crate) fallback_throttled: AtomicU64,
    /// Time from durable issue to every local session's queue holding the frame.
    pub(crate) fanout_seconds: Histogram,
    /// Time for a store write to become durable, as seen by the caller.
    pub(crate) store_seconds: Histogram,
    /// Time from issue to a recipient's first receipt (or ack).
    pub(crate) deliver_seconds: Histogram,
    /// Time from issue to a recipient's answer.
    pub(crate) ack_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            sessions: AtomicI64::new(0),
            sessions_opened: AtomicU64::new(0),
            sessions_refused: AtomicU64::new(0),
            frames_in: AtomicU64::new(0),
            frames_out: AtomicU64::new(0),
            frame_errors: AtomicU64::new(0),
            receipts: AtomicU64::new(0),
            acks: AtomicU64::new(0),
            slow_consumer_drops: AtomicU64::new(0),
            heartbeat_drops: AtomicU64::new(0),
            incidents_issued: AtomicU64::new(0),
            console_lagged: AtomicU64::new(0),
            mqtt_queue_full: AtomicU64::new(0),
            cluster_resyncs: AtomicU64::new(0),
            cluster_resent: AtomicU64::new(0),
            cluster_publish_errors: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            hellos_refused: AtomicU64::new(0),
            sessions_displaced: AtomicU64::new(0),
            sessions_expired: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            cluster_forged: AtomicU64::new(0),
            fallback_sent: AtomicU64::new(0),
            fallback_failed: AtomicU64::new(0),
            fallback_retries: AtomicU64::new(0),
            fallback_throttled: AtomicU64::new(0),
            fanout_seconds: Histogram::new(FANOUT_BOUNDS),
            store_seconds: Histogram::new(STORE_BOUNDS),
            deliver_seconds: Histogram::new(RESPONSE_BOUNDS),
            ack_seconds: Histogram::new(RESPONSE_BOUNDS),
        }
    }
}

impl Metrics {
    /// Prometheus text exposition.
    pub(crate) fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let g = |out: &mut String, name: &str, help: &str, v: i64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        let c = |out: &mut String, name: &str, help: &str, v: &AtomicU64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Relaxed)
            );
        };
        g(
            &mut out,
            "gridcast_sessions",
            "Open lead sessions.",
            self.sessions.load(Relaxed),
        );
        c(
            &mut out,
            "gridcast_sessions_opened_total",
            "Lead sessions opened.",
            &self.sessions_opened,
        );
        c(
            &mut out,
            "gridcast_sessions_refused_total",
            "Sessions refused at hello.",
            &self.sessions_refused,
        );
        c(
            &mut out,
            "gridcast_frames_in_total",
            "Frames received from leads.",
            &self.frames_in,
        );
        c(
            &mut out,
            "gridcast_frames_out_total",
            "Incident frames queued to lead sessions.",
            &self.frames_out,
        );
        c(
            &mut out,
            "gridcast_frame_errors_total",
            "Client frames answered with error.",
            &self.frame_errors,
        );
        c(
            &mut out,
            "gridcast_receipts_total",
            "Receipts that changed a status.",
            &self.receipts,
        );
        c(
            &mut out,
            "gridcast_acks_total",
            "Acks that changed a status.",
            &self.acks,
        );
        c(
            &mut out,
            "gridcast_slow_consumer_drops_total",
            "Sessions dropped for a full send queue.",
            &self.slow_consumer_drops,
        );
        c(
            &mut out,
            "gridcast_heartbeat_drops_total",
            "Sessions dropped for not answering two heartbeats.",
            &self.heartbeat_drops,
        );
        c(
            &mut out,
            "gridcast_incidents_issued_total",
            "Incidents issued.",
            &self.incidents_issued,
        );
        c(
            &mut out,
            "gridcast_console_lagged_total",
            "Console events skipped by lagging streams.",
            &self.console_lagged,
        );
        c(
            &mut out,
            "gridcast_mqtt_queue_full_total",
            "MQTT publishes refused by a full client queue (incidents finished by the outbox, status updates dropped).",
            &self.mqtt_queue_full,
        );
        c(
            &mut out,
            "gridcast_cluster_resyncs_total",
            "Resyncs after a Redis reconnect or a missed subscription probe.",
            &self.cluster_resyncs,
        );
        c(
            &mut out,
            "gridcast_cluster_resent_total",
            "Incident frames re-sent to local sessions by resyncs.",
            &self.cluster_resent,
        );
        c(
            &mut out,
            "gridcast_cluster_publish_errors_total",
            "Publishes to Redis that failed and were retried.",
            &self.cluster_publish_errors,
        );
        c(
            &mut out,
            "gridcast_connections_refused_total",
            "Connections closed at once because --max-connections was reached.",
            &self.connections_refused,
        );
        c(
            &mut out,
            "gridcast_pending_hellos_refused_total",
            "WebSocket upgrades refused because --max-pending-hellos were waiting.",
            &self.hellos_refused,
        );
        c(
            &mut out,
            "gridcast_sessions_displaced_total",
            "Sessions closed (4409) because their lead opened more than --max-sessions-per-lead.",
            &self.sessions_displaced,
        );
        c(
            &mut out,
            "gridcast_sessions_expired_total",
            "Sessions and console streams ended because their token expired.",
            &self.sessions_expired,
        );
        c(
            &mut out,
            "gridcast_rate_limited_total",
            "Upstream frames refused by a per-lead rate limit or quota.",
            &self.rate_limited,
        );
        c(
            &mut out,
            "gridcast_cluster_forged_total",
            "Cluster messages dropped because they were not sealed by a node of this cluster.",
            &self.cluster_forged,
        );
        for (name, help, v) in [
            (
                "gridcast_fallback_sent_total",
                "Fallback messages (texts, calls) the gateway took.",
                &self.fallback_sent,
            ),
            (
                "gridcast_fallback_failed_total",
                "Fallback messages given up (refused, or out of tries).",
                &self.fallback_failed,
            ),
            (
                "gridcast_fallback_retries_total",
                "Fallback tries answered 429, 5xx or not at all.",
                &self.fallback_retries,
            ),
            (
                "gridcast_fallback_throttled_total",
                "Fallback messages held back by the per-number gap.",
                &self.fallback_throttled,
            ),
        ] {
            c(&mut out, name, help, v);
        }
        self.fanout_seconds.render(
            "gridcast_fanout_seconds",
            "Time to queue an incident frame to every local recipient session.",
            &mut out,
        );
        self.store_seconds.render(
            "gridcast_store_write_seconds",
            "Time for a store write to become durable.",
            &mut out,
        );
        self.deliver_seconds.render(
            "gridcast_delivery_seconds",
            "Time from issue to a recipient's first receipt.",
            &mut out,
        );
        self.ack_seconds.render(
            "gridcast_ack_seconds",
            "Time from issue to a recipient's answer.",
            &mut out,
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.fanout_seconds.observe(Duration::from_micros(700));
        m.fanout_seconds.observe(Duration::from_millis(3));
        let text = m.render();
        assert!(
            text.contains("gridcast_fanout_seconds_bucket{le=\"0.001\"} 1"),
            "{text}"
        );
        assert!(text.contains("gridcast_fanout_seconds_bucket{le=\"0.005\"} 2"));
        assert!(text.contains("gridcast_fanout_seconds_count 2"));
    }
}
