//! Crash safety and concurrent readers (issue 14 §4), with a writer in
//! another process: the test binary runs itself with a filter that selects
//! `child_writer` and environment variables that make it write. The child
//! applies the reproducible steps of `apply_step` from a given state, saving
//! after each; the parent knows every state k the folder may hold, so it can
//! check that what it loads is exactly one of them.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::*;

const SEED: u64 = 0x5EED_CAFE;
const ENV_DIR: &str = "BDNSCA_SEG_CHILD_DIR";
const ENV_FROM: &str = "BDNSCA_SEG_CHILD_FROM";
const ENV_TO: &str = "BDNSCA_SEG_CHILD_TO";

/// The writer, when run as a child (a no-op test otherwise): loads the folder
/// (state `FROM`), then applies and saves steps FROM+1..=TO.
#[test]
fn child_writer() {
    let Ok(dir) = std::env::var(ENV_DIR) else {
        return;
    };
    let from: u64 = std::env::var(ENV_FROM).unwrap().parse().unwrap();
    let to: u64 = std::env::var(ENV_TO).unwrap().parse().unwrap();
    let dir = PathBuf::from(dir);
    let (mut idx, _) = load_dir(&dir).unwrap();
    for k in from + 1..=to {
        apply_step(&mut idx, SEED, k);
        save_dir(&mut idx, &tok(), &dir).unwrap();
    }
}

fn spawn_writer(dir: &Path, from: u64, to: u64) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "seg_persist::tests::crash::child_writer",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(ENV_DIR, dir)
        .env(ENV_FROM, from.to_string())
        .env(ENV_TO, to.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Fingerprints of states 0..=n.
fn states(n: u64) -> Vec<Fingerprint> {
    let mut idx = SegmentedIndex::new(lucene());
    let mut out = vec![fingerprint(&idx)];
    for k in 1..=n {
        apply_step(&mut idx, SEED, k);
        out.push(fingerprint(&idx));
    }
    out
}

/// The first state >= `from` that `idx` equals, if any.
fn which_state(all: &[Fingerprint], from: u64, idx: &SegmentedIndex) -> Option<u64> {
    let f = fingerprint(idx);
    (from as usize..all.len())
        .find(|&k| all[k] == f)
        .map(|k| k as u64)
}

fn fresh_dir(tag: &str) -> PathBuf {
    let dir = tempdir(tag);
    save_dir(&mut SegmentedIndex::new(lucene()), &tok(), &dir).unwrap();
    dir
}

#[test]
fn a_writer_killed_at_random_points_leaves_a_state_before_or_after_a_step() {
    const LAST: u64 = 400;
    let all = states(LAST);
    let dir = fresh_dir("crash");
    let mut rng = Rng(random_tag());
    let (mut cur, mut kills, mut advanced) = (0u64, 0, 0);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(15) && kills < 40 && cur < LAST {
        let mut child = spawn_writer(&dir, cur, LAST);
        std::thread::sleep(Duration::from_micros(2000 + rng.below(120_000)));
        let _ = child.kill();
        let status = child.wait().unwrap();
        if status.success() {
            // It finished every step before the kill.
        } else {
            kills += 1;
        }
        let (idx, _) =
            load_dir(&dir).unwrap_or_else(|e| panic!("after a kill at state >= {cur}: {e}"));
        let k = which_state(&all, cur, &idx)
            .unwrap_or_else(|| panic!("the folder holds no state >= {cur} after a kill"));
        let ids: Vec<String> = idx.live_ids().iter().map(|s| s.to_string()).collect();
        assert_eq!(read_ids(&dir).unwrap(), ids);
        if k > cur {
            advanced += 1;
        }
        cur = k;
    }
    assert!(
        kills >= 3 && advanced >= 2,
        "kills {kills}, advanced {advanced}: the child did not run"
    );
    eprintln!("crash test: {kills} kills, reached state {cur}");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn readers_see_whole_states_while_another_process_appends() {
    const LAST: u64 = 150;
    let all = states(LAST);
    let dir = fresh_dir("readers");
    let mut child = spawn_writer(&dir, 0, LAST);
    let done = std::sync::atomic::AtomicBool::new(false);
    let start = Instant::now();
    let loads: Vec<(usize, u64)> = std::thread::scope(|s| {
        let readers: Vec<_> = (0..3)
            .map(|t| {
                let (dir, all, done) = (&dir, &all, &done);
                s.spawn(move || {
                    let (mut n, mut last) = (0usize, 0u64);
                    while !done.load(std::sync::atomic::Ordering::Relaxed) {
                        let k = if t == 2 {
                            // read_ids alone: the live ids of some state.
                            let ids = read_ids(dir).unwrap();
                            (last as usize..all.len())
                                .find(|&k| all[k].0 == ids)
                                .map(|k| k as u64)
                        } else {
                            let (idx, _) = load_dir(dir).unwrap();
                            which_state(all, last, &idx)
                        };
                        last = k.unwrap_or_else(|| panic!("reader {t} loaded no state >= {last}"));
                        n += 1;
                    }
                    (n, last)
                })
            })
            .collect();
        while start.elapsed() < Duration::from_secs(20) {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        readers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() || start.elapsed() >= Duration::from_secs(20),
        "writer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let total: usize = loads.iter().map(|l| l.0).sum();
    assert!(total >= 10, "only {total} loads");
    assert!(
        loads.iter().any(|l| l.1 > 0),
        "readers never saw a new state: {loads:?}"
    );
    eprintln!("readers: {loads:?} (loads, last state)");
    fs::remove_dir_all(&dir).unwrap();
}
