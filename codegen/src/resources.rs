//! Resource usage of a compiled kernel, read back from the tools' own reports: the AMDGPU code
//! object's metadata note (through `llvm-readelf --notes`) and `ptxas -v`. These are the figures
//! that decide occupancy, and zero scratch / zero spills is what a tuned kernel must show.

use std::collections::HashMap;

use crate::CodegenError;

/// Per-kernel resource figures. AMD fields are `None` for NVIDIA and vice versa.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Resources {
    /// Vector registers per lane (AMD; on gfx942 the arch-VGPR count, AGPRs separate).
    pub vgpr: Option<u32>,
    /// Scalar registers per wave (AMD).
    pub sgpr: Option<u32>,
    /// Accumulation registers per lane (AMD CDNA; MFMA results).
    pub agpr: Option<u32>,
    /// Private (scratch) bytes per lane (AMD): register spills and stack arrays.
    pub scratch_bytes: Option<u32>,
    /// Registers per thread (NVIDIA).
    pub regs: Option<u32>,
    /// Spill store + spill load bytes (NVIDIA).
    pub spill_bytes: Option<u32>,
    /// Stack frame bytes per thread (NVIDIA): local arrays the compiler could not keep in registers.
    pub stack_bytes: Option<u32>,
    /// Static LDS / shared memory per block.
    pub lds_bytes: u32,
    /// Matrix-core instructions in the code: `v_mfma*` in the gfx942 code object's
    /// disassembly, `mma`/`wgmma` instructions in the sm_90 PTX (ptxas turns each `mma.sync`
    /// m16n8k16 into one `HMMA`).
    #[serde(default)]
    pub matrix_instructions: u32,
}

/// Matrix-core instructions in `code`: the disassembly of an AMDGPU code object (`v_mfma*`
/// mnemonics), or PTX (`mma.sync` and `wgmma.mma_async` instructions, also inside inline-asm
/// blocks that hold several instructions on one line).
pub fn count_matrix_instructions(code: &str, target: &greta_dsl::Target) -> u32 {
    let count = |line: &str| -> u32 {
        let code = line.split("//").next().unwrap_or("");
        match target.family {
            greta_dsl::Family::Amdgcn => {
                let op = code.split_whitespace().next().unwrap_or("");
                op.starts_with("v_mfma") as u32
            }
            greta_dsl::Family::Nvptx => code
                .split(|c: char| c.is_whitespace() || c == ';' || c == '{' || c == '}')
                .filter(|t| t.starts_with("mma.sync.") || t.starts_with("wgmma.mma_async."))
                .count() as u32,
        }
    };
    code.lines().map(count).sum()
}

fn bad(tool: &'static str, message: impl Into<String>) -> CodegenError {
    CodegenError::Resources {
        tool,
        message: message.into(),
    }
}

/// Parse `llvm-readelf --notes` output of an AMDGPU code object (code object v4/v5 YAML form)
/// for the kernel named `kernel`. If no record carries that name but there is exactly one
/// kernel, that one is taken.
pub fn parse_amd_notes(text: &str, kernel: &str) -> Result<Resources, CodegenError> {
    const TOOL: &str = "llvm-readelf";
    let records = kernel_records(text);
    if records.is_empty() {
        return Err(bad(TOOL, "no `amdhsa.kernels` entries in the notes"));
    }
    let record = match records
        .iter()
        .find(|r| r.get(".name").map(String::as_str) == Some(kernel))
    {
        Some(r) => r,
        None if records.len() == 1 => &records[0],
        None => {
            return Err(bad(
                TOOL,
                format!("no kernel named `{kernel}` in the notes"),
            ))
        }
    };
    let num = |key: &str| -> Result<Option<u32>, CodegenError> {
        match record.get(key) {
            None => Ok(None),
            Some(v) => v
                .parse::<u32>()
                .map(Some)
                .map_err(|_| bad(TOOL, format!("`{key}` is `{v}`, not a number"))),
        }
    };
    let need = |key: &str| -> Result<u32, CodegenError> {
        num(key)?.ok_or_else(|| bad(TOOL, format!("`{key}` missing for kernel `{kernel}`")))
    };
    Ok(Resources {
        vgpr: Some(need(".vgpr_count")?),
        sgpr: Some(need(".sgpr_count")?),
        agpr: Some(num(".agpr_count")?.unwrap_or(0)),
        scratch_bytes: Some(need(".private_segment_fixed_size")?),
        lds_bytes: need(".group_segment_fixed_size")?,
        ..Resources::default()
    })
}

/// The top-level `key: value` pairs of each item of the `amdhsa.kernels` list. Nested lists
/// (`.args`) are skipped by indentation, so their keys never shadow the kernel's.
fn kernel_records(text: &str) -> Vec<HashMap<String, String>> {
    let mut records: Vec<HashMap<String, String>> = Vec::new();
    let mut section_indent: Option<usize> = None;
    let mut item_indent: Option<usize> = None;
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        if t == "amdhsa.kernels:" {
            section_indent = Some(indent);
            item_indent = None;
            continue;
        }
        let Some(section) = section_indent else {
            continue;
        };
        if indent <= section && !t.starts_with('-') {
            section_indent = None;
            continue;
        }
        let mut kv = t;
        let mut key_indent = indent;
        if let Some(rest) = t.strip_prefix("- ") {
            let first = *item_indent.get_or_insert(indent);
            if indent == first {
                records.push(HashMap::new());
                kv = rest;
                key_indent = indent + 2;
            } else {
                continue; // an item of a nested list
            }
        }
        let Some(first) = item_indent else { continue };
        if key_indent != first + 2 {
            continue; // nested under a key of the kernel
        }
        if let (Some(r), Some((k, v))) = (records.last_mut(), kv.split_once(':')) {
            r.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    records
}

/// Parse `ptxas -v` output for the entry function `kernel` (or the only entry compiled).
pub fn parse_ptxas(text: &str, kernel: &str) -> Result<Resources, CodegenError> {
    const TOOL: &str = "ptxas";
    #[derive(Default, Clone)]
    struct Entry {
        regs: Option<u32>,
        smem: u32,
        stack: Option<u32>,
        spill: Option<u32>,
    }
    let mut entries: Vec<(String, Entry)> = Vec::new();
    let mut current: Option<usize> = None;
    // Whose "Function properties" the next stack/spill line describes.
    let mut properties_of: Option<String> = None;
    let mut properties: HashMap<String, (u32, u32)> = HashMap::new();
    for line in text.lines() {
        let t = line.trim();
        if let Some(rest) = t.split("Compiling entry function '").nth(1) {
            let name = rest.split('\'').next().unwrap_or("").to_string();
            entries.push((name, Entry::default()));
            current = Some(entries.len() - 1);
        } else if let Some(rest) = t.split("Function properties for ").nth(1) {
            properties_of = Some(rest.trim().to_string());
        } else if t.contains("bytes stack frame") {
            let stack = number_before(t, "bytes stack frame");
            let spill = number_before(t, "bytes spill stores").unwrap_or(0)
                + number_before(t, "bytes spill loads").unwrap_or(0);
            if let (Some(f), Some(stack)) = (properties_of.take(), stack) {
                properties.insert(f, (stack, spill));
            }
        } else if t.contains("Used ") && t.contains("registers") {
            let Some(i) = current else { continue };
            let e = &mut entries[i].1;
            e.regs = number_before(t, "registers");
            e.smem = number_before(t, "bytes smem").unwrap_or(0);
        }
    }
    for (name, e) in &mut entries {
        if let Some(&(stack, spill)) = properties.get(name.as_str()) {
            e.stack = Some(stack);
            e.spill = Some(spill);
        }
    }
    let entry = match entries.iter().find(|(n, _)| n == kernel) {
        Some((_, e)) => e.clone(),
        None if entries.len() == 1 => entries[0].1.clone(),
        None => {
            return Err(bad(
                TOOL,
                format!("no entry function `{kernel}` in the output"),
            ))
        }
    };
    let regs = entry
        .regs
        .ok_or_else(|| bad(TOOL, "no `Used N registers` line"))?;
    Ok(Resources {
        regs: Some(regs),
        spill_bytes: Some(entry.spill.unwrap_or(0)),
        stack_bytes: Some(entry.stack.unwrap_or(0)),
        lds_bytes: entry.smem,
        ..Resources::default()
    })
}

/// The integer right before `unit` in `line` (`"20 registers"` → 20).
fn number_before(line: &str, unit: &str) -> Option<u32> {
    let head = &line[..line.find(unit)?];
    head.split(|c: char| c.is_whitespace() || c == ',' || c == ':')
        .rev()
        .find(|w| !w.is_empty())?
        .parse()
        .ok()
}
