//! The one policy for the files greta writes where a user points it — `greta emit -o`,
//! `greta model synth -o`, `greta verify --report`, `greta generate`, and (as a directory)
//! `greta build -o`:
//!
//! - **Only regular files.** A destination that exists and is not a regular file — a device
//!   (`/dev/full`), a FIFO, a directory, a socket — is refused with an error naming it and what
//!   it is, *before* the command does any work ([`OutputFile::create`] is called first). greta
//!   never replaces such a node (as root, a rename would turn `/dev/full` into a regular file)
//!   and never streams gigabytes into a temporary file inside `/dev`.
//! - **Symbolic links are written through.** The file written is the link's final target (a
//!   chain of links is followed; a dangling link creates its target); the link stays a link.
//!   That is what `>` in a shell does, and what a user who links `model.gguf` to a big disk
//!   means.
//! - **An existing file keeps its permission bits** (set-id and sticky bits are not carried
//!   over) **and, where permitted, its owner and group.** A new file gets 0666 less the umask,
//!   as with any program that creates a file.
//! - **Atomic.** The data goes to a temporary file in the target's directory (so the rename
//!   cannot cross file systems), which is renamed over the target only when complete and synced:
//!   readers — including a `greta run` that has the old model memory-mapped — see the old file
//!   or the new one, never half of one. An error or a drop deletes the temporary file; on
//!   SIGINT, SIGTERM or SIGHUP the CLI calls [`remove_temporaries`]. A target with several hard
//!   links is replaced by a new file at this name (the other names keep the old contents).
//!
//! Missing parent directories are created. [`directory`] applies the same rules to a
//! destination that is a directory as a whole (a code-object bundle).

use std::fs::{File, Metadata};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Symbolic links followed at most (Linux's own limit).
const MAX_LINKS: usize = 40;

/// Why greta will not, or could not, write a destination.
#[derive(Debug, thiserror::Error)]
#[error("{}: {kind}", path.display())]
pub struct OutputError {
    /// The path as the user gave it.
    pub path: PathBuf,
    pub kind: OutputErrorKind,
}

#[derive(Debug, thiserror::Error)]
pub enum OutputErrorKind {
    #[error(
        "{}is {what}, not a regular file; greta writes only regular files and will not replace it",
        via(linked)
    )]
    NotRegular {
        what: &'static str,
        /// The link's final target, when the path is a symbolic link.
        linked: Option<PathBuf>,
    },
    #[error("{}is {what}, not a directory; greta will not replace it", via(linked))]
    NotDirectory {
        what: &'static str,
        linked: Option<PathBuf>,
    },
    #[error("names no file (it ends in `..`, `/` or is empty)")]
    NoFileName,
    #[error("more than {MAX_LINKS} symbolic links to follow (a loop?)")]
    LinkLoop,
    #[error("{op}: {source}")]
    Io { op: &'static str, source: io::Error },
}

fn via(linked: &Option<PathBuf>) -> String {
    match linked {
        Some(t) => format!("links to {}, which ", t.display()),
        None => String::new(),
    }
}

/// What a file system node is, for errors: "a directory", "a character device", ...
pub fn describe(m: &Metadata) -> &'static str {
    let t = m.file_type();
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_dir() {
        "a directory"
    } else if t.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}

/// Where a path leads: its final target after symbolic links, and that target's metadata if
/// it exists.
#[derive(Debug)]
pub struct Destination {
    /// The path as the user gave it (what errors name).
    pub path: PathBuf,
    /// The file to write: `path`, or the final target of the link `path` is.
    pub target: PathBuf,
    /// The target's metadata, if it exists (never a link's).
    pub existing: Option<Metadata>,
}

impl Destination {
    /// Follows `path` through symbolic links to the node it names (which may not exist yet).
    pub fn resolve(path: &Path) -> Result<Destination, OutputError> {
        let fail = |kind| OutputError {
            path: path.to_path_buf(),
            kind,
        };
        let mut target = path.to_path_buf();
        for _ in 0..=MAX_LINKS {
            match std::fs::symlink_metadata(&target) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Ok(Destination {
                        path: path.to_path_buf(),
                        target,
                        existing: None,
                    })
                }
                Err(source) => {
                    return Err(fail(OutputErrorKind::Io {
                        op: "looking at it",
                        source,
                    }))
                }
                Ok(m) if m.file_type().is_symlink() => {
                    let link = std::fs::read_link(&target).map_err(|source| {
                        fail(OutputErrorKind::Io {
                            op: "reading the symbolic link",
                            source,
                        })
                    })?;
                    target = match target.parent() {
                        Some(dir) if link.is_relative() => dir.join(link),
                        _ => link,
                    };
                }
                Ok(m) => {
                    return Ok(Destination {
                        path: path.to_path_buf(),
                        target,
                        existing: Some(m),
                    })
                }
            }
        }
        Err(fail(OutputErrorKind::LinkLoop))
    }

    /// The link's final target, for errors; `None` when the path is not a link.
    fn linked(&self) -> Option<PathBuf> {
        (self.target != self.path).then(|| self.target.clone())
    }

    fn error(&self, kind: OutputErrorKind) -> OutputError {
        OutputError {
            path: self.path.clone(),
            kind,
        }
    }

    /// The target's directory (`.` for a bare file name), created if missing.
    fn make_parent(&self) -> Result<PathBuf, OutputError> {
        let dir = match self.target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir).map_err(|source| {
            self.error(OutputErrorKind::Io {
                op: "creating its directory",
                source,
            })
        })?;
        Ok(dir)
    }
}

/// Checks that `path` may be written as a regular file (see the module docs), without writing
/// anything.
pub fn check_file(path: &Path) -> Result<Destination, OutputError> {
    let dest = Destination::resolve(path)?;
    if let Some(m) = &dest.existing {
        if !m.is_file() {
            return Err(dest.error(OutputErrorKind::NotRegular {
                what: describe(m),
                linked: dest.linked(),
            }));
        }
    }
    match dest.target.file_name() {
        Some(_) => Ok(dest),
        None => Err(dest.error(OutputErrorKind::NoFileName)),
    }
}

/// Checks that `path` may be written as a directory greta replaces as a whole (a bundle): it
/// does not exist, or is a directory, through symbolic links. Returns where it leads; whether
/// an existing directory may be replaced is the caller's rule.
pub fn directory(path: &Path) -> Result<Destination, OutputError> {
    let dest = Destination::resolve(path)?;
    if let Some(m) = &dest.existing {
        if !m.is_dir() {
            return Err(dest.error(OutputErrorKind::NotDirectory {
                what: describe(m),
                linked: dest.linked(),
            }));
        }
    }
    match dest.target.file_name() {
        Some(_) => Ok(dest),
        None => Err(dest.error(OutputErrorKind::NoFileName)),
    }
}

/// A file being written: a temporary file beside the target that [`commit`](Self::commit)
/// renames over it. Dropped before, it is deleted.
#[derive(Debug)]
pub struct OutputFile {
    // Declared before `_registered`, so dropped (deleted) before it leaves the registry.
    tmp: tempfile::NamedTempFile,
    _registered: Temporary,
    dest: Destination,
}

impl OutputFile {
    /// Checks `path` (see the module docs) and opens a temporary file beside its target. Call it
    /// before the work whose result it will hold, so that a destination greta refuses costs
    /// nothing.
    pub fn create(path: &Path) -> Result<OutputFile, OutputError> {
        let dest = check_file(path)?;
        let dir = dest.make_parent()?;
        let name = dest
            .target
            .file_name()
            .expect("check_file: a file name")
            .to_string_lossy()
            .into_owned();
        let prefix = format!(".{name}.");
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(".greta-tmp");
        // Created with 0666 less the umask, as any new file; an existing file's bits are set
        // below (not subject to the umask).
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
        let (tmp, registered) = Temporary::register(
            || builder.tempfile_in(&dir),
            |t: &tempfile::NamedTempFile| t.path(),
        )
        .map_err(|e| {
            dest.error(OutputErrorKind::Io {
                op: "creating a temporary file beside it",
                source: without_temporary_name(e),
            })
        })?;
        if let Some(m) = &dest.existing {
            keep_mode_and_owner(tmp.as_file(), m).map_err(|source| {
                dest.error(OutputErrorKind::Io {
                    op: "giving the new file the old one's permissions",
                    source,
                })
            })?;
        }
        Ok(OutputFile {
            tmp,
            _registered: registered,
            dest,
        })
    }

    /// The path as the user gave it.
    pub fn path(&self) -> &Path {
        &self.dest.path
    }

    /// Where the file goes (the final target of a symbolic link).
    pub fn target(&self) -> &Path {
        &self.dest.target
    }

    /// Syncs the data and renames the temporary file over the target.
    pub fn commit(self) -> Result<(), OutputError> {
        let fail = |op, source| self.dest.error(OutputErrorKind::Io { op, source });
        self.tmp
            .as_file()
            .sync_all()
            .map_err(|e| fail("syncing", e))?;
        // An interrupt either removes the temporary file before the rename or finds it gone
        // after, never races it.
        let target = &self.dest.target;
        let tmp = self.tmp;
        uninterrupted(|| tmp.persist(target).map(drop))
            .map_err(|e| fail("renaming the temporary file over it", e.error))
    }
}

impl Seek for OutputFile {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.tmp.seek(pos)
    }
}

impl Write for OutputFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tmp.write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.tmp.write_all(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.tmp.flush()
    }
}

/// `e` without the temporary file's (random) name that `tempfile` appends (`… at path "…"`,
/// keeping the OS error only in its message): the error names the destination already.
fn without_temporary_name(e: io::Error) -> io::Error {
    let text = e.to_string();
    match text.find(" at path \"") {
        Some(at) => io::Error::new(e.kind(), &text[..at]),
        None => e,
    }
}

/// Writes `bytes` to `path` under the policy of the module docs.
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    let mut f = OutputFile::create(path)?;
    f.write_all(bytes).map_err(|source| OutputError {
        path: path.to_path_buf(),
        kind: OutputErrorKind::Io {
            op: "writing",
            source,
        },
    })?;
    f.commit()
}

#[cfg(unix)]
fn keep_mode_and_owner(file: &File, old: &Metadata) -> io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let new = file.metadata()?;
    if (new.uid(), new.gid()) != (old.uid(), old.gid()) {
        // Only root, or an owner changing to a group it is in, may: best effort.
        let _ = std::os::unix::fs::fchown(file, Some(old.uid()), Some(old.gid()));
    }
    // After chown, which may clear set-id bits (we carry none anyway).
    file.set_permissions(std::fs::Permissions::from_mode(old.mode() & 0o777))
}

#[cfg(not(unix))]
fn keep_mode_and_owner(file: &File, old: &Metadata) -> io::Result<()> {
    file.set_permissions(old.permissions())
}

/// Temporary files and directories of writes in progress, removed by [`remove_temporaries`].
static TEMPORARIES: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn registry() -> MutexGuard<'static, Vec<PathBuf>> {
    TEMPORARIES.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A temporary file or directory of a write in progress: listed for [`remove_temporaries`]
/// until dropped. (Dropping it does not delete anything; its owner does.)
#[derive(Debug)]
pub struct Temporary {
    path: PathBuf,
}

impl Temporary {
    /// Makes a temporary (`make`) and lists it (its path: `path_of`), under one lock, so that
    /// an interrupt never misses one that exists.
    pub fn register<T>(
        make: impl FnOnce() -> io::Result<T>,
        path_of: impl Fn(&T) -> &Path,
    ) -> io::Result<(T, Temporary)> {
        let mut list = registry();
        let made = make()?;
        let path = path_of(&made).to_path_buf();
        list.push(path.clone());
        Ok((made, Temporary { path }))
    }
}

impl Drop for Temporary {
    fn drop(&mut self) {
        let mut list = registry();
        if let Some(i) = list.iter().position(|p| *p == self.path) {
            list.swap_remove(i);
        }
    }
}

/// Runs `f` (a rename that puts a write in place) with [`remove_temporaries`] held off until it
/// returns. `f` must not make temporaries itself.
pub fn uninterrupted<T>(f: impl FnOnce() -> T) -> T {
    let _list = registry();
    f()
}

/// Removes every temporary file and directory of the writes in progress, for a process about
/// to die of a signal. It keeps the list locked afterwards (the guard is leaked), so that no
/// write in progress can create another temporary or rename one into place: call it only just
/// before the process ends.
pub fn remove_temporaries() {
    let list = registry();
    for path in list.iter() {
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => drop(std::fs::remove_dir_all(path)),
            Ok(_) => drop(std::fs::remove_file(path)),
            Err(_) => {}
        }
    }
    std::mem::forget(list);
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn writes_a_new_file_and_leaves_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("out.txt");
        write(&path, b"hello").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"hello");
        assert_eq!(names(&dir.path().join("sub")), ["out.txt"]);
        // 0666 less the umask: at least readable by its owner, never executable.
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o600, 0o600, "{mode:o}");
        assert_eq!(mode & 0o111, 0, "{mode:o}");
    }

    #[test]
    fn an_existing_file_keeps_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o644, 0o640, 0o755, 0o600] {
            let path = dir.path().join(format!("f{mode:o}"));
            std::fs::write(&path, b"old").unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            write(&path, b"new").unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), b"new");
            let got = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(got, mode, "{got:o} vs {mode:o}");
        }
    }

    #[test]
    fn a_symlink_is_written_through_and_stays_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::write(&real, b"old").unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o644)).unwrap();
        // A relative link, through a second link.
        symlink("real", dir.path().join("one")).unwrap();
        symlink(dir.path().join("one"), dir.path().join("two")).unwrap();
        write(&dir.path().join("two"), b"new").unwrap();
        assert_eq!(std::fs::read(&real).unwrap(), b"new");
        for link in ["one", "two"] {
            let m = std::fs::symlink_metadata(dir.path().join(link)).unwrap();
            assert!(m.file_type().is_symlink(), "{link}");
        }
        let mode = std::fs::metadata(&real).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        // A dangling link creates its target.
        symlink("made", dir.path().join("dangling")).unwrap();
        write(&dir.path().join("dangling"), b"x").unwrap();
        assert_eq!(std::fs::read(dir.path().join("made")).unwrap(), b"x");
        assert_eq!(
            names(dir.path()),
            ["dangling", "made", "one", "real", "two"]
        );
    }

    #[test]
    fn what_is_not_a_regular_file_is_refused_before_anything_is_made() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let e = OutputFile::create(&sub).unwrap_err().to_string();
        assert!(e.contains("sub: is a directory, not a regular file"), "{e}");
        assert_eq!(names(&sub), Vec::<String>::new());
        let e = OutputFile::create(Path::new("/dev/null"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/dev/null: is a character device, not a regular file"),
            "{e}"
        );
        symlink("/dev/null", dir.path().join("null")).unwrap();
        let e = OutputFile::create(&dir.path().join("null"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("null: links to /dev/null, which is a character device"),
            "{e}"
        );
        symlink("loop", dir.path().join("loop")).unwrap();
        let e = OutputFile::create(&dir.path().join("loop"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("symbolic links"), "{e}");
        let e = OutputFile::create(Path::new("")).unwrap_err().to_string();
        assert!(e.contains("names no file"), "{e}");
        assert_eq!(names(dir.path()), ["loop", "null", "sub"]);
    }

    #[test]
    fn a_dropped_file_leaves_nothing_and_the_old_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"old").unwrap();
        let mut f = OutputFile::create(&path).unwrap();
        f.write_all(b"half").unwrap();
        assert_eq!(
            names(dir.path()).len(),
            2,
            "the temporary file is beside it"
        );
        let listed = || registry().iter().any(|p| p.starts_with(dir.path()));
        assert!(listed());
        drop(f);
        assert_eq!(names(dir.path()), ["f"]);
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert!(!listed());
    }

    #[test]
    fn directories_follow_links_and_refuse_files_and_devices() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("bundle");
        std::fs::create_dir(&real).unwrap();
        symlink("bundle", dir.path().join("link")).unwrap();
        let d = directory(&dir.path().join("link")).unwrap();
        assert_eq!(d.target, real);
        let file = dir.path().join("file");
        std::fs::write(&file, b"").unwrap();
        let e = directory(&file).unwrap_err().to_string();
        assert!(e.contains("is a regular file, not a directory"), "{e}");
        let e = directory(Path::new("/dev/null")).unwrap_err().to_string();
        assert!(e.contains("is a character device, not a directory"), "{e}");
    }
}
