//! Detection quality: the area under the ROC curve, exact with ties.

/// AUROC of `scores` against `labels` (true = anomalous): the probability that
/// a random anomalous item scores above a random normal one, ties counting
/// one half (the Mann–Whitney rank statistic with average ranks).
///
/// `None` when either class is empty, or lengths differ, or a score is NaN.
pub fn auroc(scores: &[f32], labels: &[bool]) -> Option<f64> {
    if scores.len() != labels.len() || scores.iter().any(|s| s.is_nan()) {
        return None;
    }
    let positives = labels.iter().filter(|&&l| l).count();
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Sum of the (1-based, tie-averaged) ranks of the positives.
    let mut rank_sum = 0.0f64;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let average_rank = (i + j) as f64 / 2.0 + 1.0;
        let tied_positives = order[i..=j].iter().filter(|&&k| labels[k]).count();
        rank_sum += average_rank * tied_positives as f64;
        i = j + 1;
    }
    let p = positives as f64;
    let u = rank_sum - p * (p + 1.0) / 2.0;
    Some(u / (p * negatives as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_inverse_and_constant_scores() {
        let labels = [false, false, true, true];
        assert_eq!(auroc(&[0.1, 0.2, 0.8, 0.9], &labels), Some(1.0));
        assert_eq!(auroc(&[0.9, 0.8, 0.2, 0.1], &labels), Some(0.0));
        assert_eq!(auroc(&[0.5; 4], &labels), Some(0.5));
    }

    #[test]
    fn hand_computed_with_ties() {
        // Pairs (pos, neg): positives 0.4, 0.6, 0.6; negatives 0.2, 0.6, 0.8.
        // 0.4: beats 0.2 -> 1.
        // 0.6: beats 0.2, ties 0.6 -> 1.5 (twice) -> 3.
        // Total 4 of 9 pairs.
        let scores = [0.4, 0.6, 0.6, 0.2, 0.6, 0.8];
        let labels = [true, true, true, false, false, false];
        let a = auroc(&scores, &labels).unwrap();
        assert!((a - 4.0 / 9.0).abs() < 1e-12, "{a}");
        // One mistake among 2x3 pairs: 5/6.
        let a = auroc(
            &[0.3, 0.9, 0.1, 0.2, 0.5],
            &[true, true, false, false, false],
        )
        .unwrap();
        assert!((a - 5.0 / 6.0).abs() < 1e-12, "{a}");
    }

    #[test]
    fn undefined_cases_are_none() {
        assert_eq!(auroc(&[0.1, 0.2], &[true, true]), None);
        assert_eq!(auroc(&[0.1, 0.2], &[false, false]), None);
        assert_eq!(auroc(&[], &[]), None);
        assert_eq!(auroc(&[0.1], &[true, false]), None);
        assert_eq!(auroc(&[f32::NAN, 0.2], &[true, false]), None);
    }
}
