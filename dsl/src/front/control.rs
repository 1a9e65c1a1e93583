//! Structured control flow that works the same for comptime and runtime conditions.
//!
//! The macro emits straight-line Rust around these state objects instead of closures, so
//! that a branch body can assign comptime Rust variables freely and both kinds of condition
//! share one expansion:
//!
//! ```text
//! if c { A } else { B }   =>   let mut s = CondState::new(c);
//!                              if s.enter_then() { A }
//!                              if s.enter_else() { B }
//!                              s.finish();
//! ```
//!
//! With a comptime `bool` only the taken branch runs (the other is pruned); with a `Val<bool>`
//! both bodies run once each, recording an IR `If`. Loops work the same way: a comptime range
//! is a Rust iterator (the body is unrolled), a runtime range is an iterator that yields the
//! loop variable once and closes the IR `For` when asked for the next item.

use super::values::{Elem, IntoVal, Val, Var};
use super::with;
use crate::ir::{Block, ExprId, Stmt};

/// A condition of `if` or `while`.
#[diagnostic::on_unimplemented(
    message = "an `if` or `while` condition must be a bool, found `{Self}`",
    label = "expected `bool` (comptime) or `Val<bool>` (runtime)"
)]
pub trait Condition {
    fn condition(self) -> CondValue;
}

pub enum CondValue {
    Comptime(bool),
    Runtime(ExprId),
}

impl Condition for bool {
    fn condition(self) -> CondValue {
        CondValue::Comptime(self)
    }
}

impl Condition for Val<bool> {
    fn condition(self) -> CondValue {
        CondValue::Runtime(self.id)
    }
}

/// The state of one `if`/`else` being expanded.
pub enum CondState {
    Comptime(bool),
    Runtime { cond: ExprId, then: Option<Block> },
}

impl CondState {
    pub fn new(cond: impl Condition) -> Self {
        match cond.condition() {
            CondValue::Comptime(b) => CondState::Comptime(b),
            CondValue::Runtime(cond) => CondState::Runtime { cond, then: None },
        }
    }

    pub fn enter_then(&mut self) -> bool {
        match self {
            CondState::Comptime(b) => *b,
            CondState::Runtime { .. } => {
                with(|b| b.open_block());
                true
            }
        }
    }

    pub fn enter_else(&mut self) -> bool {
        match self {
            CondState::Comptime(b) => !*b,
            CondState::Runtime { then, .. } => {
                *then = Some(with(|b| b.close_block()));
                with(|b| b.open_block());
                true
            }
        }
    }

    pub fn finish(self) {
        if let CondState::Runtime { cond, then } = self {
            with(|b| {
                let otherwise = b.close_block();
                let then = then.expect("enter_else is always called before finish");
                b.push(Stmt::If {
                    cond,
                    then,
                    otherwise,
                });
            });
        }
    }
}

/// The arguments of a `for` range: all comptime (unrolled) or any runtime (an IR loop).
#[diagnostic::on_unimplemented(
    message = "cannot loop over this range: {Self}",
    label = "loop bounds must all be u32 or all be i32 (comptime or runtime)"
)]
pub trait LoopRange {
    type Iter: Iterator;
    fn iterate(self, name: &str) -> Self::Iter;
}

macro_rules! loop_range {
    ($($t:ty),*) => {$(
        impl LoopRange for ($t, $t, $t) {
            type Iter = std::iter::StepBy<std::ops::Range<$t>>;
            fn iterate(self, name: &str) -> Self::Iter {
                let (start, end, mut step) = self;
                if step <= 0 {
                    with(|b| b.error(format!("comptime loop `{name}` has step {step}; it must be positive")));
                    step = 1;
                }
                (start..end).step_by(step as usize)
            }
        }
        impl<S: IntoVal<Elem = $t>> LoopRange for (Val<$t>, Val<$t>, S) {
            type Iter = RuntimeLoop<$t>;
            fn iterate(self, name: &str) -> Self::Iter { RuntimeLoop::new(name, self.0, self.1, self.2.into_val()) }
        }
        impl<S: IntoVal<Elem = $t>> LoopRange for (Val<$t>, $t, S) {
            type Iter = RuntimeLoop<$t>;
            fn iterate(self, name: &str) -> Self::Iter { RuntimeLoop::new(name, self.0, Val::constant(self.1), self.2.into_val()) }
        }
        impl<S: IntoVal<Elem = $t>> LoopRange for ($t, Val<$t>, S) {
            type Iter = RuntimeLoop<$t>;
            fn iterate(self, name: &str) -> Self::Iter { RuntimeLoop::new(name, Val::constant(self.0), self.1, self.2.into_val()) }
        }
        impl LoopRange for ($t, $t, Val<$t>) {
            type Iter = RuntimeLoop<$t>;
            fn iterate(self, name: &str) -> Self::Iter { RuntimeLoop::new(name, Val::constant(self.0), Val::constant(self.1), self.2) }
        }
    )*};
}
loop_range!(u32, i32);

/// `for name in (start..end).step_by(step)`.
pub fn for_range_step<A, B, S>(
    name: &str,
    start: A,
    end: B,
    step: S,
) -> <(A, B, S) as LoopRange>::Iter
where
    (A, B, S): LoopRange,
{
    (start, end, step).iterate(name)
}

/// `for name in start..end`: the pair impls mirror the triple ones with a step of 1, so that
/// an unsuffixed literal bound takes its type from the other bound.
pub fn for_range<A, B>(name: &str, start: A, end: B) -> <(A, B) as LoopRange>::Iter
where
    (A, B): LoopRange,
{
    (start, end).iterate(name)
}

macro_rules! loop_range_unit_step {
    ($($t:ty),*) => {$(
        impl LoopRange for ($t, $t) {
            type Iter = <($t, $t, $t) as LoopRange>::Iter;
            fn iterate(self, name: &str) -> Self::Iter { (self.0, self.1, 1 as $t).iterate(name) }
        }
        impl LoopRange for (Val<$t>, Val<$t>) {
            type Iter = RuntimeLoop<$t>;
            fn iterate(self, name: &str) -> Self::Iter { (self.0, self.1, 1 as $t).iterate(name) }
        }
        impl LoopRange for (Val<$t>, $t) {
            type Iter = RuntimeLoop<$t>;
            fn iterate(self, name: &str) -> Self::Iter { (self.0, self.1, 1 as $t).iterate(name) }
        }
        impl LoopRange for ($t, Val<$t>) {
            type Iter = RuntimeLoop<$t>;
            fn iterate(self, name: &str) -> Self::Iter { (self.0, self.1, 1 as $t).iterate(name) }
        }
    )*};
}
loop_range_unit_step!(u32, i32);

/// An IR `for` loop being recorded: yields the loop variable once, then closes the loop.
pub struct RuntimeLoop<T: Elem> {
    state: Option<(Var<T>, ExprId, ExprId, ExprId)>,
    in_body: bool,
}

impl<T: Elem> RuntimeLoop<T> {
    fn new(name: &str, start: Val<T>, end: Val<T>, step: Val<T>) -> Self {
        let var = with(|b| b.new_var(name, <T as super::values::ValueType>::ty()));
        RuntimeLoop {
            state: Some((Var::from_id(var), start.id, end.id, step.id)),
            in_body: false,
        }
    }
}

impl<T: Elem> Iterator for RuntimeLoop<T> {
    type Item = Val<T>;

    fn next(&mut self) -> Option<Val<T>> {
        let (var, start, end, step) = self.state?;
        if self.in_body {
            let body = with(|b| b.close_block());
            with(|b| {
                b.push(Stmt::For {
                    var: var.var_id(),
                    start,
                    end,
                    step,
                    body,
                })
            });
            self.state = None;
            None
        } else {
            with(|b| b.open_block());
            self.in_body = true;
            Some(var.get())
        }
    }
}

/// The state of one `while` loop being expanded: `while s.check(cond) { body }`.
#[derive(Default)]
pub struct WhileState {
    cond: Option<ExprId>,
}

impl WhileState {
    pub fn new() -> Self {
        WhileState::default()
    }

    pub fn check(&mut self, cond: impl Condition) -> bool {
        match cond.condition() {
            CondValue::Comptime(b) => b,
            CondValue::Runtime(id) => match self.cond {
                None => {
                    self.cond = Some(id);
                    with(|b| b.open_block());
                    true
                }
                Some(cond) => {
                    with(|b| {
                        let body = b.close_block();
                        b.push(Stmt::While { cond, body });
                    });
                    false
                }
            },
        }
    }
}

/// `return;` — this thread leaves the kernel.
pub fn ret() {
    with(|b| b.push(Stmt::Return));
}
