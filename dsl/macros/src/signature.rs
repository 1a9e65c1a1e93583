//! The signature side of the expansion: which arguments are comptime, which are kernel
//! parameters, and the builder function that results (with the launch side's argument struct
//! beside it).

use crate::body::{Binding, Transformer};
use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, GenericParam, ItemFn, Pat, ReturnType};

/// Removes a `#[comptime]` attribute, reporting whether there was one.
pub(crate) fn take_comptime(attrs: &mut Vec<syn::Attribute>) -> bool {
    let before = attrs.len();
    attrs.retain(|a| !a.path().is_ident("comptime"));
    attrs.len() != before
}

fn check_plain_fn(f: &ItemFn, what: &str) -> syn::Result<()> {
    let sig = &f.sig;
    if let Some(t) = &sig.asyncness {
        return Err(syn::Error::new(
            t.span(),
            format!("a {what} cannot be `async`"),
        ));
    }
    if let Some(t) = &sig.unsafety {
        return Err(syn::Error::new(
            t.span(),
            format!("a {what} cannot be `unsafe`"),
        ));
    }
    if let Some(t) = &sig.constness {
        return Err(syn::Error::new(
            t.span(),
            format!("a {what} cannot be `const`"),
        ));
    }
    if let Some(v) = &sig.variadic {
        return Err(syn::Error::new(
            v.span(),
            format!("a {what} cannot be variadic"),
        ));
    }
    Ok(())
}

fn arg_ident(pat: &Pat) -> syn::Result<&syn::Ident> {
    match pat {
        Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => Ok(&p.ident),
        other => Err(syn::Error::new(
            other.span(),
            "kernel arguments must be plain names",
        )),
    }
}

pub(crate) fn expand_kernel(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    if !attr.is_empty() {
        return Err(syn::Error::new(attr.span(), "#[kernel] takes no arguments"));
    }
    let mut f: ItemFn = syn::parse2(item)?;
    check_plain_fn(&f, "kernel")?;
    if let ReturnType::Type(_, ty) = &f.sig.output {
        return Err(syn::Error::new(
            ty.span(),
            "a kernel cannot return a value: write results to a `&mut [T]` parameter",
        ));
    }

    // Type parameters are element types (`T: Float`); const parameters are comptime numbers
    // that must be types to Rust, such as a vector width (`const V: usize`).
    let mut generic_config = Vec::new();
    for g in &f.sig.generics.params {
        match g {
            GenericParam::Type(t) => {
                let (ident, name) = (&t.ident, t.ident.to_string());
                generic_config.push(quote!(
                    (::std::string::String::from(#name), <#ident as ::greta_dsl::front::Elem>::config())
                ));
            }
            GenericParam::Const(c) => {
                let (ident, name) = (&c.ident, c.ident.to_string());
                generic_config.push(quote!(
                    (::std::string::String::from(#name), ::greta_dsl::ir::ConfigValue::U32(#ident as u32))
                ));
            }
            GenericParam::Lifetime(l) => {
                return Err(syn::Error::new(
                    l.span(),
                    "kernels cannot be generic over lifetimes",
                ))
            }
        }
    }

    let mut transformer = Transformer::new(false);
    let mut comptime_args = Vec::new();
    let mut config = Vec::new();
    let mut declare = Vec::new();
    let mut runtime_params = Vec::new();
    for arg in f.sig.inputs.iter_mut() {
        let FnArg::Typed(arg) = arg else {
            return Err(syn::Error::new(arg.span(), "a kernel has no `self`"));
        };
        let ident = arg_ident(&arg.pat)?.clone();
        let name = ident.to_string();
        if take_comptime(&mut arg.attrs) {
            // Plain Rust: indexing it is Rust's (a comptime array or slice), not a memory load.
            transformer.bind(&name, Binding::Comptime);
            let ty = &arg.ty;
            config.push(quote_spanned! {ty.span()=>
                (::std::string::String::from(#name), ::greta_dsl::front::IntoConfig::into_config(#ident))
            });
            comptime_args.push(quote!(#ident: #ty));
        } else {
            transformer.bind(&name, Binding::Immutable);
            let ty = &arg.ty;
            runtime_params.push((ident.clone(), (**ty).clone()));
            declare.push(quote_spanned! {ty.span()=>
                let #ident = ::greta_dsl::front::declare_param::<#ty>(#name);
            });
        }
    }

    let body = transformer.block_contents(&f.block)?;
    let attrs = &f.attrs;
    let vis = &f.vis;
    let ident = &f.sig.ident;
    let name = ident.to_string();
    let generics = &f.sig.generics;
    let where_clause = &f.sig.generics.where_clause;
    let args_struct = crate::launch::args_struct(vis, ident, generics, &runtime_params);
    Ok(quote! {
        #(#attrs)*
        #[allow(unused_mut, clippy::all)]
        #vis fn #ident #generics (
            __greta_target: &'static ::greta_dsl::Target,
            #(#comptime_args),*
        )
            -> ::core::result::Result<::greta_dsl::ir::Kernel, ::greta_dsl::front::BuildError>
            #where_clause
        {
            let __greta_config = ::std::vec![#(#generic_config,)* #(#config,)*];
            ::greta_dsl::front::build_kernel(#name, __greta_target, __greta_config, move || {
                #(#declare)*
                #body
            })
        }

        #args_struct
    })
}

pub(crate) fn expand_device(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    if !attr.is_empty() {
        return Err(syn::Error::new(attr.span(), "#[device] takes no arguments"));
    }
    let mut f: ItemFn = syn::parse2(item)?;
    check_plain_fn(&f, "device function")?;
    let mut transformer = Transformer::new(true);
    for arg in f.sig.inputs.iter_mut() {
        let FnArg::Typed(arg) = arg else {
            return Err(syn::Error::new(
                arg.span(),
                "a device function has no `self`",
            ));
        };
        let comptime = take_comptime(&mut arg.attrs);
        let ident = arg_ident(&arg.pat)?;
        let binding = if comptime {
            Binding::Comptime
        } else {
            Binding::Immutable
        };
        transformer.bind(&ident.to_string(), binding);
    }
    let body = transformer.block_contents(&f.block)?;
    let attrs = &f.attrs;
    let vis = &f.vis;
    let sig = &f.sig;
    Ok(quote! {
        #(#attrs)*
        #[allow(unused_mut, clippy::all)]
        #vis #sig {
            #body
        }
    })
}
