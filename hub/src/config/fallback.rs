//! Settings of the fallback channel (SMS and voice through a gateway) and of 叫应.

use std::path::PathBuf;

/// The fallback channel: off without `--fallback-webhook`.
#[derive(Debug, Clone, clap::Args)]
pub struct FallbackConfig {
    /// Send a text (and, for 叫应, voice calls) to leads still silent when their ack
    /// window passes, by `POST`ing signed JSON to this gateway URL (`http://`: reach an
    /// `https://` gateway through a TLS relay on the hub's network); needs
    /// `--fallback-secret`.
    #[arg(long, env = "GRIDCAST_FALLBACK_WEBHOOK")]
    pub fallback_webhook: Option<String>,
    /// The key shared with the gateway (at least 16 characters): it signs what the hub
    /// sends and what the gateway sends back (status callbacks, replies).
    #[arg(long, env = "GRIDCAST_FALLBACK_SECRET", hide_env_values = true)]
    pub fallback_secret: Option<String>,
    /// This hub as the gateway reaches it (the base of the status and reply URLs in
    /// each message); default `http://` + `--listen`.
    #[arg(long, env = "GRIDCAST_FALLBACK_PUBLIC_URL")]
    pub fallback_public_url: Option<String>,
    /// Also text the recipients who are offline when an activation is issued (not
    /// only those still silent at the end of their window); each gets one text.
    #[arg(
        long,
        env = "GRIDCAST_FALLBACK_OFFLINE_AT_ISSUE",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub fallback_offline_at_issue: bool,
    /// Messages per second this node sends to the gateway, all numbers together.
    #[arg(long, env = "GRIDCAST_FALLBACK_RATE", default_value_t = 20)]
    pub fallback_rate: u32,
    /// Least time between two messages to one phone number, in seconds (a second one
    /// waits; carriers block senders that flood a number).
    #[arg(long, env = "GRIDCAST_FALLBACK_NUMBER_GAP_S", default_value_t = 30)]
    pub fallback_number_gap_s: u64,
    /// Tries of one message on a gateway that answers 429, 5xx or not at all (with
    /// jittered backoff from 2 s); any other answer is final.
    #[arg(long, env = "GRIDCAST_FALLBACK_ATTEMPTS", default_value_t = 5)]
    pub fallback_attempts: u32,
    /// Language of the texts (`zh-CN` or `en`).
    #[arg(long, env = "GRIDCAST_FALLBACK_LANG", default_value = "zh-CN", value_parser = ["zh-CN", "en"])]
    pub fallback_lang: String,
    /// Templates of the texts (JSON: `{"zh-CN":{"sms":"…","voice":"…"},"en":{…}}`,
    /// with `{level}`, `{title}`, `{incident}`, `{name}`, `{grid}`); default the
    /// built-in ones.
    #[arg(long, env = "GRIDCAST_FALLBACK_TEMPLATES")]
    pub fallback_templates: Option<PathBuf>,
    /// Levels whose silent grid leads are called by voice until they answer (叫应;
    /// `none` for none).
    #[arg(
        long,
        env = "GRIDCAST_CALLOUT_LEVELS",
        value_delimiter = ',',
        default_value = "I,II",
        value_parser = super::approval_level
    )]
    pub callout_levels: Vec<Option<gridcast_protocol::Level>>,
    /// Seconds between two calls of a 叫应.
    #[arg(long, env = "GRIDCAST_CALLOUT_INTERVAL_S", default_value_t = 120)]
    pub callout_interval_s: u64,
    /// Most calls of one 叫应 (they also stop when the escalation chain ends).
    #[arg(long, env = "GRIDCAST_CALLOUT_MAX", default_value_t = 5)]
    pub callout_max: u32,
}

impl FallbackConfig {
    /// Checks the settings together.
    pub fn validate(&self, jwt_secret: Option<&str>) -> Result<(), String> {
        let Some(url) = &self.fallback_webhook else {
            return Ok(());
        };
        if url.starts_with("https://") {
            return Err("--fallback-webhook: https:// is not supported yet; run a TLS relay (stunnel, nginx) beside the hub and give its http:// address".into());
        }
        if !url.starts_with("http://") {
            return Err("--fallback-webhook must be an http:// URL".into());
        }
        match &self.fallback_secret {
            None => Err(
                "--fallback-webhook needs --fallback-secret (the key shared with the gateway)"
                    .into(),
            ),
            Some(s) if s.len() < 16 => {
                Err("--fallback-secret must have at least 16 characters".into())
            }
            Some(s) if Some(s.as_str()) == jwt_secret => Err(
                "--fallback-secret must not be the token key: the gateway must never hold it"
                    .into(),
            ),
            Some(_) if self.fallback_rate == 0 || self.fallback_attempts == 0 => {
                Err("--fallback-rate and --fallback-attempts must be at least 1".into())
            }
            Some(_) if self.callout_interval_s == 0 => {
                Err("--callout-interval-s must be at least 1".into())
            }
            Some(_) => Ok(()),
        }
    }

    /// True when activations of `level` get 叫应 calls.
    pub fn calls(&self, level: gridcast_protocol::Level) -> bool {
        self.callout_levels.contains(&Some(level))
    }
}
