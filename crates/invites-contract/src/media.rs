//! Media types: their essence, documented types that cover a sent one (`application/*`,
//! `+json` suffixes), and `Accept` negotiation against a response's documented types.

/// `application/json` of `Application/JSON; charset=utf-8`.
pub fn essence(media: &str) -> String {
    media
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Whether a documented media type (possibly with wildcards) takes a sent one: `*/*` takes
/// anything, `application/*` any application type, and `application/json` a `+json` type
/// (`application/vnd.api+json`), as Prism matches them.
pub fn covers(documented: &str, sent: &str) -> bool {
    let (d, s) = (essence(documented), essence(sent));
    if d == s || d == "*/*" {
        return true;
    }
    let (Some((dt, dsub)), Some((st, ssub))) = (d.split_once('/'), s.split_once('/')) else {
        return false;
    };
    if dt != st && dt != "*" {
        return false;
    }
    dsub == "*"
        || ssub
            .rsplit_once('+')
            .is_some_and(|(_, suffix)| suffix == dsub)
}

/// One range of an `Accept` header with its weight.
#[derive(Debug, Clone, PartialEq)]
struct Range {
    media: String,
    q: f32,
    /// Position in the header, for ties.
    order: usize,
}

fn ranges(accept: &str) -> Vec<Range> {
    accept
        .split(',')
        .enumerate()
        .filter_map(|(order, part)| {
            let mut pieces = part.split(';');
            let media = essence(pieces.next()?);
            if media.is_empty() {
                return None;
            }
            let q = pieces
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            Some(Range { media, q, order })
        })
        .collect()
}

/// How specifically a range matches a media type: exact 3, `type/*` 2, `*/*` 1, none 0.
fn specificity(range: &str, media: &str) -> u8 {
    let media = essence(media);
    if range == media {
        return 3;
    }
    if range == "*/*" {
        return 1;
    }
    match (range.split_once('/'), media.split_once('/')) {
        (Some((rt, "*")), Some((mt, _))) if rt == mt => 2,
        // A client asking for JSON takes a `+json` type (Atlas's dated vnd types).
        (Some((rt, rsub)), Some((mt, msub)))
            if rt == mt && msub.rsplit_once('+').is_some_and(|(_, s)| s == rsub) =>
        {
            2
        }
        _ => 0,
    }
}

/// The documented media type to answer with, by index: with no `Accept` (or `*/*`) the first
/// (documents list JSON first here); else the best weighted match, ties to the more specific
/// range, then the header's order, then the document's. `None`: nothing acceptable (406).
pub fn negotiate(accept: Option<&str>, documented: &[&str]) -> Option<usize> {
    if documented.is_empty() {
        return None;
    }
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Some(0);
    };
    let ranges = ranges(accept);
    if ranges.is_empty() {
        return Some(0);
    }
    let mut best: Option<(f32, u8, usize, usize)> = None;
    for (i, media) in documented.iter().enumerate() {
        // The most specific range that matches this type decides its weight (RFC 9110 12.5.1).
        let Some(range) = ranges
            .iter()
            .filter(|r| specificity(&r.media, media) > 0)
            .max_by_key(|r| (specificity(&r.media, media), std::cmp::Reverse(r.order)))
        else {
            continue;
        };
        if range.q <= 0.0 {
            continue;
        }
        let key = (range.q, specificity(&range.media, media), range.order, i);
        let better = match best {
            None => true,
            Some((q, s, o, j)) => {
                key.0 > q
                    || (key.0 == q
                        && (key.1 > s || (key.1 == s && (key.2 < o || (key.2 == o && key.3 < j)))))
            }
        };
        if better {
            best = Some(key);
        }
    }
    best.map(|(_, _, _, i)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_types_cover_what_they_name() {
        assert!(covers(
            "application/json",
            "application/json; charset=utf-8"
        ));
        assert!(covers("application/json", "application/vnd.api+json"));
        assert!(covers("application/*", "application/xml"));
        assert!(covers("*/*", "image/png"));
        assert!(!covers("application/json", "text/plain"));
        assert!(!covers("application/xml", "application/json"));
    }

    #[test]
    fn accept_picks_by_weight_then_specificity() {
        let docs = ["application/json", "application/xml", "text/csv"];
        assert_eq!(negotiate(None, &docs), Some(0));
        assert_eq!(negotiate(Some("*/*"), &docs), Some(0));
        assert_eq!(negotiate(Some("application/xml"), &docs), Some(1));
        assert_eq!(
            negotiate(Some("text/*, application/json;q=0.5"), &docs),
            Some(2)
        );
        assert_eq!(negotiate(Some("image/png"), &docs), None);
        assert_eq!(
            negotiate(Some("application/json;q=0, */*;q=0.1"), &docs),
            Some(1)
        );
        let atlas = [
            "application/vnd.atlas.2023-01-01+json",
            "application/vnd.atlas.2023-01-01+csv",
        ];
        assert_eq!(negotiate(Some("application/json"), &atlas), Some(0));
        assert_eq!(
            negotiate(Some("application/vnd.atlas.2023-01-01+csv"), &atlas),
            Some(1)
        );
    }
}
