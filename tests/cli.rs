//! The `greta` command line end to end: what a user types and what they get back, including
//! the errors for bad input (one clear line, non-zero exit, no panic, no half-written file).

use greta_dsl::Target;
use std::process::{Command, Output};

fn greta(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_greta"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("greta runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A failed command: exit code 1, one `greta: error:` line first, no panic.
fn assert_user_error(o: &Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    assert!(err.starts_with("greta: error: "), "stderr: {err}");
    assert!(err.contains(needle), "expected `{needle}` in: {err}");
    assert!(!err.contains("panicked"), "stderr: {err}");
}

#[test]
fn kernels_generated_is_up_to_date() {
    let o = greta(&["generate", "--check"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn emit_amdgcn_assembly_for_gfx942() {
    let o = greta(&["emit", "rmsnorm", "--target", "gfx942", "--format", "asm"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let asm = stdout(&o);
    assert!(
        asm.contains(".amdgcn_target \"amdgcn-amd-amdhsa--gfx942\""),
        "{asm}"
    );
    assert!(asm.contains("s_endpgm"));
    assert!(asm.contains("s_barrier"));
    assert!(
        asm.contains("global_load_dwordx4"),
        "16-byte loads expected"
    );
}

#[test]
fn emit_ptx_for_sm_90() {
    let o = greta(&[
        "emit",
        "rmsnorm",
        "--target",
        "sm_90",
        "--format",
        "ptx",
        "--config",
        "dtype=f32",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ptx = stdout(&o);
    assert!(ptx.contains(".target sm_90"), "{ptx}");
    assert!(ptx.contains(".entry rmsnorm"));
    assert!(
        ptx.contains("ld.global.nc.v4.f32")
            || ptx.contains("ld.global.nc.v4.b32")
            || ptx.contains("ld.global.v4"),
        "vector loads expected"
    );
}

#[test]
fn emit_hip_header_names_the_configuration() {
    let o = greta(&[
        "emit",
        "softmax",
        "--target",
        "gfx942",
        "--config",
        "block=128,dtype=bf16",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let hip = stdout(&o);
    assert!(hip.contains("block=128"), "{hip}");
    assert!(hip.contains("bf16"));
}

#[test]
fn emit_to_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out").join("add.hip");
    let o = greta(&[
        "emit",
        "add",
        "--target",
        "sm_90",
        "-o",
        path.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("extern \"C\""));
    assert!(stdout(&o).is_empty());
}

#[test]
fn inspect_json_lists_every_kernel_on_both_targets_without_scratch_or_spills() {
    let o = greta(&["inspect", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: Vec<serde_json::Value> = serde_json::from_str(&stdout(&o)).unwrap();
    for kernel in greta_kernels::all() {
        let spec = kernel.name;
        for target in ["gfx942", "sm_90"] {
            let mine: Vec<_> = rows
                .iter()
                .filter(|r| r["kernel"] == spec && r["target"] == target)
                .collect();
            let on = Target::by_name(target).unwrap();
            let want = if (kernel.available)(on) {
                kernel.dtypes().len()
            } else {
                0
            };
            assert_eq!(
                mine.len(),
                want,
                "{spec} on {target}: one row per element type"
            );
            for r in mine {
                assert_eq!(r["via"], "hip");
                assert!(r["config"].as_str().unwrap().contains("dtype="));
                assert!(r["lds_bytes"].is_u64());
                // The matrix-core kernels contain matrix instructions; no other kernel does.
                let mma = r["matrix_instructions"].as_u64().unwrap();
                let gemm = spec.starts_with("gemm_") || spec == "gemm";
                assert_eq!(mma > 0, gemm || spec == "attn_mma", "{r}");
                if target == "gfx942" {
                    assert_eq!(r["scratch_bytes"], 0, "{r}");
                    assert!(r["vgpr"].as_u64().unwrap() > 0, "{r}");
                    assert!(r["sgpr"].as_u64().unwrap() > 0, "{r}");
                    assert!(r["agpr"].is_u64(), "{r}");
                    // The static goals on gfx942: the matrix-core kernels' LDS within 64 KiB
                    // (with zero scratch, above), and the GEMMs at two waves per SIMD or more.
                    let waves = r["waves_per_simd"].as_u64().unwrap();
                    assert!(waves >= 1, "{r}");
                    if mma > 0 {
                        assert!(r["lds_bytes"].as_u64().unwrap() <= 65536, "{r}");
                    }
                    if gemm {
                        assert!(waves >= 2, "{r}");
                    }
                } else {
                    assert!(r["waves_per_simd"].is_null(), "{r}");
                    assert_eq!(r["spill_bytes"], 0, "{r}");
                    assert!(r["regs"].as_u64().unwrap() > 0, "{r}");
                }
            }
        }
    }
    // rmsnorm's block reduction keeps one f32 partial per wave, sized by the target the kernel
    // is built for: 256 threads / 64 = 4 on gfx942, 256 / 32 = 8 on sm_90.
    for (target, bytes) in [("gfx942", 16), ("sm_90", 32)] {
        let rms = rows
            .iter()
            .find(|r| r["kernel"] == "rmsnorm" && r["target"] == target)
            .unwrap();
        assert_eq!(rms["lds_bytes"], bytes, "{target}");
    }
}

#[test]
fn bad_kernel_target_format_and_config_are_clear_errors() {
    assert_user_error(
        &greta(&["emit", "nope", "--target", "gfx942"]),
        "no kernel named `nope`",
    );
    assert_user_error(
        &greta(&["emit", "add", "--target", "sm_80"]),
        "unknown target `sm_80`",
    );
    assert_user_error(
        &greta(&["emit", "add", "--target", "gfx942", "--format", "ptx"]),
        "PTX",
    );
    assert_user_error(
        &greta(&["emit", "add", "--target", "gfx942", "--config", "blok=64"]),
        "no parameter `blok`",
    );
    assert_user_error(
        &greta(&["emit", "add", "--target", "gfx942", "--config", "block=100"]),
        "`block=100` is not allowed",
    );
    assert_user_error(
        &greta(&[
            "emit",
            "add",
            "--target",
            "gfx942",
            "--config",
            "dtype=f32,vec=8",
        ]),
        "16",
    );
    assert_user_error(
        &greta(&["emit", "add", "--target", "gfx942", "--config", "block"]),
        "malformed configuration",
    );
    assert_user_error(
        &greta(&["inspect", "--kernel", "nope"]),
        "no kernel named `nope`",
    );
}

#[test]
fn a_failed_emit_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.hip");
    let o = greta(&[
        "emit",
        "add",
        "--target",
        "gfx942",
        "--config",
        "block=3",
        "-o",
        path.to_str().unwrap(),
    ]);
    assert_user_error(&o, "block=3");
    assert!(!path.exists());
}

/// A clap usage error: exit code 2, clap's message naming the flag and the values it takes.
fn assert_usage_error(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "stderr: {err}");
    for needle in needles {
        assert!(err.contains(needle), "expected `{needle}` in: {err}");
    }
    assert!(!err.contains("panicked"), "stderr: {err}");
    assert!(stdout(o).is_empty());
}

#[test]
fn emit_llvm_ir_for_both_targets() {
    for (target, triple, kernel) in [
        ("gfx942", "amdgcn-amd-amdhsa", "define amdgpu_kernel"),
        ("sm_90", "nvptx64-nvidia-cuda", "ptx_kernel"),
    ] {
        for name in ["rmsnorm", "add"] {
            let o = greta(&["emit", name, "--target", target, "--format", "llvm"]);
            assert!(o.status.success(), "{name} {target}: {}", stderr(&o));
            let ir = stdout(&o);
            assert!(
                ir.contains(&format!("target triple = \"{triple}\"")),
                "{ir}"
            );
            assert!(ir.contains(kernel), "{ir}");
            assert!(ir.contains(&format!("@{name}(")), "{ir}");
            // `--via llvm` alone prints the same: the format defaults to the via's source.
            let o = greta(&["emit", name, "--target", target, "--via", "llvm"]);
            assert!(o.status.success(), "{}", stderr(&o));
            assert_eq!(stdout(&o), ir, "{name} {target}");
        }
    }
    // The target's assembly through LLVM.
    let o = greta(&[
        "emit", "rmsnorm", "--target", "sm_90", "--via", "llvm", "--format", "ptx",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ptx = stdout(&o);
    assert!(ptx.contains(".target sm_90"), "{ptx}");
    assert!(ptx.contains(".entry rmsnorm"), "{ptx}");
    // `--via hip` (the default) is still HIP C++.
    let o = greta(&["emit", "add", "--target", "gfx942", "--via", "hip"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("extern \"C\""));
}

#[test]
fn emit_via_and_format_must_agree_and_via_takes_hip_or_llvm() {
    assert_user_error(
        &greta(&[
            "emit", "add", "--target", "gfx942", "--via", "hip", "--format", "llvm",
        ]),
        "--format llvm is the LLVM IR of --via llvm, but --via hip was given",
    );
    assert_user_error(
        &greta(&[
            "emit", "add", "--target", "gfx942", "--via", "llvm", "--format", "hip",
        ]),
        "--format hip is the HIP C++ of --via hip, but --via llvm was given",
    );
    for cmd in [
        &["emit", "add", "--target", "gfx942"][..],
        &["build", "--target", "gfx942", "-o", "/nonexistent/never"],
        &["check", "--backend", "cpu"],
    ] {
        let mut args = cmd.to_vec();
        args.extend(["--via", "nonsense"]);
        assert_usage_error(
            &greta(&args),
            &["invalid value 'nonsense' for '--via", "hip, llvm"],
        );
    }
    assert_usage_error(
        &greta(&["inspect", "--via", "nonsense"]),
        &["invalid value 'nonsense' for '--via", "hip, llvm, both"],
    );
}

#[test]
fn inspect_via_llvm_reports_the_same_columns() {
    let o = greta(&[
        "inspect", "--via", "llvm", "--target", "sm_90", "--kernel", "rmsnorm", "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: Vec<serde_json::Value> = serde_json::from_str(&stdout(&o)).unwrap();
    let spec = greta_kernels::by_name("rmsnorm").unwrap();
    assert_eq!(rows.len(), spec.dtypes().len(), "one row per element type");
    for r in &rows {
        assert_eq!(r["via"], "llvm", "{r}");
        assert_eq!(r["target"], "sm_90", "{r}");
        assert_eq!(r["spill_bytes"], 0, "{r}");
        assert!(r["regs"].as_u64().unwrap() > 0, "{r}");
        assert_eq!(r["lds_bytes"], 32, "{r}");
        assert_eq!(r["matrix_instructions"], 0, "{r}");
    }
    // gfx942's columns too.
    let o = greta(&[
        "inspect",
        "--via",
        "llvm",
        "--target",
        "gfx942",
        "--kernel",
        "rmsnorm",
        "--config",
        "dtype=f32",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: Vec<serde_json::Value> = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(r["via"], "llvm", "{r}");
    assert_eq!(r["scratch_bytes"], 0, "{r}");
    assert!(r["vgpr"].as_u64().unwrap() > 0, "{r}");
    assert!(r["waves_per_simd"].as_u64().unwrap() >= 1, "{r}");
}

#[test]
fn inspect_via_both_puts_the_two_paths_side_by_side() {
    let o = greta(&[
        "inspect",
        "--via",
        "both",
        "--kernel",
        "rmsnorm",
        "--config",
        "dtype=f32",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: Vec<serde_json::Value> = serde_json::from_str(&stdout(&o)).unwrap();
    let seen: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r["target"].as_str().unwrap(), r["via"].as_str().unwrap()))
        .collect();
    assert_eq!(
        seen,
        [
            ("gfx942", "hip"),
            ("gfx942", "llvm"),
            ("sm_90", "hip"),
            ("sm_90", "llvm")
        ],
        "a row per target per path, each pair together"
    );
    // The table has a via column, and the same pairs.
    let o = greta(&[
        "inspect",
        "--via",
        "both",
        "--kernel",
        "rmsnorm",
        "--config",
        "dtype=f32",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = stdout(&o);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 5, "{table}");
    assert_eq!(
        lines[0].split_whitespace().take(3).collect::<Vec<_>>(),
        ["kernel", "target", "via"]
    );
    for (line, (target, via)) in lines[1..].iter().zip(&seen) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols[..3], ["rmsnorm", *target, *via], "{line}");
    }
}

/// Every `greta` command line in the guide's shell samples (`docs/*.md`, which the doctests do
/// not run: most need a GPU or the guide's example kernel) names real subcommands and options:
/// the line's leading words (`greta emit gelu_mul`) with `--help` succeed, and that help lists
/// every `--option` the line uses.
#[test]
fn the_guides_command_lines_name_real_subcommands_and_options() {
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    let mut checked = 0;
    for entry in std::fs::read_dir(&docs).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("md") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let mut in_sh = false;
        for line in text.lines().map(str::trim) {
            if line.starts_with("```") {
                in_sh = line == "```sh";
                continue;
            }
            let command = line.trim_start_matches("$ ");
            let command = command.split(['#', '|']).next().unwrap_or_default();
            let words: Vec<&str> = command.split_whitespace().collect();
            let Some(at) = words.iter().position(|w| *w == "greta").filter(|_| in_sh) else {
                continue;
            };
            let rest = match &words[at + 1..] {
                ["--", rest @ ..] => rest,
                rest => rest,
            };
            let leading: Vec<&str> = rest
                .iter()
                .take_while(|w| !w.starts_with('-'))
                .copied()
                .collect();
            let mut args = leading.clone();
            args.push("--help");
            let o = greta(&args);
            let what = format!("{}: `{line}`", path.display());
            assert!(o.status.success(), "{what}: {}", stderr(&o));
            let help = stdout(&o);
            // The options the help names, as whole words.
            let named: Vec<&str> = help
                .split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '_'))
                .collect();
            for option in rest.iter().filter(|w| w.starts_with("--")) {
                let option = option.split('=').next().unwrap_or_default();
                assert!(
                    named.contains(&option),
                    "{what}: `greta {}` has no {option}",
                    leading.join(" ")
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} command lines found in docs/");
}
