//! Where the Redis of cluster mode is: one address (`redis://…`, `rediss://…`), or the
//! master that Sentinel names (`redis+sentinel://[user:password@]HOST:PORT[,HOST:PORT…]/MASTER[/DB]`).
//!
//! A connection to Redis does not follow a failover by itself: the master is asked of
//! the sentinels again every time the store (re)connects (`SENTINEL
//! get-master-addr-by-name`, the first sentinel that answers), and the address it names
//! must answer `ROLE` as a master — a demoted master that comes back is never written
//! to.

use std::time::Duration;

/// How long one sentinel or the named master has to answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// See the module docs.
#[derive(Debug, Clone)]
pub enum RedisTarget {
    /// One address.
    Direct(redis::Client),
    /// The master of `master` as the sentinels say.
    Sentinel {
        /// The sentinels' addresses (`host:port`).
        sentinels: Vec<String>,
        /// The monitored master's name.
        master: String,
        /// `user:password@` for the data nodes, if any (the sentinels take none).
        auth: String,
        /// The database.
        db: u32,
    },
}

impl RedisTarget {
    /// Reads `--redis`; a plain URL becomes a client at once (`certs`: `--redis-ca`).
    pub fn parse(url: &str, certs: Option<redis::TlsCertificates>) -> Result<Self, String> {
        let Some(rest) = url.strip_prefix("redis+sentinel://") else {
            let client = match certs {
                None => redis::Client::open(url),
                Some(c) => redis::Client::build_with_tls(url, c),
            };
            return client.map(Self::Direct).map_err(|e| e.to_string());
        };
        let (auth, rest) = match rest.rsplit_once('@') {
            Some((a, r)) => (format!("{a}@"), r),
            None => (String::new(), rest),
        };
        let (hosts, path) = rest
            .split_once('/')
            .ok_or("redis+sentinel:// needs /MASTER_NAME after the sentinels")?;
        let (master, db) = match path.split_once('/') {
            Some((m, d)) => (
                m,
                d.parse()
                    .map_err(|_| format!("{d:?} is not a database number"))?,
            ),
            None => (path, 0),
        };
        let sentinels: Vec<String> = hosts
            .split(',')
            .filter(|h| !h.is_empty())
            .map(|h| {
                if h.contains(':') {
                    h.to_owned()
                } else {
                    format!("{h}:26379")
                }
            })
            .collect();
        if sentinels.is_empty() || master.is_empty() {
            return Err("redis+sentinel://HOST:PORT[,HOST:PORT…]/MASTER_NAME".into());
        }
        if certs.is_some() {
            return Err("--redis-ca with redis+sentinel:// is not supported yet".into());
        }
        Ok(Self::Sentinel {
            sentinels,
            master: master.to_owned(),
            auth,
            db,
        })
    }

    /// True behind Sentinel.
    pub fn is_sentinel(&self) -> bool {
        matches!(self, Self::Sentinel { .. })
    }

    /// A client for the master as it is now.
    pub async fn client(&self) -> redis::RedisResult<redis::Client> {
        let (sentinels, master, auth, db) = match self {
            Self::Direct(c) => return Ok(c.clone()),
            Self::Sentinel {
                sentinels,
                master,
                auth,
                db,
            } => (sentinels, master, auth, db),
        };
        let mut last = None;
        for s in sentinels {
            match ask(s, master).await {
                Ok((host, port)) => {
                    let client = redis::Client::open(format!("redis://{auth}{host}:{port}/{db}"))?;
                    match is_master(&client).await {
                        Ok(true) => return Ok(client),
                        Ok(false) => {
                            last = Some(failure(format!(
                                "{host}:{port}, named by sentinel {s}, is not a master (yet)"
                            )))
                        }
                        Err(e) => last = Some(e),
                    }
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| failure("no sentinel answered".into())))
    }
}

fn failure(what: String) -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Io, "sentinel", what))
}

/// The master's address as one sentinel says.
async fn ask(sentinel: &str, master: &str) -> redis::RedisResult<(String, u16)> {
    let client = redis::Client::open(format!("redis://{sentinel}/"))?;
    let answer = tokio::time::timeout(ASK_TIMEOUT, async {
        let mut c = client.get_multiplexed_async_connection().await?;
        redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(master)
            .query_async::<Option<(String, u16)>>(&mut c)
            .await
    })
    .await
    .map_err(|_| failure(format!("sentinel {sentinel} did not answer")))??;
    answer.ok_or_else(|| failure(format!("sentinel {sentinel} knows no master {master:?}")))
}

/// True when the server answers `ROLE` as a master.
async fn is_master(client: &redis::Client) -> redis::RedisResult<bool> {
    tokio::time::timeout(ASK_TIMEOUT, async {
        let mut c = client.get_multiplexed_async_connection().await?;
        let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(&mut c).await?;
        Ok(matches!(role.first(), Some(redis::Value::BulkString(b)) if b == b"master"))
    })
    .await
    .map_err(|_| failure("the master did not answer ROLE".into()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_urls_name_their_sentinels_and_master() {
        let t = RedisTarget::parse(
            "redis+sentinel://:pw@10.0.0.1:26379,10.0.0.2/gridcast/2",
            None,
        )
        .unwrap();
        let RedisTarget::Sentinel {
            sentinels,
            master,
            auth,
            db,
        } = t
        else {
            panic!("{t:?}")
        };
        assert_eq!(sentinels, ["10.0.0.1:26379", "10.0.0.2:26379"]);
        assert_eq!(
            (master.as_str(), auth.as_str(), db),
            ("gridcast", ":pw@", 2)
        );
        assert!(RedisTarget::parse("redis+sentinel://10.0.0.1:26379", None).is_err());
        assert!(RedisTarget::parse("redis+sentinel://10.0.0.1/m/x", None).is_err());
        assert!(
            !RedisTarget::parse("redis://127.0.0.1/", None)
                .unwrap()
                .is_sentinel()
        );
    }
}
