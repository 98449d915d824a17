//! Areas on the map: what an activation targets by shape (`targets.area`), what a grid
//! covers (`geometry` in the registry) and where a lead checks in.
//!
//! Two coordinate orders meet here, and mixing them is the classic bug of this field:
//! activation areas and check-ins are written **lat first** (`[lat, lon]`, as CAP
//! writes `lat,lon`), grid geometries are GeoJSON and so **lon first** (`[lon, lat]`,
//! RFC 7946). Every coordinate is WGS 84 unless the input declares `"datum":
//! "gcj02"` (the offset datum of Chinese map SDKs); the hub converts such input to
//! WGS 84 before it stores or compares anything.

use serde::{Deserialize, Serialize};

/// Most vertices of an activation's shapes together (IPAWS takes 100 per polygon): the
/// shapes travel in every incident frame, which must stay well under
/// [`crate::MAX_MESSAGE_BYTES`] beside a body of 16,000 characters.
pub const MAX_AREA_POINTS: usize = 500;
/// Most shapes in one `targets.area` list.
pub const MAX_SHAPES: usize = 16;
/// Largest circle radius, in metres (a province).
pub const MAX_RADIUS_M: f64 = 500_000.0;
/// Most vertices in one grid geometry (all rings together).
pub const MAX_GEOMETRY_POINTS: usize = 5000;

/// The datum of coordinates a client sends.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Datum {
    /// WGS 84 (GPS, CAP, GeoJSON; CGCS2000 is within centimetres of it).
    #[default]
    Wgs84,
    /// GCJ-02 (高德/腾讯 map SDKs): offset by up to ~700 m inside China.
    Gcj02,
}

impl Datum {
    /// True for WGS 84 (the default, not written out).
    pub fn is_wgs84(&self) -> bool {
        *self == Datum::Wgs84
    }
}

/// A circle: centre in degrees, radius in metres (0 = the point itself).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Circle {
    /// Latitude of the centre.
    pub lat: f64,
    /// Longitude of the centre.
    pub lon: f64,
    /// Radius in metres.
    pub radius_m: f64,
}

/// One shape of an activation area: a polygon or a circle, never both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Area {
    /// Vertices as `[lat, lon]` pairs (CAP's order); closed by the hub if open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub polygon: Option<Vec<[f64; 2]>>,
    /// A circle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circle: Option<Circle>,
    /// The datum of the coordinates above (WGS 84 unless declared).
    #[serde(default, skip_serializing_if = "Datum::is_wgs84")]
    pub datum: Datum,
}

fn lat_lon_ok(lat: f64, lon: f64) -> bool {
    lat.is_finite()
        && lon.is_finite()
        && (-90.0..=90.0).contains(&lat)
        && (-180.0..=180.0).contains(&lon)
}

impl Area {
    /// Checks the shape; `at` names it in the message (`targets.area[0]`).
    pub fn check(&self, at: &str) -> Result<(), String> {
        match (&self.polygon, &self.circle) {
            (Some(_), Some(_)) => Err(format!(
                "{at}: give a polygon or a circle, not both (use a list for several shapes)"
            )),
            (None, None) => Err(format!("{at}: needs a polygon or a circle")),
            (Some(points), None) => {
                let mut distinct = points.clone();
                if distinct.len() > 1 && distinct.first() == distinct.last() {
                    distinct.pop();
                }
                if distinct.len() < 3 {
                    return Err(format!(
                        "{at}.polygon: needs at least 3 distinct [lat, lon] points (has {})",
                        distinct.len()
                    ));
                }
                if distinct.len() > MAX_AREA_POINTS {
                    return Err(format!(
                        "{at}.polygon: at most {MAX_AREA_POINTS} points (has {})",
                        distinct.len()
                    ));
                }
                if let Some(i) = points.iter().position(|&[lat, lon]| !lat_lon_ok(lat, lon)) {
                    let [lat, lon] = points[i];
                    return Err(format!(
                        "{at}.polygon[{i}]: [{lat}, {lon}] is not [lat, lon] in degrees (lat -90..90, lon -180..180)"
                    ));
                }
                Ok(())
            }
            (None, Some(c)) => {
                if !lat_lon_ok(c.lat, c.lon) {
                    return Err(format!(
                        "{at}.circle: lat {} lon {} are not degrees (lat -90..90, lon -180..180)",
                        c.lat, c.lon
                    ));
                }
                if !(c.radius_m.is_finite() && (0.0..=MAX_RADIUS_M).contains(&c.radius_m)) {
                    return Err(format!(
                        "{at}.circle: radius_m must be 0 to {MAX_RADIUS_M} metres (has {})",
                        c.radius_m
                    ));
                }
                // A circle over a pole or the antimeridian wraps: refused, not misdrawn.
                let r_deg = c.radius_m / 111_195.0;
                let r_lon = r_deg / c.lat.to_radians().cos().max(1e-9);
                if c.lat.abs() + r_deg >= 89.0 || c.lon.abs() + r_lon >= 180.0 {
                    return Err(format!(
                        "{at}.circle: reaches over a pole or the antimeridian; give a polygon on each side"
                    ));
                }
                Ok(())
            }
        }
    }
}

/// Checks an activation's shapes: each one, their number and their vertices together.
pub fn check_all(areas: &[Area]) -> Result<(), String> {
    if areas.len() > MAX_SHAPES {
        return Err(format!(
            "targets.area: at most {MAX_SHAPES} shapes (has {})",
            areas.len()
        ));
    }
    for (i, a) in areas.iter().enumerate() {
        a.check(&format!("targets.area[{i}]"))?;
    }
    let total: usize = areas
        .iter()
        .map(|a| a.polygon.as_ref().map_or(1, Vec::len))
        .sum();
    if total > MAX_AREA_POINTS + areas.len() {
        return Err(format!(
            "targets.area: at most {MAX_AREA_POINTS} points in all shapes together (has {total})"
        ));
    }
    Ok(())
}

/// `targets.area` on the wire: one shape, or a list of them (their union).
pub mod one_or_many {
    use super::Area;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Deserialize, schemars::JsonSchema)]
    #[serde(untagged)]
    enum OneOrMany {
        One(Area),
        Many(Vec<Area>),
    }

    /// Reads an object or an array of objects.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Area>, D::Error> {
        match Option::<OneOrMany>::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "targets.area must be {\"polygon\": [[lat, lon], …]} or {\"circle\": {\"lat\", \"lon\", \"radius_m\"}} (or a list of them)",
            )
        })? {
            None => Ok(Vec::new()),
            Some(OneOrMany::One(a)) => Ok(vec![a]),
            Some(OneOrMany::Many(v)) => Ok(v),
        }
    }

    /// Writes one shape as an object, several as an array.
    pub fn serialize<S: Serializer>(v: &[Area], s: S) -> Result<S::Ok, S::Error> {
        match v {
            [one] => one.serialize(s),
            many => many.serialize(s),
        }
    }
}

/// Checks a grid's GeoJSON geometry (Polygon or MultiPolygon, `[lon, lat]`, rings
/// closed with at least 4 positions) and returns it as a multipolygon.
pub fn grid_shape(g: &geojson::Geometry) -> Result<geo_types::MultiPolygon<f64>, String> {
    let polygons: Vec<&Vec<Vec<geojson::Position>>> = match &g.value {
        geojson::GeometryValue::Polygon { coordinates } => vec![coordinates],
        geojson::GeometryValue::MultiPolygon { coordinates } => coordinates.iter().collect(),
        other => {
            return Err(format!(
                "geometry must be a GeoJSON Polygon or MultiPolygon, not {}",
                other.type_name()
            ));
        }
    };
    if polygons.is_empty() {
        return Err("geometry: a MultiPolygon needs at least one polygon".into());
    }
    let total: usize = polygons.iter().flat_map(|p| p.iter()).map(Vec::len).sum();
    if total > MAX_GEOMETRY_POINTS {
        return Err(format!(
            "geometry: at most {MAX_GEOMETRY_POINTS} positions (has {total})"
        ));
    }
    for (p, rings) in polygons.iter().enumerate() {
        if rings.is_empty() {
            return Err(format!("geometry: polygon {p} has no ring"));
        }
        for (r, ring) in rings.iter().enumerate() {
            if ring.len() < 4 || ring.first() != ring.last() {
                return Err(format!(
                    "geometry: polygon {p} ring {r} must be closed (first position repeated last) with at least 4 positions"
                ));
            }
            for pos in ring {
                let (lon, lat) = match pos.as_slice() {
                    [lon, lat, ..] => (*lon, *lat),
                    _ => {
                        return Err(format!(
                            "geometry: polygon {p} ring {r}: a position needs [lon, lat]"
                        ));
                    }
                };
                if !lat_lon_ok(lat, lon) {
                    return Err(format!(
                        "geometry: polygon {p} ring {r}: [{lon}, {lat}] is not [lon, lat] in degrees (GeoJSON order: longitude first)"
                    ));
                }
            }
        }
    }
    let shape = match &g.value {
        geojson::GeometryValue::Polygon { .. } => {
            geo_types::Polygon::<f64>::try_from(&g.value).map(|p| geo_types::MultiPolygon(vec![p]))
        }
        _ => geo_types::MultiPolygon::<f64>::try_from(&g.value),
    };
    shape.map_err(|e| format!("geometry: {e}"))
}
