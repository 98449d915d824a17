//! Cluster messages are sealed: anyone who can reach Redis can `PUBLISH`, so a node
//! delivers nothing it cannot prove another node sent. A sealed message is
//! `HMAC-SHA256(key, channel ‖ 0 ‖ sent_at ‖ body)` (32 bytes), `sent_at` (Unix ms, 8
//! bytes big-endian), then the body. The channel is under the MAC so a message cannot
//! be moved to another grid's channel; `sent_at` bounds a replay to [`MAX_AGE_MS`].
//!
//! The key is `--cluster-key`, or else derived from `--jwt-secret` (which every node
//! shares already): `HMAC-SHA256(jwt_secret, "gridcast cluster messages v1")`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How old (or how far ahead, for clocks a little apart) a message may be.
pub const MAX_AGE_MS: u64 = 10 * 60 * 1000;
const MAC_LEN: usize = 32;
const HEAD: usize = MAC_LEN + 8;

/// Seals and opens cluster messages with one key.
#[derive(Clone)]
pub struct Seal {
    key: Vec<u8>,
}

impl std::fmt::Debug for Seal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Seal { key: <redacted> }")
    }
}

/// Why a message was not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unsealed {
    /// Too short, or the MAC does not match: not from a node of this cluster.
    #[error("not sealed with this cluster's key")]
    Forged,
    /// Sealed, but too old or too far ahead: a replay, or a clock far off.
    #[error("sealed too long ago (or a clock far off)")]
    Stale,
}

impl Seal {
    /// A seal with `cluster_key`, or one derived from the token key.
    pub fn new(cluster_key: Option<&[u8]>, jwt_secret: &[u8]) -> Self {
        let key = match cluster_key {
            Some(k) => k.to_vec(),
            None => {
                let mut m = Hmac::<Sha256>::new_from_slice(jwt_secret)
                    .expect("HMAC takes keys of any length");
                m.update(b"gridcast cluster messages v1");
                m.finalize().into_bytes().to_vec()
            }
        };
        Self { key }
    }

    fn mac(&self, channel: &str, sent_at: &[u8], body: &[u8]) -> Hmac<Sha256> {
        let mut m = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        m.update(channel.as_bytes());
        m.update(&[0]);
        m.update(sent_at);
        m.update(body);
        m
    }

    /// `body` sealed for `channel` at `now` (Unix ms).
    pub fn seal(&self, channel: &str, body: &[u8], now: u64) -> Vec<u8> {
        let sent_at = now.to_be_bytes();
        let tag = self.mac(channel, &sent_at, body).finalize().into_bytes();
        let mut out = Vec::with_capacity(HEAD + body.len());
        out.extend_from_slice(&tag);
        out.extend_from_slice(&sent_at);
        out.extend_from_slice(body);
        out
    }

    /// The body of a message sealed for `channel`, checked at `now` (Unix ms).
    pub fn open<'a>(
        &self,
        channel: &str,
        payload: &'a [u8],
        now: u64,
    ) -> Result<&'a [u8], Unsealed> {
        if payload.len() < HEAD {
            return Err(Unsealed::Forged);
        }
        let (tag, rest) = payload.split_at(MAC_LEN);
        let (sent_at, body) = rest.split_at(8);
        // Constant time.
        self.mac(channel, sent_at, body)
            .verify_slice(tag)
            .map_err(|_| Unsealed::Forged)?;
        let at = u64::from_be_bytes(sent_at.try_into().expect("8 bytes"));
        if now.abs_diff(at) > MAX_AGE_MS {
            return Err(Unsealed::Stale);
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_clusters_key_on_this_channel_recently_opens() {
        let s = Seal::new(None, b"jwt-secret-0123456789");
        let sealed = s.seal("gc:g:3301060040051001", b"{\"origin\":\"a\"}", 1_000_000);
        assert_eq!(
            s.open("gc:g:3301060040051001", &sealed, 1_000_500),
            Ok(&b"{\"origin\":\"a\"}"[..])
        );
        // Another channel, another key, a changed byte, a bare body, an old one.
        assert_eq!(
            s.open("gc:g:3301060040051002", &sealed, 1_000_500),
            Err(Unsealed::Forged)
        );
        let other = Seal::new(Some(b"another-cluster-key"), b"jwt-secret-0123456789");
        assert_eq!(
            other.open("gc:g:3301060040051001", &sealed, 1_000_500),
            Err(Unsealed::Forged)
        );
        let mut bent = sealed.clone();
        *bent.last_mut().unwrap() ^= 1;
        assert_eq!(
            s.open("gc:g:3301060040051001", &bent, 1_000_500),
            Err(Unsealed::Forged)
        );
        assert_eq!(
            s.open("gc:g:3301060040051001", b"{\"origin\":\"x\"}", 1),
            Err(Unsealed::Forged)
        );
        assert_eq!(
            s.open("gc:g:3301060040051001", &sealed, 1_000_000 + MAX_AGE_MS + 1),
            Err(Unsealed::Stale)
        );
        // Derived keys agree across nodes with the same token key, and differ from it.
        let twin = Seal::new(None, b"jwt-secret-0123456789");
        assert!(
            twin.open("gc:g:3301060040051001", &sealed, 1_000_500)
                .is_ok()
        );
        assert_ne!(s.key, b"jwt-secret-0123456789".to_vec());
    }
}
