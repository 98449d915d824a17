//! Where the Redis of cluster mode is: one address (`redis://…`, `rediss://…`), or the
//! master that Sentinel names (`redis+sentinel://[user:password@]HOST:PORT[,HOST:PORT…]/MASTER[/DB]`).
//!
//! A connection to Redis does not follow a failover by itself: the master is asked of
//! the sentinels again every time the store renews its connection (after failed
//! heartbeats or a replication shortfall): every sentinel is asked (`SENTINEL
//! get-master-addr-by-name`), most of them must name the same address, and it must
//! answer `ROLE` as a master — a demoted master that comes back is never written to.

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
        // Every sentinel is asked; the master is the address most of them name (a
        // stale or cut-off sentinel alone cannot point the hub elsewhere).
        let answers =
            futures_util::future::join_all(sentinels.iter().map(|s| ask(s, master))).await;
        let mut votes: Vec<((String, u16), usize)> = Vec::new();
        let mut last = None;
        for answer in answers {
            match answer {
                Ok(addr) => match votes.iter_mut().find(|(a, _)| *a == addr) {
                    Some((_, n)) => *n += 1,
                    None => votes.push((addr, 1)),
                },
                Err(e) => last = Some(e),
            }
        }
        let needed = sentinels.len() / 2 + 1;
        let Some(((host, port), _)) = votes.into_iter().find(|(_, n)| *n >= needed) else {
            return Err(last.unwrap_or_else(|| {
                failure(format!("fewer than {needed} sentinels agree on the master"))
            }));
        };
        let client = redis::Client::open(format!("redis://{auth}{host}:{port}/{db}"))?;
        if is_master(&client).await? {
            Ok(client)
        } else {
            Err(failure(format!(
                "{host}:{port}, named by the sentinels, is not a master (yet)"
            )))
        }
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
