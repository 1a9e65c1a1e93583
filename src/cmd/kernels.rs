//! `greta kernels`: the library and its tunable parameters.

use anyhow::Result;

pub fn run() -> Result<()> {
    for spec in greta_kernels::all() {
        let targets: Vec<&str> = greta_dsl::Target::ALL
            .iter()
            .filter(|t| (spec.available)(t))
            .map(|t| t.name)
            .collect();
        outln!(
            "{:<10} {}  (shape: {}; targets: {})",
            spec.name,
            spec.summary,
            spec.shape,
            targets.join(", ")
        );
        for p in spec.params {
            let values: Vec<String> = p.values().iter().map(ToString::to_string).collect();
            let default = if p.default_for_dtype.is_some() {
                "per dtype".to_string()
            } else {
                p.default.to_string()
            };
            outln!(
                "    {:<6} {:<40} default {:<10} {{{}}}",
                p.name,
                p.doc,
                default,
                values.join(",")
            );
        }
    }
    Ok(())
}
