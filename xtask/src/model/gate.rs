//! The accuracy gate of the int8 ResMem: its scores against fp32 on held-out photographs.
//!
//! `quantize_resmem.py` scores every evaluation image with both models (onnxruntime) and writes
//! them, with the thresholds, to `accuracy_gate.json`; this module decides. The int8 model ships
//! only when the rank correlation, the largest score difference and the share of images that keep
//! their forgettable/memorable label all meet the thresholds, on enough images.

use serde::Deserialize;

/// What the int8 model must reach against fp32.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    pub min_spearman: f64,
    pub max_abs_diff: f64,
    /// Share of images whose forgettable/memorable label is the same with both models.
    pub min_label_agreement: f64,
    pub min_images: usize,
}

/// The gate the int8 ResMem ships with.
pub const GATE: Thresholds = Thresholds {
    min_spearman: 0.99,
    max_abs_diff: 0.02,
    min_label_agreement: 0.98,
    min_images: 50,
};

/// `accuracy_gate.json` as the quantizer writes it (other fields, such as the recipe, are for
/// people).
#[derive(Debug, Deserialize)]
pub struct GateFile {
    /// Scores below it are `forgettable` (the model's manifest threshold).
    pub threshold: f64,
    pub images: Vec<ScoredImage>,
}

/// One evaluation image scored by both models.
#[derive(Debug, Clone, Deserialize)]
pub struct ScoredImage {
    pub photograph: String,
    pub view: String,
    pub fp32: f64,
    pub int8: f64,
}

/// What the gate measured, and whether it passed.
#[derive(Debug)]
pub struct GateResult {
    pub images: usize,
    pub photographs: usize,
    pub spearman: f64,
    pub max_abs_diff: f64,
    /// The image with the largest difference (`photograph/view`).
    pub worst: String,
    pub mean_abs_diff: f64,
    pub label_agreement: f64,
    /// One sentence per threshold missed; empty when the gate passes.
    pub failures: Vec<String>,
}

impl GateResult {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// The numbers on one line, for the console and error messages.
    pub fn summary(&self) -> String {
        format!(
            "{} images of {} photographs: Spearman {:.4}, largest difference {:.4} ({}), \
             mean difference {:.4}, same label on {:.1} %",
            self.images,
            self.photographs,
            self.spearman,
            self.max_abs_diff,
            self.worst,
            self.mean_abs_diff,
            self.label_agreement * 100.0
        )
    }
}

impl GateFile {
    /// Measures the int8 scores against fp32 and checks every threshold.
    pub fn evaluate(&self, gate: &Thresholds) -> GateResult {
        let fp32: Vec<f64> = self.images.iter().map(|i| i.fp32).collect();
        let int8: Vec<f64> = self.images.iter().map(|i| i.int8).collect();
        let n = self.images.len();
        let (worst_index, max_abs_diff) = fp32
            .iter()
            .zip(&int8)
            .map(|(a, b)| (a - b).abs())
            .enumerate()
            .fold(
                (0, 0.0_f64),
                |best, (i, d)| if d > best.1 { (i, d) } else { best },
            );
        let mean_abs_diff = if n == 0 {
            0.0
        } else {
            fp32.iter()
                .zip(&int8)
                .map(|(a, b)| (a - b).abs())
                .sum::<f64>()
                / n as f64
        };
        let memorable = |score: f64| score >= self.threshold;
        let same_label = fp32
            .iter()
            .zip(&int8)
            .filter(|(a, b)| memorable(**a) == memorable(**b))
            .count();
        let label_agreement = if n == 0 {
            0.0
        } else {
            same_label as f64 / n as f64
        };
        let spearman = spearman(&fp32, &int8);
        let mut photographs: Vec<&str> =
            self.images.iter().map(|i| i.photograph.as_str()).collect();
        photographs.sort_unstable();
        photographs.dedup();

        let mut failures = Vec::new();
        if !fp32.iter().chain(&int8).all(|s| s.is_finite()) {
            failures.push("a score is not a finite number".to_owned());
        }
        if n < gate.min_images {
            failures.push(format!("{n} images, at least {} needed", gate.min_images));
        }
        // A correlation without spread (NaN) fails too.
        if spearman.is_nan() || spearman < gate.min_spearman {
            failures.push(format!("Spearman {spearman:.4} < {}", gate.min_spearman));
        }
        if max_abs_diff.is_nan() || max_abs_diff > gate.max_abs_diff {
            failures.push(format!(
                "largest difference {max_abs_diff:.4} > {}",
                gate.max_abs_diff
            ));
        }
        if label_agreement < gate.min_label_agreement {
            failures.push(format!(
                "same label on {:.1} % < {:.1} %",
                label_agreement * 100.0,
                gate.min_label_agreement * 100.0
            ));
        }
        GateResult {
            images: n,
            photographs: photographs.len(),
            spearman,
            max_abs_diff,
            worst: self
                .images
                .get(worst_index)
                .map(|i| format!("{}/{}", i.photograph, i.view))
                .unwrap_or_default(),
            mean_abs_diff,
            label_agreement,
            failures,
        }
    }
}

/// Spearman's rank correlation: Pearson's correlation of the ranks, ties sharing their mean rank.
/// NaN when either side has no spread (or fewer than two values).
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "paired samples");
    pearson(&ranks(a), &ranks(b))
}

/// 1-based ranks, tied values getting the mean of the ranks they span.
fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&i, &j| values[i].total_cmp(&values[j]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        // Positions start..end hold equal values: ranks start+1 ..= end, whose mean is this.
        let rank = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    ranks
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let mean_a = a.iter().sum::<f64>() / n;
    let mean_b = b.iter().sum::<f64>() / n;
    let (mut cov, mut var_a, mut var_b) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        cov += (x - mean_a) * (y - mean_b);
        var_a += (x - mean_a).powi(2);
        var_b += (y - mean_b).powi(2);
    }
    cov / (var_a * var_b).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Thresholds = Thresholds {
        min_images: 3,
        ..GATE
    };

    fn gate(pairs: &[(f64, f64)]) -> GateFile {
        GateFile {
            threshold: 0.75,
            images: pairs
                .iter()
                .enumerate()
                .map(|(i, &(fp32, int8))| ScoredImage {
                    photograph: format!("photo{}", i / 2),
                    view: format!("view{i}"),
                    fp32,
                    int8,
                })
                .collect(),
        }
    }

    #[test]
    fn identical_rankings_correlate_perfectly() {
        let a = [0.1, 0.5, 0.3, 0.9];
        assert!((spearman(&a, &a) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn reversed_rankings_correlate_at_minus_one() {
        assert!((spearman(&[1.0, 2.0, 3.0, 4.0], &[8.0, 6.0, 4.0, 2.0]) + 1.0).abs() < 1e-12);
    }

    #[test]
    fn spearman_depends_on_ranks_only() {
        let a = [0.61, 0.70, 0.74, 0.93];
        let b = [0.0, 10.0, 11.0, 1000.0];
        assert!((spearman(&a, &b) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn tied_values_share_their_mean_rank() {
        assert_eq!(ranks(&[0.5, 0.2, 0.5, 0.9]), vec![2.5, 1.0, 2.5, 4.0]);
        // The textbook case with ties: 1 - 6Σd²/(n(n²-1)) does not apply, Pearson on ranks does.
        let rho = spearman(&[1.0, 2.0, 2.0, 3.0], &[1.0, 2.0, 3.0, 4.0]);
        assert!((rho - 0.948_683_298_050_513_8).abs() < 1e-12, "{rho}");
    }

    #[test]
    fn scores_without_spread_have_no_correlation() {
        assert!(spearman(&[0.8, 0.8, 0.8], &[0.1, 0.2, 0.3]).is_nan());
    }

    #[test]
    fn close_scores_pass_the_gate() {
        let result =
            gate(&[(0.60, 0.605), (0.70, 0.69), (0.80, 0.81), (0.90, 0.899)]).evaluate(&SMALL);
        assert!(result.passed(), "{:?}", result.failures);
        assert_eq!(result.images, 4);
        assert_eq!(result.photographs, 2);
        assert!((result.max_abs_diff - 0.01).abs() < 1e-9);
        assert_eq!(result.worst, "photo0/view1");
        assert_eq!(result.label_agreement, 1.0);
    }

    #[test]
    fn one_large_difference_fails_the_gate() {
        let result =
            gate(&[(0.60, 0.60), (0.70, 0.71), (0.80, 0.85), (0.90, 0.95)]).evaluate(&SMALL);
        assert!(!result.passed());
        assert!(
            result
                .failures
                .iter()
                .any(|f| f.starts_with("largest difference 0.05")),
            "{:?}",
            result.failures
        );
        assert!((result.max_abs_diff - 0.05).abs() < 1e-9);
    }

    #[test]
    fn a_flipped_label_fails_the_gate_even_when_the_scores_are_close() {
        let result =
            gate(&[(0.60, 0.60), (0.70, 0.70), (0.749, 0.751), (0.90, 0.90)]).evaluate(&SMALL);
        assert_eq!(result.label_agreement, 0.75);
        assert!(!result.passed());
        assert!(result.failures.iter().any(|f| f.starts_with("same label")));
    }

    #[test]
    fn a_swapped_ranking_fails_the_gate() {
        let result = gate(&[(0.80, 0.81), (0.81, 0.80), (0.82, 0.83)]).evaluate(&SMALL);
        assert!(result.spearman < 0.99);
        assert!(result.failures.iter().any(|f| f.starts_with("Spearman")));
    }

    #[test]
    fn too_few_images_fail_the_gate() {
        let result = gate(&[(0.6, 0.6), (0.9, 0.9)]).evaluate(&SMALL);
        assert!(result
            .failures
            .iter()
            .any(|f| f.contains("at least 3 needed")));
    }
}
