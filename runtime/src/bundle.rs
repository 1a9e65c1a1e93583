//! Code-object bundles: every kernel a model needs, compiled ahead of time for one target, so a
//! GPU machine with no compiler (the H100/H200 machines have no clang) can run greta.
//!
//! A bundle is a directory:
//!
//! ```text
//! DIR/manifest.json
//! DIR/rmsnorm-0123456789abcdef.cubin     one object per entry
//! ...
//! ```
//!
//! `manifest.json` ([`Manifest`]):
//!
//! ```json
//! {
//!   "greta_version": "0.1.0",
//!   "codegen_version": "hip-2",
//!   "target": "sm_90",
//!   "entries": [
//!     { "kernel": "rmsnorm", "config": "block=256,dtype=f16,vec=8",
//!       "ir_config": "T=f16,V=8,block=256", "hash": "<64 hex>",
//!       "file": "rmsnorm-0123456789abcdef.cubin", "format": "cubin",
//!       "object_sha256": "<64 hex>", "resources": { "regs": 20, "lds_bytes": 32, ... } }
//!   ]
//! }
//! ```
//!
//! - `codegen_version` is the version of the lowering ([`Via`]) that compiled every object:
//!   `hip-2` (`greta build`, `--via hip`) or `llvm-1` (`--via llvm`). A bundle is loaded only by
//!   a runtime asked for that lowering ([`Bundle::open`] takes it): one built `--via llvm` is
//!   refused by `--via hip` with an error naming both, and an older version of the same lowering
//!   is refused as out of date.
//! - `hash` is [`content_hash`]: SHA-256 of the printed IR, the target and the codegen version,
//!   *without* the toolchain version that the compile cache adds, because the machine loading the
//!   bundle has no toolchain to ask. The runtime recomputes it from the IR it builds from its own
//!   kernel library and looks entries up by it, so an entry built from different IR (another
//!   greta version, another configuration) is never loaded: it is reported as stale.
//! - `config` is the library's `key=value` form (what `greta build --config` takes), for people;
//!   `ir_config` is the IR's own comptime values, which is what the runtime sees, and lets it
//!   tell a stale entry (same kernel and configuration, other hash) from a missing one.
//! - `object_sha256` guards the object file itself against truncation or replacement.
//! - `format`: `hsaco` in AMD bundles, `cubin` (or `ptx`) in NVIDIA ones.
//!
//! [`Bundle::open`] checks the whole manifest and that every object file exists, with errors
//! naming the file and the field; [`Bundle::object`] does the per-kernel checks. [`BundleWriter`]
//! builds a bundle in a temporary directory beside its destination and renames it into place,
//! so a failed or interrupted `greta build` never leaves a half-written bundle.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use greta_codegen::{Resources, Via};
use greta_dsl::ir::Kernel;
use greta_dsl::{Family, Target};
use serde_json::Value;

use crate::backend::{CodeObject, ObjectFormat};
use crate::cache::{hash_parts, sha256_hex};

/// The manifest's file name inside a bundle directory.
pub const MANIFEST: &str = "manifest.json";

/// The content hash a bundle entry is keyed by: printed IR + target + the version of the
/// lowering that compiles it (`via`).
pub fn content_hash(kernel: &Kernel, target: &Target, via: Via) -> String {
    let ir = greta_dsl::print::print_kernel(kernel);
    hash_parts(&[&ir, target.name, via.version()])
}

fn describe(kernel: &str, config: &str) -> String {
    if config.is_empty() {
        kernel.to_string()
    } else {
        format!("{kernel} [{config}]")
    }
}

/// The command that rebuilds the bundle at `dir` for `target` by `via`, for error messages.
fn rebuild(target: &str, via: Via, dir: &Path) -> String {
    let via = match via {
        Via::Hip => String::new(),
        other => format!(" --via {other}"),
    };
    format!("greta build --target {target} -o {}{via}", dir.display())
}

/// The lowering a `codegen_version` (`hip-2`) belongs to, whatever its version number.
fn via_of_version(version: &str) -> Option<Via> {
    Via::by_name(version.split('-').next().unwrap_or(version))
}

/// Bundle errors. `what` is the entry as people name it (`rmsnorm [block=256,dtype=f16,vec=8]`),
/// `rebuild` the `greta build` command line that fixes the bundle.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error(
        "{} is not a greta bundle: it has no {MANIFEST} (make one with `greta build --target \
         TARGET -o {}`)",
        dir.display(), dir.display()
    )]
    NotABundle { dir: PathBuf },
    #[error("{}: not valid JSON: {message}", file.display())]
    BadJson { file: PathBuf, message: String },
    #[error("{}: `{field}` {message}", file.display())]
    BadField {
        file: PathBuf,
        field: String,
        message: String,
    },
    #[error(
        "{}: codegen_version is `{found}` but this greta generates `{expected}`: rebuild it with \
         `{rebuild}`",
        file.display()
    )]
    CodegenVersion {
        file: PathBuf,
        found: String,
        expected: &'static str,
        rebuild: String,
    },
    /// The bundle was compiled by another lowering than the one asked for.
    #[error(
        "{}: the bundle was built --via {built} (codegen_version `{found}`) but this run asks for \
         --via {asked}: run with `--via {built}`, or rebuild it --via {asked} with `{rebuild}`",
        file.display()
    )]
    OtherVia {
        file: PathBuf,
        found: String,
        built: Via,
        asked: Via,
        rebuild: String,
    },
    #[error(
        "{}: the object file of {what} is missing: rebuild it with `{rebuild}`",
        file.display()
    )]
    MissingObject {
        file: PathBuf,
        what: String,
        rebuild: String,
    },
    #[error(
        "{}: the object of {what} is corrupt (SHA-256 {found}, the manifest says {expected}): \
         rebuild it with `{rebuild}`",
        file.display()
    )]
    CorruptObject {
        file: PathBuf,
        what: String,
        rebuild: String,
        found: String,
        expected: String,
    },
    #[error("bundle {} holds {has} code; this device needs {needs}", dir.display())]
    WrongTarget {
        dir: PathBuf,
        has: String,
        needs: String,
    },
    #[error(
        "no entry for {what} in {}: rebuild it with `{rebuild}`{}",
        dir.display(),
        if *configured { " (with --config for a non-default configuration)" } else { "" }
    )]
    Missing {
        dir: PathBuf,
        what: String,
        rebuild: String,
        /// Whether the kernel has comptime parameters (then `--config` may be needed).
        configured: bool,
    },
    #[error(
        "the entry for {what} in {} is stale (its IR hash differs from the kernel this greta \
         builds, so it was built by another greta version): rebuild it with `{rebuild}`",
        dir.display()
    )]
    Stale {
        dir: PathBuf,
        what: String,
        rebuild: String,
    },
    #[error("bundle {}: {message}", dir.display())]
    Write { dir: PathBuf, message: String },
    /// The destination is not a directory (a file, a device, a FIFO), through symbolic links.
    #[error(transparent)]
    Output(#[from] crate::output::OutputError),
    #[error("{action} {}: {cause}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        /// Shown in the message, not chained as a source, so `{:#}` prints it once.
        cause: std::io::Error,
    },
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BundleError {
    let path = path.to_path_buf();
    move |cause| BundleError::Io {
        action,
        path,
        cause,
    }
}

/// One compiled kernel of a bundle.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    pub kernel: String,
    /// The library configuration, `key=value,...` (as `greta build --config` takes it).
    pub config: String,
    /// The IR's comptime configuration, `key=value,...` ([`Kernel::config_string`]).
    pub ir_config: String,
    /// [`content_hash`] of the kernel's IR for the bundle's target.
    pub hash: String,
    /// The object's file name inside the bundle directory.
    pub file: String,
    pub format: ObjectFormat,
    pub object_sha256: String,
    pub resources: Resources,
}

/// `manifest.json`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    /// The greta that wrote the bundle (informational: the hashes decide what is loadable).
    pub greta_version: String,
    pub codegen_version: String,
    pub target: String,
    pub entries: Vec<Entry>,
}

/// Which object formats a bundle for `target` may hold.
fn formats_for(target: &Target) -> &'static [ObjectFormat] {
    match target.family {
        Family::Amdgcn => &[ObjectFormat::Hsaco],
        Family::Nvptx => &[ObjectFormat::Cubin, ObjectFormat::Ptx],
    }
}

fn extension(format: ObjectFormat) -> &'static str {
    match format {
        ObjectFormat::Hsaco => "hsaco",
        ObjectFormat::Cubin => "cubin",
        ObjectFormat::Ptx => "ptx",
    }
}

/// An opened, validated bundle.
#[derive(Clone, Debug)]
pub struct Bundle {
    dir: PathBuf,
    manifest: Manifest,
    target: &'static Target,
    via: Via,
}

impl Bundle {
    /// Reads and validates `dir/manifest.json` for a runtime that loads code compiled by `via`,
    /// and checks that every entry's object file is there: a bundle of another lowering, or of
    /// another version of this one, is refused. Objects are read (and their SHA-256 checked) by
    /// [`object`](Self::object).
    pub fn open(dir: impl AsRef<Path>, via: Via) -> Result<Bundle, BundleError> {
        let dir = dir.as_ref().to_path_buf();
        let file = dir.join(MANIFEST);
        let text = match crate::input::read(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(BundleError::NotABundle { dir })
            }
            Err(e) => return Err(io("reading", &file)(e)),
        };
        let value: Value = serde_json::from_slice(&text).map_err(|e| BundleError::BadJson {
            file: file.clone(),
            message: e.to_string(),
        })?;
        let manifest = parse_manifest(&value, &file)?;
        let bad = |field: &str, message: String| BundleError::BadField {
            file: file.clone(),
            field: field.to_string(),
            message,
        };
        let target = Target::by_name(&manifest.target).ok_or_else(|| {
            let known: Vec<_> = Target::ALL.iter().map(|t| t.name).collect();
            bad(
                "target",
                format!(
                    "is `{}`, not a known target ({})",
                    manifest.target,
                    known.join(", ")
                ),
            )
        })?;
        if manifest.codegen_version != via.version() {
            let rebuild = rebuild(target.name, via, &dir);
            return Err(match via_of_version(&manifest.codegen_version) {
                Some(built) if built != via => BundleError::OtherVia {
                    file,
                    found: manifest.codegen_version,
                    built,
                    asked: via,
                    rebuild,
                },
                _ => BundleError::CodegenVersion {
                    file,
                    found: manifest.codegen_version,
                    expected: via.version(),
                    rebuild,
                },
            });
        }
        let mut hashes = HashSet::new();
        let mut files = HashSet::new();
        for (i, e) in manifest.entries.iter().enumerate() {
            let field = |name: &str| format!("entries[{i}].{name}");
            if !formats_for(target).contains(&e.format) {
                return Err(bad(
                    &field("format"),
                    format!(
                        "is `{}`, which is not code for {}",
                        extension(e.format),
                        target.name
                    ),
                ));
            }
            if !is_hex64(&e.hash) {
                return Err(bad(
                    &field("hash"),
                    "is not a SHA-256 (64 hex digits)".into(),
                ));
            }
            if !is_hex64(&e.object_sha256) {
                return Err(bad(
                    &field("object_sha256"),
                    "is not a SHA-256 (64 hex digits)".into(),
                ));
            }
            if !hashes.insert(e.hash.as_str()) {
                return Err(bad(
                    &field("hash"),
                    "repeats an earlier entry's hash".into(),
                ));
            }
            // A manifest must not reach outside its directory.
            let plain = Path::new(&e.file).file_name() == Some(std::ffi::OsStr::new(&e.file));
            if !plain || e.file == MANIFEST {
                return Err(bad(
                    &field("file"),
                    format!("is `{}`, not a file name inside the bundle", e.file),
                ));
            }
            if !files.insert(e.file.as_str()) {
                return Err(bad(
                    &field("file"),
                    "repeats an earlier entry's file".into(),
                ));
            }
            let path = dir.join(&e.file);
            if !path.is_file() {
                return Err(BundleError::MissingObject {
                    file: path,
                    what: describe(&e.kernel, &e.config),
                    rebuild: rebuild(target.name, via, &dir),
                });
            }
        }
        Ok(Bundle {
            dir,
            manifest,
            target,
            via,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn target(&self) -> &'static Target {
        self.target
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The lowering that compiled the bundle's objects.
    pub fn via(&self) -> Via {
        self.via
    }

    /// The entry whose IR hash is `kernel`'s for `target`, refusing another target's bundle.
    pub fn entry(&self, kernel: &Kernel, target: &Target) -> Result<&Entry, BundleError> {
        if target.name != self.target.name {
            return Err(BundleError::WrongTarget {
                dir: self.dir.clone(),
                has: self.target.name.to_string(),
                needs: target.name.to_string(),
            });
        }
        let hash = content_hash(kernel, target, self.via);
        if let Some(e) = self.manifest.entries.iter().find(|e| e.hash == hash) {
            return Ok(e);
        }
        let ir_config = kernel.config_string();
        let same = self
            .manifest
            .entries
            .iter()
            .find(|e| e.kernel == kernel.name && e.ir_config == ir_config);
        Err(match same {
            Some(e) => BundleError::Stale {
                dir: self.dir.clone(),
                what: describe(&e.kernel, &e.config),
                rebuild: rebuild(target.name, self.via, &self.dir),
            },
            None => BundleError::Missing {
                dir: self.dir.clone(),
                what: describe(&kernel.name, &ir_config),
                rebuild: rebuild(target.name, self.via, &self.dir),
                configured: !ir_config.is_empty(),
            },
        })
    }

    /// `kernel`'s code object for `target`, read from the bundle and checked against the
    /// manifest's SHA-256.
    pub fn object(&self, kernel: &Kernel, target: &Target) -> Result<CodeObject, BundleError> {
        let e = self.entry(kernel, target)?;
        let path = self.dir.join(&e.file);
        let missing = || BundleError::MissingObject {
            file: path.clone(),
            what: describe(&e.kernel, &e.config),
            rebuild: rebuild(target.name, self.via, &self.dir),
        };
        let bytes = match crate::input::read(&path) {
            Ok(b) => b,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Err(missing()),
            Err(err) => return Err(io("reading", &path)(err)),
        };
        let found = sha256_hex(&bytes);
        if found != e.object_sha256 {
            return Err(BundleError::CorruptObject {
                file: path,
                what: describe(&e.kernel, &e.config),
                rebuild: rebuild(target.name, self.via, &self.dir),
                found,
                expected: e.object_sha256.clone(),
            });
        }
        Ok(CodeObject {
            target: target.name.to_string(),
            format: e.format,
            bytes,
        })
    }
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The manifest from parsed JSON, field by field, so that an error names the exact field
/// (`entries[3].hash`) rather than a line and column.
fn parse_manifest(v: &Value, file: &Path) -> Result<Manifest, BundleError> {
    let bad = |field: String, message: &str| BundleError::BadField {
        file: file.to_path_buf(),
        field,
        message: message.to_string(),
    };
    let obj = v
        .as_object()
        .ok_or_else(|| bad("(top level)".into(), "is not a JSON object"))?;
    let string = |o: &serde_json::Map<String, Value>, key: &str, path: String| match o.get(key) {
        None => Err(bad(path, "is missing")),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(bad(path, "is not a string")),
    };
    let entries_v = match obj.get("entries") {
        None => return Err(bad("entries".into(), "is missing")),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(bad("entries".into(), "is not an array")),
    };
    let mut entries = Vec::with_capacity(entries_v.len());
    for (i, ev) in entries_v.iter().enumerate() {
        let path = |name: &str| format!("entries[{i}].{name}");
        let eo = ev
            .as_object()
            .ok_or_else(|| bad(format!("entries[{i}]"), "is not a JSON object"))?;
        let format = match eo.get("format") {
            None => return Err(bad(path("format"), "is missing")),
            Some(f) => serde_json::from_value::<ObjectFormat>(f.clone())
                .map_err(|_| bad(path("format"), "is not one of hsaco, cubin, ptx"))?,
        };
        let resources = match eo.get("resources") {
            None => return Err(bad(path("resources"), "is missing")),
            Some(r) => serde_json::from_value::<Resources>(r.clone()).map_err(|e| {
                bad(
                    path("resources"),
                    &format!("is not a resource record ({e})"),
                )
            })?,
        };
        entries.push(Entry {
            kernel: string(eo, "kernel", path("kernel"))?,
            config: string(eo, "config", path("config"))?,
            ir_config: string(eo, "ir_config", path("ir_config"))?,
            hash: string(eo, "hash", path("hash"))?,
            file: string(eo, "file", path("file"))?,
            format,
            object_sha256: string(eo, "object_sha256", path("object_sha256"))?,
            resources,
        });
    }
    Ok(Manifest {
        greta_version: string(obj, "greta_version", "greta_version".into())?,
        codegen_version: string(obj, "codegen_version", "codegen_version".into())?,
        target: string(obj, "target", "target".into())?,
        entries,
    })
}

/// Builds a bundle in a temporary directory beside `dest`; [`finish`](Self::finish) renames it
/// into place. Dropping the writer (an error, a panic) removes the temporary directory, so `dest`
/// is always either the old bundle, the new one, or absent — never half of one.
pub struct BundleWriter {
    /// The destination as given (what messages name).
    dest: PathBuf,
    /// Where the bundle goes: `dest`, or the final target of the symbolic link `dest` is.
    place: PathBuf,
    target: &'static Target,
    via: Via,
    // Declared before `_registered`, so removed before it leaves the list of temporaries.
    tmp: tempfile::TempDir,
    _registered: crate::output::Temporary,
    entries: Vec<Entry>,
}

impl fmt::Debug for BundleWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "BundleWriter({} for {} via {}, {} entries)",
            self.dest.display(),
            self.target,
            self.via,
            self.entries.len()
        )
    }
}

impl BundleWriter {
    /// Starts a bundle of objects compiled for `target` by `via` at `dest`. An existing `dest` is replaced only if it is a
    /// bundle (or an empty directory): greta never deletes a directory it did not make. Under
    /// greta's output policy ([`crate::output`]): a symbolic link is followed (the bundle
    /// replaces its target; the link stays), and a file, device or FIFO is refused — all before
    /// anything is compiled.
    pub fn new(
        dest: impl AsRef<Path>,
        target: &'static Target,
        via: Via,
    ) -> Result<BundleWriter, BundleError> {
        let dest = dest.as_ref().to_path_buf();
        let refuse = |message: &str| BundleError::Write {
            dir: dest.clone(),
            message: message.to_string(),
        };
        let resolved = crate::output::directory(&dest)?;
        let place = resolved.target;
        if resolved.existing.is_some() && !place.join(MANIFEST).is_file() {
            let empty = std::fs::read_dir(&place)
                .map_err(io("reading", &place))?
                .next()
                .is_none();
            if !empty {
                return Err(refuse(&format!(
                    "exists and is not a greta bundle (no {MANIFEST}); refusing to replace it"
                )));
            }
        }
        let name = place
            .file_name()
            .ok_or_else(|| refuse("names no directory (it ends in `..` or is a root)"))?;
        let parent = match place.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if parent.exists() && !parent.is_dir() {
            return Err(refuse(&format!(
                "cannot be made: {} is a file, not a directory",
                parent.display()
            )));
        }
        std::fs::create_dir_all(&parent).map_err(io("creating", &parent))?;
        let (tmp, registered) = crate::output::Temporary::register(
            || {
                tempfile::Builder::new()
                    .prefix(&format!(".{}.tmp-", name.to_string_lossy()))
                    .tempdir_in(&parent)
            },
            |t: &tempfile::TempDir| t.path(),
        )
        .map_err(io("creating a temporary directory in", &parent))?;
        Ok(BundleWriter {
            dest,
            place,
            target,
            via,
            tmp,
            _registered: registered,
            entries: Vec::new(),
        })
    }

    /// Adds `kernel`'s `object`, compiled by the bundle's via. `config` is the library configuration it was built at
    /// (`key=value,...`), recorded for people reading the manifest and error messages.
    pub fn add(
        &mut self,
        kernel: &Kernel,
        config: &str,
        object: &CodeObject,
        resources: &Resources,
    ) -> Result<(), BundleError> {
        let refuse = |message: String| BundleError::Write {
            dir: self.dest.clone(),
            message,
        };
        if object.target != self.target.name || !formats_for(self.target).contains(&object.format) {
            return Err(refuse(format!(
                "{} is {} code for {}, but this bundle is for {}",
                describe(&kernel.name, config),
                extension(object.format),
                object.target,
                self.target
            )));
        }
        let hash = content_hash(kernel, self.target, self.via);
        if self.entries.iter().any(|e| e.hash == hash) {
            return Err(refuse(format!(
                "{} was added twice",
                describe(&kernel.name, config)
            )));
        }
        let file = format!(
            "{}-{}.{}",
            kernel.name,
            &hash[..16],
            extension(object.format)
        );
        let path = self.tmp.path().join(&file);
        write_synced(&path, &object.bytes)?;
        self.entries.push(Entry {
            kernel: kernel.name.clone(),
            config: config.to_string(),
            ir_config: kernel.config_string(),
            hash,
            file,
            format: object.format,
            object_sha256: sha256_hex(&object.bytes),
            resources: resources.clone(),
        });
        Ok(())
    }

    /// The lowering the bundle's objects must be compiled by.
    pub fn via(&self) -> Via {
        self.via
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes the manifest and moves the bundle into place, replacing an older bundle there.
    pub fn finish(mut self) -> Result<Bundle, BundleError> {
        self.entries
            .sort_by(|a, b| (&a.kernel, &a.config).cmp(&(&b.kernel, &b.config)));
        let manifest = Manifest {
            greta_version: env!("CARGO_PKG_VERSION").to_string(),
            codegen_version: self.via.version().to_string(),
            target: self.target.name.to_string(),
            entries: std::mem::take(&mut self.entries),
        };
        let json = serde_json::to_vec_pretty(&manifest).expect("the manifest serialises");
        write_synced(&self.tmp.path().join(MANIFEST), &json)?;

        let parent = self
            .tmp
            .path()
            .parent()
            .expect("the temporary directory has a parent")
            .to_path_buf();
        // A rename cannot replace a non-empty directory: move the old bundle into a holder that
        // is deleted on drop, then move the new one in. Between the two renames `dest` is
        // briefly absent, never partial; an interrupt waits for both (the holder is listed with
        // the temporaries, so an interrupt after them removes it).
        let (holder, _registered) = crate::output::Temporary::register(
            || {
                tempfile::Builder::new()
                    .prefix(".greta-old-bundle-")
                    .tempdir_in(&parent)
            },
            |t: &tempfile::TempDir| t.path(),
        )
        .map_err(io("creating a temporary directory in", &parent))?;
        let old = holder.path().join("old");
        crate::output::uninterrupted(|| {
            let had_old = self.place.exists();
            if had_old {
                std::fs::rename(&self.place, &old).map_err(io("moving aside", &self.dest))?;
            }
            if let Err(e) = std::fs::rename(self.tmp.path(), &self.place) {
                if had_old {
                    let _ = std::fs::rename(&old, &self.place);
                }
                return Err(io("moving the new bundle to", &self.dest)(e));
            }
            Ok(())
        })?;
        let _ = self.tmp.keep();
        Ok(Bundle {
            dir: self.dest,
            manifest,
            target: self.target,
            via: self.via,
        })
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), BundleError> {
    use std::io::Write;
    let mut f = std::fs::File::create(path).map_err(io("creating", path))?;
    f.write_all(bytes).map_err(io("writing", path))?;
    f.sync_all().map_err(io("syncing", path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use greta_dsl::ir::{ConfigValue, Scalar};

    fn kernel(name: &str, dtype: Scalar) -> Kernel {
        Kernel {
            name: name.to_string(),
            target: &Target::GFX942,
            config: vec![
                ("T".into(), ConfigValue::Type(dtype)),
                ("block".into(), ConfigValue::U32(256)),
            ],
            params: vec![],
            vars: vec![],
            shared: vec![],
            locals: vec![],
            exprs: vec![],
            body: vec![],
            block_size: Some([256, 1, 1]),
        }
    }

    fn object(target: &Target, bytes: &[u8]) -> CodeObject {
        CodeObject {
            target: target.name.to_string(),
            format: crate::cache::object_format(target),
            bytes: bytes.to_vec(),
        }
    }

    /// A bundle for `target` with `add` at f16 and f32, in `root/b`.
    fn write(root: &Path, target: &'static Target) -> PathBuf {
        write_via(root, target, Via::Hip)
    }

    /// [`write`] with objects compiled by `via`.
    fn write_via(root: &Path, target: &'static Target, via: Via) -> PathBuf {
        let dest = root.join("b");
        let mut w = BundleWriter::new(&dest, target, via).unwrap();
        for (dtype, label) in [(Scalar::F16, "dtype=f16"), (Scalar::F32, "dtype=f32")] {
            let k = kernel("add", dtype);
            w.add(
                &k,
                label,
                &object(target, label.as_bytes()),
                &Resources::default(),
            )
            .unwrap();
        }
        w.finish().unwrap();
        dest
    }

    fn edit_manifest(dir: &Path, f: impl FnOnce(&mut Value)) {
        let path = dir.join(MANIFEST);
        let mut v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        f(&mut v);
        std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    }

    #[test]
    fn round_trip_and_lookup_by_content() {
        let root = tempfile::tempdir().unwrap();
        let dir = write(root.path(), &Target::SM_90);
        let b = Bundle::open(&dir, Via::Hip).unwrap();
        assert_eq!(b.manifest().entries.len(), 2);
        let o = b
            .object(&kernel("add", Scalar::F32), &Target::SM_90)
            .unwrap();
        assert_eq!(o.format, ObjectFormat::Cubin);
        assert_eq!(o.bytes, b"dtype=f32");

        let e = b
            .object(&kernel("add", Scalar::BF16), &Target::SM_90)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no entry for add [T=bf16,block=256]"), "{e}");
        assert!(e.contains("greta build --target sm_90 -o"), "{e}");

        let e = b
            .object(&kernel("add", Scalar::F32), &Target::GFX942)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("holds sm_90 code; this device needs gfx942"),
            "{e}"
        );
        // Nothing but the bundle is left beside it.
        let names: Vec<_> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["b"]);
    }

    #[test]
    fn tampered_hash_is_stale() {
        let root = tempfile::tempdir().unwrap();
        let dir = write(root.path(), &Target::GFX942);
        edit_manifest(&dir, |v| {
            v["entries"][0]["hash"] = Value::from("0".repeat(64))
        });
        let b = Bundle::open(&dir, Via::Hip).unwrap();
        let e = b
            .object(&kernel("add", Scalar::F16), &Target::GFX942)
            .unwrap_err();
        assert!(matches!(e, BundleError::Stale { .. }), "{e}");
        let e = e.to_string();
        assert!(e.contains("add [dtype=f16]") && e.contains("stale"), "{e}");
    }

    #[test]
    fn bad_manifests_name_file_and_field() {
        let root = tempfile::tempdir().unwrap();
        let dir = write(root.path(), &Target::GFX942);
        let manifest = dir.join(MANIFEST).display().to_string();
        let good = std::fs::read(dir.join(MANIFEST)).unwrap();
        let reset = || std::fs::write(dir.join(MANIFEST), &good).unwrap();

        std::fs::write(dir.join(MANIFEST), b"{\"entries\": [").unwrap();
        let e = Bundle::open(&dir, Via::Hip).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{manifest}: not valid JSON")), "{e}");

        reset();
        edit_manifest(&dir, |v| {
            v["entries"][1].as_object_mut().unwrap().remove("hash");
        });
        let e = Bundle::open(&dir, Via::Hip).unwrap_err().to_string();
        assert_eq!(e, format!("{manifest}: `entries[1].hash` is missing"));

        reset();
        edit_manifest(&dir, |v| v["entries"][0]["format"] = Value::from("cubin"));
        let e = Bundle::open(&dir, Via::Hip).unwrap_err().to_string();
        assert!(
            e.contains("`entries[0].format` is `cubin`, which is not code for gfx942"),
            "{e}"
        );

        reset();
        edit_manifest(&dir, |v| {
            v["entries"][0]["file"] = Value::from("../x.hsaco")
        });
        let e = Bundle::open(&dir, Via::Hip).unwrap_err().to_string();
        assert!(e.contains("`entries[0].file`"), "{e}");

        reset();
        edit_manifest(&dir, |v| v["codegen_version"] = Value::from("hip-0"));
        let e = Bundle::open(&dir, Via::Hip).unwrap_err().to_string();
        assert!(
            e.contains("codegen_version is `hip-0` but this greta generates"),
            "{e}"
        );

        reset();
        let file = Bundle::open(&dir, Via::Hip).unwrap().manifest().entries[0]
            .file
            .clone();
        std::fs::remove_file(dir.join(&file)).unwrap();
        let e = Bundle::open(&dir, Via::Hip).unwrap_err().to_string();
        assert!(
            e.contains(&file) && e.contains("the object file of add [dtype=f16] is missing"),
            "{e}"
        );

        let e = Bundle::open(root.path(), Via::Hip).unwrap_err().to_string();
        assert!(e.contains("is not a greta bundle"), "{e}");
    }

    #[test]
    fn truncated_object_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let dir = write(root.path(), &Target::SM_90);
        let b = Bundle::open(&dir, Via::Hip).unwrap();
        let file = &b.manifest().entries[1].file;
        std::fs::write(dir.join(file), b"dt").unwrap();
        let e = b
            .object(&kernel("add", Scalar::F32), &Target::SM_90)
            .unwrap_err();
        assert!(matches!(e, BundleError::CorruptObject { .. }), "{e}");
    }

    #[test]
    fn writer_replaces_bundles_only_and_never_leaves_halves() {
        let root = tempfile::tempdir().unwrap();
        // Replacing an existing bundle works.
        write(root.path(), &Target::SM_90);
        let dir = write(root.path(), &Target::SM_90);
        Bundle::open(&dir, Via::Hip).unwrap();

        // A directory that is not a bundle is never replaced.
        let other = root.path().join("docs");
        std::fs::create_dir(&other).unwrap();
        std::fs::write(other.join("notes.txt"), b"mine").unwrap();
        let e = BundleWriter::new(&other, &Target::SM_90, Via::Hip).unwrap_err();
        assert!(e.to_string().contains("is not a greta bundle"), "{e}");
        assert!(other.join("notes.txt").exists());

        // A parent that is a file: a clear error and nothing created.
        let file = root.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        assert!(BundleWriter::new(file.join("b"), &Target::SM_90, Via::Hip).is_err());

        // A writer dropped half way (a failed build) leaves nothing.
        {
            let mut w =
                BundleWriter::new(root.path().join("half"), &Target::SM_90, Via::Hip).unwrap();
            let k = kernel("add", Scalar::F16);
            w.add(&k, "", &object(&Target::SM_90, b"x"), &Resources::default())
                .unwrap();
            // Wrong target for the bundle: refused.
            let err = w
                .add(
                    &k,
                    "",
                    &object(&Target::GFX942, b"x"),
                    &Resources::default(),
                )
                .unwrap_err();
            assert!(
                err.to_string().contains("this bundle is for sm_90"),
                "{err}"
            );
        }
        let mut names: Vec<_> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["b", "docs", "file"]);
    }

    /// Through a symbolic link the bundle replaces the link's target and the link stays; a
    /// device or a file at the destination is refused before anything is made.
    #[cfg(unix)]
    #[test]
    fn writer_writes_through_links_and_refuses_what_is_not_a_directory() {
        let root = tempfile::tempdir().unwrap();
        let real = write(root.path(), &Target::SM_90);
        let link = root.path().join("link");
        std::os::unix::fs::symlink("b", &link).unwrap();
        let mut w = BundleWriter::new(&link, &Target::SM_90, Via::Hip).unwrap();
        let k = kernel("add", Scalar::F16);
        w.add(
            &k,
            "new",
            &object(&Target::SM_90, b"new"),
            &Resources::default(),
        )
        .unwrap();
        let bundle = w.finish().unwrap();
        assert_eq!(bundle.dir(), link.as_path());
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(
            Bundle::open(&real, Via::Hip)
                .unwrap()
                .manifest
                .entries
                .len(),
            1
        );
        for (dest, what) in [
            (
                PathBuf::from("/dev/null"),
                "is a character device, not a directory",
            ),
            (real.join(MANIFEST), "is a regular file, not a directory"),
        ] {
            let e = BundleWriter::new(&dest, &Target::SM_90, Via::Hip).unwrap_err();
            assert!(e.to_string().contains(what), "{e}");
        }
        let mut names: Vec<_> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["b", "link"]);
    }

    #[test]
    fn a_bundle_loads_only_for_the_via_it_was_built_by() {
        let root = tempfile::tempdir().unwrap();
        let dir = write_via(root.path(), &Target::SM_90, Via::Llvm);
        let manifest: Value =
            serde_json::from_slice(&std::fs::read(dir.join(MANIFEST)).unwrap()).unwrap();
        assert_eq!(manifest["codegen_version"], "llvm-1");

        let b = Bundle::open(&dir, Via::Llvm).unwrap();
        assert_eq!(b.via(), Via::Llvm);
        let k = kernel("add", Scalar::F32);
        assert_eq!(b.object(&k, &Target::SM_90).unwrap().bytes, b"dtype=f32");
        // The llvm entry is keyed by the llvm hash, not the HIP one.
        assert_eq!(
            b.entry(&k, &Target::SM_90).unwrap().hash,
            content_hash(&k, &Target::SM_90, Via::Llvm)
        );
        assert_ne!(
            content_hash(&k, &Target::SM_90, Via::Llvm),
            content_hash(&k, &Target::SM_90, Via::Hip)
        );

        let e = Bundle::open(&dir, Via::Hip).unwrap_err();
        assert!(matches!(e, BundleError::OtherVia { .. }), "{e}");
        let e = e.to_string();
        assert!(
            e.contains("built --via llvm") && e.contains("asks for --via hip"),
            "{e}"
        );
        assert!(e.contains("run with `--via llvm`"), "{e}");

        // And the other way round: a HIP bundle for an llvm run.
        let dir = write(root.path(), &Target::GFX942);
        let e = Bundle::open(&dir, Via::Llvm).unwrap_err().to_string();
        assert!(
            e.contains("built --via hip") && e.contains("asks for --via llvm"),
            "{e}"
        );
        assert!(e.contains(" --via llvm`"), "the rebuild command: {e}");
    }
}
