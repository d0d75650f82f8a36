// SPDX-License-Identifier: MIT OR Apache-2.0
//! The sign catalogue: every class of the synthetic world as one SVG document.
//!
//! Designs come from real public-domain artwork (josm's German/EU sign pictograms) and from parametric families drawn
//! here in the same style: speed limits 10..130 in the red ring with the DIN-like OSP-DIN font, warning triangles with
//! josm's pictograms, blue mandatory circles with arrows. Near-twins (60 vs 80, left vs right) are there on purpose:
//! they are the hard novelty cases of the paper. Each design has a `group`: classes of one group are kept on the same
//! side of an in/out split, so a split is "reasonable and natural" (paper, section 4.2).

use crate::assets;

/// One class of the synthetic world.
#[derive(Debug, Clone)]
pub struct Design {
    pub name: String,
    pub group: &'static str,
    /// A complete SVG document, square viewBox.
    pub svg: String,
}

/// josm files used as they are: (file, class name, group).
const JOSM: &[(&str, &str, &str)] = &[
    ("stop.svg", "stop", "priority"),
    ("give_way.svg", "give-way", "priority"),
    ("dead_end.svg", "dead-end", "information"),
    ("city_limit.svg", "city-limit", "information"),
    ("maxspeed_none.svg", "end-of-speed-limits", "speed-limit"),
    ("minspeed.svg", "minimum-speed", "mandatory"),
    ("maxheight.svg", "max-height", "dimension-limit"),
    ("maxlength.svg", "max-length", "dimension-limit"),
    ("maxweight.svg", "max-weight", "dimension-limit"),
    ("maxwidth.svg", "max-width", "dimension-limit"),
    ("bicycle.svg", "no-bicycles", "vehicle-ban"),
    ("foot.svg", "no-pedestrians", "vehicle-ban"),
    ("horse.svg", "no-horses", "vehicle-ban"),
    ("motorcar.svg", "no-cars", "vehicle-ban"),
    ("motorbike.svg", "no-motorcycles", "vehicle-ban"),
    ("goods.svg", "no-goods-vehicles", "vehicle-ban"),
    ("psv.svg", "no-buses", "vehicle-ban"),
    ("bicycle-designated.svg", "cycle-path", "designated-path"),
    ("foot-designated.svg", "footpath", "designated-path"),
    ("horse-designated.svg", "bridleway", "designated-path"),
    ("roundabout_left.svg", "roundabout-left", "roundabout"),
    ("roundabout_right.svg", "roundabout-right", "roundabout"),
    ("mini_roundabout_left.svg", "mini-roundabout-left", "roundabout"),
    ("mini_roundabout_right.svg", "mini-roundabout-right", "roundabout"),
    ("turn_no_left_turn.svg", "no-left-turn", "turn-ban"),
    ("turn_no_right_turn.svg", "no-right-turn", "turn-ban"),
    ("turn_no_straight_on.svg", "no-straight-on", "turn-ban"),
    ("turn_no_u_turn.svg", "no-u-turn", "turn-ban"),
    ("turn_only_left_turn.svg", "turn-left-only", "mandatory-direction"),
    ("turn_only_right_turn.svg", "turn-right-only", "mandatory-direction"),
    ("turn_only_straight_on.svg", "straight-on-only", "mandatory-direction"),
];

/// josm pictograms placed in warning triangles: (file, class name).
const WARNING_PICTOGRAMS: &[(&str, &str)] = &[
    ("plain_bicycle.svg", "warning-cyclists"),
    ("plain_foot.svg", "warning-pedestrians"),
    ("plain_horse.svg", "warning-horse-riders"),
    ("plain_motorcar.svg", "warning-cars"),
    ("plain_motorcycle.svg", "warning-motorcycles"),
    ("plain_moped.svg", "warning-mopeds"),
];

/// Speed limits drawn in the red ring.
pub const SPEED_LIMITS: &[u32] = &[10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130];

/// Namespaces josm's Inkscape files use, declared on every generated root so their content can be nested.
const NAMESPACES: &str = r#"xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" xmlns:svg="http://www.w3.org/2000/svg" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:cc="http://creativecommons.org/ns#" xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns:sodipodi="http://sodipodi.sourceforge.net/DTD/sodipodi-0.dtd" xmlns:inkscape="http://www.inkscape.org/namespaces/inkscape""#;

pub(crate) const RED: &str = "#c1121c";
pub(crate) const BLUE: &str = "#1d5aa6";
pub(crate) const BLACK: &str = "#111111";

fn svg_text(name: &str) -> String {
    let bytes = assets::get(assets::SIGNS, name).unwrap_or_else(|| panic!("asset {name} is embedded by build.rs"));
    String::from_utf8_lossy(bytes).into_owned()
}

pub(crate) fn doc(body: &str) -> String {
    format!(r#"<svg {NAMESPACES} width="100" height="100" viewBox="0 0 100 100">{body}</svg>"#)
}

fn speed_limit(v: u32) -> String {
    let size = if v >= 100 { 38 } else { 48 };
    doc(&format!(
        r#"<circle cx="50" cy="50" r="48" fill="white" stroke="{RED}" stroke-width="0"/>
<circle cx="50" cy="50" r="40" fill="white" stroke="{RED}" stroke-width="14"/>
<text x="50" y="{y}" font-family="OSP-DIN" font-size="{size}" text-anchor="middle" fill="{BLACK}">{v}</text>"#,
        y = 50.0 + size as f32 * 0.36
    ))
}

fn warning(pictogram: Option<&str>) -> String {
    let content = match pictogram {
        Some(file) => {
            // Nested as an SVG image: josm's Inkscape files carry namespaces of their own.
            use base64::Engine;
            let data = base64::engine::general_purpose::STANDARD.encode(svg_text(file));
            format!(r#"<image x="31" y="42" width="38" height="38" href="data:image/svg+xml;base64,{data}"/>"#)
        }
        None => format!(
            r#"<text x="50" y="78" font-family="OSP-DIN" font-size="44" text-anchor="middle" fill="{BLACK}">!</text>"#
        ),
    };
    doc(&format!(
        r#"<path d="M50 6 L95 88 Q97 93 91 93 L9 93 Q3 93 5 88 Z" fill="{RED}"/>
<path d="M50 22 L82 82 L18 82 Z" fill="white"/>{content}"#
    ))
}

/// White arrows on a blue disc; `paths` in a 100x100 box.
fn mandatory(paths: &str) -> String {
    doc(&format!(
        r#"<circle cx="50" cy="50" r="47" fill="{BLUE}" stroke="white" stroke-width="2"/>
<path d="{paths}" fill="white" stroke="none"/>"#
    ))
}

const ARROW_UP: &str = "M44 80 L44 42 L32 42 L50 18 L68 42 L56 42 L56 80 Z";

fn mandatory_designs() -> Vec<(String, String)> {
    let left = "M56 80 L56 52 Q56 44 48 44 L40 44 L40 32 L20 50 L40 68 L40 56 L44 56 L44 80 Z";
    let right = "M44 80 L44 52 Q44 44 52 44 L60 44 L60 32 L80 50 L60 68 L60 56 L56 56 L56 80 Z";
    let keep_left = "M64 78 L40 54 L40 66 L28 66 L28 34 L60 34 L60 46 L48 46 L72 70 Z";
    let keep_right = "M36 78 L60 54 L60 66 L72 66 L72 34 L40 34 L40 46 L52 46 L28 70 Z";
    let straight_left =
        "M54 82 L54 30 L64 30 L50 12 L36 30 L46 30 L46 54 L36 54 L36 46 L20 58 L36 70 L36 62 L46 62 L46 82 Z";
    let straight_right =
        "M46 82 L46 30 L36 30 L50 12 L64 30 L54 30 L54 54 L64 54 L64 46 L80 58 L64 70 L64 62 L54 62 L54 82 Z";
    vec![
        ("ahead-only".into(), mandatory(ARROW_UP)),
        ("turn-left-ahead".into(), mandatory(left)),
        ("turn-right-ahead".into(), mandatory(right)),
        ("keep-left".into(), mandatory(keep_left)),
        ("keep-right".into(), mandatory(keep_right)),
        ("ahead-or-left".into(), mandatory(straight_left)),
        ("ahead-or-right".into(), mandatory(straight_right)),
    ]
}

/// Every class, in a fixed order.
pub fn catalogue() -> Vec<Design> {
    let mut v = Vec::new();
    for &speed in SPEED_LIMITS {
        v.push(Design { name: format!("speed-limit-{speed}"), group: "speed-limit", svg: speed_limit(speed) });
    }
    for (file, name, group) in JOSM {
        v.push(Design { name: (*name).into(), group, svg: svg_text(file) });
    }
    v.push(Design { name: "warning-danger".into(), group: "warning", svg: warning(None) });
    for (file, name) in WARNING_PICTOGRAMS {
        v.push(Design { name: (*name).into(), group: "warning", svg: warning(Some(file)) });
    }
    for (name, svg) in mandatory_designs() {
        v.push(Design { name, group: "mandatory-direction", svg });
    }
    v
}
