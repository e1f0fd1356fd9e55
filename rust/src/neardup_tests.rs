//! Tests of `neardup.rs`.

use super::*;

#[test]
fn twins_and_strangers() {
    let a =
        shingles("Domain: medicine. Operational fact: silverleaf reduces venom. Record index: 15.");
    let b = shingles("domain medicine  operational FACT silverleaf reduces venom record index 3");
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

use proptest::prelude::*;

/// Text built from a small alphabet with runs of punctuation and case, so
/// that windows repeat and candidates share shingles with each other.
fn texty() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("a"),
            Just("B"),
            Just("c"),
            Just(" "),
            Just(", "),
            Just("!!"),
            Just("\t"),
            Just("7"),
            Just("ab"),
            Just("é"),
        ],
        0..40,
    )
    .prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// The streaming shingler of raw ASCII text yields, window by window,
    /// exactly the shingles of the normalised text (a wrong space rule or
    /// a window mask would show here).
    #[test]
    fn raw_ascii_windows_equal_normalised_windows(t in texty()) {
        let t: String = t.chars().filter(char::is_ascii).collect();
        let mut want = Vec::new();
        for_each_shingle(&normalise(&t), &mut Vec::new(), |s| { want.push(s); true });
        let mut got = Vec::new();
        for_each_shingle_of_raw_ascii(t.as_bytes(), |s| { got.push(s); true });
        prop_assert_eq!(got, want);
    }

    /// `rules_out` never rules out a candidate whose Jaccard reaches the
    /// threshold (nor an exact duplicate), on the raw and normalised paths.
    #[test]
    fn rules_out_is_sound(r in texty(), c in texty(), t in 0.05f64..=1.0) {
        let twin = Twin::new(0, &r);
        let mut s = TwinScratch::default();
        let norm = normalise(&c);
        let j = jaccard(&shingles_of_normalised(&norm), &twin.shingles);
        let out = twin.rules_out(&norm, t, &mut s);
        if c.is_ascii() {
            prop_assert_eq!(twin.rules_out_ascii(c.as_bytes(), t, &mut s), out);
        }
        if out {
            prop_assert!(j < t, "ruled out at J = {} >= t = {}", j, t);
            prop_assert!(norm != twin.norm);
        }
    }
}

#[test]
fn miss_limit_is_the_smallest_count_below_the_threshold() {
    for r in [1usize, 2, 5, 37, 200, 1001] {
        for t in [0.05, 0.5, 0.8, 0.9, 0.95, 0.999, 1.0] {
            let m = miss_limit(r, t);
            assert!((r as f64) / ((r + m) as f64) < t, "r {r} t {t} m {m}");
            assert!(
                m == 0 || (r as f64) / ((r + m - 1) as f64) >= t,
                "r {r} t {t} m {m}"
            );
        }
    }
    assert_eq!(miss_limit(200, 0.8), 51); // 200/250 = 0.8 is not below
    assert_eq!(miss_limit(10, 1e-300), usize::MAX);
    // a distinct document is ruled out well before its end
    let twin = Twin::new(0, &"the reef is safe at high tide ".repeat(8));
    let mut s = TwinScratch::default();
    assert!(twin.rules_out_ascii(
        b"a pilot knows every channel of the harbour, old and new",
        0.8,
        &mut s
    ));
    assert!(!twin.rules_out_ascii(
        "The reef is SAFE at high tide! ".repeat(8).as_bytes(),
        0.8,
        &mut s
    ));
}

/// A long candidate that repeats just under the rule-out limit of distinct
/// shingles outside the document: the miss counter used to sort its list on
/// every window (31 s for this 320 KB text at threshold 0.5); amortised, it
/// is milliseconds. Also checks the answer stays sound.
#[test]
fn a_long_repetitive_candidate_is_not_quadratic() {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut letters = |n: usize| -> String {
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (b'a' + (state % 26) as u8) as char
            })
            .collect()
    };
    let r = format!("reef {}", letters(8000));
    let p = letters(8000);
    let c = format!("reef {}", p.repeat(40));
    let twin = Twin::new(0, &r);
    let mut scratch = TwinScratch::default();
    let start = std::time::Instant::now();
    let ascii = twin.rules_out_ascii(c.as_bytes(), 0.5, &mut scratch);
    let general = twin.rules_out(&normalise(&c), 0.5, &mut scratch);
    let secs = start.elapsed().as_secs_f64();
    assert!(secs < 3.0, "rule-out took {secs:.1}s");
    let j = jaccard(&shingles(&r), &shingles(&c));
    assert!(j < 0.5, "{j}");
    // sound: a rule-out only where the similarity is below the threshold (it is here)
    assert_eq!(ascii, general);
}
