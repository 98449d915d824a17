//! Area targeting: which grids an activation's shapes reach, and whether a check-in
//! lies inside an area.
//!
//! The registry's grid geometries are indexed once per registry (an R-tree of their
//! bounding boxes). An activation's shapes become one [`Shape`] in WGS 84 (GCJ-02 input
//! converted, circles as 64-gons on the sphere), with an R-tree of its own edges, so
//! that a grid is tested against the few edges near it rather than all of them: two
//! polygons intersect when a vertex of one lies in the other or when their edges cross.
//! The policy is "any intersection" (a grid the area only touches is reached): a
//! warning that reaches a few more people is better than one that misses a street.

use geo::{BoundingRect, Coord, Destination, Haversine, Intersects, Line, LineString, LinesIter};
use geo::{MultiPolygon, Point, Polygon, Rect};
use gridcast_protocol::area::{Area, Datum};
use gridcast_protocol::registry::Grid;
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{AABB, RTree};

/// Vertices of the polygon a circle becomes (drawn around it, 0.1 % wider).
const CIRCLE_VERTICES: usize = 64;

fn aabb(r: Rect<f64>) -> AABB<[f64; 2]> {
    AABB::from_corners([r.min().x, r.min().y], [r.max().x, r.max().y])
}

/// The grids of a registry that have a geometry, indexed by bounding box.
#[derive(Debug, Default)]
pub(crate) struct GridShapes {
    tree: RTree<GeomWithData<Rectangle<[f64; 2]>, usize>>,
    /// `(index in registry.grids, shape)`.
    shapes: Vec<(usize, MultiPolygon<f64>)>,
    /// Registry grid index → index in `shapes`.
    by_grid: std::collections::HashMap<usize, usize>,
}

impl GridShapes {
    /// Indexes every grid with a (validated) geometry; a micro-grid without one has
    /// its grid's (it lies inside it: when only the grid is mapped, an area reaching
    /// the grid reaches its micro-grids' people too).
    pub(crate) fn new(grids: &[Grid]) -> Self {
        let mut shapes = Vec::new();
        let mut by_grid = std::collections::HashMap::new();
        let own: std::collections::HashMap<&str, &geojson::Geometry> = grids
            .iter()
            .filter_map(|g| Some((g.code.as_str(), g.geometry.as_ref()?)))
            .collect();
        for (i, g) in grids.iter().enumerate() {
            let geometry = g.geometry.as_ref().or_else(|| {
                let parent = g.code.parent()?;
                own.get(parent.as_str()).copied()
            });
            let Some(shape) =
                geometry.and_then(|geom| gridcast_protocol::area::grid_shape(geom).ok())
            else {
                continue;
            };
            by_grid.insert(i, shapes.len());
            shapes.push((i, shape));
        }
        let boxes = shapes
            .iter()
            .enumerate()
            .filter_map(|(k, (_, s))| {
                let r = s.bounding_rect()?;
                Some(GeomWithData::new(
                    Rectangle::from_corners([r.min().x, r.min().y], [r.max().x, r.max().y]),
                    k,
                ))
            })
            .collect();
        Self {
            tree: RTree::bulk_load(boxes),
            shapes,
            by_grid,
        }
    }

    /// How many grids have a geometry.
    pub(crate) fn len(&self) -> usize {
        self.shapes.len()
    }

    /// The registry indices of the grids whose geometry intersects `shape`, ascending.
    pub(crate) fn intersecting(&self, shape: &Shape) -> Vec<usize> {
        let Some(bounds) = shape.bounds else {
            return Vec::new();
        };
        let mut out: Vec<usize> = self
            .tree
            .locate_in_envelope_intersecting(&aabb(bounds))
            .filter(|cand| shape.intersects(&self.shapes[cand.data].1))
            .map(|cand| self.shapes[cand.data].0)
            .collect();
        out.sort_unstable();
        out
    }

    /// The shape of the grid at `index` of the registry, if it has one.
    pub(crate) fn shape(&self, index: usize) -> Option<&MultiPolygon<f64>> {
        self.by_grid.get(&index).map(|&k| &self.shapes[k].1)
    }
}

/// A WGS 84 position from a lat/lon pair in `datum`.
pub(crate) fn wgs84(lat: f64, lon: f64, datum: Datum) -> Coord<f64> {
    let (lon, lat) = match datum {
        Datum::Wgs84 => (lon, lat),
        Datum::Gcj02 => coordtransform::gcj02_to_wgs84(lon, lat),
    };
    Coord { x: lon, y: lat }
}

/// Rewrites `areas` in WGS 84 (a declared GCJ-02 input is converted, the `datum` goes)
/// and closes open polygons: what is stored with the incident and shown to everyone.
pub(crate) fn normalise(areas: &mut [Area]) {
    for a in areas {
        if let Some(points) = &mut a.polygon {
            for p in points.iter_mut() {
                let c = wgs84(p[0], p[1], a.datum);
                *p = [c.y, c.x];
            }
            if points.first() != points.last()
                && let Some(&first) = points.first()
            {
                points.push(first);
            }
        }
        if let Some(c) = &mut a.circle {
            let w = wgs84(c.lat, c.lon, a.datum);
            (c.lat, c.lon) = (w.y, w.x);
        }
        a.datum = Datum::Wgs84;
    }
}

/// The union of an activation's shapes, ready for intersection tests.
#[derive(Debug)]
pub(crate) struct Shape {
    polygons: MultiPolygon<f64>,
    /// Radius-0 circles: points.
    points: Vec<Coord<f64>>,
    edges: RTree<Line<f64>>,
    bounds: Option<Rect<f64>>,
}

impl Shape {
    /// The shapes of `areas` (already [`normalise`]d to WGS 84 and checked).
    pub(crate) fn new(areas: &[Area]) -> Self {
        let mut polygons = Vec::new();
        let mut points = Vec::new();
        for a in areas {
            if let Some(ps) = &a.polygon {
                let ring: Vec<Coord<f64>> = ps
                    .iter()
                    .map(|&[lat, lon]| Coord { x: lon, y: lat })
                    .collect();
                polygons.push(Polygon::new(LineString::new(ring), Vec::new()));
            }
            if let Some(c) = &a.circle {
                let centre = Point::new(c.lon, c.lat);
                if c.radius_m <= 0.0 {
                    points.push(centre.0);
                    continue;
                }
                // Vertices on a slightly larger circle, so that the polygon holds the
                // whole circle ("any intersection" must not miss its rim).
                let rim = c.radius_m / (std::f64::consts::PI / CIRCLE_VERTICES as f64).cos();
                let ring: Vec<Coord<f64>> = (0..=CIRCLE_VERTICES)
                    .map(|k| {
                        let bearing = 360.0 * (k % CIRCLE_VERTICES) as f64 / CIRCLE_VERTICES as f64;
                        Haversine.destination(centre, bearing, rim).0
                    })
                    .collect();
                polygons.push(Polygon::new(LineString::new(ring), Vec::new()));
            }
        }
        let polygons = MultiPolygon(polygons);
        let edges = RTree::bulk_load(polygons.lines_iter().collect());
        let mut bounds = polygons.bounding_rect();
        for &p in &points {
            let r = Rect::new(p, p);
            bounds = Some(match bounds {
                None => r,
                Some(b) => Rect::new(
                    Coord {
                        x: b.min().x.min(p.x),
                        y: b.min().y.min(p.y),
                    },
                    Coord {
                        x: b.max().x.max(p.x),
                        y: b.max().y.max(p.y),
                    },
                ),
            });
        }
        Self {
            polygons,
            points,
            edges,
            bounds,
        }
    }

    /// True when `grid` and the area share at least one point (boundaries included).
    pub(crate) fn intersects(&self, grid: &MultiPolygon<f64>) -> bool {
        if self.points.iter().any(|p| grid.intersects(p)) {
            return true;
        }
        if self.polygons.0.is_empty() {
            return false;
        }
        // A vertex of the grid inside the area (the common case: grids well inside).
        if grid
            .0
            .iter()
            .filter_map(|p| p.exterior().0.first())
            .any(|c| self.polygons.intersects(c))
        {
            return true;
        }
        // The area inside the grid (a small area in a big grid).
        if self
            .polygons
            .0
            .iter()
            .filter_map(|p| p.exterior().0.first())
            .any(|c| grid.intersects(c))
        {
            return true;
        }
        // Otherwise they meet only where their edges cross: test the area's edges near
        // each of the grid's.
        grid.lines_iter().any(|g| {
            let near = AABB::from_corners(Point(g.start), Point(g.end));
            self.edges
                .locate_in_envelope_intersecting(&near)
                .any(|a| a.intersects(&g))
        })
    }

    /// True when `c` (WGS 84) lies in the area or on its edge (points of radius-0
    /// circles never contain anything but themselves).
    pub(crate) fn contains(&self, c: Coord<f64>) -> bool {
        self.polygons.intersects(&c) || self.points.contains(&c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridcast_protocol::area::Circle;

    /// A lattice of 20 × 20 square grids, 0.01° a side, from (120.0, 30.0).
    fn lattice() -> Vec<MultiPolygon<f64>> {
        let mut out = Vec::new();
        for j in 0..20 {
            for i in 0..20 {
                let (x, y) = (120.0 + 0.01 * f64::from(i), 30.0 + 0.01 * f64::from(j));
                let ring = LineString::from(vec![
                    (x, y),
                    (x + 0.01, y),
                    (x + 0.01, y + 0.01),
                    (x, y + 0.01),
                    (x, y),
                ]);
                out.push(MultiPolygon(vec![Polygon::new(ring, vec![])]));
            }
        }
        out
    }

    fn polygon(points: &[[f64; 2]]) -> Area {
        let mut a = vec![Area {
            polygon: Some(points.to_vec()),
            circle: None,
            datum: Datum::Wgs84,
        }];
        normalise(&mut a);
        a.pop().unwrap()
    }

    /// The shapes of `areas` as geo polygons, for geo's own (slower) predicate.
    fn reference(shape: &Shape, grid: &MultiPolygon<f64>) -> bool {
        shape.polygons.intersects(grid) || shape.points.iter().any(|p| grid.intersects(p))
    }

    #[test]
    fn the_indexed_test_agrees_with_geos_brute_force_on_many_shapes() {
        let grids = lattice();
        // A pseudo-random walk of polygons and circles of every size over the lattice
        // (deterministic: an LCG), also thin slivers, tiny ones inside one grid, ones
        // that only touch an edge, and ones outside.
        let mut seed: u64 = 7;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut shapes = vec![
            polygon(&[[30.005, 120.005], [30.006, 120.005], [30.006, 120.006]]),
            polygon(&[[30.0, 120.03], [30.05, 120.03], [30.05, 120.031]]),
            polygon(&[
                [30.02, 120.02],
                [30.02, 120.03],
                [30.01, 120.03],
                [30.01, 120.02],
            ]),
            polygon(&[[31.0, 121.0], [31.1, 121.0], [31.1, 121.1]]),
        ];
        for _ in 0..300 {
            let (lat, lon) = (29.98 + 0.24 * next(), 119.98 + 0.24 * next());
            let r = 0.001 + 0.05 * next() * next();
            if next() < 0.3 {
                let mut a = vec![Area {
                    polygon: None,
                    circle: Some(Circle {
                        lat,
                        lon,
                        radius_m: r * 111_000.0,
                    }),
                    datum: Datum::Wgs84,
                }];
                normalise(&mut a);
                shapes.push(a.pop().unwrap());
            } else {
                let n = 3 + (next() * 40.0) as usize;
                let points: Vec<[f64; 2]> = (0..n)
                    .map(|k| {
                        let a = std::f64::consts::TAU * k as f64 / n as f64;
                        let rr = r * (0.3 + 0.7 * next());
                        [lat + rr * a.sin(), lon + rr * a.cos()]
                    })
                    .collect();
                shapes.push(polygon(&points));
            }
        }
        let mut hits = 0;
        for (k, area) in shapes.iter().enumerate() {
            let shape = Shape::new(std::slice::from_ref(area));
            for (g, grid) in grids.iter().enumerate() {
                let want = reference(&shape, grid);
                assert_eq!(shape.intersects(grid), want, "shape {k} grid {g}: {area:?}");
                hits += usize::from(want);
            }
        }
        // The walk exercised both answers plenty.
        assert!(
            hits > 1000 && hits < shapes.len() * grids.len() / 2,
            "{hits}"
        );
    }

    #[test]
    fn a_radius_zero_circle_is_the_point_and_gcj02_input_is_moved_to_wgs84() {
        let grids = lattice();
        let mut a = vec![Area {
            polygon: None,
            circle: Some(Circle {
                lat: 30.015,
                lon: 120.015,
                radius_m: 0.0,
            }),
            datum: Datum::Wgs84,
        }];
        normalise(&mut a);
        let shape = Shape::new(&a);
        let hit: Vec<usize> = (0..grids.len())
            .filter(|&g| shape.intersects(&grids[g]))
            .collect();
        assert_eq!(hit, [21], "only the grid holding the point");

        // The same position as a Chinese map SDK reports it lands elsewhere unless the
        // datum is declared: GCJ-02 is hundreds of metres off around Hangzhou.
        let (glon, glat) = coordtransform::wgs84_to_gcj02(120.015, 30.015);
        let moved = wgs84(glat, glon, Datum::Wgs84);
        let back = wgs84(glat, glon, Datum::Gcj02);
        assert!(
            (moved.x - 120.015).abs() > 0.003,
            "GCJ-02 is offset: {moved:?}"
        );
        assert!(
            (back.x - 120.015).abs() < 1e-6 && (back.y - 30.015).abs() < 1e-6,
            "{back:?}"
        );
    }
}
