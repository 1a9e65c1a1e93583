//! Kernel configurations: the tunable (comptime) parameters of each kernel, their defaults and
//! allowed values, and parsing of the `key=value,...` form users type on the command line.

use greta_dsl::ir::{ConfigValue, Scalar};
use std::collections::BTreeMap;
use std::fmt;

/// What values a tunable parameter takes.
#[derive(Clone, Copy, Debug)]
pub enum Choices {
    /// An element type, from this list.
    DType(&'static [Scalar]),
    /// A number from this list.
    U32(&'static [u32]),
    Bool,
}

/// One comptime parameter of a kernel.
#[derive(Clone, Copy, Debug)]
pub struct ParamDef {
    pub name: &'static str,
    pub choices: Choices,
    pub default: ConfigValue,
    /// A default that depends on the element type (e.g. a 16-byte vector width), applied when
    /// the user does not set the parameter.
    pub default_for_dtype: Option<fn(Scalar) -> ConfigValue>,
    /// Whether `greta tune` varies it: a knob that changes how the kernel computes (tile
    /// sizes, waves, vector widths), not what (element types, a fused residual, a rotation
    /// layout, the tokens a launch takes, a head size fitted to the model). Element-type
    /// parameters are never tuned.
    pub tunable: bool,
    pub doc: &'static str,
}

impl ParamDef {
    /// Every value this parameter may take (for tuning sweeps).
    pub fn values(&self) -> Vec<ConfigValue> {
        match self.choices {
            Choices::DType(list) => list.iter().map(|s| ConfigValue::Type(*s)).collect(),
            Choices::U32(list) => list.iter().map(|v| ConfigValue::U32(*v)).collect(),
            Choices::Bool => vec![ConfigValue::Bool(false), ConfigValue::Bool(true)],
        }
    }

    fn parse(&self, text: &str) -> Option<ConfigValue> {
        let value = match self.choices {
            Choices::DType(_) => ConfigValue::Type(Scalar::from_name(text)?),
            Choices::U32(_) => ConfigValue::U32(text.parse().ok()?),
            Choices::Bool => ConfigValue::Bool(text.parse().ok()?),
        };
        self.values().contains(&value).then_some(value)
    }

    fn expected(&self) -> String {
        let list: Vec<String> = self.values().iter().map(ToString::to_string).collect();
        format!("one of {}", list.join(", "))
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("kernel `{kernel}` has no parameter `{key}` (its parameters: {known})")]
    UnknownKey {
        kernel: String,
        key: String,
        known: String,
    },
    #[error("kernel `{kernel}`: `{key}={value}` is not allowed; `{key}` takes {expected}")]
    BadValue {
        kernel: String,
        key: String,
        value: String,
        expected: String,
    },
    #[error("malformed configuration `{text}`: expected `key=value` pairs separated by commas")]
    Malformed { text: String },
    #[error("kernel `{kernel}`: `{key}` is given twice")]
    Duplicate { kernel: String, key: String },
}

/// A complete configuration: a value for every parameter of one kernel.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Config {
    values: BTreeMap<&'static str, ConfigValue>,
}

impl Config {
    /// The defaults, overridden by `key=value,...` (an empty string keeps the defaults).
    pub fn parse(
        kernel: &str,
        params: &'static [ParamDef],
        overrides: &str,
    ) -> Result<Config, ConfigError> {
        let mut values: BTreeMap<&'static str, ConfigValue> =
            params.iter().map(|p| (p.name, p.default.clone())).collect();
        let mut seen = Vec::new();
        for pair in overrides
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let (key, value) = pair
                .split_once('=')
                .map(|(k, v)| (k.trim(), v.trim()))
                .ok_or_else(|| ConfigError::Malformed {
                    text: overrides.to_string(),
                })?;
            let def =
                params
                    .iter()
                    .find(|p| p.name == key)
                    .ok_or_else(|| ConfigError::UnknownKey {
                        kernel: kernel.to_string(),
                        key: key.to_string(),
                        known: params.iter().map(|p| p.name).collect::<Vec<_>>().join(", "),
                    })?;
            if seen.contains(&key) {
                return Err(ConfigError::Duplicate {
                    kernel: kernel.to_string(),
                    key: key.to_string(),
                });
            }
            seen.push(key);
            let parsed = def.parse(value).ok_or_else(|| ConfigError::BadValue {
                kernel: kernel.to_string(),
                key: key.to_string(),
                value: value.to_string(),
                expected: def.expected(),
            })?;
            values.insert(def.name, parsed);
        }
        if let Some(ConfigValue::Type(dtype)) = values.get("dtype").cloned() {
            for p in params {
                if let (Some(f), false) = (p.default_for_dtype, seen.contains(&p.name)) {
                    values.insert(p.name, f(dtype));
                }
            }
        }
        Ok(Config { values })
    }

    pub fn get(&self, name: &str) -> Option<&ConfigValue> {
        self.values.get(name)
    }

    /// A u32 parameter. Panics if the kernel has no such parameter: that is a bug in the kernel's
    /// own spec, never user input (user input is checked by [`Config::parse`]).
    pub fn u32(&self, name: &str) -> u32 {
        match self.values.get(name) {
            Some(ConfigValue::U32(v)) => *v,
            other => panic!("kernel spec bug: `{name}` is not a u32 parameter ({other:?})"),
        }
    }

    pub fn bool(&self, name: &str) -> bool {
        match self.values.get(name) {
            Some(ConfigValue::Bool(v)) => *v,
            other => panic!("kernel spec bug: `{name}` is not a bool parameter ({other:?})"),
        }
    }

    pub fn dtype(&self, name: &str) -> Scalar {
        match self.values.get(name) {
            Some(ConfigValue::Type(s)) => *s,
            other => panic!("kernel spec bug: `{name}` is not a type parameter ({other:?})"),
        }
    }

    /// Returns a copy with one value replaced (for sweeps).
    /// This configuration with the power-of-two parameter `name` halved until `ok` accepts it
    /// (1 at the least): a configuration fitted to a problem's sizes (a vector width that
    /// divides a row, a head count that divides a group).
    pub fn lowered(&self, name: &'static str, ok: impl Fn(u32) -> bool) -> Config {
        let mut v = self.u32(name);
        while v > 1 && !ok(v) {
            v /= 2;
        }
        self.with(name, ConfigValue::U32(v))
    }

    pub fn with(&self, name: &'static str, value: ConfigValue) -> Config {
        let mut c = self.clone();
        c.values.insert(name, value);
        c
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &ConfigValue)> {
        self.values.iter().map(|(k, v)| (*k, v))
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .values
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// The three float element types, the usual `dtype` choices.
pub const FLOATS: &[Scalar] = &[Scalar::F16, Scalar::BF16, Scalar::F32];

/// The 16-bit float types: matrix-core multiplicands.
pub const HALVES: &[Scalar] = &[Scalar::F16, Scalar::BF16];

/// A `dtype` parameter over the float types, defaulting to f16.
pub const DTYPE: ParamDef = ParamDef {
    name: "dtype",
    choices: Choices::DType(FLOATS),
    default: ConfigValue::Type(Scalar::F16),
    default_for_dtype: None,
    tunable: false,
    doc: "element type of activations and weights",
};

/// A `block` (threads per block) parameter.
pub const fn block_param(default: u32) -> ParamDef {
    ParamDef {
        name: "block",
        choices: Choices::U32(&[64, 128, 256, 512, 1024]),
        default: ConfigValue::U32(default),
        default_for_dtype: None,
        tunable: true,
        doc: "threads per block",
    }
}

/// A `vec` (elements per memory access) parameter, by default one 16-byte access (8 × f16,
/// 4 × f32).
pub const VEC: ParamDef = ParamDef {
    name: "vec",
    choices: Choices::U32(&[1, 2, 4, 8]),
    default: ConfigValue::U32(8),
    default_for_dtype: Some(|dtype| ConfigValue::U32(16 / dtype.size_bytes())),
    tunable: true,
    doc: "elements per global memory access (vector width)",
};

/// A `dtype` parameter over the float types with its own default and meaning, for kernels whose
/// one free element type is not "activations and weights" (a KV cache, a destination, ...).
pub const fn dtype_param(default: Scalar, doc: &'static str) -> ParamDef {
    ParamDef {
        name: "dtype",
        choices: Choices::DType(FLOATS),
        default: ConfigValue::Type(default),
        default_for_dtype: None,
        tunable: false,
        doc,
    }
}

/// A tunable u32 parameter with the given choices (see [`fixed`] for one the caller sets).
pub const fn u32_param(
    name: &'static str,
    choices: &'static [u32],
    default: u32,
    doc: &'static str,
) -> ParamDef {
    ParamDef {
        name,
        choices: Choices::U32(choices),
        default: ConfigValue::U32(default),
        default_for_dtype: None,
        tunable: true,
        doc,
    }
}

/// `p`, not varied by tuning: its value is the caller's (see [`ParamDef::tunable`]).
pub const fn fixed(p: ParamDef) -> ParamDef {
    ParamDef {
        tunable: false,
        ..p
    }
}
