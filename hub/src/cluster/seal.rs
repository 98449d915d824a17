//! Cluster messages are sealed: anyone who can reach Redis can `PUBLISH`, so a node
//! delivers nothing it cannot prove another node sent. A sealed message is a count
//! `n` (one byte), `n` tags `HMAC-SHA256(key, channel ‖ 0 ‖ sent_at ‖ body)` (32 bytes
//! each, one per key the sender holds), `sent_at` (Unix ms, 8 bytes big-endian), then
//! the body; it opens when one of its tags is good for one of the receiver's keys. The channel is under the MAC so a message cannot
//! be moved to another grid's channel; `sent_at` bounds a replay to [`MAX_AGE_MS`].
//!
//! The key is `--cluster-key`, or else derived from `--jwt-secret` (which every node
//! shares already): `HMAC-SHA256(jwt_secret, "gridcast cluster messages v1")`. During a
//! token key rotation (`--jwt-secret-previous`) a node holds the keys derived from both
//! secrets and tags with both: nodes not yet restarted (old key) and nodes already past
//! the rotation (new key only) both open what it sends, and it opens theirs. So nodes
//! restarted one at a time never drop each other's messages, provided every node has
//! both secrets before any node drops the previous one.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How old (or how far ahead, for clocks a little apart) a message may be.
pub const MAX_AGE_MS: u64 = 10 * 60 * 1000;
const MAC_LEN: usize = 32;

/// Seals and opens cluster messages with one key.
#[derive(Clone)]
pub struct Seal {
    /// Every key this node tags with and opens with.
    keys: Vec<Vec<u8>>,
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
    /// A seal with `cluster_key`, or one derived from the token key (and, during a
    /// rotation, from the previous one).
    pub fn new(cluster_key: Option<&[u8]>, jwt_secret: &[u8], previous: Option<&[u8]>) -> Self {
        let derive = |secret: &[u8]| {
            let mut m =
                Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
            m.update(b"gridcast cluster messages v1");
            m.finalize().into_bytes().to_vec()
        };
        let keys = match (cluster_key, previous) {
            (Some(k), _) => vec![k.to_vec()],
            (None, Some(p)) => vec![derive(jwt_secret), derive(p)],
            (None, None) => vec![derive(jwt_secret)],
        };
        Self { keys }
    }

    fn mac(key: &[u8], channel: &str, sent_at: &[u8], body: &[u8]) -> Hmac<Sha256> {
        let mut m = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
        m.update(channel.as_bytes());
        m.update(&[0]);
        m.update(sent_at);
        m.update(body);
        m
    }

    /// `body` sealed for `channel` at `now` (Unix ms).
    pub fn seal(&self, channel: &str, body: &[u8], now: u64) -> Vec<u8> {
        let sent_at = now.to_be_bytes();
        let mut out = Vec::with_capacity(1 + self.keys.len() * MAC_LEN + 8 + body.len());
        out.push(self.keys.len() as u8);
        for k in &self.keys {
            out.extend_from_slice(
                &Self::mac(k, channel, &sent_at, body)
                    .finalize()
                    .into_bytes(),
            );
        }
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
        let Some((&n, rest)) = payload.split_first() else {
            return Err(Unsealed::Forged);
        };
        let n = usize::from(n);
        if n == 0 || n > 4 || rest.len() < n * MAC_LEN + 8 {
            return Err(Unsealed::Forged);
        }
        let (tags, rest) = rest.split_at(n * MAC_LEN);
        let (sent_at, body) = rest.split_at(8);
        // Constant time per comparison.
        let good = tags.chunks(MAC_LEN).any(|tag| {
            self.keys.iter().any(|k| {
                Self::mac(k, channel, sent_at, body)
                    .verify_slice(tag)
                    .is_ok()
            })
        });
        if !good {
            return Err(Unsealed::Forged);
        }
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
        let s = Seal::new(None, b"jwt-secret-0123456789", None);
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
        let other = Seal::new(Some(b"another-cluster-key"), b"jwt-secret-0123456789", None);
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
        let twin = Seal::new(None, b"jwt-secret-0123456789", None);
        assert!(
            twin.open("gc:g:3301060040051001", &sealed, 1_000_500)
                .is_ok()
        );
        assert_ne!(s.keys[0], b"jwt-secret-0123456789".to_vec());
    }

    #[test]
    fn nodes_restarted_one_at_a_time_during_a_key_rotation_still_understand_each_other() {
        let (old, new) = (
            &b"old-jwt-secret-0123456"[..],
            &b"new-jwt-secret-0123456"[..],
        );
        let before = Seal::new(None, old, None);
        let during = Seal::new(None, new, Some(old));
        let after = Seal::new(None, new, None);
        let ch = "gc:console";
        // A restarted node and one not yet restarted, both ways.
        assert!(before.open(ch, &during.seal(ch, b"x", 5), 5).is_ok());
        assert!(during.open(ch, &before.seal(ch, b"x", 5), 5).is_ok());
        // Then the previous key is dropped node by node.
        assert!(during.open(ch, &after.seal(ch, b"x", 5), 5).is_ok());
        assert!(after.open(ch, &during.seal(ch, b"x", 5), 5).is_ok());
        // A node still on the old key and one past the rotation do not (the rule:
        // every node holds both secrets before any drops the previous one).
        assert!(after.open(ch, &before.seal(ch, b"x", 5), 5).is_err());
        // A count of tags that cannot be right is refused, not trusted.
        let mut bad = during.seal(ch, b"x", 5);
        bad[0] = 0;
        assert_eq!(during.open(ch, &bad, 5), Err(Unsealed::Forged));
    }
}
