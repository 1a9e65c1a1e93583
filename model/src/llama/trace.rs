//! Stage tracing of the forward pass (`GRETA_TRACE_STAGE=1`) and the logits dump
//! (`GRETA_DUMP_LOGITS=FILE`).
//!
//! Tracing only reads buffers back: after a stage's kernel has run, [`super::Model`] copies the
//! stage's output to the host through the backend's `read` (ordered after the launches on every
//! backend) and prints one line to stderr. Which kernels run, their order and their reductions
//! are those of an untraced pass, so the text generated is the same bit for bit. Off, a stage
//! costs one branch.
//!
//! A line per stage, per layer and per pass (`rope_q`, `rope_k` and `attention` once per
//! sequence of the pass, as they run), `key=value` fields separated by spaces:
//!
//! ```text
//! greta-trace pass=0 layer=0 stage=q rows=0..5 seq=0 pos=0..5 shape=[5,64] dtype=f32 checksum=9c0e4fd3a1b27755 min=-2.1e0 max=1.9e0 mean=3.2e-3 nonfinite=0
//! ```
//!
//! `pass` counts forward passes from 0 (the prompt's, then each decode step's); `layer` is `-`
//! outside the layers; `rows` are the pass's rows the line covers and `seq`/`pos` the sequences
//! (KV-cache slots) and positions they hold, one comma-separated entry per sequence (a pass
//! returns the logits of each sequence's last position only: `final_norm` and `logits` cover
//! those, one row per sequence, and `rows` counts them);
//! `checksum` is the 64-bit FNV-1a of the elements' little-endian bytes in their own type
//! (`dtype`), so equal checksums mean bit-identical tensors; `min`/`max` skip NaNs, `mean` is
//! over the finite elements and `nonfinite` counts NaNs and infinities. Where a projection's
//! residual addition is fused into its epilogue (f16/bf16 activations) its output alone never
//! exists: its line says `fused=attn_residual` (or `ffn_residual`) instead of figures. The
//! rotated keys are written straight into the KV cache (`rope_cache`): `rope_k` is the cache's
//! rows of the pass, in the cache's type.
//!
//! The logits dump writes every row of logits the forward passes compute, in order, as one
//! `[rows, vocab]` little-endian f32 array (see [`npy`]): the prompt's last position, then one
//! row per sequence per decode step — for `greta run` one row per generated token, row `i`
//! the distribution token `i` was drawn from. ([`super::Model::forward_all`] computes every
//! position of its tokens, and dumps them all.) The file is written beside its destination
//! under a temporary name and renamed into place by [`super::Model::finish_trace`]; a run that
//! fails leaves no file behind.

pub mod npy;

use greta_dsl::interp::Buffer;
use greta_dsl::ir::Scalar;
use std::fmt;
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use greta_runtime::output::OutputFile;

/// The environment variable that turns stage tracing on.
pub const TRACE_STAGE_VAR: &str = "GRETA_TRACE_STAGE";
/// The environment variable naming the logits dump.
pub const DUMP_LOGITS_VAR: &str = "GRETA_DUMP_LOGITS";

/// A step of the forward pass whose output the trace prints, in the order the pass runs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    Embedding,
    AttnNorm,
    Q,
    K,
    V,
    RopeQ,
    RopeK,
    Attention,
    /// The attention output's projection (before its residual is added).
    Wo,
    /// The residual stream after attention.
    AttnResidual,
    FfnNorm,
    Gate,
    Up,
    SiluMul,
    /// The feed-forward output's projection (before its residual is added).
    Down,
    /// The residual stream after the feed-forward block.
    FfnResidual,
    FinalNorm,
    Logits,
}

impl Stage {
    /// Every stage, in the order of the pass.
    pub const ALL: [Stage; 18] = [
        Stage::Embedding,
        Stage::AttnNorm,
        Stage::Q,
        Stage::K,
        Stage::V,
        Stage::RopeQ,
        Stage::RopeK,
        Stage::Attention,
        Stage::Wo,
        Stage::AttnResidual,
        Stage::FfnNorm,
        Stage::Gate,
        Stage::Up,
        Stage::SiluMul,
        Stage::Down,
        Stage::FfnResidual,
        Stage::FinalNorm,
        Stage::Logits,
    ];

    /// The name in trace lines (`stage=…`).
    pub fn name(self) -> &'static str {
        match self {
            Stage::Embedding => "embedding",
            Stage::AttnNorm => "attn_norm",
            Stage::Q => "q",
            Stage::K => "k",
            Stage::V => "v",
            Stage::RopeQ => "rope_q",
            Stage::RopeK => "rope_k",
            Stage::Attention => "attention",
            Stage::Wo => "wo",
            Stage::AttnResidual => "attn_residual",
            Stage::FfnNorm => "ffn_norm",
            Stage::Gate => "gate",
            Stage::Up => "up",
            Stage::SiluMul => "silu_mul",
            Stage::Down => "down",
            Stage::FfnResidual => "ffn_residual",
            Stage::FinalNorm => "final_norm",
            Stage::Logits => "logits",
        }
    }

    /// Whether the stage runs once per layer (else once per pass).
    pub fn per_layer(self) -> bool {
        !matches!(self, Stage::Embedding | Stage::FinalNorm | Stage::Logits)
    }

    /// Whether the stage runs once per sequence of a pass (else over all its rows at once).
    pub fn per_sequence(self) -> bool {
        matches!(self, Stage::RopeQ | Stage::RopeK | Stage::Attention)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What to trace: part of [`super::ModelOptions`]. The default traces nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraceOptions {
    /// Print a line per stage of every forward pass to stderr.
    pub stages: bool,
    /// Write every row of logits the forward passes compute to this `.npy` file.
    pub dump_logits: Option<PathBuf>,
}

impl TraceOptions {
    /// From `GRETA_TRACE_STAGE` (`1`/`0`, also `true`/`false`, `on`/`off`, `yes`/`no`; unset
    /// or empty: off) and `GRETA_DUMP_LOGITS` (a file name; unset or empty: no dump).
    pub fn from_env() -> Result<TraceOptions, TraceError> {
        Self::from_vars(
            std::env::var_os(TRACE_STAGE_VAR).as_deref(),
            std::env::var_os(DUMP_LOGITS_VAR).as_deref(),
        )
    }

    fn from_vars(
        stage: Option<&std::ffi::OsStr>,
        dump: Option<&std::ffi::OsStr>,
    ) -> Result<TraceOptions, TraceError> {
        let stage = stage.map(|v| v.to_string_lossy().trim().to_ascii_lowercase());
        let stages = match stage.as_deref() {
            None | Some("" | "0" | "false" | "off" | "no") => false,
            Some("1" | "true" | "on" | "yes") => true,
            Some(other) => {
                return Err(TraceError::Env {
                    var: TRACE_STAGE_VAR,
                    value: other.to_string(),
                })
            }
        };
        let dump_logits = dump.filter(|p| !p.is_empty()).map(PathBuf::from);
        Ok(TraceOptions {
            stages,
            dump_logits,
        })
    }
}

/// Why tracing could not be set up or its output written.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("{var}={value:?}: expected 1 (on) or 0 (off)")]
    Env { var: &'static str, value: String },
    /// (`error` is part of the sentence, not a separate cause, so that it is printed once.)
    #[error("{DUMP_LOGITS_VAR}={}: {op}: {error}", path.display())]
    Io {
        path: PathBuf,
        op: &'static str,
        error: std::io::Error,
    },
    /// The destination refused or failed under greta's output-file policy
    /// ([`greta_runtime::output`]): a device, a FIFO, a directory; an unwritable place.
    #[error("{DUMP_LOGITS_VAR}={0}")]
    Output(greta_runtime::output::OutputError),
}

/// The 64-bit FNV-1a hash of `bytes`, continuing from `hash` (start from [`FNV_OFFSET`]).
pub fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        hash ^= b as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// FNV-1a's starting value.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// What a trace line says about a tensor's elements.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    /// [`fnv1a`] of the elements' little-endian bytes in their own type.
    pub checksum: u64,
    /// Smallest and largest, NaNs skipped (`NaN` if every element is NaN or there are none).
    pub min: f32,
    pub max: f32,
    /// The mean of the finite elements (in f64; `NaN` if none is finite).
    pub mean: f64,
    /// NaNs and infinities.
    pub nonfinite: usize,
}

impl Stats {
    /// Of elements `range` of `buf`.
    pub fn of(buf: &Buffer, range: Range<usize>) -> Stats {
        match buf {
            Buffer::F32(v) => Stats::over(&v[range], |x| x, f32::to_le_bytes),
            Buffer::F16(v) => Stats::over(&v[range], |x| x.to_f32(), |x| x.to_le_bytes()),
            Buffer::BF16(v) => Stats::over(&v[range], |x| x.to_f32(), |x| x.to_le_bytes()),
            Buffer::I32(v) => Stats::over(&v[range], |x| x as f32, i32::to_le_bytes),
            Buffer::U32(v) => Stats::over(&v[range], |x| x as f32, u32::to_le_bytes),
        }
    }

    /// Of f32 values on the host.
    pub fn of_f32(values: &[f32]) -> Stats {
        Stats::over(values, |x| x, f32::to_le_bytes)
    }

    fn over<T: Copy, const N: usize>(
        values: &[T],
        value: impl Fn(T) -> f32,
        bytes: impl Fn(T) -> [u8; N],
    ) -> Stats {
        let mut stats = Stats {
            checksum: FNV_OFFSET,
            min: f32::NAN,
            max: f32::NAN,
            mean: 0.0,
            nonfinite: 0,
        };
        let mut sum = 0f64;
        for &x in values {
            stats.checksum = fnv1a(stats.checksum, &bytes(x));
            let v = value(x);
            // `f32::min`/`max` return the other operand for a NaN.
            stats.min = stats.min.min(v);
            stats.max = stats.max.max(v);
            if v.is_finite() {
                sum += v as f64;
            } else {
                stats.nonfinite += 1;
            }
        }
        let finite = values.len() - stats.nonfinite;
        stats.mean = if finite == 0 {
            f64::NAN
        } else {
            sum / finite as f64
        };
        stats
    }
}

/// What a trace line reports: a tensor's figures, or that the stage's output was fused into a
/// later stage's.
#[derive(Clone, Copy, Debug)]
pub enum Content {
    Stats(Stats),
    FusedInto(Stage),
}

/// One trace line (its `Display` is the line, without the newline).
pub struct Record<'a> {
    pub pass: u64,
    pub stage: Stage,
    pub layer: Option<usize>,
    /// The pass's rows the tensor holds.
    pub rows: Range<usize>,
    /// Per sequence among those rows: its KV-cache slot and the positions of its rows.
    pub seqs: &'a [(usize, Range<usize>)],
    /// Columns per row.
    pub width: usize,
    pub dtype: Scalar,
    pub content: Content,
}

impl fmt::Display for Record<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "greta-trace pass={} layer=", self.pass)?;
        match self.layer {
            Some(l) => write!(f, "{l}")?,
            None => f.write_str("-")?,
        }
        let slots: Vec<String> = self.seqs.iter().map(|(slot, _)| slot.to_string()).collect();
        let positions: Vec<String> = self
            .seqs
            .iter()
            .map(|(_, pos)| format!("{}..{}", pos.start, pos.end))
            .collect();
        write!(
            f,
            " stage={} rows={}..{} seq={} pos={} shape=[{},{}] dtype={}",
            self.stage,
            self.rows.start,
            self.rows.end,
            slots.join(","),
            positions.join(","),
            self.rows.len(),
            self.width,
            self.dtype,
        )?;
        match self.content {
            Content::Stats(s) => write!(
                f,
                " checksum={:016x} min={:e} max={:e} mean={:e} nonfinite={}",
                s.checksum, s.min, s.max, s.mean, s.nonfinite
            ),
            Content::FusedInto(stage) => write!(f, " fused={stage}"),
        }
    }
}

/// Prints a trace line to stderr (a closed stderr loses it quietly rather than failing the
/// pass).
pub(crate) fn emit(record: &Record<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "{record}");
}

/// The logits dump being written: a temporary file beside its destination, under greta's
/// output-file policy ([`greta_runtime::output`]: only over a regular file, through symbolic
/// links, keeping an existing file's mode, temporaries removed on an interrupt).
pub(crate) struct LogitDump {
    path: PathBuf,
    writer: npy::NpyWriter<BufWriter<OutputFile>>,
}

impl LogitDump {
    /// Creates the temporary file beside `path` (so that a place greta will not or cannot
    /// write fails before the model loads) for rows of `vocab` logits.
    pub(crate) fn create(path: &Path, vocab: usize) -> Result<LogitDump, TraceError> {
        let out = OutputFile::create(path).map_err(TraceError::Output)?;
        let writer = npy::NpyWriter::new(BufWriter::with_capacity(1 << 20, out), vocab).map_err(
            |error| TraceError::Io {
                path: path.to_path_buf(),
                op: "writing the header",
                error,
            },
        )?;
        Ok(LogitDump {
            path: path.to_path_buf(),
            writer,
        })
    }

    /// Appends rows of logits.
    pub(crate) fn push(&mut self, rows: &[Vec<f32>]) -> Result<(), TraceError> {
        for row in rows {
            self.writer.push(row).map_err(|error| TraceError::Io {
                path: self.path.clone(),
                op: "writing the logits",
                error,
            })?;
        }
        Ok(())
    }

    /// Writes the final shape and renames the file into place; returns the path and the shape
    /// `[rows, vocab]`.
    pub(crate) fn finish(self) -> Result<(PathBuf, [usize; 2]), TraceError> {
        let path = self.path;
        let io = |op: &'static str| {
            let path = path.clone();
            move |error| TraceError::Io { path, op, error }
        };
        let shape = [self.writer.rows(), self.writer.cols()];
        let out = self
            .writer
            .finish()
            .map_err(io("writing the header"))?
            .into_inner()
            .map_err(|e| io("flushing")(e.into_error()))?;
        out.commit().map_err(TraceError::Output)?;
        Ok((path, shape))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::f16;
    use std::ffi::OsStr;

    /// FNV-1a's published test vectors, and the checksum is over the elements' own bytes.
    #[test]
    fn checksums_are_fnv1a_of_the_element_bytes() {
        assert_eq!(fnv1a(FNV_OFFSET, b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a(FNV_OFFSET, b"foobar"), 0x85944171f73967e8);
        let v = [1.5f32, -0.0, 3.25];
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        assert_eq!(Stats::of_f32(&v).checksum, fnv1a(FNV_OFFSET, &bytes));
        // -0.0 and 0.0 are equal values but not the same bits.
        assert_ne!(
            Stats::of_f32(&[0.0]).checksum,
            Stats::of_f32(&[-0.0]).checksum
        );
        // Half buffers hash their 2-byte elements; a range hashes only its elements.
        let h = Buffer::F16(vec![f16::from_f32(9.0), f16::ONE, f16::from_f32(-2.0)]);
        let want: Vec<u8> = [f16::ONE, f16::from_f32(-2.0)]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        assert_eq!(Stats::of(&h, 1..3).checksum, fnv1a(FNV_OFFSET, &want));
    }

    #[test]
    fn stats_skip_nans_and_count_nonfinite_values() {
        let s = Stats::of_f32(&[1.0, f32::NAN, -3.0, f32::INFINITY, 4.0]);
        assert_eq!((s.min, s.max), (-3.0, f32::INFINITY));
        assert_eq!(s.mean, 2.0 / 3.0);
        assert_eq!(s.nonfinite, 2);
        let all_nan = Stats::of_f32(&[f32::NAN]);
        assert!(all_nan.min.is_nan() && all_nan.max.is_nan() && all_nan.mean.is_nan());
        let h = Buffer::BF16(vec![half::bf16::from_f32(2.0), half::bf16::from_f32(6.0)]);
        let s = Stats::of(&h, 0..2);
        assert_eq!((s.min, s.max, s.mean, s.nonfinite), (2.0, 6.0, 4.0, 0));
    }

    #[test]
    fn a_record_is_one_line_of_key_value_fields() {
        let seqs = [(0, 3..5), (2, 7..8)];
        let r = Record {
            pass: 4,
            stage: Stage::Q,
            layer: Some(1),
            rows: 0..3,
            seqs: &seqs,
            width: 64,
            dtype: Scalar::F32,
            content: Content::Stats(Stats::of_f32(&[1.0, -2.0, 4.0])),
        };
        assert_eq!(
            r.to_string(),
            format!(
                "greta-trace pass=4 layer=1 stage=q rows=0..3 seq=0,2 pos=3..5,7..8 shape=[3,64] \
                 dtype=f32 checksum={:016x} min=-2e0 max=4e0 mean=1e0 nonfinite=0",
                Stats::of_f32(&[1.0, -2.0, 4.0]).checksum
            )
        );
        let r = Record {
            layer: None,
            stage: Stage::Wo,
            content: Content::FusedInto(Stage::AttnResidual),
            ..r
        };
        assert!(r.to_string().contains(" layer=- stage=wo "), "{r}");
        assert!(
            r.to_string().ends_with(" dtype=f32 fused=attn_residual"),
            "{r}"
        );
    }

    #[test]
    fn options_come_from_the_environment_variables() {
        let on = |s: &str| TraceOptions::from_vars(Some(OsStr::new(s)), None);
        assert!(on("1").unwrap().stages);
        assert!(on(" ON ").unwrap().stages);
        assert!(!on("0").unwrap().stages);
        assert!(!on("").unwrap().stages);
        assert_eq!(
            TraceOptions::from_vars(None, None).unwrap(),
            Default::default()
        );
        let e = on("2").unwrap_err().to_string();
        assert_eq!(e, "GRETA_TRACE_STAGE=\"2\": expected 1 (on) or 0 (off)");
        let dump = TraceOptions::from_vars(None, Some(OsStr::new("l.npy"))).unwrap();
        assert_eq!(dump.dump_logits.as_deref(), Some(Path::new("l.npy")));
        let empty = TraceOptions::from_vars(None, Some(OsStr::new(""))).unwrap();
        assert_eq!(empty.dump_logits, None);
    }

    /// The dump is written under a temporary name and appears whole at `finish`; an
    /// unwritable place is an error naming the variable and the path, at creation.
    #[test]
    fn the_dump_appears_only_when_finished() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logits.npy");
        let mut dump = LogitDump::create(&path, 3).unwrap();
        dump.push(&[vec![1.0, 2.0, 3.0], vec![4.0, 5.0, 6.0]])
            .unwrap();
        assert!(!path.exists());
        let (at, shape) = dump.finish().unwrap();
        assert_eq!((at, shape), (path.clone(), [2, 3]));
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), npy::HEADER_LEN + 6 * 4);
        assert!(String::from_utf8_lossy(&bytes[..npy::HEADER_LEN]).contains("(2, 3)"));
        // Nothing else is left in the directory.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

        // Dropped unfinished (a failed run): no file, no temporary left.
        let other = dir.path().join("other.npy");
        drop(LogitDump::create(&other, 3).unwrap());
        assert!(!other.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

        // A place that cannot be made (a file where a directory should be), and a directory,
        // are refused at creation, naming the variable and the path.
        let file = dir.path().join("logits.npy");
        let under_a_file = file.join("l.npy");
        let e = LogitDump::create(&under_a_file, 3)
            .err()
            .unwrap()
            .to_string();
        let not_a_dir = std::io::Error::from_raw_os_error(20);
        assert_eq!(
            e,
            format!(
                "GRETA_DUMP_LOGITS={}: looking at it: {not_a_dir}",
                under_a_file.display()
            )
        );
        let e = LogitDump::create(dir.path(), 3).err().unwrap().to_string();
        assert!(e.contains("is a directory, not a regular file"), "{e}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
