//! Resource parsing on captured tool output (no tools needed).

use greta_codegen::resources::{parse_amd_notes, parse_ptxas};

/// `llvm-readelf-19 --notes` of a gfx942 code object (args list shortened), with a second
/// kernel record appended to check that records do not mix.
const AMD_NOTES: &str = "
Displaying notes found in: .note
  Owner                Data size 	Description
  AMDGPU               0x00000561	NT_AMDGPU_METADATA (AMDGPU Metadata)
    AMDGPU Metadata:
        ---
amdhsa.kernels:
  - .agpr_count:     0
    .args:
      - .actual_access:  read_only
        .address_space:  global
        .offset:         0
        .size:           8
        .value_kind:     global_buffer
      - .offset:         104
        .size:           2
        .value_kind:     hidden_grid_dims
    .group_segment_fixed_size: 1024
    .kernarg_segment_align: 8
    .kernarg_segment_size: 296
    .max_flat_workgroup_size: 256
    .name:           k
    .private_segment_fixed_size: 0
    .sgpr_count:     25
    .sgpr_spill_count: 0
    .symbol:         k.kd
    .uniform_work_group_size: 1
    .uses_dynamic_stack: false
    .vgpr_count:     18
    .vgpr_spill_count: 0
    .wavefront_size: 64
  - .agpr_count:     4
    .args:
      - .name:           other_arg
        .offset:         0
        .size:           8
        .value_kind:     global_buffer
    .group_segment_fixed_size: 0
    .name:           spilly
    .private_segment_fixed_size: 96
    .sgpr_count:     40
    .vgpr_count:     128
amdhsa.target:   amdgcn-amd-amdhsa--gfx942
amdhsa.version:
  - 1
  - 2
...
";

#[test]
fn amd_notes() {
    let r = parse_amd_notes(AMD_NOTES, "k").unwrap();
    assert_eq!(
        (r.vgpr, r.sgpr, r.agpr, r.scratch_bytes, r.lds_bytes),
        (Some(18), Some(25), Some(0), Some(0), 1024)
    );
    assert_eq!(r.regs, None);
    let s = parse_amd_notes(AMD_NOTES, "spilly").unwrap();
    assert_eq!(
        (s.vgpr, s.agpr, s.scratch_bytes, s.lds_bytes),
        (Some(128), Some(4), Some(96), 0)
    );
    assert!(
        parse_amd_notes(AMD_NOTES, "missing").is_err(),
        "two kernels, none named so"
    );
    assert!(parse_amd_notes("no notes here", "k").is_err());
    let broken = AMD_NOTES.replace(".vgpr_count:     18", ".vgpr_count:     lots");
    assert!(parse_amd_notes(&broken, "k")
        .unwrap_err()
        .to_string()
        .contains("vgpr_count"));
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["vgpr"], 18);
    assert_eq!(json["regs"], serde_json::Value::Null);
}

/// `ptxas -arch=sm_90 -v` (12.9): a clean kernel, then one that spills, plus a non-inlined
/// device function whose properties must not be taken for the kernel's.
const PTXAS: &str = "\
ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'k' for 'sm_90'
ptxas info    : Function properties for k
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 20 registers, used 1 barriers, 1024 bytes smem
ptxas info    : Compile time = 37.599 ms
ptxas info    : Function properties for helper
    16 bytes stack frame, 8 bytes spill stores, 8 bytes spill loads
ptxas info    : Compiling entry function 'gemm' for 'sm_90'
ptxas info    : Function properties for gemm
    48 bytes stack frame, 40 bytes spill stores, 36 bytes spill loads
ptxas info    : Used 255 registers, used 1 barriers, 32768 bytes smem, 400 bytes cmem[0]
";

#[test]
fn ptxas_report() {
    let r = parse_ptxas(PTXAS, "k").unwrap();
    assert_eq!(
        (r.regs, r.spill_bytes, r.stack_bytes, r.lds_bytes),
        (Some(20), Some(0), Some(0), 1024)
    );
    assert_eq!(r.vgpr, None);
    let g = parse_ptxas(PTXAS, "gemm").unwrap();
    assert_eq!(
        (g.regs, g.spill_bytes, g.stack_bytes, g.lds_bytes),
        (Some(255), Some(76), Some(48), 32768)
    );
    assert!(parse_ptxas(PTXAS, "nope").is_err());
    // No smem figure at all: zero.
    let plain = "ptxas info    : Compiling entry function 'z' for 'sm_90'\n\
                 ptxas info    : Used 8 registers, 356 bytes cmem[0]\n";
    let z = parse_ptxas(plain, "z").unwrap();
    assert_eq!((z.regs, z.lds_bytes, z.spill_bytes), (Some(8), 0, Some(0)));
    assert!(parse_ptxas("ptxas info    : 0 bytes gmem\n", "k").is_err());
}
