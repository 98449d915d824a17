//! Signatures between the hub and its gateway, both ways: `X-Gridcast-Timestamp` (Unix
//! seconds) and `X-Gridcast-Signature: sha256=<hex>` = HMAC-SHA256 of
//! `timestamp + "." + body` with the shared secret. The timestamp is signed so that a
//! recorded callback cannot be played again later.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The timestamp header.
pub(crate) const TIMESTAMP: &str = "x-gridcast-timestamp";
/// The signature header.
pub(crate) const SIGNATURE: &str = "x-gridcast-signature";
/// How far a callback's timestamp may be from the hub's clock, in seconds.
pub(crate) const SKEW_S: u64 = 300;

fn mac(secret: &[u8], ts: &str, body: &[u8]) -> Hmac<Sha256> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    m.update(ts.as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// The signature header's value for `body` sent at `ts`.
pub(crate) fn sign(secret: &[u8], ts: &str, body: &[u8]) -> String {
    let tag = mac(secret, ts, body).finalize().into_bytes();
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// Checks a signed request's headers before its body is read: both present, the
/// timestamp within [`SKEW_S`] of `now_s`, the signature shaped `sha256=<64 hex>`.
pub(crate) fn check_headers(
    ts: Option<&str>,
    signature: Option<&str>,
    now_s: u64,
) -> Result<(), &'static str> {
    let (Some(ts), Some(signature)) = (ts, signature) else {
        return Err("missing X-Gridcast-Timestamp or X-Gridcast-Signature");
    };
    let at: u64 = ts
        .parse()
        .map_err(|_| "X-Gridcast-Timestamp is not Unix seconds")?;
    if at.abs_diff(now_s) > SKEW_S {
        return Err("X-Gridcast-Timestamp is more than five minutes off the hub's clock");
    }
    signature
        .strip_prefix("sha256=")
        .and_then(decode_hex)
        .map(drop)
        .ok_or("X-Gridcast-Signature must be sha256=<hex>")
}

/// Checks a signed request: `Err(why)` when [`check_headers`] fails or the signature
/// does not match (compared in constant time).
pub(crate) fn verify(
    secret: &[u8],
    ts: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_s: u64,
) -> Result<(), &'static str> {
    check_headers(ts, signature, now_s)?;
    let (Some(ts), Some(signature)) = (ts, signature) else {
        return Err("missing X-Gridcast-Timestamp or X-Gridcast-Signature");
    };
    let hex = signature
        .strip_prefix("sha256=")
        .ok_or("X-Gridcast-Signature must be sha256=<hex>")?;
    let tag = decode_hex(hex).ok_or("X-Gridcast-Signature must be sha256=<hex>")?;
    mac(secret, ts, body)
        .verify_slice(&tag)
        .map_err(|_| "the signature does not match (wrong secret, or the body was changed)")
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_binds_the_body_and_the_time() {
        let key = b"0123456789abcdef";
        let sig = sign(key, "1700000000", b"{}");
        assert!(verify(key, Some("1700000000"), Some(&sig), b"{}", 1_700_000_100).is_ok());
        // Another body, another time, another key, too old, malformed: all refused.
        assert!(verify(key, Some("1700000000"), Some(&sig), b"{ }", 1_700_000_100).is_err());
        assert!(verify(key, Some("1700000001"), Some(&sig), b"{}", 1_700_000_100).is_err());
        assert!(
            verify(
                b"another key 1234",
                Some("1700000000"),
                Some(&sig),
                b"{}",
                1_700_000_000
            )
            .is_err()
        );
        assert!(verify(key, Some("1700000000"), Some(&sig), b"{}", 1_700_000_301).is_err());
        assert!(
            verify(
                key,
                Some("1700000000"),
                Some("sha256=zz"),
                b"{}",
                1_700_000_000
            )
            .is_err()
        );
        assert!(verify(key, None, Some(&sig), b"{}", 1_700_000_000).is_err());
    }
}
