//! The backend a command runs on, and where its GPU code objects come from (and by which
//! lowering they are compiled).

use super::device::Objects;
use anyhow::Result;
use greta_runtime::{Backend, BackendKind, ObjectSource, Via};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct SourceArgs {
    /// cpu, cuda or hip (default: GRETA_BACKEND, else the best one present).
    #[arg(long)]
    backend: Option<String>,
    /// Load GPU code objects from this bundle (made by `greta build`) instead of compiling.
    #[arg(long)]
    bundle: Option<PathBuf>,
    /// How GPU code is compiled: hip (HIP C++ through clang) or llvm (LLVM IR in process). A
    /// --bundle must have been built with the same --via.
    #[arg(long, value_enum, default_value_t)]
    via: super::ViaArg,
}

impl SourceArgs {
    /// The backend named by `--backend` (else `GRETA_BACKEND`, else the best present).
    pub fn backend(&self) -> Result<Box<dyn Backend>> {
        Ok(match &self.backend {
            Some(name) => greta_runtime::select_named(name)?,
            None => greta_runtime::select()?,
        })
    }

    /// `--backend`, if given.
    pub fn named_backend(&self) -> Option<&str> {
        self.backend.as_deref()
    }

    /// `--bundle`, if given.
    pub fn bundle(&self) -> Option<&std::path::Path> {
        self.bundle.as_deref()
    }

    /// `--via`.
    pub fn via(&self) -> Via {
        self.via.into()
    }

    /// Where GPU code objects come from: the `--bundle` (checked now: a bad one, or one built by
    /// another `--via`, is an error before any work), else the compile cache, compiling by
    /// `--via`.
    pub fn objects(&self) -> Result<ObjectSource> {
        Ok(ObjectSource::new(self.bundle(), self.via())?)
    }

    pub fn open(&self) -> Result<(Box<dyn Backend>, Box<Objects<'static>>)> {
        let backend = self.backend()?;
        if backend.kind() == BackendKind::Cpu {
            // The interpreter needs no code objects; a --bundle given anyway is still checked.
            if self.bundle.is_some() {
                self.objects()?;
            }
            return Ok((backend, Box::new(|_| Ok(None))));
        }
        let target = backend.target();
        let source = self.objects()?;
        let objects: Box<Objects<'static>> = Box::new(move |kernel| {
            let (object, origin) = source.object(kernel, target)?;
            if let Some(warning) = origin.warning() {
                errln!("greta: warning: {warning}");
            }
            Ok(Some(object))
        });
        Ok((backend, objects))
    }
}
