//! Reading a service's `/metrics` (Prometheus text format) for the figures oha cannot see:
//! which replica answered, how long the hash or the model took inside the service.

use std::collections::BTreeMap;

use anyhow::{Context, Result};

/// One sample line: `name{label="value",…} 12.5`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// All samples of one scrape.
#[derive(Clone, Debug, Default)]
pub struct Scrape {
    pub samples: Vec<Sample>,
}

/// Fetches and parses `url` (a `/metrics` endpoint).
pub fn scrape(url: &str) -> Result<Scrape> {
    let body = ureq::get(url)
        .timeout(std::time::Duration::from_secs(10))
        .call()
        .with_context(|| format!("GET {url}"))?
        .into_string()?;
    Ok(parse(&body))
}

/// Parses the text exposition format; comment lines and lines it cannot read are skipped.
pub fn parse(text: &str) -> Scrape {
    let samples = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(parse_line)
        .collect();
    Scrape { samples }
}

fn parse_line(line: &str) -> Option<Sample> {
    let (name, rest) = match line.find(['{', ' ']) {
        Some(i) => line.split_at(i),
        None => return None,
    };
    let mut labels = BTreeMap::new();
    let rest = if let Some(mut inner) = rest.strip_prefix('{') {
        loop {
            inner = inner.trim_start_matches([',', ' ']);
            if let Some(after) = inner.strip_prefix('}') {
                break after;
            }
            let eq = inner.find('=')?;
            let key = inner[..eq].trim().to_owned();
            let mut chars = inner[eq + 1..].char_indices();
            if chars.next()?.1 != '"' {
                return None;
            }
            let mut value = String::new();
            let mut end = None;
            let mut escaped = false;
            for (i, c) in chars {
                match (escaped, c) {
                    (true, 'n') => value.push('\n'),
                    (true, c) => value.push(c),
                    (false, '\\') => {
                        escaped = true;
                        continue;
                    }
                    (false, '"') => {
                        end = Some(eq + 1 + i + 1);
                        break;
                    }
                    (false, c) => value.push(c),
                }
                escaped = false;
            }
            labels.insert(key, value);
            inner = &inner[end?..];
        }
    } else {
        rest
    };
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

impl Scrape {
    /// The sum of every sample named `name` whose labels include all of `matching`.
    pub fn sum(&self, name: &str, matching: &[(&str, &str)]) -> f64 {
        self.matching(name, matching).map(|s| s.value).sum()
    }

    fn matching<'a>(
        &'a self,
        name: &'a str,
        matching: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && matching
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|x| x == v))
        })
    }

    /// The cumulative buckets `(le, count)` of histogram `name`, summed over label sets that match.
    pub fn buckets(&self, name: &str, matching: &[(&str, &str)]) -> Vec<(f64, f64)> {
        let bucket_name = format!("{name}_bucket");
        let mut by_le: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        for s in self.matching(&bucket_name, matching) {
            let Some(le) = s.labels.get("le").and_then(|le| {
                if le == "+Inf" {
                    Some(f64::INFINITY)
                } else {
                    le.parse().ok()
                }
            }) else {
                continue;
            };
            let entry = by_le.entry(le.to_bits()).or_insert((le, 0.0));
            entry.1 += s.value;
        }
        let mut buckets: Vec<(f64, f64)> = by_le.into_values().collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        buckets
    }
}

/// The growth of a histogram between two scrapes: `(count, sum, buckets)`.
pub fn histogram_delta(
    before: &Scrape,
    after: &Scrape,
    name: &str,
    matching: &[(&str, &str)],
) -> Histogram {
    let count = after.sum(&format!("{name}_count"), matching)
        - before.sum(&format!("{name}_count"), matching);
    let sum =
        after.sum(&format!("{name}_sum"), matching) - before.sum(&format!("{name}_sum"), matching);
    let old = before.buckets(name, matching);
    let buckets = after
        .buckets(name, matching)
        .into_iter()
        .map(|(le, n)| {
            let was = old.iter().find(|(l, _)| *l == le).map_or(0.0, |(_, c)| *c);
            (le, n - was)
        })
        .collect();
    Histogram {
        count,
        sum,
        buckets,
    }
}

/// Observations of a histogram over some interval.
#[derive(Clone, Debug, Default)]
pub struct Histogram {
    pub count: f64,
    pub sum: f64,
    pub buckets: Vec<(f64, f64)>,
}

impl Histogram {
    pub fn mean(&self) -> f64 {
        crate::stats::ratio(self.sum, self.count)
    }

    /// Estimated quantile by linear interpolation inside the bucket, as PromQL's
    /// `histogram_quantile` does; only as precise as the bucket bounds.
    pub fn quantile(&self, q: f64) -> f64 {
        let Some(&(_, total)) = self.buckets.last() else {
            return f64::NAN;
        };
        if total <= 0.0 {
            return f64::NAN;
        }
        let rank = q * total;
        let mut lower = (0.0, 0.0);
        for &(le, count) in &self.buckets {
            if count >= rank {
                if le.is_infinite() {
                    return lower.0;
                }
                let in_bucket = count - lower.1;
                if in_bucket <= 0.0 {
                    return le;
                }
                return lower.0 + (le - lower.0) * (rank - lower.1) / in_bucket;
            }
            lower = (le, count);
        }
        lower.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP http_requests_total HTTP requests answered.
# TYPE http_requests_total counter
http_requests_total{method="POST",route="/login",server="users-1",service="users",status="2xx"} 7
http_requests_total{method="POST",route="/login",server="users-1",service="users",status="5xx"} 2
http_requests_total{method="GET",route="/images/{id}",server="users-1",service="users",status="2xx"} 1
users_argon2_seconds_bucket{server="users-1",le="0.01"} 0
users_argon2_seconds_bucket{server="users-1",le="0.1"} 4
users_argon2_seconds_bucket{server="users-1",le="+Inf"} 4
users_argon2_seconds_sum{server="users-1"} 0.2
users_argon2_seconds_count{server="users-1"} 4
process_resident_memory_bytes 1.2e+07
"#;

    #[test]
    fn samples_are_summed_over_the_matching_label_sets() {
        let scrape = parse(TEXT);
        assert_eq!(
            scrape.sum("http_requests_total", &[("route", "/login")]),
            9.0
        );
        assert_eq!(
            scrape.sum(
                "http_requests_total",
                &[("route", "/login"), ("status", "2xx")]
            ),
            7.0
        );
        assert_eq!(
            scrape.sum("http_requests_total", &[("route", "/images/{id}")]),
            1.0
        );
        assert_eq!(scrape.sum("process_resident_memory_bytes", &[]), 1.2e7);
    }

    #[test]
    fn a_label_value_may_hold_escaped_quotes_and_commas() {
        let scrape = parse(r#"m{a="x\"y,z",b="2"} 3"#);
        assert_eq!(
            scrape.samples[0].labels.get("a").map(String::as_str),
            Some("x\"y,z")
        );
        assert_eq!(scrape.sum("m", &[("b", "2")]), 3.0);
    }

    #[test]
    fn a_histogram_delta_gives_mean_and_interpolated_quantiles() {
        let before = parse("");
        let after = parse(TEXT);
        let h = histogram_delta(
            &before,
            &after,
            "users_argon2_seconds",
            &[("server", "users-1")],
        );
        assert_eq!(h.count, 4.0);
        assert!((h.mean() - 0.05).abs() < 1e-12);
        // All four in (0.01, 0.1]: the median sits halfway through that bucket.
        assert!(
            (h.quantile(0.5) - 0.055).abs() < 1e-12,
            "{}",
            h.quantile(0.5)
        );
    }
}
