//! `MaxResults`/`NextToken` pagination.
//!
//! A token names the position after the last item returned (its creation sequence), so pages
//! stay correct while items are added or deleted between calls. Tokens are opaque to clients:
//! base64 of `v1:<position>`.

use base64::Engine;
use kiln_types::Page;

use crate::error::{CoreError, CoreResult};

fn encode(pos: i64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("v1:{pos}"))
}

fn decode(token: &str) -> CoreResult<i64> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| CoreError::InvalidNextToken(token.to_string()))?;
    std::str::from_utf8(&raw)
        .ok()
        .and_then(|s| s.strip_prefix("v1:"))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| CoreError::InvalidNextToken(token.to_string()))
}

/// Cuts one page out of `items`, which must be sorted by `pos`. Returns the page and the
/// token for the next one, if any items remain.
pub fn paginate<T>(items: Vec<T>, page: &Page, pos: impl Fn(&T) -> i64) -> CoreResult<(Vec<T>, Option<String>)> {
    let after = page.next_token.as_deref().map(decode).transpose()?;
    let mut rest: Vec<T> = match after {
        Some(a) => items.into_iter().filter(|i| pos(i) > a).collect(),
        None => items,
    };
    match page.max_results {
        Some(n) if rest.len() > n => {
            rest.truncate(n);
            let token = rest.last().map(|i| encode(pos(i)));
            Ok((rest, token))
        }
        _ => Ok((rest, None)),
    }
}

/// Like [`paginate`] for items without a creation sequence, positioned by a unique key they
/// are sorted by (an ARN): the token names the last key returned (`v1k:<key>`).
pub fn paginate_by_key<T>(
    items: Vec<T>,
    page: &Page,
    key: impl Fn(&T) -> &str,
) -> CoreResult<(Vec<T>, Option<String>)> {
    let after = page.next_token.as_deref().map(decode_key).transpose()?;
    let mut rest: Vec<T> = match &after {
        Some(a) => items.into_iter().filter(|i| key(i) > a.as_str()).collect(),
        None => items,
    };
    match page.max_results {
        Some(n) if rest.len() > n => {
            rest.truncate(n);
            let token =
                rest.last().map(|i| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("v1k:{}", key(i))));
            Ok((rest, token))
        }
        _ => Ok((rest, None)),
    }
}

fn decode_key(token: &str) -> CoreResult<String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|s| s.strip_prefix("v1k:").map(str::to_string))
        .ok_or_else(|| CoreError::InvalidNextToken(token.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cover_everything_once() {
        let items: Vec<i64> = (1..=12).collect();
        let mut seen = Vec::new();
        let mut token = None;
        loop {
            let (got, next) =
                paginate(items.clone(), &Page { max_results: Some(5), next_token: token }, |i| *i).unwrap();
            seen.extend(got);
            match next {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        assert_eq!(seen, items);
    }

    #[test]
    fn keyed_pages_cover_everything_once() {
        let items: Vec<String> = (1..=7).map(|n| format!("arn:{n:02}")).collect();
        let mut seen = Vec::new();
        let mut token = None;
        loop {
            let page = Page { max_results: Some(3), next_token: token };
            let (got, next) = paginate_by_key(items.clone(), &page, |i| i.as_str()).unwrap();
            seen.extend(got);
            match next {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        assert_eq!(seen, items);
        let sequence_token = Some(encode(3));
        let page = Page { max_results: None, next_token: sequence_token };
        assert!(paginate_by_key(items, &page, |i| i.as_str()).is_err(), "tokens of the two kinds do not mix");
    }

    #[test]
    fn garbage_tokens_are_refused() {
        for t in ["", "!!!", "djE6eA", "eHg"] {
            assert!(
                paginate(vec![1i64], &Page { max_results: None, next_token: Some(t.into()) }, |i| *i).is_err(),
                "{t}"
            );
        }
    }
}
