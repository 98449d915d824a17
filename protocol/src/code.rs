//! Grid codes and targets.
//!
//! A grid code has 16 digits, a micro-grid code 19 (DESIGN.md §1). A *target* is a prefix
//! that stops at a boundary of the hierarchy: 2 (province), 4 (city), 6 (county),
//! 9 (town/street), 12 (community/village), 13 (one kind of grid in a community),
//! 16 (grid) or 19 (micro-grid) digits. Anything else is refused so that an activation
//! can never silently fan out to nobody.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Lengths at which a prefix names an area.
pub const TARGET_LENGTHS: [usize; 8] = [2, 4, 6, 9, 12, 13, 16, 19];

/// Why a string is not a grid code or target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// The string has a character that is not an ASCII digit.
    #[error("code {0:?} must contain digits only")]
    NotDigits(String),
    /// A grid code must have 16 (grid) or 19 (micro-grid) digits.
    #[error("grid code {0:?} must have 16 (grid) or 19 (micro-grid) digits")]
    GridLength(String),
    /// A target must stop at a boundary of the hierarchy.
    #[error("target {0:?} must have 2, 4, 6, 9, 12, 13, 16 or 19 digits")]
    TargetLength(String),
    /// The grid-kind digit (position 13) must be 1, 2 or 3.
    #[error(
        "code {0:?} has grid kind digit {1:?}; it must be 1 (community), 2 (rural) or 3 (dedicated)"
    )]
    Kind(String, char),
}

fn digits_only(s: &str) -> Result<(), CodeError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CodeError::NotDigits(s.to_owned()));
    }
    Ok(())
}

fn kind_digit_ok(s: &str) -> Result<(), CodeError> {
    match s.as_bytes().get(12) {
        None | Some(b'1' | b'2' | b'3') => Ok(()),
        Some(&b) => Err(CodeError::Kind(s.to_owned(), b as char)),
    }
}

/// A validated grid (16 digits) or micro-grid (19 digits) code.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GridCode(String);

impl GridCode {
    /// Parses a grid or micro-grid code.
    pub fn parse(s: &str) -> Result<Self, CodeError> {
        digits_only(s)?;
        if s.len() != 16 && s.len() != 19 {
            return Err(CodeError::GridLength(s.to_owned()));
        }
        kind_digit_ok(s)?;
        Ok(Self(s.to_owned()))
    }

    /// The code as digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for a 19-digit micro-grid code.
    pub fn is_micro(&self) -> bool {
        self.0.len() == 19
    }

    /// The parent grid of a micro-grid (its 16-digit prefix); `None` for a grid.
    pub fn parent(&self) -> Option<GridCode> {
        self.is_micro().then(|| GridCode(self.0[..16].to_owned()))
    }

    /// The grid itself, or a micro-grid's parent grid.
    pub fn grid(&self) -> GridCode {
        self.parent().unwrap_or_else(|| self.clone())
    }
}

impl fmt::Display for GridCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for GridCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for GridCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        GridCode::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A validated target prefix: an area of the hierarchy (province down to micro-grid).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target(String);

impl Target {
    /// Parses a target prefix.
    pub fn parse(s: &str) -> Result<Self, CodeError> {
        digits_only(s)?;
        if !TARGET_LENGTHS.contains(&s.len()) {
            return Err(CodeError::TargetLength(s.to_owned()));
        }
        kind_digit_ok(s)?;
        Ok(Self(s.to_owned()))
    }

    /// The empty prefix: the whole city (only used for jurisdictions, never as a target).
    pub fn everything() -> Self {
        Self(String::new())
    }

    /// The prefix as digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when `code` lies inside this area.
    pub fn covers(&self, code: &str) -> bool {
        code.starts_with(&self.0)
    }

    /// The next boundary below this prefix, i.e. the length of its children's codes;
    /// `None` for a micro-grid.
    pub fn child_len(&self) -> Option<usize> {
        if self.0.is_empty() {
            return Some(2);
        }
        TARGET_LENGTHS.iter().copied().find(|&l| l > self.0.len())
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Target {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Target::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for GridCode {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "GridCode".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[0-9]{12}[123][0-9]{3}([0-9]{3})?$",
            "description": "A grid (16 digits) or micro-grid (19 digits) code."
        })
    }
}

impl schemars::JsonSchema for Target {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Target".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^([0-9]{2}|[0-9]{4}|[0-9]{6}|[0-9]{9}|[0-9]{12}|[0-9]{12}[123]|[0-9]{12}[123][0-9]{3}|[0-9]{12}[123][0-9]{6})$",
            "description": "A code prefix: province, city, county, town, community, grid, micro-grid."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn grid_and_micro_grid_codes() {
        let g = GridCode::parse("3301060040051012").unwrap();
        assert!(!g.is_micro());
        assert_eq!(g.parent(), None);
        let m = GridCode::parse("3301060040051012003").unwrap();
        assert!(m.is_micro());
        assert_eq!(m.parent(), Some(g.clone()));
        assert_eq!(m.grid(), g);
    }

    #[test]
    fn bad_codes_are_refused_with_a_reason() {
        assert!(matches!(
            GridCode::parse("330106004005101"),
            Err(CodeError::GridLength(_))
        ));
        assert!(matches!(
            GridCode::parse("33010600400510a2"),
            Err(CodeError::NotDigits(_))
        ));
        assert!(matches!(GridCode::parse(""), Err(CodeError::NotDigits(_))));
        assert!(matches!(
            GridCode::parse("3301060040054012"),
            Err(CodeError::Kind(_, '4'))
        ));
        assert!(matches!(
            Target::parse("3301060"),
            Err(CodeError::TargetLength(_))
        ));
        assert!(matches!(
            Target::parse("3301060040050"),
            Err(CodeError::Kind(_, '0'))
        ));
    }

    #[test]
    fn child_lengths_follow_the_hierarchy() {
        let t = |s: &str| Target::parse(s).unwrap().child_len();
        assert_eq!(Target::everything().child_len(), Some(2));
        assert_eq!(t("33"), Some(4));
        assert_eq!(t("330106"), Some(9));
        assert_eq!(t("330106004005"), Some(13));
        assert_eq!(t("3301060040051"), Some(16));
        assert_eq!(t("3301060040051012"), Some(19));
        assert_eq!(t("3301060040051012003"), None);
    }

    fn grid_code() -> impl Strategy<Value = String> {
        (
            "[0-9]{12}",
            "[123]",
            "[0-9]{3}",
            proptest::option::of("[0-9]{3}"),
        )
            .prop_map(|(a, k, s, m)| format!("{a}{k}{s}{}", m.unwrap_or_default()))
    }

    proptest! {
        #[test]
        fn every_generated_code_parses_and_round_trips(code in grid_code()) {
            let g = GridCode::parse(&code).unwrap();
            let json = serde_json::to_string(&g).unwrap();
            prop_assert_eq!(serde_json::from_str::<GridCode>(&json).unwrap(), g);
        }

        #[test]
        fn every_boundary_prefix_is_a_target_covering_its_code(code in grid_code()) {
            for len in TARGET_LENGTHS.iter().copied().filter(|&l| l <= code.len()) {
                let t = Target::parse(&code[..len]).unwrap();
                prop_assert!(t.covers(&code));
            }
        }

        #[test]
        fn off_boundary_prefixes_are_refused(code in grid_code(), len in 1usize..19) {
            prop_assume!(!TARGET_LENGTHS.contains(&len) && len <= code.len());
            prop_assert!(matches!(Target::parse(&code[..len]), Err(CodeError::TargetLength(_))));
        }

        #[test]
        fn covers_is_prefix_match(a in grid_code(), b in grid_code(), len in 0usize..8) {
            let len = TARGET_LENGTHS[len];
            prop_assume!(len <= a.len());
            let t = Target::parse(&a[..len]).unwrap();
            prop_assert_eq!(t.covers(&b), b.starts_with(&a[..len]));
        }

        #[test]
        fn arbitrary_strings_never_panic(s in "\\PC{0,24}") {
            let _ = GridCode::parse(&s);
            let _ = Target::parse(&s);
        }
    }
}
