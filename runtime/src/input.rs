//! Files greta reads where a user points it — a model (`-m`), a prompts file (`--prompts`), a
//! bundle's manifest and objects (`--bundle`), compile-cache entries (`GRETA_CACHE_DIR`) — must
//! be regular files (symbolic links to one are fine). Anything else is refused with an error
//! saying what it is: opening a FIFO blocks until a writer comes (forever, if none does), a
//! device can read forever, a directory fails obscurely.
//!
//! The path is looked at before it is opened, and the file is opened non-blocking and looked
//! at again, so a FIFO swapped in between cannot block either. The errors are `io::Error`s
//! (kind `InvalidInput`), so callers report them as they report any other read error.

use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::path::Path;

/// The error for a path that is not a regular file: "is a FIFO (named pipe), not a regular
/// file; greta reads only regular files".
#[derive(Debug)]
pub struct NotRegular(pub &'static str);

impl std::fmt::Display for NotRegular {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "is {}, not a regular file; greta reads only regular files",
            self.0
        )
    }
}

impl std::error::Error for NotRegular {}

fn regular(m: &Metadata) -> io::Result<()> {
    if m.is_file() {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            NotRegular(crate::output::describe(m)),
        ))
    }
}

/// Checks that `path` is a regular file (through symbolic links), without opening it.
pub fn check(path: &Path) -> io::Result<Metadata> {
    let m = std::fs::metadata(path)?;
    regular(&m)?;
    Ok(m)
}

/// Opens `path` for reading if it is a regular file.
pub fn open(path: &Path) -> io::Result<File> {
    check(path)?;
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        // Never blocks on a FIFO put there since `check`; no effect on a regular file.
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    regular(&file.metadata()?)?;
    Ok(file)
}

/// The bytes of `path`, if it is a regular file.
pub fn read(path: &Path) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    open(path)?.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The text of `path` (UTF-8), if it is a regular file.
pub fn read_to_string(path: &Path) -> io::Result<String> {
    let mut text = String::new();
    open(path)?.read_to_string(&mut text)?;
    Ok(text)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn refused(path: &Path, what: &str) {
        let t0 = std::time::Instant::now();
        for e in [
            open(path).map(drop).unwrap_err(),
            read(path).map(drop).unwrap_err(),
            read_to_string(path).map(drop).unwrap_err(),
        ] {
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
            assert_eq!(
                e.to_string(),
                format!("is {what}, not a regular file; greta reads only regular files")
            );
        }
        assert!(t0.elapsed().as_secs() < 2, "refused at once");
    }

    #[test]
    fn fifos_devices_and_directories_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        refused(&fifo, "a FIFO (named pipe)");
        std::os::unix::fs::symlink(&fifo, dir.path().join("link")).unwrap();
        refused(&dir.path().join("link"), "a FIFO (named pipe)");
        refused(Path::new("/dev/zero"), "a character device");
        refused(dir.path(), "a directory");
    }

    #[test]
    fn regular_files_and_links_to_them_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "text").unwrap();
        std::os::unix::fs::symlink("f", dir.path().join("link")).unwrap();
        assert_eq!(read(&file).unwrap(), b"text");
        assert_eq!(read_to_string(&dir.path().join("link")).unwrap(), "text");
        let e = read(&dir.path().join("missing")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}
