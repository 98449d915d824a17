//! Whole numbers as JSON Schema sees them: `4` and `4.0` are the same integer, so the
//! API takes both (serde alone refuses `4.0` for a `u8`, which a schema-valid client may
//! send).

use serde::{Deserialize, Deserializer};

fn whole<'de, D: Deserializer<'de>>(n: serde_json::Number, max: u64) -> Result<u64, D::Error> {
    let v = match (n.as_u64(), n.as_f64()) {
        (Some(v), _) => Some(v),
        (None, Some(f)) if f.fract() == 0.0 && (0.0..=max as f64).contains(&f) => Some(f as u64),
        _ => None,
    };
    v.filter(|v| *v <= max).ok_or_else(|| {
        serde::de::Error::custom(format!("{n} is not a whole number from 0 to {max}"))
    })
}

/// A `u8` given as `4` or `4.0`.
pub fn u8<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    whole::<D>(n, u64::from(u8::MAX)).map(|v| v as u8)
}

/// An optional `u32` given as `30` or `30.0`.
pub fn opt_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    match Option::<serde_json::Number>::deserialize(d)? {
        None => Ok(None),
        Some(n) => whole::<D>(n, u64::from(u32::MAX)).map(|v| Some(v as u32)),
    }
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize)]
    struct T {
        #[serde(deserialize_with = "super::u8")]
        a: u8,
        #[serde(default, deserialize_with = "super::opt_u32")]
        b: Option<u32>,
    }

    #[test]
    fn whole_floats_are_integers() {
        let t: T = serde_json::from_str(r#"{"a": 4.0, "b": 30}"#).unwrap();
        assert_eq!((t.a, t.b), (4, Some(30)));
        assert!(serde_json::from_str::<T>(r#"{"a": 4.5}"#).is_err());
        assert!(serde_json::from_str::<T>(r#"{"a": 256}"#).is_err());
        assert!(serde_json::from_str::<T>(r#"{"a": -1}"#).is_err());
        assert_eq!(serde_json::from_str::<T>(r#"{"a": 1}"#).unwrap().b, None);
    }
}
