//! Tests that need no AMD GPU: the kernarg layout against clang's own, code-object checks, arch
//! matching, and that asking for HIP on a machine without a usable device is a clear error.

use super::kernarg::{KernargValue, Kernargs};
use super::*;
use greta_dsl::ir::{Access, Const, Param, ParamKind};

fn kernel(name: &str, params: Vec<Param>) -> Kernel {
    Kernel {
        name: name.into(),
        target: &Target::GFX942,
        config: vec![],
        params,
        vars: vec![],
        shared: vec![],
        locals: vec![],
        exprs: vec![],
        body: vec![],
        block_size: None,
    }
}

fn value(name: &str, s: Scalar) -> Param {
    Param {
        name: name.into(),
        kind: ParamKind::Value(s),
    }
}

fn buffer(name: &str, elem: Scalar) -> Param {
    Param {
        name: name.into(),
        kind: ParamKind::Buffer {
            elem,
            access: Access::ReadWrite,
        },
    }
}

fn sample(s: Scalar) -> Const {
    match s {
        Scalar::F16 => Const::F16(f16::ONE),
        Scalar::BF16 => Const::BF16(bf16::ONE),
        Scalar::F32 => Const::F32(1.0),
        Scalar::I32 => Const::I32(1),
        Scalar::U32 => Const::U32(1),
        Scalar::Bool => Const::Bool(true),
    }
}

/// `(offset, size)` of each `.args` entry of the one kernel in `llvm-readelf --notes` output
/// (code object v5 YAML: `- .offset: N` / `.size: N` per argument; hidden arguments, named
/// `hidden_*` by `.value_kind`, follow the explicit ones).
fn explicit_args(notes: &str) -> Vec<(usize, usize)> {
    let mut args = Vec::new();
    let mut current: Option<(Option<usize>, Option<usize>, bool)> = None;
    let mut in_args = false;
    let num = |line: &str| {
        line.split(':')
            .nth(1)
            .unwrap()
            .trim()
            .parse::<usize>()
            .unwrap()
    };
    let mut flush = |c: &mut Option<(Option<usize>, Option<usize>, bool)>| {
        if let Some((Some(o), Some(s), hidden)) = c.take() {
            if !hidden {
                args.push((o, s));
            }
        }
    };
    for raw in notes.lines() {
        let line = raw.trim();
        if line.starts_with(".args:") {
            in_args = true;
            continue;
        }
        if !in_args {
            continue;
        }
        // An entry starts with `- `; the list ends at a key indented like `.args:`.
        if let Some(rest) = line.strip_prefix("- ") {
            flush(&mut current);
            current = Some((None, None, false));
            let line = rest.trim();
            if line.starts_with(".offset:") {
                current.as_mut().unwrap().0 = Some(num(line));
            }
            continue;
        }
        if line.starts_with('.') && current.is_some() && raw.len() - raw.trim_start().len() <= 6 {
            break;
        }
        if let Some(c) = current.as_mut() {
            if line.starts_with(".offset:") {
                c.0 = Some(num(line));
            } else if line.starts_with(".size:") {
                c.1 = Some(num(line));
            } else if line.starts_with(".value_kind:") && line.contains("hidden_") {
                c.2 = true;
            }
        }
    }
    flush(&mut current);
    args
}

/// The packing must put every argument where clang's code object says the kernel reads it. The
/// kernel interleaves every scalar type with pointers so each alignment case is exercised.
#[test]
fn kernarg_offsets_match_the_code_objects_metadata() {
    let order = [
        Scalar::Bool,
        Scalar::F32,
        Scalar::F16,
        Scalar::Bool,
        Scalar::BF16,
        Scalar::U32,
        Scalar::Bool,
        Scalar::I32,
        Scalar::F16,
    ];
    let mut params = vec![value("flag0", Scalar::Bool), buffer("x", Scalar::F16)];
    for (i, s) in order.iter().enumerate() {
        params.push(value(&format!("v{i}"), *s));
    }
    params.push(buffer("y", Scalar::F32));
    params.push(value("last", Scalar::Bool));
    let k = kernel("kernarg_layout", params.clone());

    let compiled = greta_codegen::compile(&k, TARGET).expect("compiles for gfx942");
    check_code_object(&compiled.object).expect("a well-formed AMDGPU ELF");
    let notes = greta_codegen::Toolchain::global()
        .code_object_notes(&compiled.object)
        .expect("llvm-readelf --notes");
    let clang = explicit_args(&notes);

    let values: Vec<KernargValue> = params
        .iter()
        .enumerate()
        .map(|(i, p)| match p.kind {
            ParamKind::Buffer { .. } => KernargValue::Pointer(0x1000 * (i as u64 + 1)),
            ParamKind::Value(s) => KernargValue::Value(sample(s)),
        })
        .collect();
    let packed = Kernargs::pack(&values);
    let ours: Vec<(usize, usize)> = packed
        .offsets()
        .iter()
        .zip(&values)
        .map(|(&o, v)| (o, v.size()))
        .collect();
    assert_eq!(
        ours, clang,
        "greta's kernarg layout vs clang's (.args in {notes})"
    );
}

#[test]
fn only_gfx942_devices_are_compatible() {
    assert!(arch_is_compatible("gfx942"));
    assert!(arch_is_compatible("gfx942:sramecc+:xnack-"));
    assert!(arch_is_compatible("gfx942:xnack+"));
    for other in [
        "gfx90a:sramecc+:xnack-",
        "gfx940",
        "gfx941",
        "gfx1100",
        "gfx9420",
        "",
    ] {
        assert!(!arch_is_compatible(other), "{other}");
    }
}

#[test]
fn code_objects_are_checked_before_hip_sees_them() {
    assert!(check_code_object(b"not an elf").is_err());
    let mut elf = vec![0u8; 64];
    elf[..4].copy_from_slice(b"\x7fELF");
    elf[4] = 2;
    elf[5] = 1;
    elf[18..20].copy_from_slice(&62u16.to_le_bytes()); // x86-64
    assert!(check_code_object(&elf).unwrap_err().contains("not AMDGPU"));
    elf[18..20].copy_from_slice(&224u16.to_le_bytes());
    // Section headers claimed past the end of the file.
    elf[40..48].copy_from_slice(&4096u64.to_le_bytes());
    elf[58..60].copy_from_slice(&64u16.to_le_bytes());
    elf[60..62].copy_from_slice(&3u16.to_le_bytes());
    assert!(check_code_object(&elf).unwrap_err().contains("truncated"));
    elf[60..62].copy_from_slice(&0u16.to_le_bytes());
    assert_eq!(check_code_object(&elf), Ok(()));
    // The real thing: a code object clang made.
    let k = kernel("empty", vec![value("n", Scalar::U32)]);
    let object = greta_codegen::compile(&k, TARGET).expect("compiles").object;
    assert_eq!(check_code_object(&object), Ok(()));
    assert!(check_code_object(&object[..object.len() - 1]).is_err());
}

#[test]
fn host_views_cover_whole_buffers() {
    let b = Buffer::F16(vec![f16::ONE; 3]);
    assert_eq!(host_bytes(&b), &[0x00, 0x3c, 0x00, 0x3c, 0x00, 0x3c]);
    let mut b = Buffer::U32(vec![0; 2]);
    host_bytes_mut(&mut b).copy_from_slice(&[1, 0, 0, 0, 2, 0, 0, 0]);
    assert_eq!(b.as_u32(), Some(&[1u32, 2][..]));
}

#[test]
fn hip_error_names_come_from_the_runtime() {
    // hipErrorNoDevice = 100; hipGetErrorName needs no device or initialisation.
    let text = error_text(100);
    assert!(text.starts_with("hipErrorNoDevice"), "{text}");
}

/// Where no usable AMD GPU exists (every machine greta is developed on), asking for HIP is a
/// clear Unavailable error with HIP's words, not a panic; where one exists it opens.
#[test]
fn selecting_hip_without_a_device_is_unavailable() {
    match crate::select_named("hip") {
        Ok(b) => {
            assert_eq!(b.kind(), BackendKind::Hip);
            assert!(arch_is_compatible(b.target().name));
        }
        Err(RuntimeError::Unavailable { backend, reason }) => {
            assert_eq!(backend, "hip");
            assert!(!reason.is_empty());
            eprintln!("hip unavailable here, as expected: {reason}");
        }
        Err(other) => panic!("expected Unavailable, got {other}"),
    }
}
