// SPDX-License-Identifier: MIT OR Apache-2.0
//! Sign categories and taxonomy labels, as the bundle, the scorer and the results use them.

use odm_core::taxonomy::{category_of, SignName};
use odm_core::{Category, TaxonomyError};

#[test]
fn categories_read_and_print_their_lower_case_names() {
    for c in Category::ALL {
        assert_eq!(c.as_str().parse::<Category>(), Ok(c));
        assert_eq!(c.to_string(), c.as_str());
        assert_eq!(serde_json::to_string(&c).unwrap(), format!("\"{}\"", c.as_str()));
        assert_eq!(serde_json::from_str::<Category>(&format!("\"{c}\"")).unwrap(), c);
    }
    assert_eq!(Category::ALL.map(Category::as_str), ["regulatory", "warning", "information", "complementary"]);
    // The error names the value it refuses.
    for bad in ["Warning", "advisory", ""] {
        let e = bad.parse::<Category>().unwrap_err();
        assert_eq!(e, TaxonomyError::UnknownCategory(bad.into()));
        assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
    }
}

#[test]
fn a_label_gives_category_group_and_variant_or_a_reason() {
    let n = SignName::parse("warning--curve-left--g2").unwrap();
    assert_eq!((n.category, n.group, n.variant), (Category::Warning, "warning--curve-left", "g2"));
    assert_eq!(category_of("information--parking--g1"), Some(Category::Information));
    assert_eq!(category_of("complementary--chevron-left--g3"), Some(Category::Complementary));
    // Labels of networks trained elsewhere are no taxonomy names: no category.
    for other in ["red", "speed-limit-30", "regulatory--stop"] {
        assert_eq!(category_of(other), None, "{other}");
        let e = SignName::parse(other).unwrap_err();
        assert!(e.to_string().contains(other) && e.to_string().contains("category--name--gN"), "{e}");
    }
    let e = SignName::parse("warnings--curve--g1").unwrap_err();
    assert!(e.to_string().contains("\"warnings\""), "{e}");
}
