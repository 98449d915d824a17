//! The hub's configuration: one typed struct, every limit in it, each flag with an
//! environment twin (`--listen` ↔ `GRIDCAST_LISTEN`). Validated at start-up.

mod broker_url;
mod fallback;

pub use broker_url::BrokerUrl;
pub use fallback::FallbackConfig;

use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything a hub needs to run.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// HTTP API, WebSocket and web pages.
    #[arg(long, env = "GRIDCAST_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Serve TLS on `--listen` with this certificate chain (PEM); needs `--tls-key`.
    #[arg(long, env = "GRIDCAST_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of `--tls-cert` (PEM).
    #[arg(long, env = "GRIDCAST_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve `/metrics` on this address only (and not on `--listen`): keep Prometheus
    /// off the public listener of an internet-facing hub.
    #[arg(long, env = "GRIDCAST_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Registry document to load (default: the stored one, else the built-in sample city).
    #[arg(long, env = "GRIDCAST_REGISTRY")]
    pub registry: Option<PathBuf>,
    /// Directory of the embedded store.
    #[arg(long, env = "GRIDCAST_DATA_DIR", default_value = "./gridcast-data")]
    pub data_dir: PathBuf,
    /// Cluster mode: share state, fan-out and presence with other nodes through this
    /// Redis (`redis://[user:password@]host:port/db`, `rediss://` for TLS, or the
    /// master Sentinel names: `redis+sentinel://HOST:PORT[,HOST:PORT…]/MASTER_NAME`);
    /// needs `--jwt-secret`, the same on every node.
    #[arg(long, env = "GRIDCAST_REDIS")]
    pub redis: Option<String>,
    /// The CA (PEM) that signed the Redis server's certificate, for a `rediss://` URL
    /// whose server the system's roots do not vouch for.
    #[arg(long, env = "GRIDCAST_REDIS_CA")]
    pub redis_ca: Option<PathBuf>,
    /// Replicas every change must reach (`WAIT`) before it is `ok`'d: Redis replicates
    /// asynchronously, so without it an `ok` given just before the master dies may be
    /// lost on failover. Default 1 behind Sentinel, else 0.
    #[arg(long, env = "GRIDCAST_REDIS_MIN_REPLICAS")]
    pub redis_min_replicas: Option<usize>,
    /// Serve MQTT leads through this broker: `mqtt://[user:password@]host[:port]`.
    #[arg(long, env = "GRIDCAST_MQTT")]
    pub mqtt: Option<String>,
    /// The broker's own key for the auth hook (`POST /v1/mqtt/auth`, `/v1/mqtt/acl`):
    /// the broker checks leads through the hub and never holds the token key. The hook
    /// is off without it.
    #[arg(long, env = "GRIDCAST_MQTT_HOOK_SECRET", hide_env_values = true)]
    pub mqtt_hook_secret: Option<String>,
    /// Keep a Mosquitto ACL file here, written at start and after every registry change.
    #[arg(long, env = "GRIDCAST_MQTT_ACL_FILE")]
    pub mqtt_acl_file: Option<PathBuf>,
    /// The broker username of the hub nodes (in the ACL file).
    #[arg(long, env = "GRIDCAST_MQTT_HUB_USER", default_value = "gridcast-hub")]
    pub mqtt_hub_user: String,
    /// Publishes waiting for the broker (the MQTT client's queue). When it is full an
    /// incident stays in the outbox until the broker takes it, a frame to one lead
    /// (re-notification, escalation, task) waits in the background (bounded), and a
    /// lead's status update to its MQTT devices is dropped: an ack's `ok` never waits.
    #[arg(long, env = "GRIDCAST_MQTT_QUEUE", default_value_t = 10_000)]
    pub mqtt_queue: usize,
    /// This node's name (default: random).
    #[arg(long, env = "GRIDCAST_NODE_ID")]
    pub node_id: Option<String>,
    /// Log lines as `json` (one object per line, for log shippers) or `text`; default
    /// `json` when stdout is not a terminal. Colour only ever goes to a terminal.
    #[arg(long, env = "GRIDCAST_LOG_FORMAT", value_parser = ["json", "text"])]
    pub log_format: Option<String>,
    /// HS256 key for tokens (default: a random key kept in the data dir).
    #[arg(long, env = "GRIDCAST_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Cluster mode: the key that seals messages between nodes (default: derived from
    /// --jwt-secret, which every node shares).
    #[arg(long, env = "GRIDCAST_CLUSTER_KEY", hide_env_values = true)]
    pub cluster_key: Option<String>,
    /// The previous HS256 key during a key rotation: tokens signed with it are still
    /// accepted (new ones are signed with `--jwt-secret`). Remove it to end the rotation.
    #[arg(long, env = "GRIDCAST_JWT_SECRET_PREVIOUS", hide_env_values = true)]
    pub jwt_secret_previous: Option<String>,
    /// Longest a token may still have to live when it is presented, in hours; a token
    /// with a later `exp` is refused.
    #[arg(long, env = "GRIDCAST_MAX_TOKEN_LIFETIME_H", default_value_t = crate::auth::DEFAULT_MAX_LIFETIME_H)]
    pub max_token_lifetime_h: u64,
    /// Revoked tokens: a file of lines `jti:ID` or `sub:ID` (`#` comments), read again
    /// whenever it changes; sessions and console streams of a revoked token end.
    #[arg(long, env = "GRIDCAST_REVOKED_TOKENS")]
    pub revoked_tokens: Option<PathBuf>,
    /// Seconds between WebSocket pings; a session silent for two intervals is dropped.
    #[arg(long, env = "GRIDCAST_HEARTBEAT_S", default_value_t = 20)]
    pub heartbeat_s: u32,
    /// Milliseconds a new connection has to send `hello`.
    #[arg(long, env = "GRIDCAST_HELLO_TIMEOUT_MS", default_value_t = 5000)]
    pub hello_timeout_ms: u64,
    /// Most concurrent lead sessions (each holds a file descriptor).
    #[arg(long, env = "GRIDCAST_MAX_SESSIONS", default_value_t = 50_000)]
    pub max_sessions: usize,
    /// Frames a session may have queued before it counts as a slow consumer.
    #[arg(long, env = "GRIDCAST_SESSION_QUEUE", default_value_t = 256)]
    pub session_queue: usize,
    /// Upstream frames per second per lead (all its sessions and channels together).
    #[arg(long, env = "GRIDCAST_UPSTREAM_RATE", default_value_t = 20)]
    pub upstream_rate: u32,
    /// Upstream burst of frames per lead.
    #[arg(long, env = "GRIDCAST_UPSTREAM_BURST", default_value_t = 50)]
    pub upstream_burst: u32,
    /// Upstream bytes per second per lead (charged before a frame is decoded).
    #[arg(long, env = "GRIDCAST_UPSTREAM_BYTES_RATE", default_value_t = 64 * 1024)]
    pub upstream_bytes_rate: u32,
    /// Upstream burst of bytes per lead (at least one largest frame, 64 KiB).
    #[arg(long, env = "GRIDCAST_UPSTREAM_BYTES_BURST", default_value_t = 256 * 1024)]
    pub upstream_bytes_burst: u32,
    /// Reports a lead may file a minute (also the burst); more are `rate_limited`.
    #[arg(long, env = "GRIDCAST_REPORT_QUOTA", default_value_t = 30)]
    pub report_quota: u32,
    /// WebSocket connection attempts per second per source address (carrier NATs and
    /// drills put thousands of phones behind one address).
    #[arg(long, env = "GRIDCAST_CONNECT_RATE", default_value_t = 2_000)]
    pub connect_rate: u32,
    /// Burst of connection attempts per source address.
    #[arg(long, env = "GRIDCAST_CONNECT_BURST", default_value_t = 20_000)]
    pub connect_burst: u32,
    /// Largest HTTP request body, except registry uploads.
    #[arg(long, env = "GRIDCAST_MAX_BODY_BYTES", default_value_t = 256 * 1024)]
    pub max_body_bytes: usize,
    /// Levels of real (not drill) activations that need a second person's approval
    /// (two-person rule), or `none`.
    #[arg(
        long,
        env = "GRIDCAST_APPROVAL_LEVELS",
        value_delimiter = ',',
        default_value = "I,II",
        value_parser = approval_level
    )]
    pub approval_levels: Vec<Option<gridcast_protocol::Level>>,
    /// Real activations that cover a whole county or more need approval too.
    #[arg(
        long,
        env = "GRIDCAST_APPROVAL_COUNTY_WIDE",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub approval_county_wide: bool,
    /// Seconds a request waits for approval before it expires (reaching no phone).
    #[arg(long, env = "GRIDCAST_APPROVAL_EXPIRY_S", default_value_t = 600)]
    pub approval_expiry_s: u64,
    /// Who may approve, as `sub` or `sub@scope` (comma separated): with a list, a
    /// request that nobody else on it could approve is refused at once. Without one,
    /// any supervisor or admin token whose jurisdiction covers the targets may.
    #[arg(long, env = "GRIDCAST_APPROVERS", value_delimiter = ',')]
    pub approvers: Vec<String>,
    /// Roles whose people the public directory (`GET /v1/directory`, Art. 14) lists;
    /// nobody else is ever shown.
    #[arg(
        long,
        env = "GRIDCAST_DIRECTORY_ROLES",
        value_delimiter = ',',
        default_value = "grid_lead,full_time,instructor",
        value_parser = directory_role
    )]
    pub directory_roles: Vec<gridcast_protocol::Role>,
    /// Fields the directory publishes: of a grid `name`, `kind`, `geometry`,
    /// `supervision_phone`; of a person `person_name`, `work_contact`.
    #[arg(
        long,
        env = "GRIDCAST_DIRECTORY_FIELDS",
        value_delimiter = ',',
        default_value = "name,kind,geometry,supervision_phone,person_name,work_contact"
    )]
    pub directory_fields: Vec<String>,
    /// Directory requests a second per source address (a public endpoint).
    #[arg(long, env = "GRIDCAST_DIRECTORY_RATE", default_value_t = 5)]
    pub directory_rate: u32,
    /// The `sender` of CAP alerts this hub exports (and the prefix of their
    /// identifiers): no spaces, commas, `<` or `&`.
    #[arg(long, env = "GRIDCAST_CAP_SENDER", default_value = "gridcast")]
    pub cap_sender: String,
    /// The fallback channel and 叫应.
    #[command(flatten)]
    pub fallback: FallbackConfig,
    /// Largest registry upload.
    #[arg(long, env = "GRIDCAST_MAX_REGISTRY_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_registry_bytes: usize,
    /// Default ack windows of levels I, II, III and IV in seconds (an activation's
    /// `ack_within_s` overrides); escalation starts when a window passes.
    #[arg(
        long,
        env = "GRIDCAST_ACK_WINDOWS_S",
        value_delimiter = ',',
        default_value = "60,120,300,600"
    )]
    pub ack_windows_s: Vec<u32>,
    /// Seconds a connection has to send a whole HTTP request head; also the longest a
    /// kept-alive connection may wait idle for its next request (at most 30).
    #[arg(long, env = "GRIDCAST_HEADER_TIMEOUT_S", default_value_t = 20)]
    pub header_timeout_s: u64,
    /// Seconds an operator has to send a whole request body once its token was checked.
    #[arg(long, env = "GRIDCAST_BODY_TIMEOUT_S", default_value_t = 30)]
    pub body_timeout_s: u64,
    /// Most open connections of every kind (HTTP, console streams and WebSocket); over
    /// it a new connection is closed at once and a line is logged.
    #[arg(long, env = "GRIDCAST_MAX_CONNECTIONS", default_value_t = 60_000)]
    pub max_connections: usize,
    /// Most open connections from one client address (IPv6: one /64), trusted proxies
    /// excepted: one host cannot hold every slot of --max-connections. Generous: a
    /// carrier NAT or a drill puts thousands of phones behind one address.
    #[arg(
        long,
        env = "GRIDCAST_MAX_CONNECTIONS_PER_ADDRESS",
        default_value_t = 20_000
    )]
    pub max_connections_per_address: usize,
    /// Most WebSocket connections that have not yet said a good `hello` (each is closed
    /// after --hello-timeout-ms); they take a session slot only after it. Room for a
    /// reconnect storm of thousands of phones at once.
    #[arg(long, env = "GRIDCAST_MAX_PENDING_HELLOS", default_value_t = 10_000)]
    pub max_pending_hellos: usize,
    /// Console events a slow console may fall behind by before its stream says `lagged`
    /// (the console then reads again what it shows).
    #[arg(long, env = "GRIDCAST_CONSOLE_BUFFER", default_value_t = 1024)]
    pub console_buffer: usize,
    /// Most sessions one lead holds on this node (all channels); the newest wins and the
    /// oldest is closed with 4409.
    #[arg(long, env = "GRIDCAST_MAX_SESSIONS_PER_LEAD", default_value_t = 4)]
    pub max_sessions_per_lead: usize,
    /// Load balancers whose `X-Forwarded-For` is believed: `CIDR,CIDR,…` (default none).
    #[arg(long, env = "GRIDCAST_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,
    /// Hours a closed incident (with its timeline, tasks and recipients' answers) and a
    /// report are kept; after that they leave the store (at least --closed-sync-hours).
    #[arg(long, env = "GRIDCAST_RETENTION_HOURS", default_value_t = 400 * 24)]
    pub retention_hours: u64,
    /// Seconds between looks for what retention lets go (the embedded log is then
    /// written anew: a snapshot of what is kept, then its tail).
    #[arg(long, env = "GRIDCAST_COMPACT_EVERY_S", default_value_t = 3600)]
    pub compact_every_s: u64,
    /// Hours a closed incident stays in a lead's sync.
    #[arg(long, env = "GRIDCAST_CLOSED_SYNC_HOURS", default_value_t = 24)]
    pub closed_sync_hours: u64,
}

/// `url` with the password of its user info (`scheme://user:PASSWORD@host…`) replaced
/// by `***`, for logs and error messages (a start-up error must not print the Redis or
/// broker password).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    // The last `@`: a password may hold an unencoded `/` (base64), and redacting too
    // much is the safe side.
    let Some(at) = rest.rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &rest[..at];
    let user = match userinfo.split_once(':') {
        Some((user, _password)) => format!("{user}:***"),
        None => userinfo.to_owned(),
    };
    format!("{scheme}://{user}{}", &rest[at..])
}

/// A setting that cannot work.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Defaults, as the flags document them, with the store in `data_dir`.
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        #[derive(clap::Parser)]
        struct P {
            #[command(flatten)]
            c: Config,
        }
        let mut c = <P as clap::Parser>::parse_from(["gridcast-hub"]).c;
        c.data_dir = data_dir.into();
        c
    }

    /// True when real activations of `level` need a second person.
    pub fn needs_approval(&self, level: gridcast_protocol::Level) -> bool {
        self.approval_levels.contains(&Some(level))
    }

    /// The default ack window of a level, in seconds.
    pub fn ack_window_s(&self, level: gridcast_protocol::Level) -> u32 {
        use gridcast_protocol::Level;
        let i = match level {
            Level::I => 0,
            Level::II => 1,
            Level::III => 2,
            Level::IV => 3,
        };
        self.ack_windows_s
            .get(i)
            .copied()
            .unwrap_or_else(|| level.default_ack_window_s())
    }

    /// Checks the settings together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError(m.to_owned()));
        if self.redis.is_some() && self.jwt_secret.is_none() {
            return bad(
                "--redis (cluster mode) needs --jwt-secret: every node must sign and verify tokens with the same key",
            );
        }
        if let Some(url) = &self.mqtt {
            BrokerUrl::parse(url).map_err(ConfigError)?;
        }
        if self.ack_windows_s.len() != 4
            || self.ack_windows_s.iter().any(|w| !(1..=86_400).contains(w))
        {
            return bad(
                "--ack-windows-s needs four windows (levels I to IV), each 1..=86400 seconds",
            );
        }
        if self.heartbeat_s == 0 || self.heartbeat_s > 3600 {
            return bad("--heartbeat-s must be 1..=3600");
        }
        if self.hello_timeout_ms == 0 {
            return bad("--hello-timeout-ms must be positive");
        }
        if self.session_queue < 8 {
            return bad("--session-queue must be at least 8");
        }
        if self.upstream_rate == 0
            || self.upstream_burst == 0
            || self.connect_rate == 0
            || self.connect_burst == 0
            || self.upstream_bytes_rate == 0
            || self.report_quota == 0
        {
            return bad("rate limits must be positive");
        }
        if (self.upstream_bytes_burst as usize) < gridcast_protocol::MAX_MESSAGE_BYTES {
            return bad("--upstream-bytes-burst must hold one largest frame (65536 bytes)");
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return bad("--tls-cert and --tls-key go together");
        }
        if self.retention_hours < self.closed_sync_hours {
            return bad("--retention-hours must be at least --closed-sync-hours");
        }
        if self.compact_every_s == 0 {
            return bad("--compact-every-s must be positive");
        }
        if !(1..=30).contains(&self.header_timeout_s) {
            return bad("--header-timeout-s must be 1..=30");
        }
        if self.body_timeout_s == 0 {
            return bad("--body-timeout-s must be positive");
        }
        if self.max_connections == 0
            || self.max_pending_hellos == 0
            || self.console_buffer == 0
            || self.mqtt_queue == 0
            || self.max_sessions_per_lead == 0
        {
            return bad(
                "--max-connections, --max-pending-hellos, --console-buffer, --mqtt-queue and --max-sessions-per-lead must be positive",
            );
        }
        if self.console_buffer > 1 << 20 {
            return bad("--console-buffer must be at most 1048576");
        }
        crate::listen::TrustedProxies::parse(&self.trusted_proxies).map_err(ConfigError)?;
        if self.max_sessions == 0 {
            return bad("--max-sessions must be positive");
        }
        if self.jwt_secret.as_ref().is_some_and(|s| s.len() < 16)
            || self
                .jwt_secret_previous
                .as_ref()
                .is_some_and(|s| s.len() < 16)
        {
            return bad("--jwt-secret and --jwt-secret-previous must have at least 16 characters");
        }
        if self.jwt_secret_previous.is_some() && self.jwt_secret.is_none() {
            return bad("--jwt-secret-previous needs --jwt-secret (the new key)");
        }
        if self.cluster_key.as_ref().is_some_and(|s| s.len() < 16) {
            return bad("--cluster-key must have at least 16 characters");
        }
        // The example deployment's placeholders (deploy/k8s/secret.yaml) are public.
        for (flag, value) in [
            ("--jwt-secret", &self.jwt_secret),
            ("--jwt-secret-previous", &self.jwt_secret_previous),
            ("--mqtt-hook-secret", &self.mqtt_hook_secret),
            ("--fallback-secret", &self.fallback.fallback_secret),
        ] {
            if value
                .as_deref()
                .is_some_and(|v| v.starts_with("replace-me"))
            {
                return Err(ConfigError(format!(
                    "{flag} is the example's placeholder: give it a random value of your own"
                )));
            }
        }
        if self.mqtt_hook_secret.as_ref().is_some_and(|s| s.len() < 16) {
            return bad("--mqtt-hook-secret must have at least 16 characters");
        }
        if self.mqtt_hook_secret.is_some() && self.mqtt_hook_secret == self.jwt_secret {
            return bad(
                "--mqtt-hook-secret must not be the token key: the broker must never hold it",
            );
        }
        self.fallback
            .validate(self.jwt_secret.as_deref())
            .map_err(ConfigError)?;
        if self.max_token_lifetime_h == 0 {
            return bad("--max-token-lifetime-h must be positive");
        }
        Ok(())
    }
}

/// A role for `--directory-roles`.
fn directory_role(s: &str) -> Result<gridcast_protocol::Role, String> {
    gridcast_protocol::from_wire_name(s).ok_or_else(|| format!("{s:?} is not a role"))
}

/// A level for `--approval-levels`, or `none`.
pub(crate) fn approval_level(s: &str) -> Result<Option<gridcast_protocol::Level>, String> {
    if s.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    gridcast_protocol::from_wire_name(s)
        .map(Some)
        .ok_or_else(|| format!("{s:?} is not I, II, III, IV or none"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact_url("redis://:s3cret@10.0.0.1:6379/0"),
            "redis://:***@10.0.0.1:6379/0"
        );
        assert_eq!(
            redact_url("rediss://hub:s3cret@redis/0?protocol=resp3"),
            "rediss://hub:***@redis/0?protocol=resp3"
        );
        assert_eq!(
            redact_url("mqtt://hub:p@ss@broker:1883"),
            "mqtt://hub:***@broker:1883"
        );
        assert_eq!(redact_url("redis://127.0.0.1/"), "redis://127.0.0.1/");
        assert_eq!(
            redact_url("redis://:ab/c+d=@10.0.0.1:6379/0"),
            "redis://:***@10.0.0.1:6379/0"
        );
        assert_eq!(redact_url("mqtt://hub@broker"), "mqtt://hub@broker");
    }

    #[test]
    fn cluster_mode_needs_a_shared_jwt_secret() {
        let mut c = Config::with_data_dir("/tmp/x");
        assert!(c.validate().is_ok());
        c.redis = Some("redis://127.0.0.1:1/".into());
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("--jwt-secret"), "{e}");
        c.jwt_secret = Some("0123456789abcdef".into());
        assert!(c.validate().is_ok());
        c.mqtt = Some("mqtt://127.0.0.1:1".into());
        assert!(c.validate().is_ok());
        assert_eq!(c.ack_window_s(gridcast_protocol::Level::III), 300);
        c.ack_windows_s = vec![30, 60, 90, 120];
        assert_eq!(c.ack_window_s(gridcast_protocol::Level::III), 90);
        c.ack_windows_s = vec![30, 60];
        assert!(c.validate().is_err());
        c.ack_windows_s = vec![30, 60, 90, 0];
        assert!(c.validate().is_err());
        c.ack_windows_s = vec![60, 120, 300, 600];
        c.mqtt = Some("127.0.0.1:1883".into());
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("mqtt://"), "{e}");
    }
}
