//! C identifiers for the IR's names. IR names come from Rust source (and from the macro's
//! inlining), so they may shadow each other, collide with C++ keywords or with the prelude's own
//! names; each IR entity gets one unique, valid, readable identifier here.

use std::collections::HashSet;

/// C++ keywords and alternative tokens (C++20), plus names of the clang dialects that may not be
/// redefined. A variable called `new` or `and` becomes `new_` / `and_`.
const KEYWORDS: &[&str] = &[
    "alignas",
    "alignof",
    "and",
    "and_eq",
    "asm",
    "auto",
    "bitand",
    "bitor",
    "bool",
    "break",
    "case",
    "catch",
    "char",
    "char8_t",
    "char16_t",
    "char32_t",
    "class",
    "co_await",
    "co_return",
    "co_yield",
    "compl",
    "concept",
    "const",
    "consteval",
    "constexpr",
    "constinit",
    "const_cast",
    "continue",
    "decltype",
    "default",
    "delete",
    "do",
    "double",
    "dynamic_cast",
    "else",
    "enum",
    "explicit",
    "export",
    "extern",
    "false",
    "float",
    "for",
    "friend",
    "goto",
    "if",
    "inline",
    "int",
    "long",
    "mutable",
    "namespace",
    "new",
    "noexcept",
    "not",
    "not_eq",
    "nullptr",
    "operator",
    "or",
    "or_eq",
    "private",
    "protected",
    "public",
    "register",
    "reinterpret_cast",
    "requires",
    "return",
    "short",
    "signed",
    "sizeof",
    "static",
    "static_assert",
    "static_cast",
    "struct",
    "switch",
    "template",
    "this",
    "thread_local",
    "throw",
    "true",
    "try",
    "typedef",
    "typeid",
    "typename",
    "union",
    "unsigned",
    "using",
    "virtual",
    "void",
    "volatile",
    "wchar_t",
    "while",
    "xor",
    "xor_eq",
    "restrict",
    "main",
    "assert",
    "NULL",
    "min",
    "max",
];

/// Names the prelude defines: the scalar typedefs and vector types. (Everything else in the
/// prelude starts with `greta_` / `GRETA_`, a prefix [`Names`] never hands out.)
fn is_prelude_name(name: &str) -> bool {
    let scalar = ["f16", "bf16", "f32", "i32", "u32"];
    if scalar.contains(&name) {
        return true;
    }
    // Vector types: f32x4, boolx8, ...
    ["f16", "bf16", "f32", "i32", "u32", "bool"]
        .iter()
        .any(|s| {
            name.strip_prefix(s)
                .and_then(|rest| rest.strip_prefix('x'))
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// Whether `name` is usable verbatim as the exported (`extern "C"`) kernel symbol.
pub fn is_valid_symbol(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !KEYWORDS.contains(&name)
        && !name.starts_with("__")
        && !name.starts_with("greta_")
        && !is_prelude_name(name)
}

/// Allocates unique identifiers within one kernel.
#[derive(Default)]
pub struct Names {
    taken: HashSet<String>,
}

impl Names {
    /// Reserve `name` exactly (the kernel's own symbol).
    pub fn reserve(&mut self, name: &str) {
        self.taken.insert(name.to_string());
    }

    /// A fresh identifier derived from `wanted`.
    pub fn fresh(&mut self, wanted: &str) -> String {
        let base = sanitize(wanted);
        let mut name = base.clone();
        let mut n = 1;
        while self.taken.contains(&name) {
            name = format!("{base}_{n}");
            n += 1;
        }
        self.taken.insert(name.clone());
        name
    }
}

/// Make `wanted` a valid C identifier that is not a keyword, not reserved by C++ (`__x`, `_X`)
/// and not a prelude name.
fn sanitize(wanted: &str) -> String {
    let mut s: String = wanted
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    // Leading underscores are either reserved (`__x`, `_X`) or easy to confuse with them.
    let trimmed = s.trim_start_matches('_');
    s = if trimmed.is_empty() {
        "v".to_string()
    } else {
        trimmed.to_string()
    };
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, 'v');
    }
    if s.starts_with("greta_") || s.starts_with("GRETA_") {
        s.insert_str(0, "k_");
    }
    if KEYWORDS.contains(&s.as_str()) || is_prelude_name(&s) {
        s.push('_');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizes_and_uniquifies() {
        let mut n = Names::default();
        assert_eq!(n.fresh("x"), "x");
        assert_eq!(n.fresh("x"), "x_1");
        assert_eq!(n.fresh("new"), "new_");
        assert_eq!(n.fresh("f32"), "f32_");
        assert_eq!(n.fresh("f32x4"), "f32x4_");
        assert_eq!(n.fresh("__a"), "a");
        assert_eq!(n.fresh("1st"), "v1st");
        assert_eq!(n.fresh("a.b"), "a_b");
        assert_eq!(n.fresh("greta_x"), "k_greta_x");
        assert_eq!(n.fresh(""), "v");
        assert!(is_valid_symbol("rmsnorm_f16"));
        assert!(!is_valid_symbol("int"));
        assert!(!is_valid_symbol("a-b"));
    }
}
