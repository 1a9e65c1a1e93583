//! Can a code object built for `sm_XY` run on a device of compute capability `M.N`?
//!
//! Checked before `cuModuleLoadData`, because the driver's own answer
//! (`CUDA_ERROR_NO_BINARY_FOR_GPU`) does not say which side is wrong. NVIDIA's rules:
//! - a cubin for `sm_XY` runs on devices of the same major version `X` and minor `>= Y`;
//! - PTX for `sm_XY` is JIT-compiled by the driver for any device of capability `>= X.Y`;
//! - arch-specific targets (`sm_90a`) run only on exactly that capability; family-specific ones
//!   (`sm_100f`, CUDA 12.9) on the same major version, minor `>= Y`, cubin or PTX.

use crate::backend::ObjectFormat;

/// A parsed `sm_XY[a|f]` target name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SmArch {
    pub major: u32,
    pub minor: u32,
    pub suffix: Option<char>,
}

impl SmArch {
    /// `sm_90` → 9.0, `sm_90a` → 9.0 arch-specific, `sm_100f` → 10.0 family, `sm_120` → 12.0.
    pub(crate) fn parse(name: &str) -> Option<SmArch> {
        let rest = name.strip_prefix("sm_")?;
        let (digits, suffix) = match rest.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
            Some((i, c)) if i + c.len_utf8() == rest.len() && (c == 'a' || c == 'f') => {
                (&rest[..i], Some(c))
            }
            Some(_) => return None,
            None => (rest, None),
        };
        if digits.len() < 2 || digits.starts_with('0') {
            return None;
        }
        let n: u32 = digits.parse().ok()?;
        Some(SmArch {
            major: n / 10,
            minor: n % 10,
            suffix,
        })
    }
}

/// `Ok` when an object of `format` built for `target` runs on a device of capability
/// `(major, minor)`; otherwise why not, as a sentence.
pub(crate) fn check(target: &str, format: ObjectFormat, device: (u32, u32)) -> Result<(), String> {
    let (dmaj, dmin) = device;
    let dev = format!("compute capability {dmaj}.{dmin}, sm_{dmaj}{dmin}");
    let what = match format {
        ObjectFormat::Cubin => "cubin",
        ObjectFormat::Ptx => "PTX",
        ObjectFormat::Hsaco => {
            return Err(format!(
                "is an AMD code object (hsaco for {target}); the CUDA backend loads cubin or PTX"
            ))
        }
    };
    let Some(sm) = SmArch::parse(target) else {
        return Err(format!(
            "targets `{target}`, which is not an NVIDIA architecture (sm_XY); this GPU is {dev}"
        ));
    };
    let ok = match (format, sm.suffix) {
        (_, Some('a')) => (dmaj, dmin) == (sm.major, sm.minor),
        (_, Some(_)) | (ObjectFormat::Cubin, None) => dmaj == sm.major && dmin >= sm.minor,
        (_, None) => (dmaj, dmin) >= (sm.major, sm.minor),
    };
    if ok {
        return Ok(());
    }
    let rule = match (format, sm.suffix) {
        (_, Some('a')) => "arch-specific code runs only on exactly that architecture",
        (_, Some(_)) | (ObjectFormat::Cubin, None) => {
            "it runs only on the same major architecture at the same or a newer minor version"
        }
        (_, None) => "PTX runs on that architecture or newer",
    };
    Err(format!(
        "is {what} for {target} and cannot run on this GPU ({dev}): {rule}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ObjectFormat::*;

    #[test]
    fn parses_sm_names() {
        let p = SmArch::parse;
        assert_eq!(
            p("sm_90"),
            Some(SmArch {
                major: 9,
                minor: 0,
                suffix: None
            })
        );
        assert_eq!(p("sm_90a").unwrap().suffix, Some('a'));
        assert_eq!(p("sm_86").map(|s| (s.major, s.minor)), Some((8, 6)));
        assert_eq!(p("sm_100f").map(|s| (s.major, s.minor)), Some((10, 0)));
        assert_eq!(p("sm_120").map(|s| (s.major, s.minor)), Some((12, 0)));
        for bad in [
            "gfx942",
            "sm_",
            "sm_9",
            "sm_09",
            "sm_90x",
            "sm_90aa",
            "compute_90",
        ] {
            assert_eq!(p(bad), None, "{bad}");
        }
    }

    #[test]
    fn sm_90_runs_on_hopper() {
        for f in [Cubin, Ptx] {
            assert_eq!(check("sm_90", f, (9, 0)), Ok(()));
            assert_eq!(check("sm_90a", f, (9, 0)), Ok(()));
        }
    }

    #[test]
    fn cubins_stay_within_their_major_version_ptx_goes_forward() {
        assert_eq!(check("sm_80", Cubin, (8, 6)), Ok(()));
        assert!(check("sm_86", Cubin, (8, 0)).is_err());
        let e = check("sm_90", Cubin, (10, 0)).unwrap_err();
        assert!(e.contains("cubin for sm_90") && e.contains("sm_100"), "{e}");
        assert_eq!(check("sm_90", Ptx, (10, 0)), Ok(()));
        let e = check("sm_90", Ptx, (8, 0)).unwrap_err();
        assert!(e.contains("compute capability 8.0"), "{e}");
        assert!(check("sm_90a", Ptx, (10, 0)).is_err());
        assert_eq!(check("sm_100f", Cubin, (10, 3)), Ok(()));
        assert!(check("sm_100f", Ptx, (12, 0)).is_err());
    }

    #[test]
    fn amd_objects_and_names_are_refused_with_a_reason() {
        assert!(check("gfx942", Hsaco, (9, 0))
            .unwrap_err()
            .contains("AMD code object"));
        assert!(check("gfx942", Ptx, (9, 0))
            .unwrap_err()
            .contains("not an NVIDIA architecture"));
    }
}
