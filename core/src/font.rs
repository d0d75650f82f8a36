// SPDX-License-Identifier: MIT OR Apache-2.0
//! The one font of odm (OSP-DIN, SIL Open Font License 1.1, from Debian's `fonts-opendin`; `core/assets/fonts/`):
//! odmoverlay draws its labels with it, and odm-train's renderer sets sign text in it (its build embeds the same file).

/// The font's family name, as SVG text names it.
pub const FAMILY: &str = "OSP-DIN";

/// The TrueType file.
pub static OSP_DIN: &[u8] = include_bytes!("../assets/fonts/OSP-DIN.ttf");
