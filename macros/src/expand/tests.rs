//! Unit tests of the token transformation: the expansion is parsed back with
//! syn and its structure checked.

use super::{expand, Kind};
use proc_macro2::{Delimiter, Group, TokenStream, TokenTree};
use quote::{quote, ToTokens};
use syn::{AttrStyle, Expr, Item, ItemFn, Stmt};

/// An expansion, parsed back.
struct Expansion {
    /// The generated function, when there is one.
    func: Option<ItemFn>,
    /// Every other item, printed.
    others: Vec<String>,
    /// The messages of the `compile_error!`s.
    errors: Vec<String>,
}

fn run(kind: Kind, args: TokenStream, item: TokenStream) -> Expansion {
    let output = expand(kind, args, item);
    let file: syn::File = syn::parse2(output.clone())
        .unwrap_or_else(|e| panic!("the expansion does not parse ({e}): {output}"));
    let mut expansion = Expansion {
        func: None,
        others: Vec::new(),
        errors: Vec::new(),
    };
    for item in file.items {
        match item {
            Item::Fn(func) => {
                assert!(expansion.func.is_none(), "two functions in {output}");
                expansion.func = Some(func);
            }
            Item::Macro(mac) if mac.mac.path.segments.last().unwrap().ident == "compile_error" => {
                let message: syn::LitStr = mac.mac.parse_body().unwrap();
                expansion.errors.push(message.value());
            }
            other => expansion.others.push(flat(&other)),
        }
    }
    expansion
}

/// The generated function of an expansion that must have succeeded.
fn ok(kind: Kind, args: TokenStream, item: TokenStream) -> ItemFn {
    let expansion = run(kind, args, item);
    assert!(
        expansion.errors.is_empty(),
        "unexpected errors: {:?}",
        expansion.errors
    );
    assert!(expansion.others.is_empty(), "{:?}", expansion.others);
    expansion.func.expect("no function in the expansion")
}

/// The error messages of an expansion that must have failed; the function is
/// still generated (with defaults) next to them.
fn fails(kind: Kind, args: TokenStream, item: TokenStream) -> Vec<String> {
    let expansion = run(kind, args, item);
    assert!(!expansion.errors.is_empty(), "no error reported");
    let func = expansion
        .func
        .expect("no recovery function in the expansion");
    assert!(func.sig.asyncness.is_none());
    expansion.errors
}

/// Asserts that there is exactly one error and that it contains every one of
/// `needles`.
fn assert_error(errors: &[String], needles: &[&str]) {
    assert_eq!(errors.len(), 1, "expected one error, got {errors:?}");
    for needle in needles {
        assert!(
            errors[0].contains(needle),
            "error {:?} does not mention {needle:?}",
            errors[0]
        );
    }
}

/// Tokens printed without whitespace, for comparisons.
fn flat(tokens: &impl ToTokens) -> String {
    tokens
        .to_token_stream()
        .to_string()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect()
}

fn main_fn() -> TokenStream {
    quote! {
        async fn main() {
            println!("hello");
        }
    }
}

fn test_fn() -> TokenStream {
    quote! {
        async fn it_works() {
            assert_eq!(1 + 1, 2);
        }
    }
}

/// The `let __knote_body = async move { .. };` statement: returns the type
/// the block's output is pinned to (if any) and the user's statements.
fn async_body(func: &ItemFn) -> (Option<String>, String) {
    let [Stmt::Local(local), _] = func.block.stmts.as_slice() else {
        panic!("unexpected body shape: {}", flat(&func.block));
    };
    assert_eq!(flat(&local.pat), "__knote_body");
    let init = local.init.as_ref().unwrap();
    let Expr::Async(block) = &*init.expr else {
        panic!("not an async block: {}", flat(&init.expr));
    };
    assert!(block.capture.is_some(), "the async block is not `move`");
    let stmts = &block.block.stmts;
    let (pin, user) = match stmts.first() {
        Some(Stmt::Expr(Expr::If(pin), None)) if flat(&pin.cond) == "false" => {
            let then = flat(&pin.then_branch);
            let ty = then
                .strip_prefix("{return::core::option::Option::<")
                .and_then(|rest| rest.strip_suffix(">::None.unwrap();}"))
                .unwrap_or_else(|| panic!("unexpected output pin: {then}"));
            (Some(ty.to_owned()), &stmts[1..])
        }
        _ => (None, &stmts[..]),
    };
    (pin, user.iter().map(flat).collect())
}

/// The calls that build the runtime and block on the body, receiver first,
/// e.g. `["::knote::runtime::Builder::new_multi_thread()", "build()", ...]`.
fn runtime_chain(func: &ItemFn) -> Vec<String> {
    let Some(Stmt::Expr(Expr::Block(tail), None)) = func.block.stmts.last() else {
        panic!("unexpected body shape: {}", flat(&func.block));
    };
    let allow = tail
        .attrs
        .iter()
        .find(|attr| attr.path().is_ident("allow"))
        .expect("no #[allow] on the runtime block");
    assert!(flat(allow).contains("clippy::expect_used"));
    let [Stmt::Expr(Expr::Return(ret), Some(_))] = tail.block.stmts.as_slice() else {
        panic!("unexpected runtime block: {}", flat(tail));
    };
    let mut expr = ret.expr.as_deref().expect("`return` without a value");
    let mut chain = Vec::new();
    while let Expr::MethodCall(call) = expr {
        chain.push(format!("{}({})", call.method, flat(&call.args)));
        expr = &call.receiver;
    }
    let Expr::Call(call) = expr else {
        panic!("the chain does not start with a call: {}", flat(expr));
    };
    assert!(call.args.is_empty());
    chain.push(format!("{}()", flat(&call.func)));
    chain.reverse();
    chain
}

fn test_attr_count(func: &ItemFn) -> usize {
    func.attrs
        .iter()
        .filter(|attr| attr.path().segments.last().unwrap().ident == "test")
        .count()
}

#[test]
fn main_defaults_to_multi_thread() {
    let func = ok(Kind::Main, quote!(), main_fn());
    assert!(func.sig.asyncness.is_none());
    assert_eq!(flat(&func.sig), "fnmain()");
    assert_eq!(test_attr_count(&func), 0);
    assert_eq!(
        async_body(&func),
        (Some("()".to_owned()), "println!(\"hello\");".to_owned())
    );
    assert_eq!(
        runtime_chain(&func),
        [
            "::knote::runtime::Builder::new_multi_thread()",
            "build()",
            "expect(\"failedtobuildtheknoteruntime\")",
            "block_on(__knote_body)",
        ]
    );
}

#[test]
fn main_keeps_attributes_visibility_and_return_type() {
    let func = ok(
        Kind::Main,
        quote!(),
        quote! {
            /// Docs.
            #[allow(unused_variables)]
            #[cfg_attr(all(), inline(never))]
            pub(crate) async fn main() -> Result<(), Box<dyn std::error::Error>> {
                let n: u32 = "1".parse()?;
                if n == 0 {
                    return Err("zero".into());
                }
                Ok(())
            }
        },
    );
    assert_eq!(
        flat(&func.attrs[0]),
        flat(&quote!(#[doc = r" Docs."])),
        "the doc comment is kept first"
    );
    assert_eq!(func.attrs.len(), 3);
    assert_eq!(flat(&func.attrs[1]), "#[allow(unused_variables)]");
    assert_eq!(flat(&func.vis), "pub(crate)");
    assert_eq!(
        flat(&func.sig),
        "fnmain()->Result<(),Box<dynstd::error::Error>>"
    );
    // `?` and `return` stay inside the async block, untouched.
    assert_eq!(
        async_body(&func),
        (
            Some("Result<(),Box<dynstd::error::Error>>".to_owned()),
            "letn:u32=\"1\".parse()?;ifn==0{returnErr(\"zero\".into());}Ok(())".to_owned()
        )
    );
}

#[test]
fn output_type_pin() {
    let pin = |item: TokenStream| async_body(&ok(Kind::Main, quote!(), item)).0;
    assert_eq!(
        pin(quote!(
            async fn main() {}
        ))
        .as_deref(),
        Some("()")
    );
    assert_eq!(
        pin(quote!(
            async fn main() -> Result<(), E> {
                Ok(())
            }
        ))
        .as_deref(),
        Some("Result<(),E>")
    );
    // Types that cannot be a generic argument on stable get no pin.
    assert_eq!(
        pin(quote!(
            async fn main() -> ! {
                loop {}
            }
        )),
        None
    );
    assert_eq!(
        pin(quote!(
            async fn main() -> impl std::process::Termination {}
        )),
        None
    );
    assert_eq!(
        pin(quote!(
            async fn main() -> Result<impl Debug, E> {
                todo!()
            }
        )),
        None
    );
}

#[test]
fn flavor_current_thread() {
    let func = ok(Kind::Main, quote!(flavor = "current_thread"), main_fn());
    assert_eq!(
        runtime_chain(&func)[0],
        "::knote::runtime::Builder::new_current_thread()"
    );
}

#[test]
fn worker_threads_with_multi_thread() {
    let func = ok(
        Kind::Main,
        quote!(flavor = "multi_thread", worker_threads = 4),
        main_fn(),
    );
    assert_eq!(
        runtime_chain(&func),
        [
            "::knote::runtime::Builder::new_multi_thread()",
            "worker_threads(4)",
            "build()",
            "expect(\"failedtobuildtheknoteruntime\")",
            "block_on(__knote_body)",
        ]
    );
    // The default flavor of `main` is multi-thread; a suffix is dropped.
    let func = ok(Kind::Main, quote!(worker_threads = 16usize,), main_fn());
    assert_eq!(runtime_chain(&func)[1], "worker_threads(16)");
}

#[test]
fn worker_threads_through_a_macro_rules_fragment() {
    // `$n:literal` arrives wrapped in an invisible group.
    let n = Group::new(Delimiter::None, quote!(2));
    let func = ok(Kind::Main, quote!(worker_threads = #n), main_fn());
    assert_eq!(runtime_chain(&func)[1], "worker_threads(2)");
}

#[test]
fn crate_path() {
    let func = ok(Kind::Main, quote!(crate = "my_knote"), main_fn());
    assert_eq!(
        runtime_chain(&func)[0],
        "my_knote::runtime::Builder::new_multi_thread()"
    );
    let func = ok(Kind::Test, quote!(crate = "crate::rt"), test_fn());
    assert_eq!(
        runtime_chain(&func)[0],
        "crate::rt::runtime::Builder::new_current_thread()"
    );
    let func = ok(Kind::Test, quote!(crate = ::other::knote), test_fn());
    assert_eq!(
        runtime_chain(&func)[0],
        "::other::knote::runtime::Builder::new_current_thread()"
    );
}

#[test]
fn test_defaults_to_current_thread_and_adds_test() {
    let func = ok(Kind::Test, quote!(), test_fn());
    assert!(func.sig.asyncness.is_none());
    assert_eq!(flat(&func.sig), "fnit_works()");
    assert_eq!(test_attr_count(&func), 1);
    assert_eq!(flat(&func.attrs[0]), "#[::core::prelude::v1::test]");
    assert_eq!(
        runtime_chain(&func)[0],
        "::knote::runtime::Builder::new_current_thread()"
    );
}

#[test]
fn test_keeps_attributes_and_does_not_duplicate_test() {
    let func = ok(
        Kind::Test,
        quote!(flavor = "multi_thread", worker_threads = 2),
        quote! {
            #[test]
            #[should_panic(expected = "boom")]
            #[ignore]
            async fn panics() -> Result<(), String> {
                panic!("boom");
            }
        },
    );
    assert_eq!(test_attr_count(&func), 1);
    let attrs: Vec<String> = func.attrs.iter().map(flat).collect();
    assert_eq!(
        attrs,
        ["#[test]", "#[should_panic(expected=\"boom\")]", "#[ignore]"]
    );
    assert_eq!(flat(&func.sig), "fnpanics()->Result<(),String>");
    assert_eq!(
        runtime_chain(&func)[..2],
        [
            "::knote::runtime::Builder::new_multi_thread()",
            "worker_threads(2)"
        ]
    );

    // Written through the prelude, too.
    let func = ok(
        Kind::Test,
        quote!(),
        quote! {
            #[::std::prelude::rust_2021::test]
            async fn t() {}
        },
    );
    assert_eq!(test_attr_count(&func), 1);

    // Another crate's `test` attribute is not the built-in one.
    let func = ok(
        Kind::Test,
        quote!(),
        quote! {
            #[other::test]
            async fn t() {}
        },
    );
    assert_eq!(test_attr_count(&func), 2);
    assert_eq!(flat(&func.attrs[0]), "#[::core::prelude::v1::test]");
}

#[test]
fn inner_attributes_are_hoisted() {
    let func = ok(
        Kind::Main,
        quote!(),
        quote! {
            async fn main() {
                #![allow(unused_variables)]
                let x = 1;
            }
        },
    );
    let inner: Vec<String> = func
        .attrs
        .iter()
        .filter(|attr| matches!(attr.style, AttrStyle::Inner(_)))
        .map(flat)
        .collect();
    assert_eq!(inner, ["#![allow(unused_variables)]"]);
    assert_eq!(async_body(&func).1, "letx=1;");
}

#[test]
fn the_body_is_not_parsed() {
    // Tokens that are no valid Rust are the compiler's business, not ours.
    let output = expand(
        Kind::Main,
        quote!(),
        quote! {
            async fn main() { @ # $ }
        },
    );
    assert!(!flat(&output).contains("compile_error"), "{output}");
    assert!(flat(&output).contains("None.unwrap();}@#$}"), "{output}");
}

#[test]
fn main_on_another_function_may_take_arguments() {
    let func = ok(
        Kind::Main,
        quote!(),
        quote! {
            pub async fn run(n: u32) -> u32 { n + 1 }
        },
    );
    assert_eq!(flat(&func.vis), "pub");
    assert_eq!(flat(&func.sig), "fnrun(n:u32)->u32");
}

#[test]
fn error_not_async() {
    let errors = fails(
        Kind::Main,
        quote!(),
        quote!(
            fn main() {}
        ),
    );
    assert_error(&errors, &["#[knote::main]", "`async` keyword is missing"]);
    let errors = errors_of_test(quote!(
        fn t() {}
    ));
    assert_error(&errors, &["#[knote::test]", "`async` keyword is missing"]);
}

fn errors_of_test(item: TokenStream) -> Vec<String> {
    fails(Kind::Test, quote!(), item)
}

#[test]
fn error_not_a_function() {
    let expansion = run(
        Kind::Main,
        quote!(),
        quote!(
            struct S;
        ),
    );
    assert!(expansion.func.is_none());
    assert_eq!(expansion.others, ["structS;"], "the item is kept");
    assert_error(
        &expansion.errors,
        &["#[knote::main] can only be applied to an `async fn`"],
    );

    let expansion = run(
        Kind::Test,
        quote!(),
        quote!(
            async fn t();
        ),
    );
    assert_error(
        &expansion.errors,
        &["#[knote::test] can only be applied to an `async fn` with a body"],
    );
}

#[test]
fn error_unknown_argument() {
    let errors = fails(Kind::Main, quote!(threads = 4), main_fn());
    assert_error(
        &errors,
        &[
            "unknown argument `threads`",
            "flavor",
            "worker_threads",
            "crate",
        ],
    );
    let errors = fails(Kind::Test, quote!(start_time = 0), test_fn());
    assert_error(&errors, &["unknown argument `start_time`", "start_paused"]);
    let errors = fails(Kind::Test, quote!(a::b), test_fn());
    assert_error(&errors, &["unknown argument `a::b`"]);
    // A flavor name on its own gets a hint.
    let errors = fails(Kind::Main, quote!(current_thread), main_fn());
    assert_error(&errors, &["did you mean `flavor = \"current_thread\"`?"]);
}

#[test]
fn error_unparsable_arguments() {
    let errors = fails(Kind::Main, quote!(4), main_fn());
    assert_error(&errors, &["invalid #[knote::main] arguments", "expected"]);
    let errors = fails(Kind::Main, quote!(flavor = ), main_fn());
    assert_error(&errors, &["invalid #[knote::main] arguments"]);
}

#[test]
fn error_known_argument_without_value() {
    let errors = fails(Kind::Main, quote!(worker_threads), main_fn());
    assert_error(&errors, &["expected a value: `worker_threads = 4`"]);
    let errors = fails(Kind::Main, quote!(flavor("multi_thread")), main_fn());
    assert_error(&errors, &["expected a value: `flavor = \"multi_thread\"`"]);
}

#[test]
fn error_bad_flavor() {
    let errors = fails(Kind::Main, quote!(flavor = "single_thread"), main_fn());
    assert_error(
        &errors,
        &[
            "unknown runtime flavor \"single_thread\"",
            "\"current_thread\"",
            "\"multi_thread\"",
        ],
    );
    let errors = fails(Kind::Main, quote!(flavor = multi_thread), main_fn());
    assert_error(&errors, &["`flavor` takes a string literal"]);
}

#[test]
fn error_worker_threads_with_current_thread() {
    let errors = fails(
        Kind::Main,
        quote!(flavor = "current_thread", worker_threads = 2),
        main_fn(),
    );
    assert_error(
        &errors,
        &[
            "`worker_threads` cannot be used with `flavor = \"current_thread\"`",
            "use `flavor = \"multi_thread\"`",
        ],
    );
    // Order does not matter.
    let errors = errors_with(
        Kind::Main,
        quote!(worker_threads = 2, flavor = "current_thread"),
    );
    assert_error(&errors, &["`worker_threads` cannot be used"]);
    // The default flavor of tests is current-thread.
    let errors = fails(Kind::Test, quote!(worker_threads = 2), test_fn());
    assert_error(
        &errors,
        &[
            "default flavor of #[knote::test] is `current_thread`",
            "add `flavor = \"multi_thread\"`",
        ],
    );
}

fn errors_with(kind: Kind, args: TokenStream) -> Vec<String> {
    let item = match kind {
        Kind::Main => main_fn(),
        Kind::Test => test_fn(),
    };
    fails(kind, args, item)
}

#[test]
fn error_bad_worker_threads() {
    let errors = errors_with(Kind::Main, quote!(worker_threads = 0));
    assert_error(&errors, &["`worker_threads` must be at least 1"]);
    let errors = errors_with(Kind::Main, quote!(worker_threads = -1));
    assert_error(&errors, &["`worker_threads` must be at least 1"]);
    for args in [
        quote!(worker_threads = "4"),
        quote!(worker_threads = 1.5),
        quote!(worker_threads = N),
    ] {
        let errors = errors_with(Kind::Main, args);
        assert_error(&errors, &["`worker_threads` takes an integer literal"]);
    }
    let errors = errors_with(Kind::Main, quote!(worker_threads = 99999999999999999999999));
    assert_error(&errors, &["invalid `worker_threads`"]);
}

#[test]
fn error_bad_crate_path() {
    let errors = errors_with(Kind::Main, quote!(crate = "not a path"));
    assert_error(&errors, &["`crate` must name a path"]);
    let errors = errors_with(Kind::Main, quote!(crate = "knote::<u8>"));
    assert_error(&errors, &["`crate` must name a path"]);
    let errors = errors_with(Kind::Main, quote!(crate = 1));
    assert_error(&errors, &["`crate` takes the path of the knote crate"]);
}

#[test]
fn error_duplicate_arguments() {
    let errors = errors_with(
        Kind::Main,
        quote!(flavor = "multi_thread", flavor = "current_thread"),
    );
    assert_error(&errors, &["argument `flavor` is given more than once"]);
    let errors = errors_with(
        Kind::Test,
        quote!(
            flavor = "multi_thread",
            worker_threads = 1,
            worker_threads = 2
        ),
    );
    assert_error(
        &errors,
        &["argument `worker_threads` is given more than once"],
    );
    let errors = errors_with(Kind::Test, quote!(crate = "a", crate = "b"));
    assert_error(&errors, &["argument `crate` is given more than once"]);
}

#[test]
fn error_arguments_on_main_or_test() {
    let errors = fails(
        Kind::Main,
        quote!(),
        quote!(
            async fn main(n: u32) {}
        ),
    );
    assert_error(&errors, &["the `main` function cannot take arguments"]);
    let errors = errors_of_test(quote!(
        async fn t(a: u8, b: u8) {}
    ));
    assert_error(
        &errors,
        &["a `#[knote::test]` function cannot take arguments"],
    );
    let errors = errors_of_test(quote!(
        async fn t<T: Default>() {}
    ));
    assert_error(
        &errors,
        &["a `#[knote::test]` function cannot have generic parameters"],
    );
}

#[test]
fn every_error_is_reported_and_the_function_still_generated() {
    let expansion = run(
        Kind::Test,
        quote!(flavor = "nope", worker_threads = 0, bogus = 1),
        quote!(
            fn t(x: u8) {}
        ),
    );
    assert_eq!(expansion.errors.len(), 5, "{:?}", expansion.errors);
    let func = expansion.func.unwrap();
    // Rejected arguments fall back to their defaults.
    assert_eq!(
        runtime_chain(&func)[0],
        "::knote::runtime::Builder::new_current_thread()"
    );
    assert_eq!(test_attr_count(&func), 1);

    // A valid argument next to an invalid one is still honoured.
    let expansion = run(
        Kind::Main,
        quote!(crate = "k", worker_threads = 0),
        main_fn(),
    );
    assert_eq!(expansion.errors.len(), 1);
    assert_eq!(
        runtime_chain(&expansion.func.unwrap()),
        [
            "k::runtime::Builder::new_multi_thread()",
            "build()",
            "expect(\"failedtobuildtheknoteruntime\")",
            "block_on(__knote_body)",
        ]
    );
}

#[test]
fn the_generated_body_uses_the_user_braces() {
    // The body group is rebuilt, not nested in another one.
    let output = expand(Kind::Main, quote!(), main_fn());
    let last = output.into_iter().last().unwrap();
    let TokenTree::Group(group) = last else {
        panic!("the function does not end with its body");
    };
    assert_eq!(group.delimiter(), Delimiter::Brace);
}

#[test]
fn start_paused_pauses_inside_the_runtime() {
    let func = ok(Kind::Test, quote!(start_paused = true), test_fn());
    let chain = runtime_chain(&func);
    assert_eq!(chain[0], "::knote::runtime::Builder::new_current_thread()");
    let run = chain.last().unwrap();
    assert!(
        run.starts_with("block_on(asyncmove{::knote::time::pause();__knote_body.await"),
        "{run}"
    );
    // `start_paused = false` is the default expansion.
    let func = ok(Kind::Test, quote!(start_paused = false), test_fn());
    assert_eq!(
        runtime_chain(&func).last().unwrap(),
        "block_on(__knote_body)"
    );
}

#[test]
fn start_paused_errors() {
    let errors = fails(
        Kind::Test,
        quote!(flavor = "multi_thread", start_paused = true),
        test_fn(),
    );
    assert_error(&errors, &["start_paused", "current_thread"]);
    let errors = fails(Kind::Test, quote!(start_paused = "yes"), test_fn());
    assert_error(&errors, &["boolean literal"]);
    let errors = fails(Kind::Main, quote!(start_paused), main_fn());
    assert_error(&errors, &["expected a value", "start_paused = true"]);
}
