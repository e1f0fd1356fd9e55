//! Near-duplicate detection: Jaccard similarity of character 5-gram shingles
//! of normalised text (lower-cased, runs of non-alphanumerics folded to one
//! space). A character is a Unicode scalar value, so Cyrillic or CJK text is
//! shingled like ASCII (5 letters, never a window starting mid-character).
//! Exact duplicates after normalisation have similarity 1.

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

/// One shingle. A window whose characters all lie below U+1000 (Latin, Greek,
/// Cyrillic, Hebrew, Arabic, the Indic scripts, ...) is its 5 code points packed
/// 12 bits each: exact, no collisions. A window holding a character beyond (CJK,
/// emoji, ...) is a 63-bit mix of its code points, tagged by the top bit so it
/// never equals a packed window; two distinct such windows share a value with
/// odds of about 2^-63. (Packing 21-bit code points exactly needs 105 bits, and
/// u128 shingles made mining 40% slower.)
pub type Shingle = u64;

const HASHED: Shingle = 1 << 63;
/// Tags the one shingle of a text shorter than a shingle.
const SHORT: Shingle = 1 << 61;

/// Sorted, distinct shingles of the normalised text. A text shorter than a
/// shingle is one shingle of its own (tagged so it cannot equal a full window).
pub fn shingles(text: &str) -> Vec<Shingle> {
    shingles_of_normalised(&normalise(text))
}

/// The most shingles a normalised text can have.
pub fn max_shingles(norm: &str) -> usize {
    let chars = if norm.is_ascii() {
        norm.len()
    } else {
        norm.chars().count()
    };
    chars.saturating_sub(SHINGLE - 1).max(1)
}

/// splitmix64's finaliser: a bijection on u64 that spreads every input bit.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
    z ^ (z >> 31)
}

fn shingle(w: &[u32], short: bool) -> Shingle {
    if w.iter().all(|&c| c < 1 << 12) {
        let packed = w.iter().fold(0, |acc, &c| (acc << 12) | c as Shingle);
        return if short { SHORT | packed } else { packed };
    }
    let wide = w
        .iter()
        .fold(short as u128, |acc, &c| (acc << 21) | c as u128);
    let (hi, lo) = ((wide >> 64) as u64, wide as u64);
    HASHED | (mix64(lo ^ hi.wrapping_mul(0x9E3779B97F4A7C15).rotate_left(32)) >> 1)
}

pub fn shingles_of_normalised(norm: &str) -> Vec<Shingle> {
    let mut out: Vec<Shingle> = if norm.is_ascii() {
        // one byte per character, all below U+1000: packed directly
        let b = norm.as_bytes();
        let pack = |w: &[u8]| w.iter().fold(0, |acc, &x| (acc << 12) | x as Shingle);
        if b.len() < SHINGLE {
            vec![SHORT | pack(b)]
        } else {
            b.windows(SHINGLE).map(pack).collect()
        }
    } else {
        let cs: Vec<u32> = norm.chars().map(|c| c as u32).collect();
        if cs.len() < SHINGLE {
            vec![shingle(&cs, true)]
        } else {
            cs.windows(SHINGLE).map(|w| shingle(w, false)).collect()
        }
    };
    out.sort_unstable();
    out.dedup();
    out
}

/// Jaccard similarity of two sorted, distinct shingle sets.
pub fn jaccard(a: &[Shingle], b: &[Shingle]) -> f64 {
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

    /// Character 5-gram Jaccard computed the slow, obvious way.
    fn brute(a: &str, b: &str) -> f64 {
        use std::collections::HashSet;
        let grams = |t: &str| -> HashSet<Vec<char>> {
            let cs: Vec<char> = normalise(t).chars().collect();
            if cs.len() < 5 {
                return [cs].into_iter().collect();
            }
            cs.windows(5).map(|w| w.to_vec()).collect()
        };
        let (x, y) = (grams(a), grams(b));
        x.intersection(&y).count() as f64 / x.union(&y).count() as f64
    }

    #[test]
    fn shingles_are_characters_not_bytes() {
        // 9 Cyrillic letters: 5 character windows (the byte version had 14 of 5 bytes)
        assert_eq!(shingles("пароходик").len(), 5);
        assert_eq!(max_shingles(&normalise("пароходик")), 5);
        assert_eq!(shingles("東京都の港").len(), 1);
        // one word changed in each: character Jaccard, not byte Jaccard
        let pairs = [
            (
                "Капитан ведёт корабль через риф",
                "Капитан ведёт лодку через риф",
            ),
            (
                "港の船長は安全な航路を知っている",
                "港の船長は危険な航路を知っている",
            ),
            ("Straße über den Fluß", "strasse über den fluss"),
            ("abc", "ABC!"),
            ("один", "одна"),
        ];
        for (a, b) in pairs {
            let got = jaccard(&shingles(a), &shingles(b));
            assert_eq!(got, brute(a, b), "{a} / {b}");
        }
        // counted by a Python set-of-substrings reference: 16 shared character 5-grams of 36 (5-byte shingles: 37 of 67,
        // 0.55); for the Japanese pair 6 of 18 (bytes: 35 of 53, 0.66)
        let j = |(a, b): (&str, &str)| jaccard(&shingles(a), &shingles(b));
        assert_eq!(j(pairs[0]), 16.0 / 36.0);
        assert_eq!(j(pairs[1]), 6.0 / 18.0);
    }

    #[test]
    fn the_ascii_path_packs_like_the_general_one() {
        for t in ["abcdef ghij", "abc", "a"] {
            let cs: Vec<u32> = t.chars().map(|c| c as u32).collect();
            let mut general: Vec<Shingle> = if cs.len() < SHINGLE {
                vec![shingle(&cs, true)]
            } else {
                cs.windows(SHINGLE).map(|w| shingle(w, false)).collect()
            };
            general.sort_unstable();
            general.dedup();
            assert_eq!(shingles_of_normalised(t), general, "{t}");
        }
        // a text of one window and a shorter text never share a shingle
        assert_ne!(shingles("abcde"), shingles("abcd"));
        assert_ne!(shingles("港船長安全"), shingles("港船長安"));
    }
}
