//! The token transformation behind `#[knote::main]` and `#[knote::test]`.
//!
//! Everything here works on `proc_macro2` types only, so that it can be
//! unit-tested outside of a procedural macro invocation.

use proc_macro2::{Delimiter, Group, Ident, Literal, Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned, ToTokens};
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Attribute, Expr, Lit, Meta, Path, ReturnType, Signature, Token, Visibility};

/// Which attribute is being expanded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `#[knote::main]`
    Main,
    /// `#[knote::test]`
    Test,
}

impl Kind {
    /// The attribute as the user writes it, for error messages.
    fn attr(self) -> &'static str {
        match self {
            Kind::Main => "#[knote::main]",
            Kind::Test => "#[knote::test]",
        }
    }

    /// The flavor used when no `flavor = "..."` is given (as in tokio).
    fn default_flavor(self) -> Flavor {
        match self {
            Kind::Main => Flavor::MultiThread,
            Kind::Test => Flavor::CurrentThread,
        }
    }
}

/// The runtime flavor, i.e. which `Builder` constructor is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flavor {
    CurrentThread,
    MultiThread,
}

impl Flavor {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "current_thread" => Some(Flavor::CurrentThread),
            "multi_thread" => Some(Flavor::MultiThread),
            _ => None,
        }
    }

    fn constructor(self) -> &'static str {
        match self {
            Flavor::CurrentThread => "new_current_thread",
            Flavor::MultiThread => "new_multi_thread",
        }
    }
}

/// The arguments of the attribute, after validation.
struct Config {
    flavor: Flavor,
    /// The literal `N` of `worker_threads = N`, re-emitted unsuffixed with
    /// the user's span.
    worker_threads: Option<Literal>,
    /// The path of the knote crate (`::knote` unless `crate = "..."`).
    crate_path: TokenStream,
    /// `start_paused = true`: the body starts with the runtime's clock paused.
    start_paused: bool,
}

/// Accumulates every error found, so that the user sees all of them at once.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(first) => first.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn spanned<T: ToTokens>(&mut self, tokens: T, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }
}

/// The annotated function. The body is kept as raw tokens (it is neither
/// parsed nor re-printed by syn), which is cheaper and keeps every token of
/// the user's code exactly as written, spans included.
struct AsyncFn {
    attrs: Vec<Attribute>,
    vis: Visibility,
    sig: Signature,
    /// The span of the body's braces.
    brace_span: Span,
    /// `#![...]` attributes at the start of the body; they are hoisted to the
    /// start of the generated (sync) body, where they keep their meaning.
    inner_attrs: Vec<Attribute>,
    body: TokenStream,
}

impl Parse for AsyncFn {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis = input.parse()?;
        let sig = input.parse()?;
        let content;
        let brace = syn::braced!(content in input);
        let inner_attrs = content.call(Attribute::parse_inner)?;
        let body = content.parse()?;
        Ok(AsyncFn {
            attrs,
            vis,
            sig,
            brace_span: brace.span.join(),
            inner_attrs,
            body,
        })
    }
}

/// Expands `#[knote::main(args)]` / `#[knote::test(args)]` applied to
/// `item`.
///
/// Never panics: every problem becomes a `compile_error!` carrying the span
/// of the offending tokens. Whenever the function itself could be parsed, the
/// output still contains the generated function (with the default value for
/// any argument that was rejected), so that follow-up errors stay few and IDEs
/// keep working on the body.
pub(crate) fn expand(kind: Kind, args: TokenStream, item: TokenStream) -> TokenStream {
    let func: AsyncFn = match syn::parse2(item.clone()) {
        Ok(func) => func,
        Err(error) => {
            let message = format!(
                "{} can only be applied to an `async fn` with a body: {error}",
                kind.attr()
            );
            let mut tokens = item;
            tokens.extend(syn::Error::new(error.span(), message).to_compile_error());
            return tokens;
        }
    };

    let mut errors = Errors::default();
    check_signature(kind, &func, &mut errors);
    let config = parse_config(kind, args, &mut errors);
    let mut tokens = generate(kind, &config, func);
    if let Some(error) = errors.0 {
        tokens.extend(error.to_compile_error());
    }
    tokens
}

fn check_signature(kind: Kind, func: &AsyncFn, errors: &mut Errors) {
    let sig = &func.sig;
    if sig.asyncness.is_none() {
        errors.spanned(
            sig.fn_token,
            format!(
                "{} can only be applied to an `async fn`: the `async` keyword is missing from \
                 the function declaration",
                kind.attr()
            ),
        );
    }

    // As in tokio, `#[knote::main]` may also turn a function that is not
    // `main` into a blocking entry point; only `fn main` and tests (whose
    // signatures the language fixes) are held to "no arguments, no generics".
    let what = match kind {
        Kind::Main if sig.ident == "main" => "the `main` function",
        Kind::Main => return,
        Kind::Test => "a `#[knote::test]` function",
    };
    if !sig.inputs.is_empty() {
        errors.spanned(&sig.inputs, format!("{what} cannot take arguments"));
    }
    if !sig.generics.params.is_empty() {
        errors.spanned(
            &sig.generics.params,
            format!("{what} cannot have generic parameters"),
        );
    }
}

const EXPECTED_ARGS: &str = "expected `flavor = \"current_thread\"`, \
                             `flavor = \"multi_thread\"`, `worker_threads = N`, \
                             `start_paused = true` or `crate = \"path\"`";

/// Parses and validates the attribute's arguments. Invalid arguments are
/// reported to `errors` and replaced by their default.
fn parse_config(kind: Kind, args: TokenStream, errors: &mut Errors) -> Config {
    let mut flavor: Option<Flavor> = None;
    let mut worker_threads: Option<(Literal, TokenStream)> = None;
    let mut crate_path: Option<TokenStream> = None;
    let mut start_paused: Option<(bool, TokenStream)> = None;

    let metas = match Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args) {
        Ok(metas) => metas,
        Err(error) => {
            errors.push(syn::Error::new(
                error.span(),
                format!(
                    "invalid {} arguments: {error}; {EXPECTED_ARGS}",
                    kind.attr()
                ),
            ));
            Punctuated::new()
        }
    };

    let mut seen: Vec<String> = Vec::new();
    for meta in &metas {
        // `flavor`, or `a::b` for a (wrong) multi-segment path.
        let name = meta.path().to_token_stream().to_string().replace(' ', "");
        let known = matches!(
            name.as_str(),
            "flavor" | "worker_threads" | "crate" | "start_paused"
        );
        let value = match meta {
            Meta::NameValue(nv) if known => strip_group(&nv.value),
            _ if known => {
                errors.spanned(
                    meta,
                    format!("expected a value: `{name} = {}`", placeholder(&name)),
                );
                continue;
            }
            Meta::Path(_) if Flavor::parse(&name).is_some() => {
                errors.spanned(
                    meta,
                    format!("unknown argument `{name}`; did you mean `flavor = \"{name}\"`?"),
                );
                continue;
            }
            _ => {
                errors.spanned(
                    meta.path(),
                    format!(
                        "unknown argument `{name}` for {}; {EXPECTED_ARGS}",
                        kind.attr()
                    ),
                );
                continue;
            }
        };
        if seen.contains(&name) {
            errors.spanned(meta, format!("argument `{name}` is given more than once"));
            continue;
        }
        seen.push(name.clone());

        match name.as_str() {
            "flavor" => flavor = parse_flavor(value, errors),
            "worker_threads" => {
                worker_threads =
                    parse_worker_threads(value, errors).map(|lit| (lit, meta.to_token_stream()));
            }
            "start_paused" => {
                start_paused =
                    parse_bool(&name, value, errors).map(|b| (b, meta.to_token_stream()));
            }
            _ => crate_path = parse_crate_path(value, errors),
        }
    }

    let explicit_flavor = flavor.is_some();
    let flavor = flavor.unwrap_or_else(|| kind.default_flavor());
    let worker_threads = match worker_threads {
        Some((_, meta)) if flavor == Flavor::CurrentThread => {
            let message = if explicit_flavor {
                "`worker_threads` cannot be used with `flavor = \"current_thread\"`: that runtime \
                 runs everything on the calling thread; use `flavor = \"multi_thread\"`"
                    .to_owned()
            } else {
                format!(
                    "`worker_threads` needs the multi-thread runtime, and the default flavor of \
                     {} is `current_thread`: add `flavor = \"multi_thread\"`",
                    kind.attr()
                )
            };
            errors.spanned(meta, message);
            None
        }
        other => other.map(|(lit, _)| lit),
    };

    let start_paused = match start_paused {
        Some((true, meta)) if flavor == Flavor::MultiThread => {
            errors.spanned(
                meta,
                "`start_paused = true` needs `flavor = \"current_thread\"`: a paused clock is \
                 only available on the current-thread runtime (as in tokio)",
            );
            false
        }
        other => other.is_some_and(|(paused, _)| paused),
    };

    Config {
        flavor,
        worker_threads,
        crate_path: crate_path.unwrap_or_else(|| quote!(::knote)),
        start_paused,
    }
}

/// The example value shown when a known argument is given without one.
fn placeholder(name: &str) -> &'static str {
    match name {
        "flavor" => "\"multi_thread\"",
        "worker_threads" => "4",
        "start_paused" => "true",
        _ => "\"::knote\"",
    }
}

/// Sees through the invisible groups that `macro_rules!` puts around
/// substituted fragments such as `$n:literal`.
fn strip_group(mut expr: &Expr) -> &Expr {
    while let Expr::Group(group) = expr {
        expr = &group.expr;
    }
    expr
}

fn parse_flavor(value: &Expr, errors: &mut Errors) -> Option<Flavor> {
    if let Expr::Lit(syn::ExprLit {
        lit: Lit::Str(lit), ..
    }) = value
    {
        let flavor = Flavor::parse(&lit.value());
        if flavor.is_none() {
            errors.spanned(
                lit,
                format!(
                    "unknown runtime flavor {:?}; expected \"current_thread\" or \"multi_thread\"",
                    lit.value()
                ),
            );
        }
        return flavor;
    }
    errors.spanned(
        value,
        "`flavor` takes a string literal: `flavor = \"current_thread\"` or \
         `flavor = \"multi_thread\"`",
    );
    None
}

fn parse_bool(name: &str, value: &Expr, errors: &mut Errors) -> Option<bool> {
    if let Expr::Lit(syn::ExprLit {
        lit: Lit::Bool(lit),
        ..
    }) = value
    {
        return Some(lit.value);
    }
    errors.spanned(
        value,
        format!("`{name}` takes a boolean literal: `{name} = true` or `{name} = false`"),
    );
    None
}

fn parse_worker_threads(value: &Expr, errors: &mut Errors) -> Option<Literal> {
    if let Expr::Lit(syn::ExprLit {
        lit: Lit::Int(lit), ..
    }) = value
    {
        let negative = lit.base10_digits().starts_with('-');
        return match lit.base10_parse::<usize>() {
            Ok(0) => {
                errors.spanned(lit, "`worker_threads` must be at least 1");
                None
            }
            Err(_) if negative => {
                errors.spanned(lit, "`worker_threads` must be at least 1");
                None
            }
            Ok(n) => {
                let mut literal = Literal::usize_unsuffixed(n);
                literal.set_span(lit.span());
                Some(literal)
            }
            Err(error) => {
                errors.spanned(lit, format!("invalid `worker_threads`: {error}"));
                None
            }
        };
    }
    errors.spanned(
        value,
        "`worker_threads` takes an integer literal of at least 1, e.g. `worker_threads = 4`",
    );
    None
}

fn parse_crate_path(value: &Expr, errors: &mut Errors) -> Option<TokenStream> {
    let parsed = match value {
        // The documented form, as in tokio: `crate = "path"`. The path's
        // tokens get the string literal's span.
        Expr::Lit(syn::ExprLit {
            lit: Lit::Str(lit), ..
        }) => lit.parse_with(Path::parse_mod_style).map_err(|error| {
            syn::Error::new(
                error.span(),
                format!("`crate` must name a path, e.g. `crate = \"::knote\"`: {error}"),
            )
        }),
        // Also accepted: a bare path, `crate = my::knote`.
        Expr::Path(path) if path.qself.is_none() && path.attrs.is_empty() => Ok(path.path.clone()),
        _ => Err(syn::Error::new_spanned(
            value,
            "`crate` takes the path of the knote crate as a string literal, \
             e.g. `crate = \"::knote\"`",
        )),
    };
    match parsed {
        Ok(path) => Some(path.into_token_stream()),
        Err(error) => {
            errors.push(error);
            None
        }
    }
}

/// Whether `attr` is the built-in `#[test]` (as `test`, or through the
/// prelude as e.g. `::core::prelude::v1::test`).
fn is_test_attr(attr: &Attribute) -> bool {
    let segments: Vec<String> = attr
        .path()
        .segments
        .iter()
        .map(|segment| segment.ident.to_string())
        .collect();
    match segments.as_slice() {
        [name] => name == "test",
        [krate, prelude, _, name] => {
            (krate == "core" || krate == "std") && prelude == "prelude" && name == "test"
        }
        _ => false,
    }
}

fn generate(kind: Kind, config: &Config, func: AsyncFn) -> TokenStream {
    let AsyncFn {
        attrs,
        vis,
        mut sig,
        brace_span,
        inner_attrs,
        body,
    } = func;
    sig.asyncness = None;

    let test_attr = if kind == Kind::Test && !attrs.iter().any(is_test_attr) {
        quote!(#[::core::prelude::v1::test])
    } else {
        TokenStream::new()
    };

    // The user's body becomes an async block with the body's own braces, so
    // that `return` and `?` inside it leave the block with its value, and
    // diagnostics about the body point at the user's code.
    let output_pin = output_pin(&sig);
    let mut async_body = Group::new(Delimiter::Brace, quote!(#output_pin #body));
    async_body.set_span(brace_span);
    // A name no user item has (a `const body` in scope would turn `let body`
    // into a constant pattern, hygiene or not), with mixed-site hygiene so
    // that it is invisible to the user's code anyway.
    let body_ident = Ident::new("__knote_body", Span::mixed_site());

    let crate_path = &config.crate_path;
    let constructor = Ident::new(config.flavor.constructor(), Span::call_site());
    let worker_threads = config
        .worker_threads
        .as_ref()
        .map(|n| quote!(.worker_threads(#n)));
    // A paused clock: paused inside the runtime, before the body's first poll.
    let run = if config.start_paused {
        quote!(async move {
            #crate_path::time::pause();
            #body_ident.await
        })
    } else {
        quote!(#body_ident)
    };

    // The explicit `return` in a block statement (as in tokio) keeps the
    // value of `block_on` the value of the function whatever the body ends
    // with, including a diverging body in a `-> !` function.
    let block = quote! {
        #(#inner_attrs)*
        let #body_ident = async move #async_body;
        #[allow(
            clippy::expect_used,
            clippy::diverging_sub_expression,
            clippy::needless_return
        )]
        {
            return #crate_path::runtime::Builder::#constructor()
                #worker_threads
                .build()
                .expect("failed to build the knote runtime")
                .block_on(#run);
        }
    };
    let mut block = Group::new(Delimiter::Brace, block);
    block.set_span(brace_span);

    quote! {
        #test_attr
        #(#attrs)*
        #vis #sig #block
    }
}

/// A statement that fixes the output type of the async block to the
/// function's return type before the compiler sees the user's code.
///
/// Without it the output type is inferred from the body, so a wrong tail
/// expression (`Ok(())` in a function returning `()`, or a missing one) is
/// reported against the generated `block_on` call, i.e. the attribute, and a
/// stray `return 1;` makes the *correct* tail the culprit. With it, such
/// errors point at the user's expression, and `?` knows its error type. The
/// `return` is never executed (and costs nothing once compiled).
///
/// Left out where the return type cannot be written in that position: `!`
/// and `impl Trait` (neither is allowed as a generic argument on stable).
fn output_pin(sig: &Signature) -> TokenStream {
    let (ty, span) = match &sig.output {
        // Where `-> ()` would be, as rustc does for a default return type.
        ReturnType::Default => (
            quote!(()),
            Span::call_site().located_at(sig.paren_token.span.close()),
        ),
        ReturnType::Type(_, ty) if !nameable(ty.to_token_stream()) => return TokenStream::new(),
        // The pin is our code (call-site hygiene, so no lint fires on it), but
        // it is located at the declared return type, so that "return type
        // inferred to be ... here" notes point there.
        ReturnType::Type(_, ty) => (
            ty.to_token_stream(),
            Span::call_site().located_at(ty.span()),
        ),
    };
    quote_spanned! {span=>
        #[allow(clippy::unwrap_used, clippy::needless_return)]
        if false {
            return ::core::option::Option::<#ty>::None.unwrap();
        }
    }
}

/// Whether a return type can be used as a generic argument: it mentions
/// neither `impl` nor `!` (which, in a type, is the never type).
fn nameable(ty: TokenStream) -> bool {
    ty.into_iter().all(|token| match token {
        TokenTree::Ident(ident) => ident != "impl",
        TokenTree::Punct(punct) => punct.as_char() != '!',
        TokenTree::Group(group) => nameable(group.stream()),
        TokenTree::Literal(_) => true,
    })
}

#[cfg(test)]
mod tests;
