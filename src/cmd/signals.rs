//! Interrupts: SIGINT (Ctrl-C), SIGTERM and SIGHUP remove the temporary files and directories
//! of the writes in progress ([`greta_runtime::output::remove_temporaries`]) — a `greta model
//! synth` stopped half way leaves no partial `.NAME.*.greta-tmp` beside its output, a `greta
//! build` no `.DIR.tmp-*` directory — and then end the process as the signal would have (a
//! shell sees status 128 + the signal).
//!
//! A signal that was ignored when greta started (`nohup greta ...` ignores SIGHUP; a script's
//! `greta ... &` ignores SIGINT) stays ignored.

/// Starts a thread that waits for the signals; without it (or if it cannot start) greta dies
/// of them as before, leaving its temporaries.
#[cfg(unix)]
pub fn install() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let wanted: Vec<i32> = [SIGINT, SIGTERM, SIGHUP]
        .into_iter()
        .filter(|&s| !ignored(s))
        .collect();
    let Ok(mut signals) = signal_hook::iterator::Signals::new(&wanted) else {
        return;
    };
    let _ = std::thread::Builder::new()
        .name("greta-signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                greta_runtime::output::remove_temporaries();
                let _ = signal_hook::low_level::emulate_default_handler(signal);
                std::process::exit(128 + signal);
            }
        });
}

#[cfg(not(unix))]
pub fn install() {}

/// Whether `signal`'s disposition is "ignore".
#[cfg(unix)]
fn ignored(signal: i32) -> bool {
    // SAFETY: a null new action only reads the current one into `old`.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(signal, std::ptr::null(), &mut old) == 0
            && old.sa_sigaction == libc::SIG_IGN
    }
}
