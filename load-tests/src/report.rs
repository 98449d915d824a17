//! What a drill reports: percentiles, the fan-out report, a process's CPU and memory.

use crate::*;

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th.
    pub p90: f64,
    /// 99th.
    pub p99: f64,
    /// Worst.
    pub max: f64,
}

impl Percentiles {
    pub fn of(h: &hdrhistogram::Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        if h.is_empty() {
            return Self::default();
        }
        Self {
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
        }
    }
}

/// The result of a fan-out drill (the JSON keys are part of the tool's contract).
#[derive(Debug, Clone, Serialize)]
pub struct FanoutReport {
    /// Recipients of the drill activation.
    pub recipients: usize,
    /// Phones connected and synced before the drill.
    pub connected: usize,
    /// Of those, over MQTT.
    pub connected_mqtt: usize,
    /// Phones that got the activation.
    pub delivered: usize,
    /// Phones whose ack was answered `ok`.
    pub acked: usize,
    /// From the POST to each phone having the frame.
    pub delivery_ms: Percentiles,
    /// The same, WebSocket and MQTT phones apart (when some phones are on MQTT).
    pub delivery_by_channel: Option<ByChannel>,
    /// From the POST to the last delivery.
    pub last_delivery_ms: f64,
    /// From the POST to the last `ok` for an ack.
    pub last_ack_ms: f64,
    /// Phones connected and synced per second.
    pub connect_per_s: f64,
    /// Phones that failed (connect, sync, timeout, refused ack).
    pub errors: usize,
    /// The hub's resident memory after the drill, if its pid was given.
    pub hub_rss_mb: Option<f64>,
    /// Hub memory per connected, idle phone (KiB): RSS once all are synced minus RSS
    /// before the first connected, over the phones, if its pid was given.
    pub hub_kib_per_idle_phone: Option<f64>,
    /// Acks answered `ok` per second, from the first to the last.
    pub acks_per_s: f64,
    /// The hub's CPU seconds during the drill (issue to last ack), if its pid was given.
    pub hub_cpu_s: Option<f64>,
    /// The hub's CPU seconds from the issue to the last delivery (receipts arriving
    /// meanwhile included), if its pid was given.
    pub hub_cpu_fanout_s: Option<f64>,
    /// The incident.
    pub incident: String,
    /// Chaos: from the kill to the last ack, if a process was killed.
    pub recovery_ms: Option<f64>,
}

/// Delivery times of the WebSocket and the MQTT phones of one drill.
#[derive(Debug, Clone, Serialize)]
pub struct ByChannel {
    /// WebSocket phones.
    pub ws: Percentiles,
    /// MQTT phones.
    pub mqtt: Percentiles,
}

/// Reads a process's resident memory (MiB) and CPU time (s) from /proc.
pub fn proc_usage(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces): utime is 14th, stime 15th.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some((rss_kb / 1024.0, ticks / 100.0))
}

/// [`proc_usage`] summed over several processes; `None` if any cannot be read or
/// none is given.
pub fn procs_usage(pids: &[u32]) -> Option<(f64, f64)> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().try_fold((0.0, 0.0), |(m, c), &pid| {
        let (m2, c2) = proc_usage(pid)?;
        Some((m + m2, c + c2))
    })
}
