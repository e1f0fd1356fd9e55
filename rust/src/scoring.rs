//! The BM25 variants, each a few lines of formula, as bm25s defines them
//! (Kamphuis et al., ECIR 2020).

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Robertson,
    Atire,
    Bm25L,
    Bm25Plus,
    Lucene,
}

#[derive(Clone, Copy, Debug)]
pub struct Params {
    pub method: Method,
    pub k1: f64,
    pub b: f64,
    pub delta: f64,
}

impl Method {
    pub fn parse(name: &str) -> Result<Method> {
        Ok(match name {
            "robertson" => Method::Robertson,
            "atire" => Method::Atire,
            "bm25l" => Method::Bm25L,
            "bm25+" => Method::Bm25Plus,
            "lucene" => Method::Lucene,
            other => {
                return Err(Error::invalid(format!(
                    "unknown BM25 method {other:?}: choose robertson, atire, bm25l, bm25+ or lucene"
                )))
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Method::Robertson => "robertson",
            Method::Atire => "atire",
            Method::Bm25L => "bm25l",
            Method::Bm25Plus => "bm25+",
            Method::Lucene => "lucene",
        }
    }

    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: u8) -> Option<Method> {
        [
            Method::Robertson,
            Method::Atire,
            Method::Bm25L,
            Method::Bm25Plus,
            Method::Lucene,
        ]
        .get(code as usize)
        .copied()
    }

    /// BM25L and BM25+ give a document a score for a query term it lacks.
    pub fn has_nonoccurrence(self) -> bool {
        matches!(self, Method::Bm25L | Method::Bm25Plus)
    }
}

impl Params {
    pub fn new(method: Method, k1: f64, b: f64, delta: f64) -> Result<Params> {
        if !(k1.is_finite() && k1 >= 0.0) {
            return Err(Error::invalid(format!(
                "k1 must be a finite number >= 0, got {k1}"
            )));
        }
        if !(0.0..=1.0).contains(&b) {
            return Err(Error::invalid(format!("b must lie in [0, 1], got {b}")));
        }
        if !(delta.is_finite() && delta >= 0.0) {
            return Err(Error::invalid(format!(
                "delta must be a finite number >= 0, got {delta}"
            )));
        }
        // A document lacking a query term scores tfc(0): 0/0 = NaN for these,
        // which would make every score NaN.
        if method == Method::Bm25Plus && k1 == 0.0 {
            return Err(Error::invalid(
                "bm25+ with k1 = 0 gives every document a NaN score (0/0 for a term it lacks): use k1 > 0",
            ));
        }
        if method == Method::Bm25L && k1 == 0.0 && delta == 0.0 {
            return Err(Error::invalid(
                "bm25l with k1 = 0 and delta = 0 gives every document a NaN score (0/0 for a term it lacks): use k1 > 0 or delta > 0",
            ));
        }
        Ok(Params {
            method,
            k1,
            b,
            delta,
        })
    }

    /// Inverse document frequency of a term found in `df` of `n` documents.
    pub fn idf(&self, df: f64, n: f64) -> f64 {
        match self.method {
            Method::Robertson => {
                let inner = (n - df + 0.5) / (df + 0.5);
                inner.max(1.0).ln()
            }
            Method::Lucene => (1.0 + (n - df + 0.5) / (df + 0.5)).ln(),
            Method::Atire => (n / df).ln(),
            Method::Bm25L => ((n + 1.0) / (df + 0.5)).ln(),
            Method::Bm25Plus => ((n + 1.0) / df).ln(),
        }
    }

    /// Term-frequency component for a term seen `tf` times in a document of
    /// length `dl`, with average length `avgdl`.
    pub fn tfc(&self, tf: f64, dl: f64, avgdl: f64) -> f64 {
        let (k1, b, delta) = (self.k1, self.b, self.delta);
        let norm = 1.0 - b + b * dl / avgdl;
        match self.method {
            Method::Robertson | Method::Lucene => tf / (k1 * norm + tf),
            Method::Atire => tf * (k1 + 1.0) / (tf + k1 * norm),
            Method::Bm25L => {
                let c = tf / norm;
                (k1 + 1.0) * (c + delta) / (k1 + c + delta)
            }
            Method::Bm25Plus => (k1 + 1.0) * tf / (k1 * norm + tf) + delta,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const METHODS: [Method; 5] = [
        Method::Robertson,
        Method::Atire,
        Method::Bm25L,
        Method::Bm25Plus,
        Method::Lucene,
    ];

    /// Every accepted parameter set gives finite term weights, for present and
    /// absent terms, on a grid of corpus shapes; the refused ones are exactly
    /// those that would not.
    #[test]
    fn accepted_parameters_give_finite_weights() {
        let grid = [0.0, 1e-9, 0.3, 1.0, 1.5, 20.0];
        let bs = [0.0, 0.5, 1.0];
        for m in METHODS {
            for &k1 in &grid {
                for &b in &bs {
                    for &delta in &grid {
                        let finite = (|| {
                            let p = Params {
                                method: m,
                                k1,
                                b,
                                delta,
                            };
                            for (df, n) in [(1.0, 1.0), (1.0, 10.0), (10.0, 10.0), (3.0, 1e6)] {
                                let idf = p.idf(df, n);
                                // tfc(0) is used only by the methods that score absent terms.
                                let tfs: &[f64] = if m.has_nonoccurrence() {
                                    &[0.0, 1.0, 7.0]
                                } else {
                                    &[1.0, 7.0]
                                };
                                for &tf in tfs {
                                    for dl in [1.0f64, 7.0, 300.0] {
                                        let avgdl = 5.0;
                                        if !(idf * p.tfc(tf, dl.max(tf), avgdl)).is_finite() {
                                            return false;
                                        }
                                    }
                                }
                            }
                            true
                        })();
                        let accepted = Params::new(m, k1, b, delta).is_ok();
                        assert_eq!(accepted, finite, "{m:?} k1={k1} b={b} delta={delta}");
                    }
                }
            }
        }
    }

    #[test]
    fn out_of_range_parameters_are_refused() {
        for (k1, b, delta) in [
            (-0.1, 0.75, 0.5),
            (f64::NAN, 0.75, 0.5),
            (f64::INFINITY, 0.75, 0.5),
            (1.5, -0.01, 0.5),
            (1.5, 1.01, 0.5),
            (1.5, f64::NAN, 0.5),
            (1.5, 0.75, -1.0),
            (1.5, 0.75, f64::NAN),
        ] {
            for m in METHODS {
                assert!(
                    Params::new(m, k1, b, delta).is_err(),
                    "{m:?} {k1} {b} {delta}"
                );
            }
        }
        let e = Params::new(Method::Bm25L, 0.0, 0.75, 0.0).unwrap_err();
        assert!(e.to_string().contains("NaN"), "{e}");
    }
}
