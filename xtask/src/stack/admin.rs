//! `ADMIN_ALLOWED_CIDRS`, the client networks the gateway lets reach `/admin`, checked before
//! anything starts. Traefik rejects the whole allow-list for one malformed entry; the gateway then
//! refuses `/admin` to everyone, so a typo would lock the administrators out without a word.

use std::{fmt, net::IpAddr};

use anyhow::{bail, Result};

/// The variable the gateway's dynamic configuration reads.
pub const VARIABLE: &str = "ADMIN_ALLOWED_CIDRS";
/// Loopback only, as in `traefik/dynamic/gateway.yml`.
pub const DEFAULT: &str = "127.0.0.1/32,::1/128";

/// One `ADDRESS/PREFIX` network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    /// Why `entry` is not a network Traefik accepts, if it is not one.
    fn parse(entry: &str) -> Result<Self, String> {
        let Some((address, prefix)) = entry.split_once('/') else {
            return Err("it has no prefix length (write ADDRESS/PREFIX, e.g. 127.0.0.1/32)".into());
        };
        let address: IpAddr = address
            .parse()
            .map_err(|_| format!("`{address}` is not an IP address"))?;
        // Digits only, as Traefik reads them (Rust's parser would also take `+32`).
        let digits_only = !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_digit());
        let max = if address.is_ipv4() { 32 } else { 128 };
        match prefix.parse::<u8>() {
            Ok(prefix) if digits_only && prefix <= max => Ok(Self { address, prefix }),
            _ => Err(format!(
                "the prefix length `{prefix}` is not a number from 0 to {max}"
            )),
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

/// A valid, non-empty `ADMIN_ALLOWED_CIDRS` list; displays as the comma-separated value to pass on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminNetworks(Vec<Network>);

impl AdminNetworks {
    /// Parses a comma-separated list; every entry must be a network, and none may be empty.
    pub fn parse(value: &str) -> Result<Self> {
        if value.trim().is_empty() {
            bail!(
                "{VARIABLE} is empty: list the networks allowed on /admin (unset, it is {DEFAULT})"
            );
        }
        let mut networks = Vec::new();
        for entry in value.split(',').map(str::trim) {
            if entry.is_empty() {
                bail!("{VARIABLE} has an empty entry (a stray comma?) in `{value}`");
            }
            match Network::parse(entry) {
                Ok(network) => networks.push(network),
                Err(why) => bail!("{VARIABLE}: `{entry}` is not a network: {why}"),
            }
        }
        Ok(Self(networks))
    }

    /// The launcher's `ADMIN_ALLOWED_CIDRS`, or [`DEFAULT`] when it is unset.
    pub fn from_env() -> Result<Self> {
        match std::env::var(VARIABLE) {
            Ok(value) => Self::parse(&value),
            Err(std::env::VarError::NotPresent) => Self::parse(DEFAULT),
            Err(std::env::VarError::NotUnicode(_)) => bail!("{VARIABLE} is not valid UTF-8"),
        }
    }
}

impl fmt::Display for AdminNetworks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, network) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{network}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(value: &str) -> String {
        format!(
            "{:#}",
            AdminNetworks::parse(value).expect_err("must be refused")
        )
    }

    #[test]
    fn ipv4_and_ipv6_networks_are_accepted_and_passed_on_trimmed() {
        let networks = AdminNetworks::parse(" 127.0.0.1/32, ::1/128 ,10.0.0.0/8,0.0.0.0/0")
            .expect("valid list");
        assert_eq!(
            networks.to_string(),
            "127.0.0.1/32,::1/128,10.0.0.0/8,0.0.0.0/0"
        );
        assert_eq!(
            AdminNetworks::parse(DEFAULT).expect("default").to_string(),
            DEFAULT
        );
    }

    #[test]
    fn a_prefix_longer_than_the_address_is_refused_naming_the_variable_and_the_entry() {
        for (value, entry) in [
            ("127.0.0.1/32,::1/129", "::1/129"),
            ("127.0.0.1/33", "127.0.0.1/33"),
            ("10.0.0.0/256", "10.0.0.0/256"),
        ] {
            let message = refusal(value);
            assert!(message.contains(VARIABLE), "{message}");
            assert!(message.contains(&format!("`{entry}`")), "{message}");
        }
    }

    #[test]
    fn entries_that_are_not_networks_are_refused() {
        for entry in [
            "127.0.0.1",
            "localhost/32",
            "127.0.0.256/32",
            "127.0.0.1/",
            "127.0.0.1/+32",
            "127.0.0.1/-1",
            "127.0.0.1/3 2",
            "fe80::1%eth0/64",
            "127.0.0.1/32'",
        ] {
            let message = refusal(&format!("::1/128,{entry}"));
            assert!(
                message.contains(VARIABLE) && message.contains(entry),
                "{entry}: {message}"
            );
        }
    }

    #[test]
    fn an_empty_entry_or_an_empty_list_is_refused() {
        for value in ["127.0.0.1/32,,::1/128", "127.0.0.1/32,", ",", "", "  "] {
            let message = refusal(value);
            assert!(message.contains(VARIABLE), "{value:?}: {message}");
            assert!(message.contains("empty"), "{value:?}: {message}");
        }
    }
}
