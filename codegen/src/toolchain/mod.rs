//! Drivers for the external tools that turn generated HIP C++ into GPU code:
//!
//! | step | tool |
//! |---|---|
//! | HIP → gfx942 code object (`.hsaco`) / AMDGCN assembly | `clang++-19 -x hip --cuda-device-only` |
//! | HIP → sm_90 PTX | `clang++-19 -x cuda --cuda-device-only -S` |
//! | PTX → cubin (+ resource report) | `ptxas -arch=sm_90 -v` |
//! | code object → metadata notes | `llvm-readelf-19 --notes` |
//! | code object → disassembly (matrix-instruction count) | `llvm-objdump-19 -d` |
//!
//! Tools are located once per [`Toolchain`] ([`Toolchain::global`] for the process, from the
//! environment at first use); a missing tool is an error only when a step needs it, so AMD
//! compilation works on a machine without `ptxas`. Work happens in a temporary directory that is
//! removed afterwards: results come back as bytes/strings, never as half-written files.

mod locate;
mod run;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use greta_dsl::{Family, Target};

use crate::CodegenError;
use locate::{Missing, Spec, CLANG, LLD, OBJDUMP, PTXAS, READELF};
use run::run;

/// Where a missing tool comes from.
const HINT: &str =
    "run scripts/install-toolchain (or point GRETA_CLANG / GRETA_READELF / GRETA_PTXAS at it)";

/// Flags shared by every clang invocation for `target`. `-fwrapv`: the IR's integers wrap (as
/// Rust's release arithmetic and the interpreter do), C's signed overflow would be undefined.
/// `+ptx80`: clang without a CUDA install assumes an old PTX ISA, too old for sm_90 and for the
/// `shfl.sync` builtins.
fn clang_flags(target: &Target) -> Vec<String> {
    let mut f: Vec<String> = match target.family {
        Family::Amdgcn => vec![
            "-x".into(),
            "hip".into(),
            "--cuda-device-only".into(),
            format!("--offload-arch={}", target.cpu),
            "-nogpuinc".into(),
            "-nogpulib".into(),
            "--no-gpu-bundle-output".into(),
        ],
        Family::Nvptx => vec![
            "-x".into(),
            "cuda".into(),
            "--cuda-device-only".into(),
            format!("--cuda-gpu-arch={}", target.cpu),
            "-nocudainc".into(),
            "-nocudalib".into(),
            "-Xclang".into(),
            "-target-feature".into(),
            "-Xclang".into(),
            "+ptx80".into(),
        ],
    };
    f.extend(["-O3".into(), "-fwrapv".into()]);
    f
}

/// The command line that compiles generated source for `target`, for the source's header.
pub fn compile_hint(target: &Target) -> String {
    let (mode, input, output) = match target.family {
        Family::Amdgcn => ("-c", "kernel.hip", "kernel.hsaco"),
        Family::Nvptx => ("-S", "kernel.cu", "kernel.ptx"),
    };
    format!(
        "clang++-19 {} {mode} {input} -o {output}",
        clang_flags(target).join(" ")
    )
}

/// Version strings of the tools (first meaningful line of `--version`), for cache keys: output
/// of the same source may change with any of them. `None` where the tool is missing.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ToolVersions {
    pub clang: Option<String>,
    pub readelf: Option<String>,
    pub ptxas: Option<String>,
    pub lld: Option<String>,
    /// LLVM in process (the `llvm` feature).
    pub llvm: Option<String>,
}

impl ToolVersions {
    /// The versions that matter for compiling for `target` by `via`, as one string; an error
    /// if one of those tools is missing.
    pub fn key_for(&self, target: &Target, via: crate::Via) -> Result<String, CodegenError> {
        let need = |v: &Option<String>, tool: &'static str| {
            v.clone().ok_or_else(|| CodegenError::ToolMissing {
                tool,
                searched: "needed for the version key".into(),
                hint: HINT.into(),
            })
        };
        let front = match via {
            crate::Via::Hip => need(&self.clang, "clang++")?,
            crate::Via::Llvm => format!(
                "{}; {}",
                self.llvm.clone().ok_or_else(|| CodegenError::Llvm {
                    kernel: "(version key)".into(),
                    stage: "build".into(),
                    message: "built without the `llvm` feature".into(),
                })?,
                match target.family {
                    Family::Amdgcn => need(&self.lld, "ld.lld")?,
                    Family::Nvptx => "no linker".into(),
                }
            ),
        };
        Ok(match target.family {
            Family::Amdgcn => format!("{front}; {}", need(&self.readelf, "llvm-readelf")?),
            Family::Nvptx => format!("{front}; {}", need(&self.ptxas, "ptxas")?),
        })
    }
}

/// The located tools.
pub struct Toolchain {
    clang: Result<PathBuf, Missing>,
    readelf: Result<PathBuf, Missing>,
    objdump: Result<PathBuf, Missing>,
    ptxas: Result<PathBuf, Missing>,
    lld: Result<PathBuf, Missing>,
    versions: OnceLock<ToolVersions>,
}

impl Toolchain {
    /// The process-wide toolchain, located from the environment on first use.
    pub fn global() -> &'static Toolchain {
        static GLOBAL: OnceLock<Toolchain> = OnceLock::new();
        GLOBAL.get_or_init(Toolchain::from_env)
    }

    pub fn from_env() -> Toolchain {
        Toolchain::locate_with(&|k| std::env::var_os(k))
    }

    /// Locate with an explicit environment (`GRETA_CLANG`, `GRETA_READELF`, `GRETA_PTXAS`,
    /// `PATH`), so tests need not change the process environment.
    pub fn locate_with(env: &dyn Fn(&str) -> Option<OsString>) -> Toolchain {
        Toolchain {
            clang: locate::locate(&CLANG, env),
            readelf: locate::locate(&READELF, env),
            objdump: locate::locate(&OBJDUMP, env),
            ptxas: locate::locate(&PTXAS, env),
            lld: locate::locate(&LLD, env),
            versions: OnceLock::new(),
        }
    }

    fn tool<'a>(&self, found: &'a Result<PathBuf, Missing>) -> Result<&'a Path, CodegenError> {
        match found {
            Ok(p) => Ok(p),
            Err(m) => Err(CodegenError::ToolMissing {
                tool: m.tool,
                searched: m.searched.clone(),
                hint: HINT.into(),
            }),
        }
    }

    pub fn clang(&self) -> Result<&Path, CodegenError> {
        self.tool(&self.clang)
    }
    pub fn readelf(&self) -> Result<&Path, CodegenError> {
        self.tool(&self.readelf)
    }
    pub fn ptxas(&self) -> Result<&Path, CodegenError> {
        self.tool(&self.ptxas)
    }
    pub fn objdump(&self) -> Result<&Path, CodegenError> {
        self.tool(&self.objdump)
    }
    pub fn lld(&self) -> Result<&Path, CodegenError> {
        self.tool(&self.lld)
    }

    pub fn versions(&self) -> &ToolVersions {
        self.versions.get_or_init(|| {
            let v = |p: &Result<PathBuf, Missing>, spec: &Spec| {
                let p = p.as_ref().ok()?;
                let ran = run(spec.tool, p, &["--version"], None).ok()?;
                let text = format!("{}{}", ran.stdout, ran.stderr);
                // clang and readelf put the version first; ptxas last ("Cuda compilation
                // tools, release 12.9, V12.9.86"); ld.lld says neither word ("Debian LLD 19.1.7
                // (compatible with GNU linkers)", "LLD 19.1.7").
                text.lines()
                    .map(str::trim)
                    .find(|l| l.contains("version") || l.contains("release") || l.contains("LLD "))
                    .map(str::to_string)
            };
            ToolVersions {
                clang: v(&self.clang, &CLANG),
                readelf: v(&self.readelf, &READELF),
                ptxas: v(&self.ptxas, &PTXAS),
                lld: v(&self.lld, &LLD),
                llvm: crate::llvm::version(),
            }
        })
    }

    /// clang on `source` (named `name.<ext>` for diagnostics) with `mode` (`-c` or `-S`);
    /// returns the output file's bytes.
    fn clang_run(
        &self,
        source: &str,
        name: &str,
        target: &Target,
        mode: &str,
    ) -> Result<Vec<u8>, CodegenError> {
        let clang = self.clang()?;
        let dir = tempdir()?;
        let ext = match target.family {
            Family::Amdgcn => "hip",
            Family::Nvptx => "cu",
        };
        let src = dir.path().join(format!("{name}.{ext}"));
        std::fs::write(&src, source)
            .map_err(CodegenError::io(format!("writing {}", src.display())))?;
        let out = dir.path().join(format!("{name}.out"));
        let mut args = clang_flags(target);
        args.extend([
            mode.to_string(),
            path_str(&src)?,
            "-o".into(),
            path_str(&out)?,
        ]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run("clang++", clang, &args, Some(&src))?;
        std::fs::read(&out).map_err(CodegenError::io(format!("reading {}", out.display())))
    }

    /// HIP source → AMDGPU code object (an ELF shared object the HIP runtime loads).
    pub fn hip_to_code_object(
        &self,
        source: &str,
        name: &str,
        target: &Target,
    ) -> Result<Vec<u8>, CodegenError> {
        expect_family(target, Family::Amdgcn, "a code object")?;
        self.clang_run(source, name, target, "-c")
    }

    /// HIP source → AMDGCN assembly text.
    pub fn hip_to_asm(
        &self,
        source: &str,
        name: &str,
        target: &Target,
    ) -> Result<String, CodegenError> {
        expect_family(target, Family::Amdgcn, "AMDGCN assembly")?;
        utf8(self.clang_run(source, name, target, "-S")?, "clang++")
    }

    /// HIP source (compiled as CUDA) → PTX text.
    pub fn hip_to_ptx(
        &self,
        source: &str,
        name: &str,
        target: &Target,
    ) -> Result<String, CodegenError> {
        expect_family(target, Family::Nvptx, "PTX")?;
        utf8(self.clang_run(source, name, target, "-S")?, "clang++")
    }

    /// PTX → cubin; also returns `ptxas -v`'s report (registers, shared memory, spills).
    pub fn ptx_to_cubin(
        &self,
        ptx: &str,
        name: &str,
        target: &Target,
    ) -> Result<(Vec<u8>, String), CodegenError> {
        expect_family(target, Family::Nvptx, "a cubin")?;
        let ptxas = self.ptxas()?;
        let dir = tempdir()?;
        let src = dir.path().join(format!("{name}.ptx"));
        std::fs::write(&src, ptx)
            .map_err(CodegenError::io(format!("writing {}", src.display())))?;
        let out = dir.path().join(format!("{name}.cubin"));
        let arch = format!("-arch={}", target.cpu);
        let ran = run(
            "ptxas",
            ptxas,
            &[&arch, "-v", &path_str(&src)?, "-o", &path_str(&out)?],
            Some(&src),
        )?;
        let cubin =
            std::fs::read(&out).map_err(CodegenError::io(format!("reading {}", out.display())))?;
        Ok((cubin, format!("{}{}", ran.stdout, ran.stderr)))
    }

    /// An AMDGPU relocatable object (LLVM's output) → code object: `ld.lld -shared`.
    pub fn link_code_object(&self, object: &[u8], name: &str) -> Result<Vec<u8>, CodegenError> {
        let lld = self.lld()?;
        let dir = tempdir()?;
        let src = dir.path().join(format!("{name}.o"));
        std::fs::write(&src, object)
            .map_err(CodegenError::io(format!("writing {}", src.display())))?;
        let out = dir.path().join(format!("{name}.hsaco"));
        run(
            "ld.lld",
            lld,
            &["-shared", &path_str(&src)?, "-o", &path_str(&out)?],
            Some(&src),
        )?;
        std::fs::read(&out).map_err(CodegenError::io(format!("reading {}", out.display())))
    }

    /// The disassembly of an AMDGPU code object (`llvm-objdump -d`): the instructions the GPU
    /// runs, for counting matrix instructions.
    pub fn disassemble(&self, object: &[u8], target: &Target) -> Result<String, CodegenError> {
        let objdump = self.objdump()?;
        let dir = tempdir()?;
        let path = dir.path().join("kernel.hsaco");
        std::fs::write(&path, object)
            .map_err(CodegenError::io(format!("writing {}", path.display())))?;
        let mcpu = format!("--mcpu={}", target.cpu);
        Ok(run(
            "llvm-objdump",
            objdump,
            &["-d", &mcpu, &path_str(&path)?],
            Some(&path),
        )?
        .stdout)
    }

    /// `llvm-readelf --notes` of a code object.
    pub fn code_object_notes(&self, object: &[u8]) -> Result<String, CodegenError> {
        let readelf = self.readelf()?;
        let dir = tempdir()?;
        let path = dir.path().join("kernel.hsaco");
        std::fs::write(&path, object)
            .map_err(CodegenError::io(format!("writing {}", path.display())))?;
        Ok(run(
            "llvm-readelf",
            readelf,
            &["--notes", &path_str(&path)?],
            Some(&path),
        )?
        .stdout)
    }
}

fn tempdir() -> Result<tempfile::TempDir, CodegenError> {
    tempfile::Builder::new()
        .prefix("greta-codegen-")
        .tempdir()
        .map_err(CodegenError::io("creating a temporary directory"))
}

fn path_str(p: &Path) -> Result<String, CodegenError> {
    p.to_str()
        .map(str::to_string)
        .ok_or_else(|| CodegenError::Io {
            context: format!("temporary path {} is not UTF-8", p.display()),
            source: std::io::Error::other("non-UTF-8 path"),
        })
}

fn utf8(bytes: Vec<u8>, tool: &'static str) -> Result<String, CodegenError> {
    String::from_utf8(bytes).map_err(|_| CodegenError::Io {
        context: format!("{tool} wrote non-UTF-8 text"),
        source: std::io::Error::other("invalid UTF-8"),
    })
}

fn expect_family(target: &Target, family: Family, what: &'static str) -> Result<(), CodegenError> {
    if target.family == family {
        Ok(())
    } else {
        Err(CodegenError::FormatUnavailable {
            format: what,
            target: target.name.to_string(),
            reason: format!("{what} is only produced for {family:?} targets"),
        })
    }
}
