//! `greta build` end to end, with the real toolchain: bundles for both targets, the compile cache
//! making a second build compile nothing, a corrupted cache entry recompiled with a warning, the
//! bundle loader's checks on real bundles, and no half-written bundle after a failed build.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use greta_dsl::ir::Kernel;
use greta_dsl::Target;
use greta_runtime::{Bundle, BundleError, ObjectFormat, Via};

fn greta_build(cache: &Path, target: &str, out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_greta"))
        .args(["build", "--target", target, "-o"])
        .arg(out)
        .env("GRETA_CACHE_DIR", cache)
        .output()
        .expect("greta runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The summary line of a successful build.
fn summary(o: &Output) -> String {
    assert!(o.status.success(), "greta build failed: {}", stderr(o));
    stdout(o)
}

/// Every (kernel IR, library config) `greta build` puts in a bundle: each kernel's default
/// configuration per float dtype, plus the variants its test shapes adapt it to.
fn library(target: &'static Target) -> Vec<(Kernel, String)> {
    let mut out: Vec<(Kernel, String)> = Vec::new();
    for spec in greta_kernels::all()
        .iter()
        .filter(|s| (s.available)(target))
    {
        for d in spec.dtypes() {
            let config = spec.config(&format!("dtype={d}")).unwrap();
            let mut configs = vec![config.clone()];
            for shape in spec.test_shapes {
                let problem =
                    (spec.problem)(&config, target, shape, &mut greta_kernels::Inputs::new(0))
                        .unwrap();
                if !configs.contains(&problem.config) {
                    configs.push(problem.config);
                }
            }
            for c in configs {
                out.push(((spec.build)(&c, target).unwrap(), c.to_string()));
            }
        }
    }
    out
}

/// Files named `object` under the cache's entries.
fn cached_objects(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.join("objects")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().unwrap() == "object" {
                found.push(p);
            }
        }
    }
    found
}

#[test]
fn bundles_for_both_targets_second_build_is_all_cache_hits() {
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    // sm_90 has more kernels: the warpgroup GEMMs need its engine.
    assert!(library(&Target::SM_90).len() > library(&Target::GFX942).len());
    let mut cached = 0;
    for target in Target::ALL {
        let n = library(target).len();
        cached += n;
        let dir = out.path().join(target.name);
        let first = summary(&greta_build(cache.path(), target.name, &dir));
        assert!(
            first.contains(&format!("{n} kernels, {n} compiled, 0 from cache")),
            "{first}"
        );
        let second = summary(&greta_build(cache.path(), target.name, &dir));
        assert!(
            second.contains(&format!("{n} kernels, 0 compiled, {n} from cache")),
            "a second build must compile nothing: {second}"
        );

        let bundle = Bundle::open(&dir, Via::Hip).unwrap();
        assert_eq!(bundle.target(), target);
        assert_eq!(bundle.manifest().entries.len(), n);
        let format = match target.name {
            "sm_90" => ObjectFormat::Cubin,
            _ => ObjectFormat::Hsaco,
        };
        let other = Target::ALL.into_iter().find(|t| t != &target).unwrap();
        for (kernel, config) in library(target) {
            let object = bundle.object(&kernel, target).unwrap();
            assert_eq!(object.format, format, "{} [{config}]", kernel.name);
            assert_eq!(object.target, target.name);
            // Both cubins and code objects are ELF files.
            assert_eq!(&object.bytes[..4], b"\x7fELF", "{} [{config}]", kernel.name);

            let refused = bundle.object(&kernel, other).unwrap_err().to_string();
            assert!(
                refused.contains(&format!(
                    "holds {} code; this device needs {}",
                    target.name, other.name
                )),
                "{refused}"
            );
        }
    }
    // Both targets' objects share the one cache, and its scratch area is empty.
    assert_eq!(cached_objects(cache.path()).len(), cached);
    assert_eq!(
        std::fs::read_dir(cache.path().join("tmp")).unwrap().count(),
        0
    );
    // Nothing but the two bundles beside them: no temporary directories left.
    let mut names: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["gfx942", "sm_90"]);
}

#[test]
fn a_corrupted_cache_entry_is_recompiled_with_a_warning() {
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("b");
    let n = library(&Target::GFX942).len();
    summary(&greta_build(cache.path(), "gfx942", &dir));

    let objects = cached_objects(cache.path());
    let victim = &objects[0];
    let len = std::fs::metadata(victim).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(victim)
        .unwrap()
        .set_len(len / 2)
        .unwrap();

    let o = greta_build(cache.path(), "gfx942", &dir);
    let s = summary(&o);
    assert!(
        s.contains(&format!("{n} kernels, 1 compiled, {} from cache", n - 1)),
        "{s}"
    );
    let err = stderr(&o);
    assert!(err.contains("greta: warning: cache entry"), "{err}");
    assert!(err.contains("has a corrupt object"), "{err}");
    assert!(err.contains("recompiled it"), "{err}");
    assert_eq!(std::fs::metadata(victim).unwrap().len(), len, "repaired");

    // The bundle is whole, and the build after the repair is all hits again.
    let bundle = Bundle::open(&dir, Via::Hip).unwrap();
    for (kernel, _) in library(&Target::GFX942) {
        bundle.object(&kernel, &Target::GFX942).unwrap();
    }
    let s = summary(&greta_build(cache.path(), "gfx942", &dir));
    assert!(s.contains(&format!("0 compiled, {n} from cache")), "{s}");
}

#[test]
fn real_bundles_refuse_stale_bad_and_incomplete_manifests() {
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("b");
    summary(&greta_build(cache.path(), "sm_90", &dir));
    let manifest_path = dir.join("manifest.json");
    let good = std::fs::read_to_string(&manifest_path).unwrap();
    let (rmsnorm, _) = library(&Target::SM_90)
        .into_iter()
        .find(|(k, c)| k.name == "rmsnorm" && c.contains("dtype=f16"))
        .unwrap();
    let hash = greta_runtime::bundle::content_hash(&rmsnorm, &Target::SM_90, Via::Hip);
    // The library's own name for that configuration (what error messages show).
    let rmsnorm_config = greta_kernels::by_name("rmsnorm")
        .unwrap()
        .config("dtype=f16")
        .unwrap()
        .to_string();
    assert!(
        good.contains(&hash),
        "the manifest keys rmsnorm by its IR hash"
    );

    // A tampered hash: the entry no longer matches the IR this greta builds.
    std::fs::write(&manifest_path, good.replace(&hash, &"0".repeat(64))).unwrap();
    let err = Bundle::open(&dir, Via::Hip)
        .unwrap()
        .object(&rmsnorm, &Target::SM_90)
        .unwrap_err();
    assert!(matches!(err, BundleError::Stale { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("rmsnorm [{rmsnorm_config}]")),
        "{msg}"
    );
    assert!(
        msg.contains(&format!(
            "rebuild it with `greta build --target sm_90 -o {}`",
            dir.display()
        )),
        "{msg}"
    );

    // Bad JSON names the file.
    std::fs::write(&manifest_path, &good[..good.len() / 2]).unwrap();
    let msg = Bundle::open(&dir, Via::Hip).unwrap_err().to_string();
    assert!(
        msg.starts_with(&format!("{}: not valid JSON", manifest_path.display())),
        "{msg}"
    );

    // A missing object file names the file and the entry.
    std::fs::write(&manifest_path, &good).unwrap();
    let bundle = Bundle::open(&dir, Via::Hip).unwrap();
    let entry = bundle.entry(&rmsnorm, &Target::SM_90).unwrap().clone();
    std::fs::remove_file(dir.join(&entry.file)).unwrap();
    let msg = Bundle::open(&dir, Via::Hip).unwrap_err().to_string();
    assert!(msg.contains(&entry.file), "{msg}");
    assert!(
        msg.contains(&format!(
            "the object file of rmsnorm [{rmsnorm_config}] is missing"
        )),
        "{msg}"
    );
}

#[test]
fn a_failed_build_leaves_no_bundle() {
    let cache = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("file");
    std::fs::write(&file, b"not a directory").unwrap();

    // The parent of the output is a file.
    let o = greta_build(cache.path(), "sm_90", &file.join("bundle"));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.starts_with("greta: error: "), "{err}");
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    // The output is an existing directory that is not a bundle: left alone.
    let docs = root.path().join("docs");
    std::fs::create_dir(&docs).unwrap();
    std::fs::write(docs.join("notes.txt"), b"mine").unwrap();
    let o = greta_build(cache.path(), "sm_90", &docs);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("is not a greta bundle (no manifest.json); refusing to replace it"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(docs.join("notes.txt")).unwrap(), b"mine");

    // An unknown target is refused before anything is written.
    let o = greta_build(cache.path(), "sm_80", &root.path().join("x"));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("unknown target `sm_80`"));

    // Compiles that fail half way through (a ptxas that reports a version but assembles
    // nothing): the objects compiled so far are dropped with the temporary directory.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let tools = tempfile::tempdir().unwrap();
        let ptxas = tools.path().join("ptxas");
        std::fs::write(
            &ptxas,
            "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'Cuda compilation tools, release 0.0'; \
             exit 0; fi\necho 'ptxas: broken on purpose' >&2\nexit 1\n",
        )
        .unwrap();
        std::fs::set_permissions(&ptxas, std::fs::Permissions::from_mode(0o755)).unwrap();
        let o = Command::new(env!("CARGO_BIN_EXE_greta"))
            .args(["build", "--target", "sm_90", "-o"])
            .arg(root.path().join("half"))
            .env("GRETA_CACHE_DIR", cache.path())
            .env("GRETA_PTXAS", &ptxas)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains("failed to compile for sm_90; no bundle written"),
            "{err}"
        );
        assert!(err.contains("broken on purpose"), "{err}");
    }

    let mut names: Vec<_> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["docs", "file"], "no half-written bundle anywhere");
    assert_eq!(std::fs::read(&file).unwrap(), b"not a directory");
}

/// `greta build` with extra arguments.
fn greta_build_with(cache: &Path, target: &str, out: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_greta"))
        .args(["build", "--target", target, "-o"])
        .arg(out)
        .args(extra)
        .env("GRETA_CACHE_DIR", cache)
        .output()
        .expect("greta runs")
}

/// The `codegen_version` of every entry under the cache.
fn cached_versions(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = cached_objects(dir)
        .iter()
        .map(|o| {
            let meta: serde_json::Value =
                serde_json::from_slice(&std::fs::read(o.with_file_name("meta.json")).unwrap())
                    .unwrap();
            meta["codegen_version"].as_str().unwrap().to_string()
        })
        .collect();
    v.sort();
    v
}

/// The rmsnorm kernels (one f32 configuration and the variants its test shapes need) that
/// `greta build --kernel rmsnorm --config dtype=f32` bundles for `target`.
fn rmsnorm_f32(target: &'static Target) -> Vec<Kernel> {
    library(target)
        .into_iter()
        .filter(|(k, c)| k.name == "rmsnorm" && c.contains("dtype=f32"))
        .map(|(k, _)| k)
        .collect()
}

#[test]
fn the_compile_cache_keeps_hip_and_llvm_objects_apart() {
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    for target in Target::ALL {
        let kernels = rmsnorm_f32(target);
        let n = kernels.len();
        assert!(n > 0);
        let args =
            |via: &'static str| ["--kernel", "rmsnorm", "--config", "dtype=f32", "--via", via];
        let dir = |via: &str| out.path().join(format!("{}-{via}", target.name));
        // The same kernels both ways with one cache: the llvm build finds nothing of the HIP
        // build's to reuse.
        for via in ["hip", "llvm"] {
            let s = summary(&greta_build_with(
                cache.path(),
                target.name,
                &dir(via),
                &args(via),
            ));
            assert!(
                s.contains(&format!("{n} kernels, {n} compiled, 0 from cache")),
                "{via}: {s}"
            );
            assert!(s.contains(&format!("({}, via {via})", target.name)), "{s}");
        }
        // Each loads back: a second build of either is all hits.
        for via in ["hip", "llvm"] {
            let s = summary(&greta_build_with(
                cache.path(),
                target.name,
                &dir(via),
                &args(via),
            ));
            assert!(
                s.contains(&format!("{n} kernels, 0 compiled, {n} from cache")),
                "{via}: {s}"
            );
        }
        // And each bundle serves its own lowering's objects.
        let hip = Bundle::open(dir("hip"), Via::Hip).unwrap();
        let llvm = Bundle::open(dir("llvm"), Via::Llvm).unwrap();
        assert_eq!(hip.manifest().codegen_version, "hip-2");
        assert_eq!(llvm.manifest().codegen_version, "llvm-1");
        for k in &kernels {
            let a = hip.object(k, target).unwrap();
            let b = llvm.object(k, target).unwrap();
            assert_eq!(&a.bytes[..4], b"\x7fELF");
            assert_eq!(&b.bytes[..4], b"\x7fELF");
            assert_ne!(
                hip.entry(k, target).unwrap().hash,
                llvm.entry(k, target).unwrap().hash
            );
        }
    }
    // Two entries per kernel in the one cache: one per lowering.
    let n: usize = Target::ALL.iter().map(|t| rmsnorm_f32(t).len()).sum();
    let versions = cached_versions(cache.path());
    assert_eq!(versions.len(), 2 * n, "{versions:?}");
    assert_eq!(versions.iter().filter(|v| *v == "hip-2").count(), n);
    assert_eq!(versions.iter().filter(|v| *v == "llvm-1").count(), n);
}

#[test]
fn a_bundle_built_via_llvm_is_refused_by_a_hip_load() {
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("b");
    let args = [
        "--kernel",
        "rmsnorm",
        "--config",
        "dtype=f32",
        "--via",
        "llvm",
    ];
    summary(&greta_build_with(cache.path(), "sm_90", &dir, &args));

    // The library: open for hip is refused, naming both lowerings.
    let err = Bundle::open(&dir, Via::Hip).unwrap_err();
    assert!(matches!(err, BundleError::OtherVia { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("built --via llvm"), "{msg}");
    assert!(msg.contains("asks for --via hip"), "{msg}");
    assert!(msg.contains("llvm-1"), "{msg}");
    Bundle::open(&dir, Via::Llvm).unwrap();

    // The command line: a load asking for hip (the default) is refused before any work, and
    // one asking for llvm is not.
    let check = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_greta"))
            .args([
                "check",
                "--backend",
                "cpu",
                "--kernel",
                "rmsnorm",
                "--quick",
            ])
            .arg("--bundle")
            .arg(&dir)
            .args(extra)
            .env("GRETA_CACHE_DIR", cache.path())
            .output()
            .expect("greta runs")
    };
    let o = check(&[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.starts_with("greta: error: "), "{err}");
    assert!(
        err.contains("built --via llvm") && err.contains("asks for --via hip"),
        "{err}"
    );
    assert!(err.contains("run with `--via llvm`"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(stdout(&o).is_empty(), "nothing was checked: {}", stdout(&o));

    let o = check(&["--via", "llvm"]);
    assert!(o.status.success(), "{}", stderr(&o));
}
