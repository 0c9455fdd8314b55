//! An email address, checked with the `email_address` crate (RFC 5322 syntax).

use std::fmt;

/// A syntactically valid email address of at most 254 characters, with a domain that has a dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub const MAX_LEN: usize = 254;

    /// Parses an email address, or says in a sentence why it is not one.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.len() > Self::MAX_LEN {
            return Err(format!(
                "`email` must be at most {} characters long.",
                Self::MAX_LEN
            ));
        }
        let invalid = || format!("`email` is not a valid email address: {raw:?}.");
        let parsed = email_address::EmailAddress::parse_with_options(
            raw,
            email_address::Options::default()
                .without_display_text()
                .without_domain_literal()
                .with_required_tld(),
        )
        .map_err(|_| invalid())?;
        // Single-label domains (`user@localhost`) are valid syntax but never deliverable here.
        if !parsed.domain().contains('.') || parsed.domain().ends_with('.') {
            return Err(invalid());
        }
        Ok(Self(parsed.as_str().to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Email {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::Email;

    #[test]
    fn an_ordinary_address_is_accepted() {
        for raw in [
            "alice@example.com",
            "first.last+tag@sub.example.org",
            "x_y-z@a.io",
        ] {
            assert_eq!(Email::parse(raw).map(|e| e.to_string()), Ok(raw.to_owned()));
        }
    }

    #[test]
    fn surrounding_whitespace_is_trimmed() {
        assert_eq!(
            Email::parse("  bob@example.com ").map(|e| e.to_string()),
            Ok("bob@example.com".to_owned())
        );
    }

    #[test]
    fn strings_that_are_not_addresses_are_rejected() {
        for raw in [
            "",
            "plainaddress",
            "@example.com",
            "alice@",
            "alice@@example.com",
            "a b@example.com",
            "alice@localhost",
            "Alice <alice@example.com>",
        ] {
            let err = Email::parse(raw).expect_err(raw);
            assert!(err.contains("`email`"), "{err}");
        }
    }

    #[test]
    fn an_address_longer_than_254_characters_is_rejected() {
        let raw = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(&raw).is_err());
    }
}
