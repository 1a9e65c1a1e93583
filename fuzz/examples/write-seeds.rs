//! Writes the seed corpora of every fuzz target (see `greta_fuzz::seeds`) into `DIR/<target>/`
//! (default `corpus/` beside this crate's manifest): `cargo run --release --example write-seeds`.
//! Existing files of the same names are overwritten; other corpus entries are left alone.

fn main() {
    let dir = std::env::args_os().nth(1).map_or_else(
        || std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/corpus")),
        std::path::PathBuf::from,
    );
    match greta_fuzz::seeds::write_all(&dir) {
        Ok(n) => eprintln!("write-seeds: {n} seeds under {}", dir.display()),
        Err(e) => {
            eprintln!("write-seeds: {}: {e}", dir.display());
            std::process::exit(1);
        }
    }
}
