//! The tuning database: what `greta tune` measured, and the fastest configuration of each kernel
//! at each shape, for `greta run`, `greta build` and `greta bench` to use.
//!
//! # Keyed by content
//!
//! An entry's [`TuneKey`] is the kernel's **family** — the [`content_hash`] of its IR built at
//! the tuned site's base configuration (element types and fused epilogues as the caller runs
//! them, every tunable parameter at its default) together with the codegen version, which is the
//! lowering's (`hip-2`, `llvm-1`: what `greta tune --via` timed) — plus the
//! target, the device's name, the driver's version, the element type and the shape bucket. The
//! kernel's *name* is stored for people, never matched on. So:
//! - a kernel whose code changes gets a new family: its old entries stop matching (they are
//!   ignored, and `greta tune --show` marks them stale) and it is tuned afresh — CubeCL, keyed
//!   by name, keeps serving a stale winner;
//! - adding or removing a candidate configuration touches nothing else — Triton keys its cache
//!   by the whole config list, so one changed config re-tunes everything.
//!
//! # The file
//!
//! `tuning.json` under the cache root ([`crate::cache::default_root`]: `GRETA_CACHE_DIR`, ...),
//! beside the compile cache: `{"format": "greta-tuning-1", "entries": [...]}`. Every timing of
//! a sweep is kept (not only the winner), so a later look can see how close the field was.
//!
//! - **Corrupt or foreign files** (not JSON, another format tag, entries that do not parse) are
//!   not an error: [`TuningDb::open`] returns an empty database and a warning saying why, and
//!   the next [`TuningDb::save`] keeps the unreadable file beside the new one as
//!   `tuning.json.bad` before writing. Tuning is an optimisation; a broken DB must never stop a
//!   `greta run`.
//! - **Atomic writes**: through [`crate::output::write`] (temporary file, sync, rename), so a tune
//!   killed mid-write leaves the previous database intact.
//! - `--export FILE` / `--import FILE` move entries between machines; an import file the user
//!   names *is* an error when it does not parse (they asked for it).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::bundle::content_hash;
use greta_codegen::Via;
use greta_dsl::ir::Kernel;
use greta_dsl::Target;

/// The format tag of the file; bumped when the layout changes (an old file is then "foreign":
/// warned about and rebuilt).
pub const FORMAT: &str = "greta-tuning-1";

/// The database's file name under the cache root.
pub const FILE_NAME: &str = "tuning.json";

/// A kernel family: [`content_hash`] of the kernel built at its base configuration (IR, target
/// and the version of the lowering `via`). The same kernel compiled by HIP and by LLVM is two
/// families: a winner timed on one lowering's code is never applied to the other's.
pub fn family(kernel_at_base: &Kernel, target: &Target, via: Via) -> String {
    content_hash(kernel_at_base, target, via)
}

/// What an entry is looked up by. Every part must match.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TuneKey {
    /// [`family`]: the kernel's content at its base configuration.
    pub family: String,
    pub target: String,
    /// The device's name as the backend reports it (`NVIDIA H200`).
    pub device: String,
    /// [`crate::Backend::driver_version`].
    pub driver: String,
    /// The element type (`dtype`) the kernel was tuned for.
    pub dtype: String,
    /// The shape bucket, `m×n×k`-style: the problem shape the sizes were timed at, the token
    /// dimension rounded to the caller's bucket.
    pub shape: String,
}

/// How one candidate configuration fared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Timed to the end.
    Timed,
    /// Stopped early: far behind the leader after the first launches.
    Dropped,
    /// Gave wrong results on the check problem: never chosen.
    Wrong,
    /// Failed to load or launch.
    Failed,
}

/// One candidate's measurement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// `key=value,...`, as `--config` takes it.
    pub config: String,
    pub outcome: Outcome,
    /// Median microseconds per launch (of the launches made: fewer when dropped).
    pub median_us: Option<f64>,
    pub launches: usize,
    /// Why a candidate was wrong or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The result of tuning one kernel at one shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub key: TuneKey,
    /// The kernel's name (for people; lookups match [`TuneKey::family`]).
    pub kernel: String,
    /// The base configuration the family was built at.
    pub base: String,
    /// The configuration used without tuning, and its time.
    pub default_config: String,
    pub default_us: Option<f64>,
    /// The fastest correct configuration.
    pub best: String,
    pub best_us: f64,
    /// Every candidate timed or rejected on the device.
    pub measurements: Vec<Measurement>,
    /// Seconds since the Unix epoch.
    pub tuned_at: u64,
    pub greta_version: String,
}

impl Entry {
    /// The entry of a site's measurements, the default configuration's first: the winner is
    /// the fastest [`Outcome::Timed`] one (`None` when none was timed).
    pub fn from_measurements(
        key: TuneKey,
        kernel: &str,
        base: &str,
        measurements: Vec<Measurement>,
    ) -> Option<Entry> {
        let best = measurements
            .iter()
            .filter(|m| m.outcome == Outcome::Timed)
            .filter_map(|m| Some((m, m.median_us?)))
            .min_by(|a, b| a.1.total_cmp(&b.1))?;
        let (best, best_us) = (best.0.config.clone(), best.1);
        let default = measurements.first();
        Some(Entry {
            key,
            kernel: kernel.to_string(),
            base: base.to_string(),
            default_config: default.map_or(String::new(), |m| m.config.clone()),
            default_us: default.and_then(|m| m.median_us),
            best,
            best_us,
            measurements,
            tuned_at: now(),
            greta_version: env!("CARGO_PKG_VERSION").to_string(),
        })
    }

    /// How much faster the winner is than the default (1.0 when the default won).
    pub fn speedup(&self) -> Option<f64> {
        self.default_us.map(|d| d / self.best_us)
    }
}

#[derive(Serialize, Deserialize)]
struct FileBody {
    format: String,
    entries: Vec<Entry>,
}

#[derive(Debug, thiserror::Error)]
pub enum TuningError {
    #[error("tuning DB {}: {cause}", path.display())]
    Io { path: PathBuf, cause: String },
    #[error("{} is not a greta tuning DB: {why}", path.display())]
    Foreign { path: PathBuf, why: String },
    #[error(transparent)]
    Output(#[from] crate::output::OutputError),
    #[error(transparent)]
    Cache(#[from] crate::cache::CacheError),
}

/// The database, in memory; [`TuningDb::save`] writes it back.
#[derive(Debug)]
pub struct TuningDb {
    path: PathBuf,
    /// The lowering whose code the caller runs: the families its lookups compute are this
    /// via's (not stored in the file; entries of every via live in one file).
    via: Via,
    entries: Vec<Entry>,
    /// The file could not be read as a database: kept aside on the next save.
    unreadable: bool,
}

/// The default database path: `tuning.json` under the cache root.
pub fn default_path() -> Result<PathBuf, TuningError> {
    Ok(crate::cache::default_root()?.join(FILE_NAME))
}

fn parse(path: &Path, bytes: &[u8]) -> Result<Vec<Entry>, TuningError> {
    let foreign = |why: String| TuningError::Foreign {
        path: path.to_path_buf(),
        why,
    };
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| foreign(format!("not JSON ({e})")))?;
    match value.get("format").and_then(|f| f.as_str()) {
        Some(FORMAT) => {}
        Some(other) => return Err(foreign(format!("format `{other}`, expected `{FORMAT}`"))),
        None => return Err(foreign(format!("no `format` field (expected `{FORMAT}`)"))),
    }
    let body: FileBody =
        serde_json::from_value(value).map_err(|e| foreign(format!("malformed entries ({e})")))?;
    Ok(body.entries)
}

impl TuningDb {
    /// An empty database that will be saved at `path`.
    pub fn empty(path: impl Into<PathBuf>) -> TuningDb {
        TuningDb {
            path: path.into(),
            via: Via::Hip,
            entries: Vec::new(),
            unreadable: false,
        }
    }

    /// The database at `path`: empty when the file does not exist; empty with a warning (why)
    /// when it exists but is not a readable database — never an error, see the module docs.
    pub fn open(path: impl Into<PathBuf>) -> (TuningDb, Option<String>) {
        let path = path.into();
        let mut db = TuningDb::empty(&path);
        let bytes = match crate::input::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (db, None),
            Err(e) => {
                db.unreadable = true;
                let warning = format!(
                    "tuning DB {} cannot be read ({e}); using default configurations, and a new \
                     DB is written by the next `greta tune`",
                    path.display()
                );
                return (db, Some(warning));
            }
        };
        match parse(&path, &bytes) {
            Ok(entries) => {
                db.entries = entries;
                (db, None)
            }
            Err(e) => {
                db.unreadable = true;
                let warning = format!(
                    "{e}; ignoring it (default configurations). The next `greta tune` rebuilds \
                     it and keeps the old file as {}.bad",
                    path.display()
                );
                (db, Some(warning))
            }
        }
    }

    /// The database at [`default_path`].
    pub fn open_default() -> Result<(TuningDb, Option<String>), TuningError> {
        Ok(TuningDb::open(default_path()?))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The database for a caller that runs code compiled by `via` (the default is
    /// [`Via::Hip`]): see [`TuningDb::via`].
    pub fn with_via(self, via: Via) -> TuningDb {
        TuningDb { via, ..self }
    }

    /// The lowering whose [`family`] keys lookups for this caller should use.
    pub fn via(&self) -> Via {
        self.via
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entry for `key` (every part equal), if tuned.
    pub fn lookup(&self, key: &TuneKey) -> Option<&Entry> {
        self.entries.iter().find(|e| &e.key == key)
    }

    /// Adds `entry`, replacing any entry with the same key.
    pub fn record(&mut self, entry: Entry) {
        self.entries.retain(|e| e.key != entry.key);
        self.entries.push(entry);
    }

    /// Writes the database atomically. A file that could not be read when opened is first
    /// kept as `<file>.bad`.
    pub fn save(&mut self) -> Result<(), TuningError> {
        if self.unreadable && self.path.is_file() {
            let bad = PathBuf::from(format!("{}.bad", self.path.display()));
            std::fs::rename(&self.path, &bad).map_err(|e| TuningError::Io {
                path: self.path.clone(),
                cause: format!("keeping the unreadable file as {}: {e}", bad.display()),
            })?;
            self.unreadable = false;
        }
        self.write_to(&self.path.clone(), &self.entries)
    }

    fn write_to(&self, path: &Path, entries: &[Entry]) -> Result<(), TuningError> {
        let mut sorted = entries.to_vec();
        sorted.sort_by(|a, b| (&a.kernel, &a.key).cmp(&(&b.kernel, &b.key)));
        let body = FileBody {
            format: FORMAT.to_string(),
            entries: sorted,
        };
        let mut text = serde_json::to_string_pretty(&body).expect("entries serialise");
        text.push('\n');
        crate::output::write(path, text.as_bytes())?;
        Ok(())
    }

    /// Writes the entries `keep` accepts to `path` (another machine's `--import`).
    pub fn export(&self, path: &Path, keep: impl Fn(&Entry) -> bool) -> Result<usize, TuningError> {
        let entries: Vec<Entry> = self.entries.iter().filter(|e| keep(e)).cloned().collect();
        self.write_to(path, &entries)?;
        Ok(entries.len())
    }

    /// Merges the entries of the database at `path` (an error if it is not one): an imported
    /// entry replaces a local one with the same key. Returns how many were imported.
    pub fn import(&mut self, path: &Path) -> Result<usize, TuningError> {
        let bytes = crate::input::read(path).map_err(|e| TuningError::Io {
            path: path.to_path_buf(),
            cause: e.to_string(),
        })?;
        let entries = parse(path, &bytes)?;
        let n = entries.len();
        for e in entries {
            self.record(e);
        }
        Ok(n)
    }
}

/// Seconds since the Unix epoch (for [`Entry::tuned_at`]).
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(family: &str, shape: &str) -> TuneKey {
        TuneKey {
            family: family.into(),
            target: "sm_90".into(),
            device: "NVIDIA H200".into(),
            driver: "13.0".into(),
            dtype: "f16".into(),
            shape: shape.into(),
        }
    }

    fn timed(config: &str, us: f64) -> Measurement {
        Measurement {
            config: config.into(),
            outcome: Outcome::Timed,
            median_us: Some(us),
            launches: 100,
            note: None,
        }
    }

    fn entry(family: &str, shape: &str, best: &str) -> Entry {
        let runs = vec![timed("waves=4", 20.0), timed(best, 10.0)];
        Entry::from_measurements(key(family, shape), "gemv", "dtype=f16", runs).unwrap()
    }

    /// The winner is the fastest timed configuration; dropped, wrong and failed ones never win,
    /// and with none timed there is no entry.
    #[test]
    fn the_fastest_timed_configuration_wins() {
        let wrong = Measurement {
            outcome: Outcome::Wrong,
            ..timed("waves=1", 1.0)
        };
        let dropped = Measurement {
            outcome: Outcome::Dropped,
            ..timed("waves=2", 2.0)
        };
        let runs = vec![
            timed("waves=4", 20.0),
            wrong.clone(),
            dropped,
            timed("waves=8", 12.0),
        ];
        let e = Entry::from_measurements(key("f", "1x1x1"), "gemv", "", runs).unwrap();
        assert_eq!((e.best.as_str(), e.best_us), ("waves=8", 12.0));
        assert_eq!(
            (e.default_config.as_str(), e.default_us),
            ("waves=4", Some(20.0))
        );
        assert!(Entry::from_measurements(key("f", "1x1x1"), "gemv", "", vec![wrong]).is_none());
    }

    #[test]
    fn entries_round_trip_and_replace_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let mut db = TuningDb::empty(&path);
        db.record(entry("aaa", "1x4096x4096", "waves=8"));
        db.record(entry("aaa", "8x4096x4096", "waves=2"));
        db.record(entry("aaa", "1x4096x4096", "waves=2"));
        db.save().unwrap();
        let (db, warning) = TuningDb::open(&path);
        assert_eq!(warning, None);
        assert_eq!(db.entries().len(), 2);
        let e = db.lookup(&key("aaa", "1x4096x4096")).unwrap();
        assert_eq!(e.best, "waves=2");
        assert_eq!(e.speedup(), Some(2.0));
    }

    /// A kernel whose code changed has another family: its old entry is not found.
    #[test]
    fn a_changed_family_finds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = TuningDb::empty(dir.path().join(FILE_NAME));
        db.record(entry("old-content", "1x64x64", "waves=8"));
        assert!(db.lookup(&key("new-content", "1x64x64")).is_none());
        assert!(db.lookup(&key("old-content", "1x64x64")).is_some());
    }

    /// Garbage, a foreign format and a truncated file open as an empty DB with a warning; the
    /// next save keeps the bad file aside and writes a good one.
    #[test]
    fn corrupt_and_foreign_files_warn_and_are_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let good = {
            let p = dir.path().join("good.json");
            let mut db = TuningDb::empty(&p);
            db.record(entry("aaa", "1x1x1", "waves=8"));
            db.save().unwrap();
            std::fs::read(&p).unwrap()
        };
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("garbage", b"\x00\xffnot json".to_vec(), "not JSON"),
            (
                "foreign",
                br#"{"format": "triton-cache", "x": 1}"#.to_vec(),
                "triton-cache",
            ),
            ("untagged", br#"{"entries": []}"#.to_vec(), "no `format`"),
            ("truncated", good[..good.len() / 2].to_vec(), "not JSON"),
            (
                "bad-entry",
                br#"{"format": "greta-tuning-1", "entries": [{"key": 3}]}"#.to_vec(),
                "malformed entries",
            ),
        ];
        for (name, bytes, why) in cases {
            let path = dir.path().join(format!("{name}.json"));
            std::fs::write(&path, &bytes).unwrap();
            let (mut db, warning) = TuningDb::open(&path);
            let warning = warning.unwrap_or_else(|| panic!("{name}: no warning"));
            assert!(warning.contains(why), "{name}: {warning}");
            assert!(db.entries().is_empty(), "{name}");
            db.record(entry("aaa", "1x1x1", "waves=8"));
            db.save().unwrap();
            let bad = dir.path().join(format!("{name}.json.bad"));
            assert_eq!(
                std::fs::read(&bad).unwrap(),
                bytes,
                "{name}: the old file is kept"
            );
            let (db, warning) = TuningDb::open(&path);
            assert_eq!((db.entries().len(), warning), (1, None), "{name}");
        }
    }

    #[test]
    fn export_and_import_move_entries_and_refuse_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = TuningDb::empty(dir.path().join("a.json"));
        a.record(entry("aaa", "1x1x1", "waves=8"));
        a.record(entry("bbb", "1x1x1", "waves=2"));
        let out = dir.path().join("winners.json");
        assert_eq!(a.export(&out, |e| e.key.family == "aaa").unwrap(), 1);
        let mut b = TuningDb::empty(dir.path().join("b.json"));
        assert_eq!(b.import(&out).unwrap(), 1);
        assert_eq!(b.entries()[0].best, "waves=8");
        let junk = dir.path().join("junk.json");
        std::fs::write(&junk, "[1, 2").unwrap();
        let err = b.import(&junk).unwrap_err().to_string();
        assert!(err.contains("junk.json is not a greta tuning DB"), "{err}");
    }
}
