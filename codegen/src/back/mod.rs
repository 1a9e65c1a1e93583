//! The backends: each lowers the verified IR, with the verifier's [`KernelInfo`], to one kind of
//! code, behind one entry function. They are peers: none knows about another, and the crate's
//! top level picks one by [`crate::Via`].
//!
//! [`KernelInfo`]: greta_dsl::valid::KernelInfo

pub mod fragment;
pub mod hip;
pub mod llvm;
