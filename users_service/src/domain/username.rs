//! A username: 3 to 32 characters of `A-Z a-z 0-9 _ . -`.

use std::fmt;

/// A valid username. Uniqueness is case-insensitive (the database indexes `lower(username)`),
/// but the spelling the user chose is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub const MIN_LEN: usize = 3;
    pub const MAX_LEN: usize = 32;
    /// The characters [`Username::parse`] allows, as a regular expression for the OpenAPI
    /// document (the lengths are [`Username::MIN_LEN`] and [`Username::MAX_LEN`]).
    pub const PATTERN: &'static str = "^[A-Za-z0-9_.-]*$";

    /// Parses a username, or says in a sentence why it is not one.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let len = raw.chars().count();
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&len) {
            return Err(format!(
                "`username` must be {} to {} characters long (got {len}).",
                Self::MIN_LEN,
                Self::MAX_LEN
            ));
        }
        if let Some(bad) = raw
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        {
            return Err(format!(
                "`username` may contain only letters A-Z, digits, '_', '.' and '-' (found {bad:?})."
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Username {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::Username;

    #[test]
    fn a_name_of_allowed_characters_is_accepted() {
        for name in ["abc", "Alice_1", "a.b-c", "x".repeat(32).as_str()] {
            assert_eq!(
                Username::parse(name).map(|u| u.to_string()),
                Ok(name.to_owned())
            );
        }
    }

    #[test]
    fn a_name_shorter_than_three_characters_is_rejected() {
        assert!(Username::parse("ab").is_err());
        assert!(Username::parse("").is_err());
    }

    #[test]
    fn a_name_longer_than_thirty_two_characters_is_rejected() {
        assert!(Username::parse(&"a".repeat(33)).is_err());
    }

    #[test]
    fn spaces_symbols_and_non_ascii_letters_are_rejected() {
        for name in ["al ice", "bob!", "zoë-1", "a/b/c", "<script>", "tab\there"] {
            let err = Username::parse(name).expect_err(name);
            assert!(err.contains("username"), "{err}");
        }
    }

    /// Every string of allowed length: parse accepts it exactly when the pattern matches, over
    /// every ASCII character and a few others, alone and between allowed ones.
    #[test]
    fn the_documented_pattern_accepts_exactly_what_parse_accepts() {
        let pattern = regex::Regex::new(Username::PATTERN).expect("valid pattern");
        let others = ['é', 'ß', 'Ω', '€', '\u{0660}', '\u{ff21}', '\u{200b}'];
        for c in (0u8..=127).map(char::from).chain(others) {
            for name in [format!("ab{c}"), format!("a{c}b"), c.to_string().repeat(3)] {
                assert_eq!(
                    pattern.is_match(&name),
                    Username::parse(&name).is_ok(),
                    "{name:?}"
                );
            }
        }
    }

    #[test]
    fn every_rejection_names_the_field() {
        assert!(Username::parse("x")
            .expect_err("too short")
            .contains("`username`"));
    }
}
