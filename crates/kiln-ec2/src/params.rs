//! The EC2 Query parameter decoder.
//!
//! EC2 flattens structures and lists into dotted keys: `Filter.1.Name`, `Filter.1.Value.2`,
//! `TagSpecification.1.Tag.1.Key`. [`Params`] holds the flat map and hands out typed views;
//! list indices are ordered numerically and need not be contiguous (clients start at 1, but a
//! gap must not drop the tail silently, so every index is kept).

use std::collections::BTreeMap;

use kiln_types::Filter;

use crate::ProtocolError;

/// Upper bound on how many parameters one request may carry; bigger requests are garbage.
pub const MAX_PARAMS: usize = 10_000;
/// Upper bound on one list index, so `Foo.99999999` cannot make us allocate.
pub const MAX_INDEX: u32 = 100_000;

/// A decoded request's parameters (or a sub-structure of them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params {
    map: BTreeMap<String, String>,
}

/// Upper-cases the first letter of each dotted segment: botocore sends `GroupId`, hand-written
/// clients sometimes send the model's `groupId` location name.
fn normalise_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for (i, seg) in key.split('.').enumerate() {
        if i > 0 {
            out.push('.');
        }
        let mut chars = seg.chars();
        if let Some(c) = chars.next() {
            out.extend(c.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}

impl Params {
    /// Decodes `application/x-www-form-urlencoded` text (a query string or a POST body) and
    /// merges it over `self`. A later value for the same key wins, as in EC2.
    pub fn merge_urlencoded(&mut self, raw: &[u8]) -> Result<(), ProtocolError> {
        for (k, v) in form_urlencoded::parse(raw) {
            if k.is_empty() {
                continue;
            }
            if self.map.len() >= MAX_PARAMS {
                return Err(ProtocolError::TooManyParameters);
            }
            self.map.insert(normalise_key(&k), v.into_owned());
        }
        Ok(())
    }

    /// Builds params from key/value pairs (used by tests and by sub-structure views).
    pub fn from_pairs<K: AsRef<str>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        Params { map: pairs.into_iter().map(|(k, v)| (normalise_key(k.as_ref()), v.into())).collect() }
    }

    /// All keys, for diagnostics.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(String::as_str)
    }

    /// The raw value of a key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.map.get(key).map(String::as_str)
    }

    /// The value of a key, or `MissingParameter`.
    pub fn required(&self, key: &str) -> Result<&str, ProtocolError> {
        match self.get(key) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(ProtocolError::MissingParameter(key.to_string())),
        }
    }

    /// An optional owned string.
    pub fn string(&self, key: &str) -> Option<String> {
        self.get(key).map(str::to_string)
    }

    /// An optional boolean (`true`/`false`, any case).
    pub fn bool(&self, key: &str) -> Result<Option<bool>, ProtocolError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(ProtocolError::InvalidValue {
                param: key.to_string(),
                value: v.to_string(),
                reason: "expected true or false".into(),
            }),
        }
    }

    /// An optional 64-bit integer.
    pub fn int(&self, key: &str) -> Result<Option<i64>, ProtocolError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.trim().parse::<i64>().map(Some).map_err(|_| ProtocolError::InvalidValue {
                param: key.to_string(),
                value: v.to_string(),
                reason: "expected an integer".into(),
            }),
        }
    }

    /// The `DryRun` flag.
    pub fn dry_run(&self) -> Result<bool, ProtocolError> {
        Ok(self.bool("DryRun")?.unwrap_or(false))
    }

    /// Sorted distinct indices N of keys `prefix.N` or `prefix.N.…`.
    fn indices(&self, prefix: &str) -> Result<Vec<u32>, ProtocolError> {
        let dotted = format!("{prefix}.");
        let mut out = Vec::new();
        for key in self.map.range(dotted.clone()..) {
            let Some(rest) = key.0.strip_prefix(&dotted) else { break };
            let idx = rest.split('.').next().unwrap_or("");
            match idx.parse::<u32>() {
                Ok(n) if (1..=MAX_INDEX).contains(&n) => out.push(n),
                _ => {
                    return Err(ProtocolError::InvalidValue {
                        param: key.0.clone(),
                        value: key.1.clone(),
                        reason: "list index must be a positive integer".into(),
                    })
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// A list of scalars: `prefix.1`, `prefix.2`, …
    pub fn strings(&self, prefix: &str) -> Result<Vec<String>, ProtocolError> {
        let mut out = Vec::new();
        for n in self.indices(prefix)? {
            let key = format!("{prefix}.{n}");
            match self.get(&key) {
                Some(v) => out.push(v.to_string()),
                None => {
                    return Err(ProtocolError::InvalidValue {
                        param: key,
                        value: String::new(),
                        reason: "expected a string, found a structure".into(),
                    })
                }
            }
        }
        Ok(out)
    }

    /// A list of structures: the sub-params under `prefix.1.`, `prefix.2.`, …
    pub fn structs(&self, prefix: &str) -> Result<Vec<Params>, ProtocolError> {
        let mut out = Vec::new();
        for n in self.indices(prefix)? {
            out.push(self.sub(&format!("{prefix}.{n}")));
        }
        Ok(out)
    }

    /// The sub-structure under `prefix.`.
    pub fn sub(&self, prefix: &str) -> Params {
        let dotted = format!("{prefix}.");
        let map = self
            .map
            .range(dotted.clone()..)
            .take_while(|(k, _)| k.starts_with(&dotted))
            .map(|(k, v)| (k[dotted.len()..].to_string(), v.clone()))
            .collect();
        Params { map }
    }

    /// `Filter.N.Name` / `Filter.N.Value.M`.
    pub fn filters(&self) -> Result<Vec<Filter>, ProtocolError> {
        self.structs("Filter")?
            .into_iter()
            .map(|f| {
                Ok(Filter {
                    name: f
                        .required("Name")
                        .map_err(|_| ProtocolError::MissingParameter("Filter.N.Name".into()))?
                        .to_string(),
                    values: f.strings("Value")?,
                })
            })
            .collect()
    }

    /// `MaxResults` checked against the action's documented range.
    pub fn max_results(&self, min: i64, max: i64) -> Result<Option<usize>, ProtocolError> {
        match self.int("MaxResults")? {
            None => Ok(None),
            Some(n) if (min..=max).contains(&n) => Ok(Some(n as usize)),
            Some(n) => Err(ProtocolError::InvalidValue {
                param: "MaxResults".into(),
                value: n.to_string(),
                reason: format!("must be between {min} and {max}"),
            }),
        }
    }

    /// True when no key is present.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> Params {
        let mut p = Params::default();
        p.merge_urlencoded(s.as_bytes()).unwrap();
        p
    }

    #[test]
    fn filters_decode_in_numeric_order() {
        let params = p("Filter.10.Name=b&Filter.10.Value.1=y&Filter.2.Name=a&Filter.2.Value.2=x2&Filter.2.Value.1=x1");
        let f = params.filters().unwrap();
        assert_eq!(f[0], Filter { name: "a".into(), values: vec!["x1".into(), "x2".into()] });
        assert_eq!(f[1], Filter { name: "b".into(), values: vec!["y".into()] });
    }

    #[test]
    fn nested_structures_and_lowercase_location_names() {
        let params = p("ipPermissions.1.IpRanges.1.CidrIp=10.0.0.0%2F8&IpPermissions.1.ipProtocol=tcp&TagSpecification.1.Tag.1.Key=Name&TagSpecification.1.Tag.1.Value=web");
        let perms = params.structs("IpPermissions").unwrap();
        assert_eq!(perms.len(), 1);
        assert_eq!(perms[0].get("IpProtocol"), Some("tcp"));
        assert_eq!(perms[0].structs("IpRanges").unwrap()[0].get("CidrIp"), Some("10.0.0.0/8"));
        let tags = params.structs("TagSpecification").unwrap()[0].structs("Tag").unwrap();
        assert_eq!(tags[0].get("Value"), Some("web"));
    }

    #[test]
    fn bad_indices_and_values_are_errors() {
        assert!(p("KeyName.x=a").strings("KeyName").is_err());
        assert!(p("KeyName.0=a").strings("KeyName").is_err());
        assert!(p("MaxResults=abc").max_results(5, 1000).is_err());
        assert!(p("MaxResults=4").max_results(5, 1000).is_err());
        assert_eq!(p("MaxResults=5").max_results(5, 1000).unwrap(), Some(5));
        assert!(p("DryRun=maybe").dry_run().is_err());
        assert!(p("Filter.1.Value.1=x").filters().is_err());
    }

    #[test]
    fn prefixes_do_not_bleed_into_longer_names() {
        let params = p("KeyName.1=a&KeyNames.1=b&KeyName.2=c");
        assert_eq!(params.strings("KeyName").unwrap(), vec!["a", "c"]);
    }

    proptest! {
        #[test]
        fn decoder_never_panics(raw in ".{0,300}") {
            let mut params = Params::default();
            if params.merge_urlencoded(raw.as_bytes()).is_ok() {
                let _ = params.filters();
                if let Ok(specs) = params.structs("TagSpecification") {
                    for spec in &specs {
                        let _ = spec.structs("Tag");
                    }
                }
                let _ = params.strings("KeyName");
                let _ = params.max_results(5, 1000);
                let _ = params.dry_run();
            }
        }

        #[test]
        fn dotted_lists_round_trip(values in proptest::collection::vec("[a-zA-Z0-9 =&%.]{0,12}", 0..20)) {
            let encoded: String = values.iter().enumerate()
                .map(|(i, v)| format!("Value.{}={}&", i + 1, form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()))
                .collect();
            prop_assert_eq!(p(&encoded).strings("Value").unwrap(), values);
        }
    }
}
