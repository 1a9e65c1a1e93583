//! The body side of the expansion: rewriting statements and expressions of the DSL subset into
//! calls of `greta_dsl::front`, keeping each construct's span so rustc's errors point at the
//! author's tokens.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use std::collections::HashMap;
use syn::spanned::Spanned;
use syn::{BinOp, Block, Expr, Local, Pat, Stmt, UnOp};

/// What a name in scope is, as far as assignment is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Binding {
    /// `let mut x`: a runtime variable; reads become `x.get()`, writes `x.set(..)`.
    Var,
    /// `#[comptime] let mut x`: plain Rust, assigned as Rust.
    ComptimeMut,
    /// `#[comptime] let x`: plain Rust. Indexing a comptime binding is Rust indexing (an array
    /// of values built while recording, e.g. the lanes of a vector), not a memory access.
    Comptime,
    /// Everything else: parameters, `let x`, loop variables.
    Immutable,
}

pub(crate) struct Transformer {
    scopes: Vec<HashMap<String, Binding>>,
    /// `#[device]` functions may return a tail value and may not `return`.
    device: bool,
}

/// The error for syntax outside the DSL subset. It spans all of `tokens` (first to last token,
/// which `syn::Error::new_spanned` preserves on stable Rust, unlike a joined `Span`).
fn unsupported(tokens: impl ToTokens, what: &str) -> syn::Error {
    syn::Error::new_spanned(tokens, format!("{what} is not supported in greta kernels"))
}

/// `+` for `+=`, and so on.
fn compound_op(op: &BinOp) -> Option<TokenStream> {
    Some(match op {
        BinOp::AddAssign(t) => quote_spanned!(t.span()=> +),
        BinOp::SubAssign(t) => quote_spanned!(t.span()=> -),
        BinOp::MulAssign(t) => quote_spanned!(t.span()=> *),
        BinOp::DivAssign(t) => quote_spanned!(t.span()=> /),
        BinOp::RemAssign(t) => quote_spanned!(t.span()=> %),
        BinOp::BitAndAssign(t) => quote_spanned!(t.span()=> &),
        BinOp::BitOrAssign(t) => quote_spanned!(t.span()=> |),
        BinOp::BitXorAssign(t) => quote_spanned!(t.span()=> ^),
        BinOp::ShlAssign(t) => quote_spanned!(t.span()=> <<),
        BinOp::ShrAssign(t) => quote_spanned!(t.span()=> >>),
        _ => return None,
    })
}

/// The names a destructuring comptime `let` binds (tuples and arrays of names, `_`).
fn comptime_names(pat: &Pat, out: &mut Vec<String>) -> syn::Result<()> {
    match pat {
        Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() && p.mutability.is_none() => {
            out.push(p.ident.to_string());
        }
        Pat::Wild(_) => {}
        Pat::Tuple(t) => {
            for p in &t.elems {
                comptime_names(p, out)?;
            }
        }
        Pat::Slice(s) => {
            for p in &s.elems {
                comptime_names(p, out)?;
            }
        }
        other => {
            return Err(syn::Error::new_spanned(
                other,
                "a comptime `let` destructures tuples and arrays of names only",
            ))
        }
    }
    Ok(())
}

fn single_ident(e: &Expr) -> Option<&syn::Ident> {
    match e {
        Expr::Path(p) if p.qself.is_none() => p.path.get_ident(),
        _ => None,
    }
}

impl Transformer {
    pub(crate) fn new(device: bool) -> Self {
        Transformer {
            scopes: vec![HashMap::new()],
            device,
        }
    }

    pub(crate) fn bind(&mut self, name: &str, binding: Binding) {
        self.scopes
            .last_mut()
            .expect("a scope is always open")
            .insert(name.to_string(), binding);
    }

    /// Whether `e` names a comptime binding (so indexing it is Rust's, not a memory access).
    fn is_comptime(&self, e: &Expr) -> bool {
        single_ident(e).is_some_and(|i| {
            matches!(
                self.lookup(&i.to_string()),
                Some(Binding::Comptime | Binding::ComptimeMut)
            )
        })
    }

    fn lookup(&self, name: &str) -> Option<Binding> {
        self.scopes.iter().rev().find_map(|s| s.get(name).copied())
    }

    /// The statements of a block, without braces, in a new scope.
    pub(crate) fn block_contents(&mut self, block: &Block) -> syn::Result<TokenStream> {
        self.scopes.push(HashMap::new());
        let result = self.stmts(&block.stmts);
        self.scopes.pop();
        result
    }

    fn block(&mut self, block: &Block) -> syn::Result<TokenStream> {
        let inner = self.block_contents(block)?;
        Ok(quote_spanned!(block.brace_token.span.join()=> { #inner }))
    }

    fn stmts(&mut self, stmts: &[Stmt]) -> syn::Result<TokenStream> {
        let mut out = TokenStream::new();
        for (i, stmt) in stmts.iter().enumerate() {
            let last = i + 1 == stmts.len();
            out.extend(self.stmt(stmt, last)?);
        }
        Ok(out)
    }

    fn stmt(&mut self, stmt: &Stmt, last: bool) -> syn::Result<TokenStream> {
        match stmt {
            Stmt::Local(local) => self.local(local),
            Stmt::Item(item) => Err(syn::Error::new_spanned(
                &item,
                "items (fn, struct, use, …) are not allowed inside a kernel; write helpers as #[device] functions outside it",
            )),
            Stmt::Macro(m) => Err(unsupported(&m.mac, "a macro call")),
            Stmt::Expr(expr, semi) => {
                if let Some(tokens) = self.statement_form(expr)? {
                    return Ok(tokens);
                }
                let e = self.expr(expr)?;
                match semi {
                    Some(s) => Ok(quote!(#e #s)),
                    None if last => Ok(e),
                    None => Ok(quote!(#e;)),
                }
            }
        }
    }

    /// Constructs that only make sense as statements: control flow and assignments.
    fn statement_form(&mut self, expr: &Expr) -> syn::Result<Option<TokenStream>> {
        Ok(Some(match expr {
            Expr::If(e) => self.if_stmt(e)?,
            Expr::ForLoop(e) => self.for_stmt(e)?,
            Expr::While(e) => self.while_stmt(e)?,
            Expr::Block(e) if e.label.is_none() && e.attrs.is_empty() => self.block(&e.block)?,
            Expr::Return(r) => {
                if self.device {
                    return Err(syn::Error::new_spanned(
                        &r,
                        "`return` in a #[device] function would end the calling thread; let the function's last expression be its value",
                    ));
                }
                if let Some(v) = &r.expr {
                    return Err(syn::Error::new_spanned(
                        &v,
                        "a kernel cannot return a value: write results to a `&mut [T]` parameter",
                    ));
                }
                quote_spanned!(r.span()=> ::greta_dsl::front::ret();)
            }
            Expr::Assign(a) => self.assign(&a.left, None, &a.right, a.span())?,
            Expr::Binary(b) if compound_op(&b.op).is_some() => {
                self.assign(&b.left, compound_op(&b.op), &b.right, b.span())?
            }
            _ => return Ok(None),
        }))
    }

    fn local(&mut self, local: &Local) -> syn::Result<TokenStream> {
        let mut attrs = local.attrs.clone();
        let comptime = crate::signature::take_comptime(&mut attrs);
        if let Some(a) = attrs.first() {
            return Err(syn::Error::new_spanned(
                &a,
                "attributes other than #[comptime] are not supported on `let`",
            ));
        }
        let Some(init) = &local.init else {
            return Err(syn::Error::new_spanned(
                &local,
                "a `let` in a kernel needs an initial value",
            ));
        };
        if let Some((_, diverge)) = &init.diverge {
            return Err(unsupported(diverge, "`let … else`"));
        }
        let value = self.expr(&init.expr)?;
        // A comptime `let` may destructure (`let [m, n, k] = shape;`): it is plain Rust.
        if comptime && !matches!(&local.pat, Pat::Ident(_) | Pat::Type(_)) {
            let pat = &local.pat;
            let mut names = Vec::new();
            comptime_names(pat, &mut names)?;
            for n in names {
                self.bind(&n, Binding::Comptime);
            }
            return Ok(quote!(let #pat = #value;));
        }
        // `let (a, b) = pair;` of runtime values: each name bound as a `let` of its own.
        if let Pat::Tuple(t) = &local.pat {
            let mut idents = Vec::new();
            for p in &t.elems {
                match p {
                    Pat::Ident(i)
                        if i.by_ref.is_none() && i.subpat.is_none() && i.mutability.is_none() =>
                    {
                        idents.push(i.ident.clone())
                    }
                    other => {
                        return Err(syn::Error::new_spanned(
                            other,
                            "a tuple `let` in a kernel binds plain names",
                        ))
                    }
                }
            }
            let temps: Vec<syn::Ident> = (0..idents.len())
                .map(|i| syn::Ident::new(&format!("__greta_t{i}"), Span::call_site()))
                .collect();
            let mut out = quote!(let (#(#temps,)*) = #value;);
            for (ident, temp) in idents.iter().zip(&temps) {
                let name = ident.to_string();
                self.bind(&name, Binding::Immutable);
                out.extend(quote_spanned!(ident.span()=> let #ident = ::greta_dsl::front::bind(#name, #temp);));
            }
            return Ok(out);
        }
        let (ident, mutable, ty) = match &local.pat {
            Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => (&p.ident, p.mutability.is_some(), None),
            Pat::Type(t) if comptime => match &*t.pat {
                Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => (&p.ident, p.mutability.is_some(), Some(&t.ty)),
                other => return Err(syn::Error::new_spanned(&other, "a `let` in a kernel binds one name")),
            },
            Pat::Type(t) => {
                return Err(syn::Error::new_spanned(
                    &t.ty,
                    "type annotations on runtime `let`s are not supported: use a typed literal (`0.0f32`) or a conversion (`.to_f32()`)",
                ))
            }
            Pat::Wild(w) => return Ok(quote_spanned!(w.span()=> let _ = #value;)),
            other => return Err(syn::Error::new_spanned(&other, "a `let` in a kernel binds one name")),
        };
        let name = ident.to_string();
        let span = init.expr.span();
        Ok(if comptime {
            self.bind(
                &name,
                if mutable {
                    Binding::ComptimeMut
                } else {
                    Binding::Comptime
                },
            );
            let mutability = mutable.then(|| quote!(mut));
            let ty = ty.map(|t| quote!(: #t));
            quote!(let #mutability #ident #ty = #value;)
        } else if mutable {
            self.bind(&name, Binding::Var);
            quote_spanned!(span=> let #ident = ::greta_dsl::front::declare_mut(#name, #value);)
        } else {
            self.bind(&name, Binding::Immutable);
            quote_spanned!(span=> let #ident = ::greta_dsl::front::bind(#name, #value);)
        })
    }

    fn assign(
        &mut self,
        left: &Expr,
        op: Option<TokenStream>,
        right: &Expr,
        span: Span,
    ) -> syn::Result<TokenStream> {
        let right = self.expr(right)?;
        if let Some(ident) = single_ident(left) {
            let name = ident.to_string();
            return match self.lookup(&name) {
                Some(Binding::Var) => {
                    let value = match op {
                        Some(op) => quote_spanned!(span=> #ident.get() #op #right),
                        None => right,
                    };
                    Ok(quote_spanned!(span=> #ident.set(#value);))
                }
                Some(Binding::ComptimeMut) => Ok(match op {
                    Some(op) => quote_spanned!(span=> #ident = #ident #op #right;),
                    None => quote_spanned!(span=> #ident = #right;),
                }),
                _ => Err(syn::Error::new_spanned(
                    &left,
                    format!("cannot assign to `{name}`: only variables declared `let mut` in the kernel can be assigned"),
                )),
            };
        }
        if let Expr::Index(ix) = left {
            let memory = self.expr(&ix.expr)?;
            let index = self.expr(&ix.index)?;
            if self.is_comptime(&ix.expr) {
                return Ok(match op {
                    Some(op) => {
                        quote_spanned!(span=> #memory[#index] = #memory[#index] #op #right;)
                    }
                    None => quote_spanned!(span=> #memory[#index] = #right;),
                });
            }
            let value = match op {
                Some(op) => {
                    quote_spanned!(span=> ::greta_dsl::front::load(&#memory, #index) #op #right)
                }
                None => right,
            };
            return Ok(quote_spanned!(span=> ::greta_dsl::front::store(&#memory, #index, #value);));
        }
        Err(syn::Error::new_spanned(
            &left,
            "only variables (`x = …`) and memory elements (`buf[i] = …`) can be assigned",
        ))
    }

    fn if_stmt(&mut self, e: &syn::ExprIf) -> syn::Result<TokenStream> {
        if let Expr::Let(l) = &*e.cond {
            return Err(unsupported(l, "`if let`"));
        }
        let cond = self.expr(&e.cond)?;
        let then = self.block(&e.then_branch)?;
        let otherwise = match &e.else_branch {
            None => quote!({}),
            Some((_, else_expr)) => match &**else_expr {
                Expr::Block(b) => self.block(&b.block)?,
                Expr::If(nested) => {
                    let nested = self.if_stmt(nested)?;
                    quote!({ #nested })
                }
                other => return Err(syn::Error::new_spanned(&other, "unexpected `else` branch")),
            },
        };
        let cond_span = e.cond.span();
        let new_state = quote_spanned!(cond_span=> ::greta_dsl::front::CondState::new(#cond));
        Ok(quote! {{
            let mut __greta_if = #new_state;
            if __greta_if.enter_then() #then
            if __greta_if.enter_else() #otherwise
            __greta_if.finish();
        }})
    }

    fn for_stmt(&mut self, e: &syn::ExprForLoop) -> syn::Result<TokenStream> {
        if let Some(label) = &e.label {
            return Err(unsupported(label, "a loop label"));
        }
        let (var, name) = match &*e.pat {
            Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() && p.mutability.is_none() => {
                (p.ident.to_token_stream(), p.ident.to_string())
            }
            Pat::Wild(w) => (w.to_token_stream(), "_".to_string()),
            other => {
                return Err(syn::Error::new_spanned(
                    &other,
                    "a `for` loop in a kernel binds one name",
                ))
            }
        };
        let iter = self.loop_iter(&e.expr, &name)?;
        self.scopes.push(HashMap::new());
        self.bind(&name, Binding::Immutable);
        let body = self.block(&e.body);
        self.scopes.pop();
        let body = body?;
        Ok(quote!(for #var in #iter #body))
    }

    /// `a..b` and `(a..b).step_by(s)` become DSL ranges (comptime or runtime by their types);
    /// any other iterator is comptime Rust and unrolls.
    fn loop_iter(&mut self, expr: &Expr, name: &str) -> syn::Result<TokenStream> {
        let span = expr.span();
        let strip = |e: &Expr| -> Expr {
            let mut e = e.clone();
            while let Expr::Paren(p) = e {
                e = *p.expr;
            }
            e
        };
        let (range, step) = match strip(expr) {
            Expr::MethodCall(m) if m.method == "step_by" && m.args.len() == 1 => {
                match strip(&m.receiver) {
                    Expr::Range(r) => (r, Some(m.args[0].clone())),
                    _ => return self.expr(expr),
                }
            }
            Expr::Range(r) => (r, None),
            _ => return self.expr(expr),
        };
        if let syn::RangeLimits::Closed(t) = range.limits {
            return Err(syn::Error::new_spanned(
                &t,
                "inclusive ranges are not supported: write `a..b + 1`",
            ));
        }
        let (Some(start), Some(end)) = (&range.start, &range.end) else {
            return Err(syn::Error::new_spanned(
                &range,
                "a kernel loop range needs both bounds",
            ));
        };
        let start = self.expr(start)?;
        let end = self.expr(end)?;
        Ok(match step {
            Some(step) => {
                let step = self.expr(&step)?;
                quote_spanned!(span=> ::greta_dsl::front::for_range_step(#name, #start, #end, #step))
            }
            None => quote_spanned!(span=> ::greta_dsl::front::for_range(#name, #start, #end)),
        })
    }

    fn while_stmt(&mut self, e: &syn::ExprWhile) -> syn::Result<TokenStream> {
        if let Some(label) = &e.label {
            return Err(unsupported(label, "a loop label"));
        }
        if let Expr::Let(l) = &*e.cond {
            return Err(unsupported(l, "`while let`"));
        }
        let cond = self.expr(&e.cond)?;
        let body = self.block(&e.body)?;
        let span = e.cond.span();
        Ok(quote_spanned! {span=> {
            let mut __greta_while = ::greta_dsl::front::WhileState::new();
            while __greta_while.check(#cond) #body
        }})
    }

    /// An expression in value position.
    fn expr(&mut self, expr: &Expr) -> syn::Result<TokenStream> {
        let span = expr.span();
        Ok(match expr {
            Expr::Lit(l) => l.to_token_stream(),
            Expr::Path(p) => match single_ident(expr) {
                Some(ident) if self.lookup(&ident.to_string()) == Some(Binding::Var) => {
                    quote_spanned!(span=> #ident.get())
                }
                _ => p.to_token_stream(),
            },
            Expr::Paren(p) => {
                let inner = self.expr(&p.expr)?;
                quote_spanned!(span=> (#inner))
            }
            Expr::Group(g) => self.expr(&g.expr)?,
            Expr::Binary(b) => self.binary(b)?,
            Expr::Unary(u) => {
                let inner = self.expr(&u.expr)?;
                match u.op {
                    UnOp::Neg(t) => quote_spanned!(span=> #t #inner),
                    UnOp::Not(t) => quote_spanned!(span=> #t #inner),
                    _ => return Err(unsupported(u.op, "dereferencing")),
                }
            }
            Expr::Call(c) => {
                let func = match &*c.func {
                    Expr::Path(p) => p.to_token_stream(),
                    other => return Err(syn::Error::new_spanned(&other, "only named functions can be called in a kernel")),
                };
                let args = c.args.iter().map(|a| self.expr(a)).collect::<syn::Result<Vec<_>>>()?;
                let paren = c.paren_token.span.join();
                let args = quote_spanned!(paren=> (#(#args),*));
                quote!(#func #args)
            }
            Expr::MethodCall(m) => {
                let receiver = self.expr(&m.receiver)?;
                let method = &m.method;
                let turbofish = &m.turbofish;
                let args = m.args.iter().map(|a| self.expr(a)).collect::<syn::Result<Vec<_>>>()?;
                let paren = m.paren_token.span.join();
                let args = quote_spanned!(paren=> (#(#args),*));
                quote!(#receiver.#method #turbofish #args)
            }
            Expr::Field(f) => {
                let base = self.expr(&f.base)?;
                let member = &f.member;
                quote!(#base.#member)
            }
            Expr::Index(ix) => {
                let memory = self.expr(&ix.expr)?;
                let index = self.expr(&ix.index)?;
                if self.is_comptime(&ix.expr) {
                    quote_spanned!(span=> #memory[#index])
                } else {
                    quote_spanned!(span=> ::greta_dsl::front::load(&#memory, #index))
                }
            }
            Expr::Cast(c) => {
                // The operand becomes a call argument: its parentheses are redundant there.
                let mut operand = &*c.expr;
                while let Expr::Paren(p) = operand {
                    operand = &p.expr;
                }
                let value = self.expr(operand)?;
                let ty = &c.ty;
                quote_spanned!(span=> ::greta_dsl::front::CastTo::<#ty>::cast_to(#value))
            }
            Expr::Reference(r) => {
                if let Some(m) = &r.mutability {
                    return Err(unsupported(m, "`&mut`"));
                }
                let inner = self.expr(&r.expr)?;
                quote_spanned!(span=> &#inner)
            }
            Expr::Array(a) => {
                let elems = a.elems.iter().map(|e| self.expr(e)).collect::<syn::Result<Vec<_>>>()?;
                quote_spanned!(span=> [#(#elems),*])
            }
            Expr::Tuple(t) => {
                let elems = t.elems.iter().map(|e| self.expr(e)).collect::<syn::Result<Vec<_>>>()?;
                quote_spanned!(span=> (#(#elems,)*))
            }
            Expr::Repeat(r) => {
                let value = self.expr(&r.expr)?;
                let len = &r.len;
                quote_spanned!(span=> [#value; #len])
            }
            Expr::If(_) => {
                return Err(syn::Error::new_spanned(
                    expr,
                    "an `if` that produces a value is not supported in kernels: use `select(cond, a, b)`",
                ))
            }
            Expr::Block(_) => return Err(unsupported(expr, "a block that produces a value")),
            Expr::Assign(_) => return Err(unsupported(expr, "an assignment inside an expression")),
            Expr::Closure(_) => return Err(unsupported(expr, "a closure")),
            Expr::Match(_) => return Err(unsupported(expr, "`match` (use `if`/`else` or `select`)")),
            Expr::Loop(_) => return Err(unsupported(expr, "`loop` (use `while` or `for`)")),
            Expr::Break(_) => return Err(unsupported(expr, "`break`")),
            Expr::Continue(_) => return Err(unsupported(expr, "`continue`")),
            Expr::Macro(_) => return Err(unsupported(expr, "a macro call")),
            Expr::Range(_) => return Err(unsupported(expr, "a range outside a `for` loop")),
            // Plain Rust values (a comptime configuration struct, say): fields transformed.
            Expr::Struct(st) => {
                let path = &st.path;
                let mut fields = Vec::new();
                for f in &st.fields {
                    let member = &f.member;
                    let value = self.expr(&f.expr)?;
                    fields.push(quote!(#member: #value));
                }
                let rest = match &st.rest {
                    Some(r) => {
                        let r = self.expr(r)?;
                        quote!(.. #r)
                    }
                    None => quote!(),
                };
                quote_spanned!(span=> #path { #(#fields,)* #rest })
            }
            Expr::Try(_) => return Err(unsupported(expr, "the `?` operator")),
            Expr::Unsafe(_) => return Err(unsupported(expr, "`unsafe`")),
            Expr::Async(_) | Expr::Await(_) => return Err(unsupported(expr, "async code")),
            Expr::Return(_) => return Err(unsupported(expr, "`return` inside an expression")),
            Expr::ForLoop(_) | Expr::While(_) => return Err(unsupported(expr, "a loop inside an expression")),
            other => return Err(unsupported(other, "this syntax")),
        })
    }

    fn binary(&mut self, b: &syn::ExprBinary) -> syn::Result<TokenStream> {
        let span = b.span();
        if compound_op(&b.op).is_some() {
            return Err(unsupported(b, "a compound assignment inside an expression"));
        }
        let left = self.expr(&b.left)?;
        let right = self.expr(&b.right)?;
        let function = match b.op {
            BinOp::Eq(_) => "eq",
            BinOp::Ne(_) => "ne",
            BinOp::Lt(_) => "lt",
            BinOp::Le(_) => "le",
            BinOp::Gt(_) => "gt",
            BinOp::Ge(_) => "ge",
            BinOp::And(_) => "and",
            BinOp::Or(_) => "or",
            // Emitted without parentheses: the operands keep their source order and every rewritten
            // operand is a call, which binds tighter than any operator, so precedence is unchanged.
            op => return Ok(quote_spanned!(span=> #left #op #right)),
        };
        let function = syn::Ident::new(function, b.op.span());
        Ok(quote_spanned!(span=> ::greta_dsl::front::#function(#left, #right)))
    }
}
