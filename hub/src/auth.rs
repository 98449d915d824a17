//! Tokens: HS256 JWTs (RFC 7519) with the claims of DESIGN.md §4.
//!
//! Signing and checking HS256 is an HMAC-SHA256 over two base64url parts; doing it here
//! with the RustCrypto `hmac`/`sha2` crates keeps RSA and elliptic-curve code (and a
//! second `rand`) out of the build. Only `HS256` is accepted: a token with any other
//! `alg`, including `none`, is refused. Verification is constant-time.

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Lead or operator id.
    pub sub: String,
    /// Role.
    pub role: TokenRole,
    /// An operator's jurisdiction prefix; empty = the whole city.
    #[serde(default)]
    pub scope: String,
    /// Expiry, Unix seconds.
    pub exp: u64,
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
}

/// Signs and checks tokens with one HS256 key.
#[derive(Clone)]
pub struct Auth {
    key: Vec<u8>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Auth { key: <redacted> }")
    }
}

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

#[derive(Deserialize)]
struct Header {
    alg: String,
}

impl Auth {
    /// A signer/verifier for `secret`.
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: secret.to_vec(),
        }
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes keys of any length")
    }

    /// Mints a token.
    pub fn sign(&self, claims: &Claims) -> String {
        let payload = serde_json::to_vec(claims).expect("claims always serialize");
        let mut token = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(HEADER),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let mut mac = self.mac();
        mac.update(token.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        token.push('.');
        token.push_str(&sig);
        token
    }

    /// Checks a token's algorithm, signature and expiry (`now` in Unix seconds).
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
        let mut mac = self.mac();
        mac.update(&token.as_bytes()[..h.len() + 1 + p.len()]);
        mac.verify_slice(&sig).map_err(|_| TokenError::Signature)?;
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(p)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(TokenError::Malformed)?;
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        Ok(claims)
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
        }
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
