//! Paired resampling statistics over per-query (or per-scenario) scores: the paired bootstrap
//! interval of a mean difference, the paired randomization (sign-flip) test, the paired t-test,
//! and multiple-comparison corrections.
//!
//! Scores come as one row-major `n × cols` matrix (row = query, column = system × metric).
//! Every resample draws ONE set of rows (bootstrap) or signs (randomization) shared by all
//! columns, so the comparisons of all pairs are paired and mutually consistent, and the
//! resampled mean of a difference of two columns is the difference of their resampled means:
//! the work is `resamples × n × cols`, not `resamples × n × pairs`.
//!
//! Resample `b` uses its own generator seeded from `(seed, b)`, so results do not depend on the
//! number of threads.

use rayon::prelude::*;

use crate::error::{Error, Result};

/// xoshiro256++ seeded through SplitMix64: small, fast, and reproducible everywhere.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut x = seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03);
        let s = [
            splitmix(&mut x),
            splitmix(&mut x),
            splitmix(&mut x),
            splitmix(&mut x),
        ];
        Rng { s }
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform integer in `0..n` (Lemire's multiply-shift with rejection: unbiased).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        loop {
            let m = (self.next_u64() as u128) * (n as u128);
            let low = m as u64;
            if low >= n || low >= n.wrapping_neg() % n {
                return (m >> 64) as u64;
            }
        }
    }
}

fn check_shape(values: &[f64], n: usize, cols: usize) -> Result<()> {
    if n == 0 || cols == 0 {
        return Err(Error::InvalidArgument(
            "paired statistics need at least one row and one column".into(),
        ));
    }
    match n.checked_mul(cols) {
        Some(len) if len == values.len() => {}
        _ => {
            return Err(Error::InvalidArgument(format!(
                "score matrix has {} values, expected {n} rows x {cols} columns",
                values.len()
            )))
        }
    }
    if let Some(pos) = values.iter().position(|v| !v.is_finite()) {
        return Err(Error::InvalidArgument(format!(
            "score matrix holds a non-finite value at row {}, column {}",
            pos / cols,
            pos % cols
        )));
    }
    Ok(())
}

fn resample_buffer(resamples: usize, cols: usize) -> Result<Vec<f64>> {
    let len = resamples.checked_mul(cols).ok_or_else(|| {
        Error::InvalidArgument(format!("{resamples} resamples x {cols} columns overflows"))
    })?;
    let mut out = Vec::new();
    out.try_reserve_exact(len)
        .map_err(|_| Error::OutOfMemory(format!("{resamples} resamples x {cols} columns")))?;
    out.resize(len, 0.0);
    Ok(out)
}

/// Means of every column over `resamples` bootstrap resamples of the rows (rows drawn with
/// replacement, the same draw for all columns). Returns `resamples × cols`, row-major.
pub fn bootstrap_means(
    values: &[f64],
    n: usize,
    cols: usize,
    resamples: usize,
    seed: u64,
) -> Result<Vec<f64>> {
    check_shape(values, n, cols)?;
    let mut out = resample_buffer(resamples, cols)?;
    let inv = 1.0 / n as f64;
    out.par_chunks_mut(cols).enumerate().for_each(|(b, acc)| {
        let mut rng = Rng::new(seed, b as u64);
        for _ in 0..n {
            let q = rng.below(n as u64) as usize;
            let row = &values[q * cols..(q + 1) * cols];
            for (a, v) in acc.iter_mut().zip(row) {
                *a += v;
            }
        }
        for a in acc.iter_mut() {
            *a *= inv;
        }
    });
    Ok(out)
}

/// Means of every column with each row's sign flipped at random (the same signs for all
/// columns) for each of `resamples` draws; with `exact`, all `2^n` sign vectors instead
/// (`n <= 20`). Returns `draws × cols`, row-major.
pub fn sign_flip_means(
    values: &[f64],
    n: usize,
    cols: usize,
    resamples: usize,
    seed: u64,
    exact: bool,
) -> Result<Vec<f64>> {
    check_shape(values, n, cols)?;
    if exact && n > 20 {
        return Err(Error::InvalidArgument(format!(
            "exact enumeration needs n <= 20 rows, got {n}"
        )));
    }
    let draws = if exact { 1usize << n } else { resamples };
    let mut out = resample_buffer(draws, cols)?;
    let inv = 1.0 / n as f64;
    out.par_chunks_mut(cols).enumerate().for_each(|(b, acc)| {
        let mut rng = Rng::new(seed, b as u64);
        let mut bits = 0u64;
        for q in 0..n {
            let negative = if exact {
                (b >> q) & 1 == 1
            } else {
                if q % 64 == 0 {
                    bits = rng.next_u64();
                }
                (bits >> (q % 64)) & 1 == 1
            };
            let row = &values[q * cols..(q + 1) * cols];
            if negative {
                for (a, v) in acc.iter_mut().zip(row) {
                    *a -= v;
                }
            } else {
                for (a, v) in acc.iter_mut().zip(row) {
                    *a += v;
                }
            }
        }
        for a in acc.iter_mut() {
            *a *= inv;
        }
    });
    Ok(out)
}

/// The `q`-quantile of sorted data with linear interpolation (numpy's default method).
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let h = (sorted.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// Which test gives a comparison's p-value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PairedTest {
    /// Two-sided paired bootstrap test (the resampled deltas shifted to mean zero).
    Bootstrap,
    /// Two-sided paired randomization test (random sign flips of the per-row differences).
    Randomization,
    /// Two-sided paired t-test (Student's t with n - 1 degrees of freedom).
    TTest,
}

impl PairedTest {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "bootstrap" => Ok(PairedTest::Bootstrap),
            "randomization" | "permutation" => Ok(PairedTest::Randomization),
            "t-test" | "ttest" | "t" => Ok(PairedTest::TTest),
            other => Err(Error::InvalidArgument(format!(
                "unknown test {other:?}: use bootstrap, randomization or t-test"
            ))),
        }
    }
}

#[derive(Clone, Debug)]
pub struct CompareConfig {
    pub resamples: usize,
    pub seed: u64,
    pub confidence: f64,
    pub test: PairedTest,
}

/// One paired comparison: column `a` against column `b` (delta = mean(a) - mean(b)).
#[derive(Clone, Debug, PartialEq)]
pub struct PairResult {
    pub a: usize,
    pub b: usize,
    pub mean_a: f64,
    pub mean_b: f64,
    pub delta: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    pub p_value: f64,
}

/// Paired comparisons of column pairs over the same rows: mean difference, its percentile
/// bootstrap interval, and the chosen test's two-sided p-value. All pairs share the resamples.
///
/// Monte-Carlo p-values are `(1 + #{|null| >= |observed|}) / (1 + resamples)` (never 0); the
/// randomization test enumerates all `2^n` sign vectors when that is at most `resamples` (and
/// `n <= 20`), and then its p-value is exact (`#{|null| >= |observed|} / 2^n`). With fewer than
/// two rows there is no test: the p-value is NaN.
///
/// Resampling works on rows centred on their mean (a per-row shift leaves every difference of
/// two columns unchanged), so large offsets common to all columns cost no precision.
pub fn compare_pairs(
    values: &[f64],
    n: usize,
    cols: usize,
    pairs: &[(usize, usize)],
    cfg: &CompareConfig,
) -> Result<Vec<PairResult>> {
    check_shape(values, n, cols)?;
    if cfg.resamples == 0 {
        return Err(Error::InvalidArgument("resamples must be >= 1".into()));
    }
    if !(cfg.confidence > 0.0 && cfg.confidence < 1.0) {
        return Err(Error::InvalidArgument(format!(
            "confidence must be in (0, 1), got {}",
            cfg.confidence
        )));
    }
    if let Some(&(a, b)) = pairs.iter().find(|&&(a, b)| a >= cols || b >= cols) {
        return Err(Error::InvalidArgument(format!(
            "pair ({a}, {b}) names a column beyond the {cols} given"
        )));
    }
    let means = column_means(values, n, cols);
    let centred = centre_rows(values, cols)?;
    let scale = centred.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let boot = bootstrap_means(&centred, n, cols, cfg.resamples, cfg.seed)?;
    let exact = n <= 20 && (1usize << n) <= cfg.resamples;
    let flips = match cfg.test {
        PairedTest::Randomization => Some(sign_flip_means(
            &centred,
            n,
            cols,
            cfg.resamples,
            cfg.seed ^ 0x5EED,
            exact,
        )?),
        _ => None,
    };
    let alpha = (1.0 - cfg.confidence) / 2.0;
    Ok(pairs
        .par_iter()
        .map(|&(a, b)| {
            let delta = means[a] - means[b];
            // Resampled deltas of the centred rows, put back on the original location.
            let shift = delta - centred_delta(&centred, n, cols, a, b);
            let mut deltas: Vec<f64> = boot
                .chunks_exact(cols)
                .map(|r| r[a] - r[b] + shift)
                .collect();
            // Equal statistics computed along different summation orders differ by rounding.
            let tol = 1e-9 * (scale + delta.abs()).max(f64::MIN_POSITIVE);
            let p_value = match cfg.test {
                _ if n < 2 => f64::NAN,
                PairedTest::Bootstrap => {
                    let hits = deltas
                        .iter()
                        .filter(|&&d| (d - delta).abs() >= delta.abs() - tol)
                        .count();
                    (1 + hits) as f64 / (1 + deltas.len()) as f64
                }
                PairedTest::Randomization => {
                    let null = flips.as_deref().unwrap_or(&[]);
                    let draws = null.len() / cols;
                    let hits = null
                        .chunks_exact(cols)
                        .filter(|r| (r[a] - r[b]).abs() >= delta.abs() - tol)
                        .count();
                    if exact {
                        hits as f64 / draws as f64
                    } else {
                        (1 + hits) as f64 / (1 + draws) as f64
                    }
                }
                PairedTest::TTest => paired_t_test(values, n, cols, a, b),
            };
            deltas.sort_by(f64::total_cmp);
            PairResult {
                a,
                b,
                mean_a: means[a],
                mean_b: means[b],
                delta,
                ci_low: quantile_sorted(&deltas, alpha),
                ci_high: quantile_sorted(&deltas, 1.0 - alpha),
                p_value,
            }
        })
        .collect())
}

/// Each row minus its own mean.
fn centre_rows(values: &[f64], cols: usize) -> Result<Vec<f64>> {
    let mut out = Vec::new();
    out.try_reserve_exact(values.len())
        .map_err(|_| Error::OutOfMemory(format!("a copy of {} values", values.len())))?;
    for row in values.chunks_exact(cols) {
        let m = row.iter().sum::<f64>() / cols as f64;
        out.extend(row.iter().map(|v| v - m));
    }
    Ok(out)
}

fn centred_delta(centred: &[f64], n: usize, cols: usize, a: usize, b: usize) -> f64 {
    centred.chunks_exact(cols).map(|r| r[a] - r[b]).sum::<f64>() / n as f64
}

fn column_means(values: &[f64], n: usize, cols: usize) -> Vec<f64> {
    let mut sums = vec![0.0; cols];
    for row in values.chunks_exact(cols) {
        for (s, v) in sums.iter_mut().zip(row) {
            *s += v;
        }
    }
    sums.iter().map(|s| s / n as f64).collect()
}

/// Two-sided p-value of the paired t-test of columns `a` and `b` (1.0 when every difference is
/// equal and zero; 0.0 when they are equal and non-zero, as the statistic is infinite).
fn paired_t_test(values: &[f64], n: usize, cols: usize, a: usize, b: usize) -> f64 {
    if n < 2 {
        return f64::NAN;
    }
    let d: Vec<f64> = values.chunks_exact(cols).map(|r| r[a] - r[b]).collect();
    let mean = d.iter().sum::<f64>() / n as f64;
    let var = d.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1) as f64;
    if var == 0.0 {
        return if mean == 0.0 { 1.0 } else { 0.0 };
    }
    let t = mean / (var / n as f64).sqrt();
    student_t_two_sided(t, (n - 1) as f64)
}

/// `P(|T| >= |t|)` for Student's t with `df` degrees of freedom: `I_{df/(df+t²)}(df/2, 1/2)`.
pub fn student_t_two_sided(t: f64, df: f64) -> f64 {
    let x = df / (df + t * t);
    regularized_incomplete_beta(x, df / 2.0, 0.5)
}

fn ln_gamma(x: f64) -> f64 {
    // Lanczos approximation (g = 7, n = 9): ~15 significant digits for x > 0.
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// The regularized incomplete beta function `I_x(a, b)` (continued fraction, Lentz's method).
pub fn regularized_incomplete_beta(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    if x < (a + 1.0) / (a + b + 2.0) {
        (ln_front.exp() * beta_continued_fraction(x, a, b)) / a
    } else {
        1.0 - (ln_front.exp() * beta_continued_fraction(1.0 - x, b, a)) / b
    }
}

fn beta_continued_fraction(x: f64, a: f64, b: f64) -> f64 {
    const TINY: f64 = 1e-300;
    const EPS: f64 = 1e-16;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..=10_000 {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < EPS {
            break;
        }
    }
    h
}

/// Multiple-comparison correction of a family of p-values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Correction {
    None,
    Bonferroni,
    /// Holm's step-down method (controls the family-wise error rate, uniformly more powerful
    /// than Bonferroni).
    Holm,
}

impl Correction {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "none" => Ok(Correction::None),
            "bonferroni" => Ok(Correction::Bonferroni),
            "holm" => Ok(Correction::Holm),
            other => Err(Error::InvalidArgument(format!(
                "unknown correction {other:?}: use holm, bonferroni or none"
            ))),
        }
    }
}

/// Adjusted p-values (each capped at 1), in the input's order; NaN stays NaN and is not
/// counted in the family.
pub fn adjust_p_values(p: &[f64], method: Correction) -> Vec<f64> {
    let m = p.iter().filter(|x| !x.is_nan()).count();
    match method {
        Correction::None => p.to_vec(),
        Correction::Bonferroni => p
            .iter()
            .map(|&x| {
                if x.is_nan() {
                    x
                } else {
                    (x * m as f64).min(1.0)
                }
            })
            .collect(),
        Correction::Holm => {
            let mut order: Vec<usize> = (0..p.len()).filter(|&i| !p[i].is_nan()).collect();
            order.sort_by(|&i, &j| p[i].total_cmp(&p[j]).then(i.cmp(&j)));
            let mut out = p.to_vec();
            let mut running = 0.0f64;
            for (rank, &i) in order.iter().enumerate() {
                let adj = ((m - rank) as f64 * p[i]).min(1.0);
                running = running.max(adj);
                out[i] = running;
            }
            out
        }
    }
}

/// Wilson score interval for `successes` out of `n` at normal quantile `z` (1.959964 for 95%).
pub fn wilson_interval(successes: u64, n: u64, z: f64) -> (f64, f64) {
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let n_f = n as f64;
    let p = successes as f64 / n_f;
    let z2 = z * z;
    let denom = 1.0 + z2 / n_f;
    let centre = (p + z2 / (2.0 * n_f)) / denom;
    let half = z * (p * (1.0 - p) / n_f + z2 / (4.0 * n_f * n_f)).sqrt() / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_is_uniform_enough_and_in_range() {
        let mut rng = Rng::new(7, 0);
        let mut counts = [0u32; 5];
        for _ in 0..50_000 {
            counts[rng.below(5) as usize] += 1;
        }
        for c in counts {
            assert!((9_500..10_500).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn t_distribution_matches_tables() {
        // Two-sided critical values from standard t tables.
        assert!((student_t_two_sided(2.228_138_85, 10.0) - 0.05).abs() < 1e-8);
        assert!((student_t_two_sided(12.706_204_7, 1.0) - 0.05).abs() < 1e-8);
        assert!((student_t_two_sided(2.575_829_3, 1e7) - 0.01).abs() < 1e-5);
        assert_eq!(student_t_two_sided(0.0, 5.0), 1.0);
    }

    #[test]
    fn holm_and_bonferroni_by_hand() {
        let p = [0.01, 0.04, 0.03, 0.005];
        // sorted: 0.005 (x4 = 0.02), 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04 -> 0.06)
        let holm = adjust_p_values(&p, Correction::Holm);
        let want = [0.03, 0.06, 0.06, 0.02];
        for (h, w) in holm.iter().zip(want) {
            assert!((h - w).abs() < 1e-12, "{holm:?}");
        }
        assert_eq!(
            adjust_p_values(&p, Correction::Bonferroni),
            vec![0.04, 0.16, 0.12, 0.02]
        );
    }

    #[test]
    fn wilson_by_hand() {
        // 0 of 10 at z = 1.96: upper = z² / (n + z²) = 3.8416 / 13.8416
        let (lo, hi) = wilson_interval(0, 10, 1.96);
        assert_eq!(lo, 0.0);
        assert!((hi - 3.8416 / 13.8416).abs() < 1e-12);
    }

    #[test]
    fn exact_randomization_by_hand() {
        // differences 1, 2, 3 (column b all zero): |mean| of the 8 sign vectors is
        // 2, 4/3, 2/3, 0, 0, 2/3, 4/3, 2 -> two of them reach the observed 2: p = 2/8.
        let values = [1.0, 0.0, 2.0, 0.0, 3.0, 0.0];
        let cfg = CompareConfig {
            resamples: 8,
            seed: 0,
            confidence: 0.95,
            test: PairedTest::Randomization,
        };
        let r = compare_pairs(&values, 3, 2, &[(0, 1)], &cfg).unwrap();
        assert_eq!(r[0].delta, 2.0);
        assert!((r[0].p_value - 0.25).abs() < 1e-12);
    }

    #[test]
    fn bootstrap_is_paired_and_thread_independent() {
        let n = 200;
        let mut rng = Rng::new(1, 1);
        let values: Vec<f64> = (0..n * 3)
            .map(|_| (rng.next_u64() % 1000) as f64 / 1000.0)
            .collect();
        let a = bootstrap_means(&values, n, 3, 300, 42).unwrap();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let b = pool.install(|| bootstrap_means(&values, n, 3, 300, 42).unwrap());
        assert_eq!(a, b);
        // Paired: column 2 = column 0 + 1 row by row, so every resample's delta is exactly 1.
        let mut shifted = values.clone();
        for row in shifted.chunks_exact_mut(3) {
            row[2] = row[0] + 1.0;
        }
        let m = bootstrap_means(&shifted, n, 3, 300, 42).unwrap();
        for r in m.chunks_exact(3) {
            assert!((r[2] - r[0] - 1.0).abs() < 1e-9);
        }
    }

    #[test]
    fn large_common_offsets_do_not_change_p_values() {
        // Lattice differences with a 1e4 offset on both columns: exact enumeration must give
        // the same p-value as without the offset.
        let d = [
            1.0, -2.0, 3.0, 1.0, 0.0, 2.0, -1.0, 1.0, 2.0, 3.0, -3.0, 1.0,
        ];
        let cfg = CompareConfig {
            resamples: 4096,
            seed: 0,
            confidence: 0.95,
            test: PairedTest::Randomization,
        };
        let mk = |off: f64| -> Vec<f64> { d.iter().flat_map(|&x| [off + x / 4.0, off]).collect() };
        let p0 = compare_pairs(&mk(0.0), 12, 2, &[(0, 1)], &cfg).unwrap()[0].p_value;
        let p1 = compare_pairs(&mk(1e4), 12, 2, &[(0, 1)], &cfg).unwrap()[0].p_value;
        assert_eq!(p0, p1);
        // by enumeration in integers: |sum of signed d| >= |sum d| = 8
        let total: i64 = d.iter().map(|&x| x as i64).sum();
        let hits = (0..4096u32)
            .filter(|mask| {
                let s: i64 = d
                    .iter()
                    .enumerate()
                    .map(|(i, &x)| {
                        if mask >> i & 1 == 1 {
                            -(x as i64)
                        } else {
                            x as i64
                        }
                    })
                    .sum();
                s.abs() >= total.abs()
            })
            .count();
        assert!((p0 - hits as f64 / 4096.0).abs() < 1e-12);
    }

    #[test]
    fn one_row_has_no_test_and_bonferroni_keeps_nan() {
        let cfg = CompareConfig {
            resamples: 100,
            seed: 0,
            confidence: 0.95,
            test: PairedTest::Bootstrap,
        };
        assert!(
            compare_pairs(&[1.0, 0.0], 1, 2, &[(0, 1)], &cfg).unwrap()[0]
                .p_value
                .is_nan()
        );
        let adj = adjust_p_values(&[f64::NAN, 0.2], Correction::Bonferroni);
        assert!(adj[0].is_nan() && adj[1] == 0.2);
    }

    #[test]
    fn bad_shapes_and_values_are_errors() {
        assert!(bootstrap_means(&[1.0, 2.0, 3.0], 2, 2, 10, 0).is_err());
        assert!(bootstrap_means(&[1.0, f64::NAN], 1, 2, 10, 0).is_err());
        assert!(bootstrap_means(&[], 0, 1, 10, 0).is_err());
    }
}
