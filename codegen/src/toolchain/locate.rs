//! Finding the external tools: an explicit `GRETA_*` variable wins (and a wrong one is an error,
//! not a silent fall-back), then `PATH`, then — for `ptxas`, which ships only in the
//! `nvidia-cuda-nvcc-cu12` Python wheel here — the wheel's directory as Python reports it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Why a tool was not found, kept until someone needs the tool.
#[derive(Clone, Debug)]
pub struct Missing {
    pub tool: &'static str,
    pub searched: String,
}

/// One tool to look for.
pub struct Spec {
    pub tool: &'static str,
    pub env: &'static str,
    pub path_names: &'static [&'static str],
    /// Ask Python for the `nvidia.cuda_nvcc` wheel (ptxas only).
    pub python_wheel: bool,
}

pub const CLANG: Spec = Spec {
    tool: "clang++",
    env: "GRETA_CLANG",
    path_names: &["clang++-19", "clang++"],
    python_wheel: false,
};
pub const READELF: Spec = Spec {
    tool: "llvm-readelf",
    env: "GRETA_READELF",
    path_names: &["llvm-readelf-19", "llvm-readelf"],
    python_wheel: false,
};
pub const OBJDUMP: Spec = Spec {
    tool: "llvm-objdump",
    env: "GRETA_OBJDUMP",
    path_names: &["llvm-objdump-19", "llvm-objdump"],
    python_wheel: false,
};
pub const LLD: Spec = Spec {
    tool: "ld.lld",
    env: "GRETA_LLD",
    path_names: &["ld.lld-19", "ld.lld"],
    python_wheel: false,
};
pub const PTXAS: Spec = Spec {
    tool: "ptxas",
    env: "GRETA_PTXAS",
    path_names: &["ptxas"],
    python_wheel: true,
};

pub fn locate(spec: &Spec, env: &dyn Fn(&str) -> Option<OsString>) -> Result<PathBuf, Missing> {
    if let Some(p) = env(spec.env).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if is_executable(&p) {
            Ok(p)
        } else {
            Err(Missing {
                tool: spec.tool,
                searched: format!("{}={} is not an executable file", spec.env, p.display()),
            })
        };
    }
    let path = env("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in spec.path_names {
            let p = dir.join(name);
            if is_executable(&p) {
                return Ok(p);
            }
        }
    }
    let mut searched = format!(
        "{} unset; {} not on PATH",
        spec.env,
        spec.path_names.join(", ")
    );
    if spec.python_wheel {
        if let Some(p) = wheel_ptxas() {
            return Ok(p);
        }
        searched.push_str("; no nvidia.cuda_nvcc Python package");
    }
    Err(Missing {
        tool: spec.tool,
        searched,
    })
}

fn wheel_ptxas() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import nvidia.cuda_nvcc, os; print(nvidia.cuda_nvcc.__path__[0])",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let dir = String::from_utf8(out.stdout).ok()?;
    let p = Path::new(dir.trim()).join("bin").join("ptxas");
    is_executable(&p).then_some(p)
}

fn is_executable(p: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        p.is_file()
    }
}
