//! The backend a command runs on, and where its GPU code objects come from.

use super::device::Objects;
use anyhow::Result;
use greta_runtime::{Backend, BackendKind};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct SourceArgs {
    /// cpu, cuda or hip (default: GRETA_BACKEND, else the best one present).
    #[arg(long)]
    backend: Option<String>,
    /// Load GPU code objects from this bundle (made by `greta build`) instead of compiling.
    #[arg(long)]
    bundle: Option<PathBuf>,
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

    pub fn open(&self) -> Result<(Box<dyn Backend>, Box<Objects<'static>>)> {
        let backend = self.backend()?;
        if backend.kind() == BackendKind::Cpu {
            return Ok((backend, Box::new(|_| Ok(None))));
        }
        let target = backend.target();
        let source = greta_runtime::ObjectSource::new(self.bundle.as_deref())?;
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
