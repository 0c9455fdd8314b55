//! A password: 8 to 128 characters, checked before any hashing so huge inputs cost nothing.

use secrecy::{ExposeSecret, SecretString};

/// A password within the length rules. Its `Debug` output is redacted.
#[derive(Debug, Clone)]
pub struct Password(SecretString);

impl Password {
    pub const MIN_LEN: usize = 8;
    pub const MAX_LEN: usize = 128;

    /// Parses a password, or says in a sentence why it is not acceptable. Length counts
    /// characters, not bytes, so non-ASCII passwords are treated fairly.
    pub fn parse(raw: &str) -> Result<Self, String> {
        // Counting stops early, so a megabyte-long password is refused without scanning it all.
        let len = raw.chars().take(Self::MAX_LEN + 1).count();
        if len < Self::MIN_LEN {
            return Err(format!(
                "`password` must be at least {} characters long.",
                Self::MIN_LEN
            ));
        }
        if len > Self::MAX_LEN {
            return Err(format!(
                "`password` must be at most {} characters long.",
                Self::MAX_LEN
            ));
        }
        Ok(Self(SecretString::from(raw)))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

#[cfg(test)]
mod tests {
    use super::Password;

    #[test]
    fn a_password_of_eight_to_128_characters_is_accepted() {
        for raw in [
            "12345678".to_owned(),
            "p".repeat(128),
            "ünïcødé€".to_owned(),
        ] {
            assert_eq!(
                Password::parse(&raw).map(|p| p.expose().to_owned()).ok(),
                Some(raw)
            );
        }
    }

    #[test]
    fn a_password_shorter_than_eight_characters_is_rejected() {
        assert!(Password::parse("1234567")
            .expect_err("short")
            .contains("`password`"));
        assert!(Password::parse("").is_err());
    }

    #[test]
    fn a_password_longer_than_128_characters_is_rejected() {
        assert!(Password::parse(&"p".repeat(129))
            .expect_err("long")
            .contains("at most 128"));
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        // 128 two-byte characters are 256 bytes but exactly at the limit.
        assert!(Password::parse(&"é".repeat(128)).is_ok());
    }

    #[test]
    fn debug_output_does_not_reveal_the_password() {
        let password = Password::parse("hunter2hunter2").expect("valid");
        assert!(!format!("{password:?}").contains("hunter2"));
    }
}
