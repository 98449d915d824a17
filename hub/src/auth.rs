//! Tokens: HS256 JWTs (RFC 7519) with the claims of DESIGN.md §4.
//!
//! Signing and checking HS256 is an HMAC-SHA256 over two base64url parts; doing it here
//! with the RustCrypto `hmac`/`sha2` crates keeps RSA and elliptic-curve code (and a
//! second `rand`) out of the build. Only `HS256` is accepted: a token with any other
//! `alg`, including `none`, is refused. Verification is constant-time.
//!
//! Beyond the signature: an operator token must carry `scope` (empty = the whole city;
//! missing is refused, never read as the whole city); no token may live longer than
//! `--max-token-lifetime-h` from now; during a key rotation a second key
//! (`--jwt-secret-previous`) is accepted, and a token's `kid` header says which key
//! signed it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Who a token speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenRole {
    /// A grid lead's phone.
    Lead,
    /// A command-center operator (may issue and read incidents in its jurisdiction).
    Operator,
    /// A supervisor (as operator; reserved for approvals).
    Supervisor,
    /// An administrator (may also replace the registry).
    Admin,
}

/// Claims of a gridcast token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Claims {
    /// Lead or operator id.
    pub sub: String,
    /// Role.
    pub role: TokenRole,
    /// An operator's jurisdiction prefix; empty = the whole city.
    pub scope: String,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// The token's own id, for revocation (`gridcast-hub token` always sets one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

impl Claims {
    /// How long until the token expires (zero if it has).
    pub fn expires_in(&self) -> std::time::Duration {
        std::time::Duration::from_millis((self.exp * 1000).saturating_sub(crate::now_ms()))
    }
}

/// Claims as they arrive: `scope` may be missing, which only a lead token may do.
#[derive(Deserialize)]
struct WireClaims {
    sub: String,
    role: TokenRole,
    scope: Option<String>,
    exp: u64,
    #[serde(default)]
    jti: Option<String>,
}

/// Why a token was refused. The message never contains the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts of JSON.
    #[error("token is malformed")]
    Malformed,
    /// `alg` is not HS256.
    #[error("token algorithm must be HS256")]
    Algorithm,
    /// Signature does not match.
    #[error("token signature is invalid")]
    Signature,
    /// Past `exp`.
    #[error("token has expired")]
    Expired,
    /// An operator token without a `scope` claim.
    #[error("operator tokens must carry a scope claim (an empty string is the whole city)")]
    NoScope,
    /// `exp` further away than the hub allows.
    #[error("token lives longer than this hub allows ({0} hours); ask for a shorter one")]
    TooLong(u64),
    /// Listed in the revocation list.
    #[error("token has been revoked")]
    Revoked,
}

/// Signs with one HS256 key and checks with it or, during a rotation, the previous one.
#[derive(Clone)]
pub struct Auth {
    /// (kid, key): the signing key first.
    keys: Vec<(String, Vec<u8>)>,
    /// Longest a token may still have to live, in seconds.
    max_lifetime_s: u64,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Auth { keys: <redacted> }")
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
}

/// The key id of a key: the first 8 hex digits of its SHA-256 (names the key without
/// revealing it).
pub fn key_id(key: &[u8]) -> String {
    use sha2::Digest;
    Sha256::digest(key)[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Default of `--max-token-lifetime-h`: 30 days.
pub const DEFAULT_MAX_LIFETIME_H: u64 = 720;

impl Auth {
    /// A signer/verifier for `secret` with the default maximum lifetime.
    pub fn new(secret: &[u8]) -> Self {
        Self::with_keys(secret, None, DEFAULT_MAX_LIFETIME_H)
    }

    /// A signer for `secret` that also accepts tokens of `previous` (a key rotation),
    /// refusing any token with more than `max_lifetime_h` hours left.
    pub fn with_keys(secret: &[u8], previous: Option<&[u8]>, max_lifetime_h: u64) -> Self {
        let mut keys = vec![(key_id(secret), secret.to_vec())];
        if let Some(p) = previous {
            keys.push((key_id(p), p.to_vec()));
        }
        Self {
            keys,
            max_lifetime_s: max_lifetime_h.saturating_mul(3600),
        }
    }

    fn mac(key: &[u8]) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length")
    }

    /// Mints a token with the signing key, naming it in `kid`.
    pub fn sign(&self, claims: &Claims) -> String {
        self.sign_json(&serde_json::to_value(claims).expect("claims always serialize"))
    }

    /// Mints a token with any claims at all (for tools and tests that must present a
    /// token the hub will refuse, such as one without `scope`).
    pub fn sign_json(&self, claims: &serde_json::Value) -> String {
        let (kid, key) = &self.keys[0];
        let header = Header {
            alg: "HS256".into(),
            kid: Some(kid.clone()),
            typ: Some("JWT".into()),
        };
        let header = serde_json::to_vec(&header).expect("headers always serialize");
        let payload = serde_json::to_vec(claims).expect("JSON always serializes");
        let mut token = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let mut mac = Self::mac(key);
        mac.update(token.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        token.push('.');
        token.push_str(&sig);
        token
    }

    /// Checks a token's algorithm, signature, claims, expiry and lifetime (`now` in Unix
    /// seconds).
    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        let mut parts = token.splitn(3, '.');
        let (Some(h), Some(p), Some(s)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(TokenError::Malformed);
        };
        let header: Header = URL_SAFE_NO_PAD
            .decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(TokenError::Malformed)?;
        if header.alg != "HS256" {
            return Err(TokenError::Algorithm);
        }
        let sig = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| TokenError::Malformed)?;
        let signed = &token.as_bytes()[..h.len() + 1 + p.len()];
        // A named key must be one of ours; an unnamed one may be either.
        let good = self
            .keys
            .iter()
            .filter(|(kid, _)| header.kid.as_ref().is_none_or(|k| k == kid))
            .any(|(_, key)| {
                let mut mac = Self::mac(key);
                mac.update(signed);
                mac.verify_slice(&sig).is_ok()
            });
        if !good {
            return Err(TokenError::Signature);
        }
        let wire: WireClaims = URL_SAFE_NO_PAD
            .decode(p)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(TokenError::Malformed)?;
        if wire.exp <= now {
            return Err(TokenError::Expired);
        }
        if wire.exp - now > self.max_lifetime_s {
            return Err(TokenError::TooLong(self.max_lifetime_s / 3600));
        }
        let scope = match (wire.scope, wire.role) {
            (Some(s), _) => s,
            (None, TokenRole::Lead) => String::new(),
            (None, _) => return Err(TokenError::NoScope),
        };
        Ok(Claims {
            sub: wire.sub,
            role: wire.role,
            scope,
            exp: wire.exp,
            jti: wire.jti,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> Claims {
        Claims {
            sub: "L0001".into(),
            role: TokenRole::Lead,
            scope: String::new(),
            exp,
            jti: None,
        }
    }

    /// A token with these raw header and claims, signed with `key`.
    fn raw(key: &[u8], header: &str, claims: &str) -> String {
        let t = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let mut mac = Auth::mac(key);
        mac.update(t.as_bytes());
        format!(
            "{t}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    }

    #[test]
    fn operator_tokens_need_a_scope_and_lifetimes_are_bounded() {
        let a = Auth::with_keys(b"secret", None, 24);
        let h = r#"{"alg":"HS256"}"#;
        let op = raw(b"secret", h, r#"{"sub":"op","role":"operator","exp":1000}"#);
        assert_eq!(a.verify(&op, 1), Err(TokenError::NoScope));
        let city = raw(
            b"secret",
            h,
            r#"{"sub":"op","role":"admin","scope":"","exp":1000}"#,
        );
        assert_eq!(a.verify(&city, 1).unwrap().scope, "");
        let lead = raw(b"secret", h, r#"{"sub":"L1","role":"lead","exp":1000}"#);
        assert_eq!(a.verify(&lead, 1).unwrap().sub, "L1");
        // exp in the year 2140.
        let forever = raw(
            b"secret",
            h,
            r#"{"sub":"L1","role":"lead","exp":5364662400}"#,
        );
        assert_eq!(
            a.verify(&forever, 1_800_000_000),
            Err(TokenError::TooLong(24))
        );
        let day = raw(b"secret", h, r#"{"sub":"L1","role":"lead","exp":100000}"#);
        assert!(a.verify(&day, 100_000 - 24 * 3600).is_ok());
        assert_eq!(
            a.verify(&day, 99_999 - 24 * 3600),
            Err(TokenError::TooLong(24))
        );
    }

    #[test]
    fn a_rotation_accepts_the_previous_key_and_kid_picks_the_key() {
        let old = Auth::new(b"old-key");
        let new = Auth::with_keys(b"new-key", Some(b"old-key"), DEFAULT_MAX_LIFETIME_H);
        let after = Auth::new(b"new-key");
        let t_old = old.sign(&claims(100));
        let t_new = new.sign(&claims(100));
        assert!(new.verify(&t_old, 1).is_ok());
        assert!(new.verify(&t_new, 1).is_ok());
        assert!(old.verify(&t_new, 1).is_err());
        // Once the rotation is over, the old key's tokens stop working.
        assert_eq!(after.verify(&t_old, 1), Err(TokenError::Signature));
        // A kid that names a key we do not hold is refused, even if another key would do.
        let h = format!(r#"{{"alg":"HS256","kid":"{}"}}"#, key_id(b"elsewhere"));
        let t = raw(b"new-key", &h, r#"{"sub":"L1","role":"lead","exp":100}"#);
        assert_eq!(new.verify(&t, 1), Err(TokenError::Signature));
    }

    #[test]
    fn sign_then_verify() {
        let a = Auth::new(b"secret");
        let t = a.sign(&claims(100));
        assert_eq!(a.verify(&t, 99).unwrap(), claims(100));
        assert_eq!(a.verify(&t, 100), Err(TokenError::Expired));
        assert_eq!(
            Auth::new(b"other").verify(&t, 1),
            Err(TokenError::Signature)
        );
        assert_eq!(a.verify("abc", 1), Err(TokenError::Malformed));
    }

    #[test]
    fn tampered_claims_and_alg_none_are_refused() {
        let a = Auth::new(b"secret");
        let t = a.sign(&claims(100));
        let parts: Vec<&str> = t.split('.').collect();
        let admin =
            URL_SAFE_NO_PAD.encode(r#"{"sub":"L0001","role":"admin","scope":"","exp":100}"#);
        assert_eq!(
            a.verify(&format!("{}.{admin}.{}", parts[0], parts[2]), 1),
            Err(TokenError::Signature)
        );
        let none = URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#);
        assert_eq!(
            a.verify(&format!("{none}.{}.", parts[1]), 1),
            Err(TokenError::Algorithm)
        );
    }
}
