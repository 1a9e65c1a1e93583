//! A per-kernel time profile of the forward passes (`greta run --profile`): every launch is
//! bracketed by device events, so each kernel's time is the device's, not the host's launch
//! latency. Timing each launch separately serialises the stream (a launch cannot overlap the
//! tail of the one before it), so a profiled run is slower than an unprofiled one: the profile
//! says where the time goes, the unprofiled run how much there is.

use std::collections::HashMap;

/// Which kind of forward pass a launch belonged to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    /// A pass over more than one token (the prompt).
    Prefill,
    /// A pass over one token.
    Decode,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::Prefill => "prefill",
            Phase::Decode => "decode",
        })
    }
}

/// One kernel configuration's launches in one phase.
#[derive(Clone, Debug, PartialEq)]
pub struct ProfileRow {
    pub phase: Phase,
    /// The kernel and its configuration, as `name [params]`.
    pub kernel: String,
    pub launches: u64,
    pub total_ms: f64,
}

/// Launch times collected so far.
#[derive(Default, Debug)]
pub struct Profile {
    rows: HashMap<(Phase, String), (u64, f64)>,
}

impl Profile {
    pub fn record(&mut self, phase: Phase, kernel: &str, ms: f64) {
        let e = self
            .rows
            .entry((phase, kernel.to_string()))
            .or_insert((0, 0.0));
        e.0 += 1;
        e.1 += ms;
    }

    /// The rows by phase, then by time spent, most first.
    pub fn rows(&self) -> Vec<ProfileRow> {
        let mut rows: Vec<ProfileRow> = self
            .rows
            .iter()
            .map(|((phase, kernel), &(launches, total_ms))| ProfileRow {
                phase: *phase,
                kernel: kernel.clone(),
                launches,
                total_ms,
            })
            .collect();
        rows.sort_by(|a, b| {
            a.phase
                .cmp(&b.phase)
                .then(b.total_ms.total_cmp(&a.total_ms))
                .then(a.kernel.cmp(&b.kernel))
        });
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_sum_launches_and_sort_by_phase_then_time() {
        let mut p = Profile::default();
        p.record(Phase::Decode, "gemv [a]", 1.0);
        p.record(Phase::Prefill, "add [b]", 0.5);
        p.record(Phase::Prefill, "gemm_wg [c]", 2.0);
        p.record(Phase::Prefill, "add [b]", 0.25);
        let rows = p.rows();
        let got: Vec<(Phase, &str, u64, f64)> = rows
            .iter()
            .map(|r| (r.phase, r.kernel.as_str(), r.launches, r.total_ms))
            .collect();
        assert_eq!(
            got,
            vec![
                (Phase::Prefill, "gemm_wg [c]", 1, 2.0),
                (Phase::Prefill, "add [b]", 2, 0.75),
                (Phase::Decode, "gemv [a]", 1, 1.0),
            ]
        );
    }
}
