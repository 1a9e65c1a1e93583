//! The content-addressed compile cache: compiling a kernel (clang, then ptxas or the ELF metadata
//! reader) takes a second or more, and the same IR for the same target with the same tools always
//! gives the same code object, so each result is stored once and reused by every greta process.
//!
//! # Where
//!
//! `GRETA_CACHE_DIR` if set; else `$XDG_CACHE_HOME/greta`; else `$HOME/.cache/greta` (see
//! [`default_root`]). Code objects live under `<root>/objects/`, so the tuning database and other
//! caches can share the root.
//!
//! # Key
//!
//! The key is the SHA-256 of, each part length-prefixed so that no two tuples run together:
//! the printed IR ([`greta_dsl::print::print_kernel`], which includes the kernel's name and its
//! comptime configuration), the target name, the version of the lowering that compiles it (the
//! cache's [`Via`]: `hip-2`, `llvm-1`) and the toolchain's version string for the target and that
//! lowering ([`greta_codegen::ToolVersions::key_for`]); [`cache_key`] is the one definition.
//! Keying on content rather than on kernel names means a changed kernel, emitter or compiler can
//! never be served a stale object, and nothing ever has to be invalidated by hand; the HIP and
//! LLVM objects of one kernel are two entries that never meet.
//!
//! # Entries, atomically
//!
//! An entry is a directory `<root>/objects/<key[..2]>/<key>/` holding `object` (the hsaco or
//! cubin) and `meta.json` ([`EntryMeta`]: what was compiled, with which tools, the object's own
//! SHA-256 and its resource figures). It is written into a fresh directory under `<root>/tmp/`
//! and renamed into place, so a concurrent greta process or a crash mid-write never leaves a half
//! entry under its final name: readers see a whole entry or none. If two processes compile the
//! same kernel at once, the first rename wins and the second discards its (identical) copy.
//!
//! An entry that is nevertheless broken (deleted file, edited JSON, a truncated object: the
//! object's SHA-256 is checked on every read) is recompiled and replaced, and the caller is told
//! why through [`CacheOutcome::Recompiled`]; the library itself prints nothing.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use greta_codegen::{CodegenError, Compiled, Resources, Toolchain, Via};
use greta_dsl::ir::Kernel;
use greta_dsl::{Family, Target};
use sha2::{Digest, Sha256};

use crate::backend::{CodeObject, ObjectFormat};

/// Bumped when the entry layout below changes, so an old layout is never misread.
const LAYOUT: &str = "greta-cache-1";
const OBJECT_FILE: &str = "object";
const META_FILE: &str = "meta.json";

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error(
        "no cache directory: set GRETA_CACHE_DIR (or XDG_CACHE_HOME or HOME) to a writable directory"
    )]
    NoCacheDir,
    #[error("compile cache: {action} {}: {cause}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        /// Shown in the message, not chained as a source, so `{:#}` prints it once.
        cause: std::io::Error,
    },
    /// Compiling failed, or the toolchain whose version is part of the key is missing.
    #[error(transparent)]
    Codegen(#[from] CodegenError),
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CacheError {
    let path = path.to_path_buf();
    move |cause| CacheError::Io {
        action,
        path,
        cause,
    }
}

/// How [`CompileCache::get_or_compile`] got its result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Read from a valid entry: nothing was compiled.
    Hit,
    /// No entry existed: compiled and stored.
    Compiled,
    /// An entry existed but was broken (`reason` names the entry and the fault): compiled again
    /// and the entry replaced. Worth a warning: something is tampering with the cache directory,
    /// or a disk is failing.
    Recompiled { reason: String },
}

impl CacheOutcome {
    /// Whether the toolchain ran.
    pub fn compiled(&self) -> bool {
        !matches!(self, CacheOutcome::Hit)
    }
}

impl fmt::Display for CacheOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CacheOutcome::Hit => f.write_str("from cache"),
            CacheOutcome::Compiled => f.write_str("compiled"),
            CacheOutcome::Recompiled { reason } => write!(f, "recompiled: {reason}"),
        }
    }
}

/// `meta.json` of an entry. `object_sha256` is what makes a truncated or swapped object
/// detectable; the other fields say what the entry is, for people looking at the directory and
/// as a check against a (never observed) key collision.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EntryMeta {
    pub layout: String,
    pub kernel: String,
    /// The IR's comptime configuration, `key=value,...`.
    pub config: String,
    pub target: String,
    pub codegen_version: String,
    pub toolchain: String,
    pub format: ObjectFormat,
    pub object_sha256: String,
    pub object_len: u64,
    pub resources: Resources,
}

/// The default cache root: `GRETA_CACHE_DIR`, else `$XDG_CACHE_HOME/greta`, else
/// `$HOME/.cache/greta`. Empty or relative XDG values are ignored, as the XDG spec asks.
pub fn default_root() -> Result<PathBuf, CacheError> {
    root_from(&|name| std::env::var_os(name))
}

fn root_from(env: &dyn Fn(&str) -> Option<std::ffi::OsString>) -> Result<PathBuf, CacheError> {
    let set = |name: &str| env(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = set("GRETA_CACHE_DIR") {
        return Ok(dir);
    }
    if let Some(xdg) = set("XDG_CACHE_HOME").filter(|p| p.is_absolute()) {
        return Ok(xdg.join("greta"));
    }
    set("HOME")
        .map(|home| home.join(".cache").join("greta"))
        .ok_or(CacheError::NoCacheDir)
}

/// The format of the loadable object [`greta_codegen::compile`] makes for `target`.
pub fn object_format(target: &Target) -> ObjectFormat {
    match target.family {
        Family::Amdgcn => ObjectFormat::Hsaco,
        Family::Nvptx => ObjectFormat::Cubin,
    }
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 over length-prefixed parts: `("ab", "c")` and `("a", "bc")` hash differently.
pub(crate) fn hash_parts(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    hex(&h.finalize())
}

/// The cache key of `kernel` compiled for `target` by `via`, with the tools whose versions are
/// `toolchain` (what [`greta_codegen::ToolVersions::key_for`] gives for `target` and `via`).
pub fn cache_key(kernel: &Kernel, target: &Target, via: Via, toolchain: &str) -> String {
    let ir = greta_dsl::print::print_kernel(kernel);
    hash_parts(&[LAYOUT, &ir, target.name, via.version(), toolchain])
}

/// A compile cache rooted at one directory, compiling by one lowering ([`Via`]; HIP unless
/// [`with_via`](Self::with_via) says otherwise). Cheap to share between threads (`&self`
/// methods; the file system does the synchronisation). Caches of different lowerings may share
/// a root: their keys differ.
#[derive(Clone, Debug)]
pub struct CompileCache {
    root: PathBuf,
    via: Via,
}

impl CompileCache {
    /// A cache rooted at `root` (created on first write), compiling by [`Via::Hip`].
    pub fn new(root: impl Into<PathBuf>) -> CompileCache {
        CompileCache {
            root: root.into(),
            via: Via::Hip,
        }
    }

    /// The cache at [`default_root`], compiling by [`Via::Hip`].
    pub fn from_env() -> Result<CompileCache, CacheError> {
        Ok(CompileCache::new(default_root()?))
    }

    /// This cache compiling by `via` instead.
    pub fn with_via(self, via: Via) -> CompileCache {
        CompileCache { via, ..self }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The lowering this cache compiles by.
    pub fn via(&self) -> Via {
        self.via
    }

    /// The toolchain part of this cache's keys for `target`
    /// ([`greta_codegen::ToolVersions::key_for`] with the cache's via), from the process-wide
    /// [`Toolchain`]: an error if a tool that compiling for `target` needs is missing. Commands
    /// call it once before compiling many kernels, for one error rather than one per kernel.
    pub fn toolchain_key(&self, target: &Target) -> Result<String, CacheError> {
        Ok(Toolchain::global().versions().key_for(target, self.via)?)
    }

    /// The directory of the entry with `key`.
    pub fn entry_dir(&self, key: &str) -> PathBuf {
        self.root.join("objects").join(&key[..2]).join(key)
    }

    /// `kernel`'s code object for `target`: from the cache if a valid entry exists, else
    /// compiled with the process-wide [`Toolchain`] and stored. The toolchain must be present
    /// even for a hit, because its version is part of the key.
    pub fn get_or_compile(
        &self,
        kernel: &Kernel,
        target: &Target,
    ) -> Result<(CodeObject, Resources, CacheOutcome), CacheError> {
        let toolchain = self.toolchain_key(target)?;
        self.get_or_compile_with(kernel, target, &toolchain, || {
            greta_codegen::compile_with(Toolchain::global(), kernel, target, self.via)
        })
    }

    /// [`get_or_compile`](Self::get_or_compile) with the toolchain key and the compiler given,
    /// so that the cache's own logic is testable without the tools. `compile` must compile by
    /// the cache's via.
    pub fn get_or_compile_with(
        &self,
        kernel: &Kernel,
        target: &Target,
        toolchain: &str,
        compile: impl FnOnce() -> Result<Compiled, CodegenError>,
    ) -> Result<(CodeObject, Resources, CacheOutcome), CacheError> {
        let key = cache_key(kernel, target, self.via, toolchain);
        let dir = self.entry_dir(&key);
        let broken = match read_entry(&dir, kernel, target, self.via) {
            Lookup::Valid(object, resources) => return Ok((object, resources, CacheOutcome::Hit)),
            Lookup::Absent => None,
            Lookup::Broken(why) => Some(format!("cache entry {} {why}", dir.display())),
        };
        let compiled = compile()?;
        debug_assert_eq!(compiled.via, self.via, "compiled by another lowering");
        let object = CodeObject {
            target: target.name.to_string(),
            format: object_format(target),
            bytes: compiled.object,
        };
        let meta = EntryMeta {
            layout: LAYOUT.to_string(),
            kernel: kernel.name.clone(),
            config: kernel.config_string(),
            target: target.name.to_string(),
            codegen_version: self.via.version().to_string(),
            toolchain: toolchain.to_string(),
            format: object.format,
            object_sha256: sha256_hex(&object.bytes),
            object_len: object.bytes.len() as u64,
            resources: compiled.resources.clone(),
        };
        self.store(&dir, &meta, &object.bytes, broken.is_some())?;
        let outcome = match broken {
            None => CacheOutcome::Compiled,
            Some(reason) => CacheOutcome::Recompiled { reason },
        };
        Ok((object, compiled.resources, outcome))
    }

    /// Writes the entry into a temporary directory and renames it into place.
    fn store(
        &self,
        dir: &Path,
        meta: &EntryMeta,
        object: &[u8],
        replace: bool,
    ) -> Result<(), CacheError> {
        let tmp_root = self.root.join("tmp");
        std::fs::create_dir_all(&tmp_root).map_err(io("creating", &tmp_root))?;
        // Listed with the temporaries, so that an interrupted greta removes it.
        let (tmp, _registered) = crate::output::Temporary::register(
            || {
                tempfile::Builder::new()
                    .prefix("entry-")
                    .tempdir_in(&tmp_root)
            },
            |t: &tempfile::TempDir| t.path(),
        )
        .map_err(io("creating a directory in", &tmp_root))?;
        write_synced(&tmp.path().join(OBJECT_FILE), object)?;
        let json = serde_json::to_vec_pretty(meta).expect("EntryMeta serialises");
        write_synced(&tmp.path().join(META_FILE), &json)?;

        let parent = dir.parent().expect("entry dirs have a parent");
        std::fs::create_dir_all(parent).map_err(io("creating", parent))?;
        if replace {
            // Move the broken entry out of the way first (a rename onto a non-empty directory
            // fails), then delete it at leisure. If another process already replaced it, the
            // rename fails and there is nothing to move.
            let trash = tempfile::Builder::new()
                .prefix("broken-")
                .tempdir_in(&tmp_root)
                .map_err(io("creating a directory in", &tmp_root))?;
            let _ = std::fs::rename(dir, trash.path().join("entry"));
        }
        match std::fs::rename(tmp.path(), dir) {
            Ok(()) => {
                // The directory now lives at `dir`; don't let the guard delete it.
                let _ = tmp.keep();
                Ok(())
            }
            // Another process stored the same entry first: its copy is as good as ours, and the
            // guard removes ours.
            Err(_) if dir.join(META_FILE).is_file() => Ok(()),
            Err(e) => Err(io("storing an entry at", dir)(e)),
        }
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    let mut f = std::fs::File::create(path).map_err(io("creating", path))?;
    f.write_all(bytes).map_err(io("writing", path))?;
    f.sync_all().map_err(io("syncing", path))
}

enum Lookup {
    Valid(CodeObject, Resources),
    Absent,
    /// Why the entry cannot be used, as the end of a sentence starting with the entry's path.
    Broken(String),
}

fn read_entry(dir: &Path, kernel: &Kernel, target: &Target, via: Via) -> Lookup {
    if !dir.exists() {
        return Lookup::Absent;
    }
    let meta_path = dir.join(META_FILE);
    let text = match crate::input::read(&meta_path) {
        Ok(t) => t,
        Err(e) => return Lookup::Broken(format!("has no readable {META_FILE} ({e})")),
    };
    let meta: EntryMeta = match serde_json::from_slice(&text) {
        Ok(m) => m,
        Err(e) => return Lookup::Broken(format!("has a bad {META_FILE} ({e})")),
    };
    if meta.layout != LAYOUT
        || meta.kernel != kernel.name
        || meta.target != target.name
        || meta.format != object_format(target)
        || meta.codegen_version != via.version()
    {
        return Lookup::Broken(format!(
            "describes {} for {} ({}, {}), not {} for {} ({})",
            meta.kernel,
            meta.target,
            meta.layout,
            meta.codegen_version,
            kernel.name,
            target.name,
            via.version()
        ));
    }
    let bytes = match crate::input::read(&dir.join(OBJECT_FILE)) {
        Ok(b) => b,
        Err(e) => return Lookup::Broken(format!("has no readable {OBJECT_FILE} ({e})")),
    };
    let actual = sha256_hex(&bytes);
    if actual != meta.object_sha256 {
        return Lookup::Broken(format!(
            "has a corrupt {OBJECT_FILE}: {} bytes with SHA-256 {actual}, expected {} bytes with \
             SHA-256 {}",
            bytes.len(),
            meta.object_len,
            meta.object_sha256
        ));
    }
    Lookup::Valid(
        CodeObject {
            target: target.name.to_string(),
            format: meta.format,
            bytes,
        },
        meta.resources,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use greta_dsl::ir::{Block, ConfigValue, Scalar};
    use std::cell::Cell;

    pub(crate) fn kernel(name: &str, block: u32) -> Kernel {
        Kernel {
            name: name.to_string(),
            target: &Target::GFX942,
            config: vec![
                ("T".into(), ConfigValue::Type(Scalar::F16)),
                ("block".into(), ConfigValue::U32(block)),
            ],
            params: vec![],
            vars: vec![],
            shared: vec![],
            locals: vec![],
            exprs: vec![],
            body: Block::default(),
            block_size: Some([block, 1, 1]),
        }
    }

    fn fake(bytes: &[u8]) -> Compiled {
        fake_via(Via::Hip, bytes)
    }

    fn fake_via(via: Via, bytes: &[u8]) -> Compiled {
        Compiled {
            via,
            source: String::new(),
            ptx: None,
            object: bytes.to_vec(),
            resources: Resources {
                regs: Some(20),
                lds_bytes: 64,
                ..Resources::default()
            },
        }
    }

    #[test]
    fn root_follows_greta_cache_dir_then_xdg_then_home() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| std::ffi::OsString::from(v))
            }
        };
        let all = env(&[
            ("GRETA_CACHE_DIR", "/g"),
            ("XDG_CACHE_HOME", "/x"),
            ("HOME", "/h"),
        ]);
        assert_eq!(root_from(&all).unwrap(), PathBuf::from("/g"));
        let xdg = env(&[("XDG_CACHE_HOME", "/x"), ("HOME", "/h")]);
        assert_eq!(root_from(&xdg).unwrap(), PathBuf::from("/x/greta"));
        let relative_xdg = env(&[("XDG_CACHE_HOME", "rel"), ("HOME", "/h")]);
        assert_eq!(
            root_from(&relative_xdg).unwrap(),
            PathBuf::from("/h/.cache/greta")
        );
        assert!(matches!(
            root_from(&env(&[("GRETA_CACHE_DIR", "")])),
            Err(CacheError::NoCacheDir)
        ));
    }

    #[test]
    fn key_depends_on_ir_target_via_and_toolchain() {
        let k = kernel("k", 256);
        let base = cache_key(&k, &Target::SM_90, Via::Hip, "tools 1");
        assert_eq!(base, cache_key(&k, &Target::SM_90, Via::Hip, "tools 1"));
        assert_ne!(base, cache_key(&k, &Target::GFX942, Via::Hip, "tools 1"));
        assert_ne!(base, cache_key(&k, &Target::SM_90, Via::Hip, "tools 2"));
        assert_ne!(base, cache_key(&k, &Target::SM_90, Via::Llvm, "tools 1"));
        assert_ne!(
            base,
            cache_key(&kernel("k", 128), &Target::SM_90, Via::Hip, "tools 1")
        );
        assert_ne!(
            base,
            cache_key(&kernel("j", 256), &Target::SM_90, Via::Hip, "tools 1")
        );
    }

    #[test]
    fn hit_compiles_nothing_and_corruption_recompiles() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::new(dir.path());
        let k = kernel("k", 256);
        let t = &Target::SM_90;
        let runs = Cell::new(0);
        let get = || {
            cache
                .get_or_compile_with(&k, t, "tools", || {
                    runs.set(runs.get() + 1);
                    Ok(fake(b"cubin bytes"))
                })
                .unwrap()
        };
        let (obj, res, outcome) = get();
        assert_eq!(outcome, CacheOutcome::Compiled);
        assert_eq!(obj.format, ObjectFormat::Cubin);
        assert_eq!(obj.bytes, b"cubin bytes");
        assert_eq!(res.regs, Some(20));

        let (obj, res, outcome) = get();
        assert_eq!(outcome, CacheOutcome::Hit);
        assert_eq!(runs.get(), 1, "a hit compiles nothing");
        assert_eq!(obj.bytes, b"cubin bytes");
        assert_eq!(res.lds_bytes, 64);

        let entry = cache.entry_dir(&cache_key(&k, t, Via::Hip, "tools"));
        // Truncated object, missing object, bad JSON: each is recompiled with its reason.
        let faults: [(&dyn Fn(), &str); 3] = [
            (
                &|| std::fs::write(entry.join(OBJECT_FILE), b"cubin").unwrap(),
                "corrupt object",
            ),
            (
                &|| std::fs::remove_file(entry.join(OBJECT_FILE)).unwrap(),
                "no readable object",
            ),
            (
                &|| std::fs::write(entry.join(META_FILE), b"{ not json").unwrap(),
                "bad meta.json",
            ),
        ];
        for (i, (fault, why)) in faults.iter().enumerate() {
            fault();
            let (obj, _, outcome) = get();
            assert_eq!(runs.get(), 2 + i);
            assert_eq!(obj.bytes, b"cubin bytes");
            match outcome {
                CacheOutcome::Recompiled { reason } => {
                    assert!(reason.contains(why), "{reason}");
                    assert!(reason.contains(&entry.display().to_string()), "{reason}");
                }
                other => panic!("expected a recompile, got {other:?}"),
            }
            assert_eq!(get().2, CacheOutcome::Hit, "the entry was repaired");
        }
        // Nothing is left behind in the temporary area.
        let left: Vec<_> = std::fs::read_dir(dir.path().join("tmp")).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn compile_errors_store_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::new(dir.path());
        let k = kernel("k", 256);
        let err = cache
            .get_or_compile_with(&k, &Target::GFX942, "tools", || {
                Err(CodegenError::Unsupported {
                    kernel: "k".into(),
                    message: "no".into(),
                })
            })
            .unwrap_err();
        assert!(matches!(err, CacheError::Codegen(_)));
        assert!(!cache
            .entry_dir(&cache_key(&k, &Target::GFX942, Via::Hip, "tools"))
            .exists());
    }

    #[test]
    fn hip_and_llvm_objects_are_separate_entries() {
        let dir = tempfile::tempdir().unwrap();
        let k = kernel("k", 256);
        let t = &Target::GFX942;
        let hip = CompileCache::new(dir.path());
        let llvm = CompileCache::new(dir.path()).with_via(Via::Llvm);
        assert_eq!((hip.via(), llvm.via()), (Via::Hip, Via::Llvm));
        let get = |cache: &CompileCache, bytes: &'static [u8]| {
            let via = cache.via();
            cache
                .get_or_compile_with(&k, t, "tools", || Ok(fake_via(via, bytes)))
                .unwrap()
        };
        assert_eq!(get(&hip, b"from hip").2, CacheOutcome::Compiled);
        // Same kernel, target and tools: the llvm cache does not see the HIP object.
        let (obj, _, outcome) = get(&llvm, b"from llvm");
        assert_eq!(outcome, CacheOutcome::Compiled);
        assert_eq!(obj.bytes, b"from llvm");
        for (cache, bytes) in [(&hip, b"from hip" as &[u8]), (&llvm, b"from llvm")] {
            let (obj, _, outcome) = get(cache, b"never compiled");
            assert_eq!(outcome, CacheOutcome::Hit);
            assert_eq!(obj.bytes, bytes);
            let key = cache_key(&k, t, cache.via(), "tools");
            let meta: EntryMeta = serde_json::from_slice(
                &std::fs::read(cache.entry_dir(&key).join(META_FILE)).unwrap(),
            )
            .unwrap();
            assert_eq!(meta.codegen_version, cache.via().version());
        }
    }
}
