//! Describe filters: EC2's `Filter.N.Name`/`Value.M` semantics with `*` and `?` wildcards.
//!
//! Filters are ANDed; the values of one filter are ORed. Each resource kind supplies a
//! function from filter name to the resource's values for it (`None` = unknown filter, which
//! is an error, as in EC2). `tag:<key>`, `tag-key` and `tag-value` work for every kind.

use kiln_types::{Filter, Tag};

use crate::error::{CoreError, CoreResult};
use crate::records::item::Item;

/// Matches `text` against an EC2 wildcard pattern: `*` any run, `?` one character, `\`
/// escapes the next character.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative matcher with single-star backtracking: linear space, no recursion blow-up.
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ti));
                    pi += 1;
                    continue;
                }
                '?' => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                '\\' if pi + 1 < p.len() && p[pi + 1] == t[ti] => {
                    pi += 2;
                    ti += 1;
                    continue;
                }
                // An escape that does not match falls through to backtracking below.
                '\\' if pi + 1 < p.len() => {}
                c if c == t[ti] => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, st)) => {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// The values a resource has for a tag filter, or `None` when the name is not a tag filter.
/// What of EC2 filters the metadata store can narrow by: name patterns and tag conditions.
#[derive(Debug, Default)]
pub struct Pushed {
    /// From a `name` filter.
    pub names: Vec<kiln_meta::Pattern>,
    /// From `tag:<key>`, `tag-key` and `tag-value` filters.
    pub tags: Vec<kiln_meta::TagCondition>,
}

/// The conditions of `filters` the store can apply. Each is at most as strict as the filter it
/// comes from (a value using the `\\` escape is left to [`apply`]), so the store's answer is a
/// superset of the filtered one and `apply` still has the last word.
pub fn pushdown(filters: &[Filter]) -> Pushed {
    let patterns = |values: &[String]| -> Option<Vec<kiln_meta::Pattern>> {
        (!values.iter().any(|v| v.contains('\\')))
            .then(|| values.iter().map(|v| kiln_meta::Pattern(v.clone())).collect())
    };
    let mut out = Pushed::default();
    for f in filters {
        let Some(values) = patterns(&f.values) else { continue };
        if values.is_empty() {
            continue;
        }
        if f.name == "name" && out.names.is_empty() {
            out.names = values;
        } else if let Some(key) = f.name.strip_prefix("tag:") {
            out.tags.push(kiln_meta::TagCondition { keys: vec![kiln_meta::Pattern(key.to_string())], values });
        } else if f.name == "tag-key" {
            out.tags.push(kiln_meta::TagCondition { keys: values, values: vec![] });
        } else if f.name == "tag-value" {
            out.tags.push(kiln_meta::TagCondition { keys: vec![], values });
        }
    }
    out
}

pub fn tag_values(tags: &[Tag], name: &str) -> Option<Vec<String>> {
    if let Some(key) = name.strip_prefix("tag:") {
        return Some(tags.iter().filter(|t| t.key == key).map(|t| t.value.clone()).collect());
    }
    match name {
        "tag-key" => Some(tags.iter().map(|t| t.key.clone()).collect()),
        "tag-value" => Some(tags.iter().map(|t| t.value.clone()).collect()),
        _ => None,
    }
}

/// True when any of `have` matches any of the filter's patterns.
pub fn any_match(filter: &Filter, have: &[String]) -> bool {
    filter.values.iter().any(|pat| have.iter().any(|v| wildcard_match(pat, v)))
}

/// Keeps the items that pass every filter. `values_of(item, name)` answers a kind's own
/// filters; tag filters are handled here.
pub fn apply<T: Default>(
    items: Vec<Item<T>>,
    filters: &[Filter],
    values_of: impl Fn(&Item<T>, &str) -> Option<Vec<String>>,
) -> CoreResult<Vec<Item<T>>> {
    apply_by(items, filters, |item, name| tag_values(&item.tags, name).or_else(|| values_of(item, name)))
}

/// Like [`apply`] for values that are not stored items (regions, instance types).
pub fn apply_by<T: Default>(
    items: Vec<T>,
    filters: &[Filter],
    values_of: impl Fn(&T, &str) -> Option<Vec<String>>,
) -> CoreResult<Vec<T>> {
    if filters.is_empty() {
        return Ok(items);
    }
    // Unknown filter names are errors, as in EC2, even when nothing would be listed: a default
    // value of the kind answers which names exist, so the check never depends on the data.
    let probe = T::default();
    for f in filters {
        if values_of(&probe, &f.name).is_none() {
            return Err(CoreError::InvalidFilter(f.name.clone()));
        }
    }
    let mut out = Vec::with_capacity(items.len());
    'items: for item in items {
        for f in filters {
            let have = values_of(&item, &f.name).unwrap_or_default();
            if !any_match(f, &have) {
                continue 'items;
            }
        }
        out.push(item);
    }
    Ok(out)
}

/// Renders a boolean the way filters compare it.
pub fn b(v: bool) -> Vec<String> {
    vec![if v { "true" } else { "false" }.to_string()]
}

/// One string value.
pub fn s(v: impl AsRef<str>) -> Vec<String> {
    vec![v.as_ref().to_string()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wildcards() {
        assert!(wildcard_match("web-*", "web-1"));
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("a?c", "abc"));
        assert!(!wildcard_match("a?c", "ac"));
        assert!(wildcard_match("*b*d", "abcbd"));
        assert!(!wildcard_match("web", "web-1"));
        assert!(wildcard_match("a\\*", "a*"));
        assert!(!wildcard_match("a\\*", "ab"));
        assert!(wildcard_match("ü*", "über"));
    }

    #[test]
    fn tag_filters() {
        let tags = vec![Tag { key: "Name".into(), value: "web".into() }];
        assert_eq!(tag_values(&tags, "tag:Name"), Some(vec!["web".to_string()]));
        assert_eq!(tag_values(&tags, "tag:Other"), Some(vec![]));
        assert_eq!(tag_values(&tags, "tag-key"), Some(vec!["Name".to_string()]));
        assert_eq!(tag_values(&tags, "group-id"), None);
    }

    #[test]
    fn unknown_filters_are_refused_after_a_non_matching_one() {
        let filters = vec![
            Filter { name: "name".into(), values: vec!["nothing-matches".into()] },
            Filter { name: "bogus".into(), values: vec!["x".into()] },
        ];
        let known = |v: &&str, name: &str| (name == "name").then(|| s(v));
        assert!(matches!(apply_by(vec!["a", "b"], &filters, known), Err(CoreError::InvalidFilter(n)) if n == "bogus"));
        assert_eq!(apply_by(vec!["a", "b"], &filters[..1], known).unwrap(), Vec::<&str>::new());
    }

    proptest! {
        #[test]
        fn literal_patterns_match_only_themselves(a in "[a-z0-9-]{0,12}", b in "[a-z0-9-]{0,12}") {
            prop_assert_eq!(wildcard_match(&a, &b), a == b);
            prop_assert!(wildcard_match("*", &b));
            let star_suffix = format!("{a}*");
            let joined = format!("{a}{b}");
            prop_assert!(wildcard_match(&star_suffix, &joined));
        }
    }
}
