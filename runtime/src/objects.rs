//! Where a GPU backend's code objects come from: a prebuilt [`Bundle`] when one is given (the
//! GPU machines have no compiler), else the [`CompileCache`], which compiles on a miss and so
//! needs the toolchain. Backends ask one [`ObjectSource`] and do not care which. A source serves
//! the code of one lowering ([`Via`]): the cache compiles by it, and a bundle is opened only if
//! it was built by it.

use std::path::Path;

use greta_dsl::ir::Kernel;
use greta_dsl::Target;

use crate::backend::CodeObject;
use crate::bundle::{Bundle, BundleError};
use crate::cache::{CacheError, CacheOutcome, CompileCache};
use greta_codegen::{Resources, Via};

#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error(transparent)]
    Cache(#[from] CacheError),
}

/// Where an object came from. A [`CacheOutcome::Recompiled`] deserves a warning from whoever
/// prints (see [`Origin::warning`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Bundle,
    Cache(CacheOutcome),
}

impl Origin {
    /// The warning a command line should print for this origin, if any.
    pub fn warning(&self) -> Option<String> {
        match self {
            Origin::Cache(CacheOutcome::Recompiled { reason }) => {
                Some(format!("{reason}; recompiled it"))
            }
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
pub enum ObjectSource {
    Bundle(Bundle),
    Cache(CompileCache),
}

impl ObjectSource {
    /// The bundle at `bundle` if given (opened and validated now, so a bad bundle, or one built
    /// by another lowering than `via`, is reported before any work), else the compile cache at
    /// its default root, compiling by `via`.
    pub fn new(bundle: Option<&Path>, via: Via) -> Result<ObjectSource, ObjectError> {
        Ok(match bundle {
            Some(dir) => ObjectSource::Bundle(Bundle::open(dir, via)?),
            None => ObjectSource::Cache(CompileCache::from_env()?.with_via(via)),
        })
    }

    /// The lowering whose code this source serves.
    pub fn via(&self) -> Via {
        match self {
            ObjectSource::Bundle(b) => b.via(),
            ObjectSource::Cache(c) => c.via(),
        }
    }

    /// `kernel`'s code object for `target`: a cubin for NVIDIA, an hsaco for AMD.
    pub fn object(
        &self,
        kernel: &Kernel,
        target: &Target,
    ) -> Result<(CodeObject, Origin), ObjectError> {
        let (object, _, origin) = self.object_and_resources(kernel, target)?;
        Ok((object, origin))
    }

    /// [`ObjectSource::object`] with the resources the toolchain reported for it (registers,
    /// LDS, scratch and spills; recorded in the bundle or the cache entry).
    pub fn object_and_resources(
        &self,
        kernel: &Kernel,
        target: &Target,
    ) -> Result<(CodeObject, Resources, Origin), ObjectError> {
        match self {
            ObjectSource::Bundle(b) => {
                let resources = b.entry(kernel, target)?.resources.clone();
                Ok((b.object(kernel, target)?, resources, Origin::Bundle))
            }
            ObjectSource::Cache(c) => {
                let (object, resources, outcome) = c.get_or_compile(kernel, target)?;
                Ok((object, resources, Origin::Cache(outcome)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::BundleWriter;
    use crate::ObjectFormat;
    use greta_codegen::Resources;
    use greta_dsl::ir::{ConfigValue, Scalar};

    #[test]
    fn a_bundle_source_serves_its_objects_and_refuses_other_targets() {
        let kernel = Kernel {
            name: "k".into(),
            target: &Target::GFX942,
            config: vec![("T".into(), ConfigValue::Type(Scalar::F32))],
            params: vec![],
            vars: vec![],
            shared: vec![],
            locals: vec![],
            exprs: vec![],
            body: vec![],
            block_size: None,
        };
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("bundle");
        let mut w = BundleWriter::new(&dir, &Target::GFX942, Via::Hip).unwrap();
        let object = CodeObject {
            target: "gfx942".into(),
            format: ObjectFormat::Hsaco,
            bytes: b"\x7fELF hsaco".to_vec(),
        };
        w.add(&kernel, "dtype=f32", &object, &Resources::default())
            .unwrap();
        w.finish().unwrap();

        let source = ObjectSource::new(Some(&dir), Via::Hip).unwrap();
        assert_eq!(source.via(), Via::Hip);
        let (got, origin) = source.object(&kernel, &Target::GFX942).unwrap();
        assert_eq!(origin, Origin::Bundle);
        assert_eq!(origin.warning(), None);
        assert_eq!((got.format, got.bytes), (object.format, object.bytes));
        let err = source.object(&kernel, &Target::SM_90).unwrap_err();
        assert!(matches!(
            err,
            ObjectError::Bundle(BundleError::WrongTarget { .. })
        ));

        let err = ObjectSource::new(Some(&dir), Via::Llvm).unwrap_err();
        assert!(matches!(
            err,
            ObjectError::Bundle(BundleError::OtherVia { .. })
        ));

        let err = ObjectSource::new(Some(root.path()), Via::Hip).unwrap_err();
        assert!(err.to_string().contains("is not a greta bundle"), "{err}");
    }
}
