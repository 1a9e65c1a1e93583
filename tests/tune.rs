//! `greta tune` end to end, without a GPU: the dry run over the GEMM space for gfx942 (what CI
//! runs: enumerate, prune, compile with the real toolchain, check on the interpreter), the
//! tuning DB's handling of corrupt files and of kernels whose content changed, and `greta build`
//! picking up the DB's winners.

use std::path::Path;
use std::process::{Command, Output};

use greta_dsl::ir::Scalar;
use greta_dsl::Target;
use greta_model::llama::tuning::{self, Site};
use greta_model::llama::{Attention, LlamaConfig};
use greta_runtime::tuning::{Entry, Measurement, Outcome, TuneKey, TuningDb};

fn greta(cache: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_greta"))
        .args(args)
        .env("GRETA_CACHE_DIR", cache)
        .output()
        .expect("greta runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The CI check: every GEMM configuration for gfx942 enumerated, pruned statically and
/// after compiling, the survivors checked on the interpreter, with the reasons counted.
#[test]
fn the_gemm_dry_run_for_gfx942_reports_its_pruning() {
    let cache = tempfile::tempdir().unwrap();
    let t0 = std::time::Instant::now();
    let o = greta(
        cache.path(),
        &[
            "tune",
            "--dry-run",
            "--target",
            "gfx942",
            "--kernel",
            "gemm",
            "-v",
        ],
    );
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert!(o.status.success(), "{err}");
    eprintln!("dry run: {:.1} s", t0.elapsed().as_secs_f64());
    // bm, bn: 3 each; bk, stages, swizzle: 2 each; warps_m, warps_n: 3 each.
    assert!(out.contains("648 candidates over 1 sites"), "{out}");
    // A 256×256 tile on one wave keeps 1,024 accumulators per lane: refused before compiling.
    let line = out
        .lines()
        .find(|l| {
            l.contains("[bk=32,bm=256,bn=256,dtype=f16,out=f16,residual=false,stages=2,swizzle=true,warps_m=1,warps_n=1]")
        })
        .unwrap_or_else(|| panic!("no line for the 256×256 one-wave tile:\n{out}"));
    assert!(
        line.contains("the kernel's rules") && line.contains("1024 f32 accumulators"),
        "{line}"
    );
    // Two stages of 256×64 and 256×64 f16 tiles are 128 KiB of LDS: gfx942 has 64.
    let line = out
        .lines()
        .find(|l| l.contains("[bk=64,bm=256,bn=256,dtype=f16,out=f16,residual=false,stages=2,swizzle=true,warps_m=4,warps_n=4]"))
        .unwrap();
    assert!(line.contains("LDS"), "{line}");
    // Some survive every stage, and the default is among them.
    let default = "[bk=32,bm=128,bn=128,dtype=f16,out=f16,residual=false,stages=2,swizzle=true,warps_m=2,warps_n=2] ready";
    assert!(out.contains(default), "{out}");
    assert!(out.contains("static by the kernel's rules"), "{out}");
    assert!(out.contains("compiled by registers"), "{out}");
    assert!(out.contains("dry run for gfx942"), "{out}");
    // A dry run times nothing, so it records nothing.
    assert!(!cache.path().join("tuning.json").exists());
}

/// An entry whose default (`base`) took 20 us and `best` 10.
/// The same for sm_90's warpgroup GEMM: LDS stages against the 227 KiB a block may have.
#[test]
fn the_warpgroup_gemm_dry_run_for_sm_90_prunes_by_lds() {
    let cache = tempfile::tempdir().unwrap();
    let o = greta(
        cache.path(),
        &[
            "tune",
            "--dry-run",
            "--target",
            "sm_90",
            "--kernel",
            "gemm_wg",
            "-v",
        ],
    );
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert!(o.status.success(), "{err}");
    // bm 3 × bn 4 × stages 5.
    assert!(out.contains("60 candidates over 1 sites"), "{out}");
    let line = out
        .lines()
        .find(|l| l.contains("[bm=192,bn=256,dtype=f16,out=f16,residual=false,stages=7]"))
        .unwrap();
    assert!(
        line.contains("LDS") && line.contains("sm_90 allows 232448"),
        "{line}"
    );
    assert!(
        out.contains("[bm=128,bn=128,dtype=f16,out=f16,residual=false,stages=4] ready"),
        "{out}"
    );
}

fn entry(key: TuneKey, kernel: &str, base: &str, best: &str) -> Entry {
    let timed = |config: &str, us: f64| Measurement {
        config: config.into(),
        outcome: Outcome::Timed,
        median_us: Some(us),
        launches: 60,
        note: None,
    };
    let runs = vec![timed(base, 20.0), timed(best, 10.0)];
    Entry::from_measurements(key, kernel, base, runs).unwrap()
}

/// The decode site of `ffn_down` of a tiny f16 model on sm_90.
fn ffn_down_decode(model: &Path) -> Site {
    let g = greta_model::gguf::GgufFile::open(model).unwrap();
    let cfg = LlamaConfig::from_gguf(&g).unwrap();
    tuning::sites(&g, &cfg, Scalar::F16, Attention::V4, &Target::SM_90)
        .into_iter()
        .find(|s| s.spec.name == "gemv" && s.role.starts_with("ffn_down"))
        .expect("a decode site for ffn_down")
}

/// A DB that is garbage is a warning, not an error: `--show` reports it and an empty DB; an
/// `--import` rebuilds it and keeps the bad file aside; importing garbage the user named is an
/// error naming the file.
#[test]
fn a_corrupted_db_is_a_warning_and_is_rebuilt() {
    let cache = tempfile::tempdir().unwrap();
    let db_path = cache.path().join("tuning.json");
    std::fs::write(
        &db_path,
        b"{\"format\": \"greta-tuning-1\", \"entries\": [{\"ke",
    )
    .unwrap();
    let o = greta(cache.path(), &["tune", "--show"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.contains("is not a greta tuning DB") && err.contains("ignoring it"),
        "{err}"
    );
    assert!(
        text(&o.stdout).contains("(0 entries)"),
        "{}",
        text(&o.stdout)
    );

    let good = cache.path().join("winners.json");
    let mut db = TuningDb::empty(&good);
    let key = TuneKey {
        family: "f".repeat(64),
        target: "sm_90".into(),
        device: "NVIDIA H200".into(),
        driver: "13.0".into(),
        dtype: "f16".into(),
        shape: "1x4096x4096".into(),
    };
    db.record(entry(key, "gemv", "dtype=f16", "waves=8"));
    db.save().unwrap();
    let o = greta(cache.path(), &["tune", "--import", good.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(cache.path().join("tuning.json.bad").exists());
    let o = greta(cache.path(), &["tune", "--show"]);
    assert_eq!(text(&o.stderr), "", "a rebuilt DB reads without warnings");
    assert!(
        text(&o.stdout).contains("(1 entries)"),
        "{}",
        text(&o.stdout)
    );

    let junk = cache.path().join("junk.json");
    std::fs::write(&junk, "not json").unwrap();
    let o = greta(cache.path(), &["tune", "--import", junk.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("junk.json is not a greta tuning DB"),
        "{}",
        text(&o.stderr)
    );
}

/// An entry whose kernel content changed (another family) is marked stale and not used; the
/// current one is shown current and `greta build --model` bundles its winner.
#[test]
fn a_changed_kernel_is_stale_and_build_uses_current_winners() {
    let cache = tempfile::tempdir().unwrap();
    let model = cache.path().join("tiny.gguf");
    let o = greta(
        cache.path(),
        &[
            "model",
            "synth",
            "--shape",
            "tiny",
            "--dtype",
            "f16",
            "-o",
            model.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let site = ffn_down_decode(&model);
    let target = &Target::SM_90;
    let current = site
        .key(target, greta_runtime::Via::Hip, "NVIDIA H200", "13.0")
        .unwrap();
    let stale = TuneKey {
        family: "0".repeat(64),
        shape: "1x1x1".into(),
        ..current.clone()
    };
    let base = site.family_config().to_string();
    let winner = site.base.with("waves", greta_dsl::ir::ConfigValue::U32(8));
    let winner = winner.with("rows", greta_dsl::ir::ConfigValue::U32(2));
    let mut db = TuningDb::empty(cache.path().join("tuning.json"));
    db.record(entry(current, "gemv", &base, &winner.to_string()));
    // The stale entry names a configuration of the same kernel (its base as it was).
    db.record(entry(
        stale,
        "gemv",
        &format!("{base},unknown=1"),
        "waves=2",
    ));
    db.save().unwrap();

    let o = greta(cache.path(), &["tune", "--show"]);
    let out = text(&o.stdout);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let line = |shape: &str| {
        out.lines()
            .find(|l| l.contains(&format!(" {shape} ")))
            .unwrap_or_else(|| panic!("no entry at {shape}:\n{out}"))
            .to_string()
    };
    assert!(line(&site.shape_text()).contains("current"), "{out}");
    assert!(line("1x1x1").contains("stale"), "{out}");

    let bundle = cache.path().join("bundle");
    let o = greta(
        cache.path(),
        &[
            "build",
            "--target",
            "sm_90",
            "--model",
            model.to_str().unwrap(),
            "-o",
            bundle.to_str().unwrap(),
        ],
    );
    let err = text(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("1 tuned kernel sites for NVIDIA H200"),
        "{err}"
    );
    let manifest = std::fs::read_to_string(bundle.join("manifest.json")).unwrap();
    // The 1-token winner, and the same with the 8-token m_tile for batched decode steps.
    for m_tile in ["1", "8"] {
        let want = winner.with(
            "m_tile",
            greta_dsl::ir::ConfigValue::U32(m_tile.parse().unwrap()),
        );
        assert!(
            manifest.contains(&format!("\"config\": \"{want}\"")),
            "{want} not bundled"
        );
    }
}

/// The whole sweep, timing included, on the interpreter (`--backend cpu`: no GPU here), over the
/// real stories260K model with a budget: the sites timed in it get DB entries, and `greta run`
/// then runs their winners — and still writes the documented continuation.
#[test]
fn a_model_sweep_is_picked_up_by_run() {
    let cache = tempfile::tempdir().unwrap();
    let model = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/models/stories260K.gguf"
    );
    let args = [
        "tune",
        "--backend",
        "cpu",
        "--model",
        model,
        "--runs",
        "20",
        "--budget",
        "15",
    ];
    let o = greta(cache.path(), &args);
    let out = text(&o.stdout);
    assert!(o.status.success(), "{}", text(&o.stderr));
    // "tuned N of M sites in ...": the budget is shared, so that every site has at least its
    // default timed, however little of it is left.
    let (tuned, sites): (usize, usize) = out
        .lines()
        .find_map(|l| {
            let mut words = l.strip_prefix("tuned ")?.split(' ');
            let tuned = words.next()?.parse().ok()?;
            let sites = words.nth(1)?.parse().ok()?;
            Some((tuned, sites))
        })
        .unwrap_or_else(|| panic!("no summary:\n{out}"));
    assert!(sites > 5 && tuned == sites, "{out}");
    let (db, warning) = TuningDb::open(cache.path().join("tuning.json"));
    assert_eq!((db.entries().len(), warning), (tuned, None));
    for e in db.entries() {
        let best = e.best_us;
        assert!(
            e.default_us.is_some_and(|d| best <= d),
            "the winner is the fastest: {e:?}"
        );
    }

    let o = greta(
        cache.path(),
        &[
            "run",
            "-m",
            model,
            "-p",
            "Once upon a time",
            "-n",
            "30",
            "--temp",
            "0",
            "-v",
        ],
    );
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains(&format!("{tuned} of ")) && err.contains("sites tuned"),
        "{err}"
    );
    assert!(err.contains(": tuned ["), "-v lists the winners: {err}");
    let want = "Once upon a time, there was a little girl named Lily. She loved to play outside";
    assert!(out.starts_with(want), "{out}");
}
