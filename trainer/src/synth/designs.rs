// SPDX-License-Identifier: MIT OR Apache-2.0
//! The sign catalogue: the real sign designs of the Mapillary traffic-sign taxonomy.
//!
//! The designs are the SVG files of the npm package `mapillary_sprite_source` 1.8.0 (MIT licence), fetched and
//! checked by `scripts/designs.sh` into `.deps/designs/package`: `package_signs/category--name--gN.svg` (1,543
//! designs, 900 signs) and `mapping.json` (each design's regions: `eu`, `us`, `au`, `br`, `ca`). A class of odm is one
//! design, named exactly as the file (`regulatory--stop--g1`); its group is the name without `--gN` (the graphic
//! variants of one sign, kept on one side of every split) and its category the first part.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use odm_core::taxonomy::{Category, SignName};

use crate::error::TrainError;

/// The package the designs come from, as recorded in manifests.
pub const PACKAGE: &str = "mapillary_sprite_source@1.8.0";
/// Environment variable naming the designs folder (the one holding `package_signs/` and `mapping.json`).
pub const ENV: &str = "ODM_DESIGNS";

/// One design of the catalogue.
#[derive(Debug, Clone)]
pub struct Design {
    pub name: String,
    /// The name without its variant: `regulatory--stop`.
    pub group: String,
    pub category: Category,
    /// Regions of `mapping.json` (`eu`, `us`, ...).
    pub regions: Vec<String>,
    pub path: PathBuf,
}

impl Design {
    /// The SVG document.
    pub fn svg(&self) -> Result<String, TrainError> {
        let bytes = fs::read(&self.path).map_err(TrainError::io(&self.path))?;
        String::from_utf8(bytes).map_err(|_| TrainError::Designs {
            path: self.path.clone(),
            reason: "is not UTF-8 text, so not an SVG document".into(),
        })
    }
}

/// Every design of the package, sorted by name.
#[derive(Debug, Clone)]
pub struct Catalogue {
    pub root: PathBuf,
    pub designs: Vec<Design>,
}

#[derive(serde::Deserialize)]
struct Mapping {
    #[serde(default)]
    regions: Vec<String>,
}

impl Catalogue {
    /// Where the designs are: `explicit`, else `$ODM_DESIGNS`, else the checkout's `.deps/designs/package` (written by
    /// `scripts/designs.sh`), else `share/odm/designs` beside an installed `odm-train`.
    pub fn locate(explicit: Option<&Path>) -> PathBuf {
        if let Some(p) = explicit {
            return p.to_owned();
        }
        if let Some(p) = std::env::var_os(ENV) {
            return PathBuf::from(p);
        }
        let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.deps/designs/package");
        if checkout.is_dir() {
            return checkout;
        }
        let installed = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().and_then(Path::parent).map(|p| p.join("share/odm/designs")));
        installed.filter(|p| p.is_dir()).unwrap_or(checkout)
    }

    /// [`Catalogue::locate`] then [`Catalogue::load`].
    pub fn open(explicit: Option<&Path>) -> Result<Catalogue, TrainError> {
        Catalogue::load(&Catalogue::locate(explicit))
    }

    /// Read the package: every `package_signs/*.svg` with its regions. A missing folder, a malformed `mapping.json`
    /// or a file whose name is not a taxonomy name is refused with the path.
    pub fn load(root: &Path) -> Result<Catalogue, TrainError> {
        let signs = root.join("package_signs");
        if !signs.is_dir() {
            return Err(TrainError::Designs {
                path: signs,
                reason: format!(
                    "no sign designs here: run scripts/designs.sh (it fetches {PACKAGE}), or name the folder holding \
                     package_signs/ and mapping.json with --designs or ${ENV}"
                ),
            });
        }
        let mapping_path = root.join("mapping.json");
        let text = fs::read_to_string(&mapping_path).map_err(TrainError::io(&mapping_path))?;
        let mapping: BTreeMap<String, Mapping> = serde_json::from_str(&text).map_err(|e| TrainError::Designs {
            path: mapping_path.clone(),
            reason: format!("malformed design mapping: {e}"),
        })?;
        let mut designs = Vec::new();
        for entry in fs::read_dir(&signs).map_err(TrainError::io(&signs))? {
            let entry = entry.map_err(TrainError::io(&signs))?;
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".svg")) else {
                continue;
            };
            let parsed = SignName::parse(name)
                .map_err(|e| TrainError::Designs { path: path.clone(), reason: format!("not a design name: {e}") })?;
            let regions = mapping.get(name).map(|m| m.regions.clone()).ok_or_else(|| TrainError::Designs {
                path: mapping_path.clone(),
                reason: format!("has no entry for the design {name}: the package is incomplete"),
            })?;
            designs.push(Design {
                name: name.to_owned(),
                group: parsed.group.to_owned(),
                category: parsed.category,
                regions,
                path,
            });
        }
        if designs.is_empty() {
            return Err(TrainError::Designs { path: signs, reason: "holds no .svg design".into() });
        }
        designs.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Catalogue { root: root.to_owned(), designs })
    }

    pub fn get(&self, name: &str) -> Option<&Design> {
        self.index_of(name).map(|i| &self.designs[i])
    }

    /// The position of a design in [`Catalogue::designs`].
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.designs.binary_search_by(|d| d.name.as_str().cmp(name)).ok()
    }

    /// The named designs, in the order given; a name the package lacks is refused (with the variants of its group
    /// the package has, when there are some).
    pub fn select(&self, names: &[String]) -> Result<Vec<&Design>, TrainError> {
        names
            .iter()
            .map(|n| {
                self.get(n).ok_or_else(|| {
                    // The variants of its sign: `n` is a design of another variant, or the sign without `--gN`.
                    let group = crate::data::group_of(n);
                    let near: Vec<&str> = self
                        .designs
                        .iter()
                        .filter(|d| d.group == group || d.group == *n)
                        .map(|d| d.name.as_str())
                        .collect();
                    let hint = if near.is_empty() { String::new() } else { format!(" (it has {})", near.join(", ")) };
                    TrainError::UnknownDesign { name: n.clone(), root: self.root.clone(), hint }
                })
            })
            .collect()
    }
}
