//! The broker's address as the hub is given it (`--mqtt`), with its credentials.

/// Where the broker is, from `mqtt://[user[:password]@]host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    /// Host.
    pub host: String,
    /// Port (default 1883).
    pub port: u16,
    /// Username and password of the hub, if the broker wants them.
    pub credentials: Option<(String, String)>,
}

impl BrokerUrl {
    /// Parses a broker URL.
    pub fn parse(url: &str) -> Result<Self, String> {
        let shown = super::redact_url(url);
        let rest = url
            .strip_prefix("mqtt://")
            .or_else(|| url.strip_prefix("tcp://"))
            .ok_or_else(|| format!("{shown:?}: the broker URL must start with mqtt://"))?;
        let (creds, addr) = match rest.rsplit_once('@') {
            Some((c, a)) => (Some(c), a),
            None => (None, rest),
        };
        let addr = addr.trim_end_matches('/');
        let (host, port) = match addr.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse()
                    .map_err(|_| format!("{shown:?}: bad port {p:?}"))?,
            ),
            None => (addr, 1883),
        };
        if host.is_empty() {
            return Err(format!("{shown:?}: no host"));
        }
        let credentials = creds.map(|c| match c.split_once(':') {
            Some((u, p)) => (u.to_owned(), p.to_owned()),
            None => (c.to_owned(), String::new()),
        });
        Ok(Self {
            host: host.to_owned(),
            port,
            credentials,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls_parse_with_defaults_and_credentials() {
        assert_eq!(
            BrokerUrl::parse("mqtt://127.0.0.1").unwrap(),
            BrokerUrl {
                host: "127.0.0.1".into(),
                port: 1883,
                credentials: None
            }
        );
        let u = BrokerUrl::parse("mqtt://hub:s3cret@broker.local:8883/").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("broker.local", 8883));
        assert_eq!(u.credentials, Some(("hub".into(), "s3cret".into())));
        assert!(BrokerUrl::parse("http://x").is_err());
        assert!(BrokerUrl::parse("mqtt://x:notaport").is_err());
        assert!(BrokerUrl::parse("mqtt://:1883").is_err());
    }
}
