//! Near-duplicate detection: Jaccard similarity of 5-byte shingles of
//! normalised text (lower-cased, runs of non-alphanumerics folded to one
//! space); for ASCII text these are character 5-grams. Exact duplicates after
//! normalisation have similarity 1.

const SHINGLE: usize = 5;

pub fn normalise(text: &str) -> String {
    if text.is_ascii() {
        return normalise_ascii(text.as_bytes());
    }
    let mut out = String::with_capacity(text.len());
    let mut space = true;
    for c in text.chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
            space = false;
        } else if !space {
            out.push(' ');
            space = true;
        }
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

/// The same as the general path for ASCII text, a byte at a time.
fn normalise_ascii(text: &[u8]) -> String {
    let mut out = Vec::with_capacity(text.len());
    let mut space = true;
    for &c in text {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
            space = false;
        } else if !space {
            out.push(b' ');
            space = true;
        }
    }
    if out.last() == Some(&b' ') {
        out.pop();
    }
    // Only ASCII bytes were pushed.
    String::from_utf8(out).unwrap_or_default()
}

/// Sorted, distinct shingles of the normalised text, each 5 bytes packed into
/// a u64 (no hashing, so no collisions). A text shorter than a shingle is one
/// shingle of its own (tagged so it cannot equal a packed 5-byte window).
pub fn shingles(text: &str) -> Vec<u64> {
    shingles_of_normalised(&normalise(text))
}

/// The most shingles a normalised text can have.
pub fn max_shingles(norm: &str) -> usize {
    norm.len().saturating_sub(SHINGLE - 1).max(1)
}

pub fn shingles_of_normalised(norm: &str) -> Vec<u64> {
    let b = norm.as_bytes();
    let pack = |w: &[u8]| w.iter().fold(0u64, |acc, &x| (acc << 8) | x as u64);
    let mut out: Vec<u64> = if b.len() < SHINGLE {
        vec![(1u64 << 63) | pack(b)]
    } else {
        b.windows(SHINGLE).map(pack).collect()
    };
    out.sort_unstable();
    out.dedup();
    out
}

/// Jaccard similarity of two sorted, distinct hash sets.
pub fn jaccard(a: &[u64], b: &[u64]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    let (mut i, mut j, mut inter) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                inter += 1;
                i += 1;
                j += 1;
            }
        }
    }
    inter as f64 / (a.len() + b.len() - inter) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twins_and_strangers() {
        let a = shingles(
            "Domain: medicine. Operational fact: silverleaf reduces venom. Record index: 15.",
        );
        let b =
            shingles("domain medicine  operational FACT silverleaf reduces venom record index 3");
        let c = shingles("The harbor master charts a safe channel through the reef.");
        assert!(jaccard(&a, &b) > 0.9, "{}", jaccard(&a, &b));
        assert!(jaccard(&a, &c) < 0.1);
        assert_eq!(jaccard(&a, &a), 1.0);
        assert_eq!(normalise("  Hello,  World!! "), "hello world");
        assert_eq!(normalise("Ünïcode  Straße, OK"), "ünïcode straße ok");
        assert_eq!(shingles("abc"), shingles("ABC!"));
    }
}
