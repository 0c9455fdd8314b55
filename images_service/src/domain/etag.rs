//! Entity tags: an image's ETag is its quoted SHA-256, and `If-None-Match` is matched weakly
//! (RFC 9110 §13.1.2), so `W/"…"` and lists of tags work.

/// The ETag of an image with this SHA-256 (hex).
pub fn etag(sha256: &str) -> String {
    format!("\"{sha256}\"")
}

/// Whether an `If-None-Match` header value matches `etag`.
pub fn if_none_match(header: &str, etag: &str) -> bool {
    let wanted = etag.trim_start_matches("W/");
    header
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_etag_is_the_quoted_digest() {
        assert_eq!(etag("abc"), "\"abc\"");
    }

    #[test]
    fn if_none_match_accepts_lists_weak_tags_and_star() {
        let tag = etag("abc");
        assert!(if_none_match("\"abc\"", &tag));
        assert!(if_none_match("W/\"abc\"", &tag));
        assert!(if_none_match("\"x\", \"abc\"", &tag));
        assert!(if_none_match("*", &tag));
        assert!(!if_none_match("\"abd\"", &tag));
        assert!(
            !if_none_match("abc", &tag),
            "an unquoted tag is a different tag"
        );
    }
}
