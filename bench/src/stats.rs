//! The statistics of the comparison: medians, spreads, per-round ratios and the order in which
//! contestants take their turns.

/// The median of `values` (the mean of the middle two for an even count); `None` when empty or
/// when a value is NaN.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() || values.iter().any(|v| v.is_nan()) {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    Some(if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    })
}

/// The smallest and largest of `values`; `None` when empty or when a value is NaN.
pub fn spread(values: &[f64]) -> Option<(f64, f64)> {
    if values.is_empty() || values.iter().any(|v| v.is_nan()) {
        return None;
    }
    Some(
        values
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            }),
    )
}

/// The ratio of each round: `numerators[k] / denominators[k]`, for the rounds both have.
/// A round whose denominator is zero has no ratio (it is left out).
pub fn per_round_ratios(numerators: &[f64], denominators: &[f64]) -> Vec<f64> {
    numerators
        .iter()
        .zip(denominators)
        .filter(|(_, &d)| d != 0.0)
        .map(|(n, d)| n / d)
        .collect()
}

/// The median of `numerators` divided by the median of `denominators`.
pub fn ratio_of_medians(numerators: &[f64], denominators: &[f64]) -> Option<f64> {
    let (n, d) = (median(numerators)?, median(denominators)?);
    (d != 0.0).then(|| n / d)
}

/// The order in which `contestants` take their turns in round `round` (from 0): first to last
/// in even rounds, last to first in odd ones (A B C, then C B A), so no contestant always runs
/// right after the same other one or always first on a machine that warms up or slows down.
pub fn interleave_order(round: usize, contestants: usize) -> Vec<usize> {
    if round % 2 == 0 {
        (0..contestants).collect()
    } else {
        (0..contestants).rev().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[7.0]), Some(7.0));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn spread_is_min_and_max() {
        assert_eq!(spread(&[2.0, 5.0, 1.0, 3.0]), Some((1.0, 5.0)));
        assert_eq!(spread(&[4.0]), Some((4.0, 4.0)));
        assert_eq!(spread(&[]), None);
    }

    #[test]
    fn ratios_pair_rounds_and_skip_zero_denominators() {
        assert_eq!(
            per_round_ratios(&[10.0, 20.0, 30.0], &[5.0, 0.0, 10.0]),
            vec![2.0, 3.0]
        );
        // Only the rounds both sides have.
        assert_eq!(per_round_ratios(&[1.0, 2.0], &[2.0]), vec![0.5]);
    }

    #[test]
    fn ratio_of_medians_differs_from_median_of_ratios() {
        let knote = [10.0, 20.0, 30.0];
        let tokio = [30.0, 10.0, 20.0];
        assert_eq!(ratio_of_medians(&knote, &tokio), Some(1.0));
        // Per round: 1/3, 2, 1.5 → median 1.5.
        assert_eq!(median(&per_round_ratios(&knote, &tokio)), Some(1.5));
        assert_eq!(ratio_of_medians(&[1.0], &[0.0]), None);
    }

    #[test]
    fn interleave_alternates_direction() {
        assert_eq!(interleave_order(0, 3), vec![0, 1, 2]);
        assert_eq!(interleave_order(1, 3), vec![2, 1, 0]);
        assert_eq!(interleave_order(2, 2), vec![0, 1]);
        assert_eq!(interleave_order(5, 2), vec![1, 0]);
        assert!(interleave_order(0, 0).is_empty());
    }
}
