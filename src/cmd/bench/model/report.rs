//! What `greta bench -m` prints: llama-bench's model description, size and parameter count,
//! its statistics over the samples, and its two formats — the Markdown table (same columns
//! and number formats, so the tables sit side by side) and JSON (llama-bench's field names
//! where greta has the same thing). Rows are printed as each test finishes.

use super::plan::Test;
use anyhow::Result;
use greta_model::gguf::{GgmlType, GgufFile};
use greta_model::llama::LlamaConfig;

/// A model as llama-bench names and sizes it.
pub struct ModelInfo {
    pub filename: String,
    /// `llama 7B F16`: architecture, size class, file type (llama.cpp's `llama_model_desc`).
    pub desc: String,
    /// Bytes of all tensors (llama.cpp's `llama_model_size`).
    pub size: u64,
    /// Elements of all tensors (llama.cpp's `llama_model_n_params`).
    pub n_params: u64,
}

impl ModelInfo {
    pub fn of(filename: String, file: &GgufFile, cfg: &LlamaConfig) -> ModelInfo {
        let arch = file
            .get_str("general.architecture")
            .ok()
            .flatten()
            .unwrap_or("llama");
        ModelInfo {
            filename,
            desc: format!("{arch} {} {}", size_class(cfg), file_type(file)),
            size: file.tensors().iter().map(|t| t.size_bytes).sum(),
            n_params: file.tensors().iter().map(|t| t.n_elements()).sum(),
        }
    }
}

/// llama.cpp's size class of a Llama model, by its layer count (as `llama_model_llama`
/// decides it); `?B` for the others, e.g. the tiny test models.
fn size_class(cfg: &LlamaConfig) -> &'static str {
    match cfg.n_layers {
        16 | 22 => "1B",
        26 | 28 => "3B",
        30 => "256M",
        32 if cfg.vocab == 49152 => "3B",
        32 if cfg.vocab < 40000 => "7B",
        32 | 36 => "8B",
        40 => "13B",
        48 => "34B",
        60 => "30B",
        80 if cfg.n_heads == cfg.n_kv_heads => "65B",
        80 => "70B",
        _ => "?B",
    }
}

/// llama.cpp's file type name: `general.file_type` when the file says it, else guessed from
/// the most common tensor type (and marked `(guessed)`, as llama.cpp marks it).
fn file_type(file: &GgufFile) -> String {
    if let Some(name) = file
        .get_u32("general.file_type")
        .ok()
        .flatten()
        .and_then(ftype_name)
    {
        return name.to_string();
    }
    let mut counts: Vec<(GgmlType, usize)> = Vec::new();
    for t in file.tensors() {
        match counts.iter_mut().find(|(ty, _)| *ty == t.ty) {
            Some((_, n)) => *n += 1,
            None => counts.push((t.ty, 1)),
        }
    }
    // The first type to reach the highest count, as llama.cpp's loop picks it.
    let most = counts.iter().map(|c| c.1).max().unwrap_or(0);
    let name = match counts.iter().find(|c| c.1 == most).map(|c| c.0) {
        None | Some(GgmlType::F32) => "all F32",
        Some(ty) => ty.name(),
    };
    format!("(guessed) {name}")
}

/// The names of llama.cpp's `llama_ftype` values.
fn ftype_name(id: u32) -> Option<&'static str> {
    Some(match id {
        0 => "all F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K - Medium",
        11 => "Q3_K - Small",
        12 => "Q3_K - Medium",
        13 => "Q3_K - Large",
        14 => "Q4_K - Small",
        15 => "Q4_K - Medium",
        16 => "Q5_K - Small",
        17 => "Q5_K - Medium",
        18 => "Q6_K",
        32 => "BF16",
        _ => return None,
    })
}

/// Mean of `v` (0 for none).
fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.iter().sum::<f64>() / v.len() as f64
}

/// Sample standard deviation of `v` (n − 1 in the denominator; 0 for fewer than two values),
/// as llama-bench computes it.
fn stddev(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    let m = mean(v);
    (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
}

/// What a row says about the run besides the model and the test.
pub struct Setup {
    pub backend: String,
    pub device: String,
    pub dtype: String,
    pub attn: String,
    pub n_batch: usize,
    pub n_ctx: usize,
}

/// One test's result: a JSON object, a Markdown row.
#[derive(serde::Serialize)]
pub struct Row {
    pub build: String,
    pub model_filename: String,
    pub model_type: String,
    pub model_size: u64,
    pub model_n_params: u64,
    pub backend: String,
    pub device: String,
    /// The activation (and KV-cache) type.
    pub dtype: String,
    pub attn: String,
    pub n_batch: usize,
    pub n_ctx: usize,
    pub n_prompt: usize,
    pub n_gen: usize,
    pub n_depth: usize,
    pub test: String,
    pub avg_ns: u64,
    pub stddev_ns: u64,
    pub avg_ts: f64,
    pub stddev_ts: f64,
    pub samples_ns: Vec<u64>,
    pub samples_ts: Vec<f64>,
}

impl Row {
    /// The row of `test` on `model` from its samples' times, t/s per sample being the test's
    /// tokens over the sample's time (llama-bench's `get_ts`).
    pub fn new(model: &ModelInfo, setup: &Setup, test: &Test, samples_ns: Vec<u64>) -> Row {
        let ns: Vec<f64> = samples_ns.iter().map(|&t| t as f64).collect();
        let samples_ts: Vec<f64> = ns
            .iter()
            .map(|t| 1e9 * test.tokens() as f64 / t.max(1.0))
            .collect();
        Row {
            build: format!("greta {}", env!("CARGO_PKG_VERSION")),
            model_filename: model.filename.clone(),
            model_type: model.desc.clone(),
            model_size: model.size,
            model_n_params: model.n_params,
            backend: setup.backend.clone(),
            device: setup.device.clone(),
            dtype: setup.dtype.clone(),
            attn: setup.attn.clone(),
            n_batch: setup.n_batch,
            n_ctx: setup.n_ctx,
            n_prompt: test.n_prompt,
            n_gen: test.n_gen,
            n_depth: test.n_depth,
            test: test.label(),
            avg_ns: mean(&ns).round() as u64,
            stddev_ns: stddev(&ns).round() as u64,
            avg_ts: mean(&samples_ts),
            stddev_ts: stddev(&samples_ts),
            samples_ns,
            samples_ts,
        }
    }
}

/// `-o`: the output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// llama-bench's Markdown table.
    Md,
    /// A JSON array of one object per test.
    Json,
}

/// The columns of the Markdown table: name, width, right-aligned (llama-bench's widths).
const COLUMNS: [(&str, usize, bool); 7] = [
    ("model", 30, false),
    ("size", 10, true),
    ("params", 10, true),
    ("backend", 10, false),
    ("dtype", 5, false),
    ("test", 15, true),
    ("t/s", 20, true),
];

fn md_line(cells: &[String]) -> String {
    let mut line = String::from("|");
    for (cell, &(_, width, right)) in cells.iter().zip(&COLUMNS) {
        if right {
            line += &format!(" {cell:>width$} |");
        } else {
            line += &format!(" {cell:<width$} |");
        }
    }
    line
}

/// The table's header and its alignment row.
pub fn md_header() -> String {
    let names: Vec<String> = COLUMNS.iter().map(|c| c.0.to_string()).collect();
    let rule: Vec<String> = COLUMNS
        .iter()
        .map(|&(_, width, right)| {
            let dashes = "-".repeat(width - 1);
            if right {
                format!("{dashes}:")
            } else {
                format!("{dashes}-")
            }
        })
        .collect();
    format!("{}\n{}", md_line(&names), md_line(&rule))
}

/// A row of the table, with llama-bench's units: MiB below a GiB, M parameters below a
/// billion.
pub fn md_row(row: &Row) -> String {
    const GIB: u64 = 1 << 30;
    let size = if row.model_size < GIB {
        format!("{:.2} MiB", row.model_size as f64 / (1u64 << 20) as f64)
    } else {
        format!("{:.2} GiB", row.model_size as f64 / GIB as f64)
    };
    let params = if row.model_n_params < 1_000_000_000 {
        format!("{:.2} M", row.model_n_params as f64 / 1e6)
    } else {
        format!("{:.2} B", row.model_n_params as f64 / 1e9)
    };
    md_line(&[
        row.model_type.clone(),
        size,
        params,
        row.backend.clone(),
        row.dtype.clone(),
        row.test.clone(),
        format!("{:.2} ± {:.2}", row.avg_ts, row.stddev_ts),
    ])
}

/// Prints rows on stdout as they come, in the chosen format.
pub struct Printer {
    format: Format,
    rows: usize,
}

impl Printer {
    /// Starts the output: the table's header, or the JSON array's `[`.
    pub fn begin(format: Format) -> Result<Printer> {
        match format {
            Format::Md => outln!("{}", md_header()),
            Format::Json => out!("["),
        }
        crate::cmd::out::flush()?;
        Ok(Printer { format, rows: 0 })
    }

    pub fn row(&mut self, row: &Row) -> Result<()> {
        match self.format {
            Format::Md => outln!("{}", md_row(row)),
            Format::Json => {
                let text = serde_json::to_string_pretty(row)?;
                let sep = if self.rows == 0 { "" } else { "," };
                out!("{sep}\n  {}", text.replace('\n', "\n  "));
            }
        }
        self.rows += 1;
        crate::cmd::out::flush()?;
        Ok(())
    }

    /// Ends the output (the JSON array's `]`).
    pub fn end(self) -> Result<()> {
        if self.format == Format::Json {
            outln!("\n]");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(size: u64, n_params: u64, samples_ns: Vec<u64>) -> Row {
        let model = ModelInfo {
            filename: "m.gguf".into(),
            desc: "llama 7B F16".into(),
            size,
            n_params,
        };
        let setup = Setup {
            backend: "cuda".into(),
            device: "H200".into(),
            dtype: "f16".into(),
            attn: "v4".into(),
            n_batch: 2048,
            n_ctx: 640,
        };
        let test = Test {
            n_prompt: 512,
            n_gen: 0,
            n_depth: 0,
        };
        Row::new(&model, &setup, &test, samples_ns)
    }

    #[test]
    fn tokens_per_second_are_per_sample_with_the_sample_stddev() {
        // 512 tokens in 1 ms and in 0.5 ms: 512,000 and 1,024,000 t/s.
        let r = row(1, 1, vec![1_000_000, 500_000]);
        assert_eq!(r.samples_ts, [512_000.0, 1_024_000.0]);
        assert_eq!(r.avg_ts, 768_000.0);
        assert!((r.stddev_ts - 362_038.67).abs() < 0.01, "{}", r.stddev_ts);
        assert_eq!((r.avg_ns, r.stddev_ns), (750_000, 353_553));
        assert_eq!(row(1, 1, vec![7]).stddev_ts, 0.0);
    }

    #[test]
    fn the_table_has_llama_bench_columns_and_units() {
        let header = md_header();
        assert!(header.starts_with("| model "), "{header}");
        assert!(header.contains("| test |") || header.contains("test |"));
        assert!(header
            .lines()
            .nth(1)
            .unwrap()
            .ends_with("-------------------: |"));
        let big = md_row(&row(13_476_000_000, 6_738_000_000, vec![1_000_000]));
        assert!(big.contains("12.55 GiB") && big.contains("6.74 B"), "{big}");
        assert!(
            big.contains("pp512") && big.contains("512000.00 ± 0.00"),
            "{big}"
        );
        let small = md_row(&row(1_185_000, 292_000, vec![1_000_000]));
        assert!(
            small.contains("1.13 MiB") && small.contains("0.29 M"),
            "{small}"
        );
        assert_eq!(
            big.chars().count(),
            header.lines().next().unwrap().chars().count()
        );
    }

    #[test]
    fn file_type_names_follow_llama_cpp() {
        assert_eq!(ftype_name(1), Some("F16"));
        assert_eq!(ftype_name(7), Some("Q8_0"));
        assert_eq!(ftype_name(32), Some("BF16"));
        assert_eq!(ftype_name(4), None);
    }
}
