// SPDX-License-Identifier: MIT OR Apache-2.0
//! Sign names of the Mapillary traffic-sign taxonomy: `category--name--gN` (`regulatory--stop--g1`).
//!
//! The category is the first part (one of four), the group is the name without its graphic variant `--gN` (the
//! variants of one sign: country styles, colour schemes), and the variant is `gN`. A class label of odm is a design
//! name, exactly; a label that is not one (a network trained elsewhere, `red`) simply has no category.

use std::fmt;
use std::str::FromStr;

/// The four categories of the taxonomy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Regulatory,
    Warning,
    Information,
    Complementary,
}

impl Category {
    pub const ALL: [Category; 4] =
        [Category::Regulatory, Category::Warning, Category::Information, Category::Complementary];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Regulatory => "regulatory",
            Category::Warning => "warning",
            Category::Information => "information",
            Category::Complementary => "complementary",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a name is not a taxonomy name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaxonomyError {
    #[error("{0:?} is not a category of the traffic-sign taxonomy (regulatory, warning, information, complementary)")]
    UnknownCategory(String),
    #[error("{0:?} is not a sign name of the form category--name--gN (as regulatory--stop--g1)")]
    Malformed(String),
}

impl FromStr for Category {
    type Err = TaxonomyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Category::ALL.into_iter().find(|c| c.as_str() == s).ok_or_else(|| TaxonomyError::UnknownCategory(s.into()))
    }
}

/// A parsed design name, borrowing from the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignName<'a> {
    pub category: Category,
    /// The name without its variant: `regulatory--stop`.
    pub group: &'a str,
    /// `g1`.
    pub variant: &'a str,
}

impl<'a> SignName<'a> {
    /// Parse `category--name--gN`; the name part is non-empty lowercase ASCII letters, digits, underscores and single dashes.
    pub fn parse(name: &'a str) -> Result<SignName<'a>, TaxonomyError> {
        let bad = || TaxonomyError::Malformed(name.into());
        let (group, variant) = name.rsplit_once("--").ok_or_else(bad)?;
        let (category, middle) = group.split_once("--").ok_or_else(bad)?;
        let digits = variant.strip_prefix('g').ok_or_else(bad)?;
        let word_ok = |w: &str| {
            !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || !word_ok(middle) {
            return Err(bad());
        }
        if category.is_empty() || !category.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(bad());
        }
        if middle.starts_with('-') || middle.ends_with('-') || middle.contains("--") {
            return Err(bad());
        }
        let category = category.parse()?;
        Ok(SignName { category, group, variant })
    }
}

/// The category of a label when it is a taxonomy name.
pub fn category_of(label: &str) -> Option<Category> {
    SignName::parse(label).ok().map(|n| n.category)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names() {
        let n = SignName::parse("regulatory--maximum-speed-limit-30--g1").unwrap();
        assert_eq!(n.category, Category::Regulatory);
        assert_eq!(n.group, "regulatory--maximum-speed-limit-30");
        assert_eq!(n.variant, "g1");
        assert_eq!(SignName::parse("warning--curve-left--g12").unwrap().category, Category::Warning);
        assert_eq!(category_of("complementary--chevron-left--g3"), Some(Category::Complementary));
        assert_eq!(category_of("stop"), None);
    }

    #[test]
    fn refuses_other_names() {
        for bad in [
            "stop",
            "regulatory--stop",
            "regulatory--stop--1",
            "regulatory----g1",
            "regulatory--Stop--g1",
            "regulatory--stop--gx",
            "--stop--g1",
            "regulatory--stop--g",
        ] {
            assert_eq!(SignName::parse(bad), Err(TaxonomyError::Malformed(bad.into())), "{bad}");
        }
        assert_eq!(SignName::parse("advisory--stop--g1"), Err(TaxonomyError::UnknownCategory("advisory".into())));
        assert!(TaxonomyError::UnknownCategory("advisory".into()).to_string().contains("regulatory, warning"));
    }
}
