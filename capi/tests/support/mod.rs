//! Building C programs against the library this package just built.
//!
//! `cargo test -p knote-capi` builds the package's library with all its crate types into
//! `<target>/<profile>/deps/`, next to the test executable: `libknote_capi.a` and
//! `libknote_capi.so` there are the ones built from this source. (The copies one level up are
//! refreshed only by `cargo build`, so they may be stale.) Programs are compiled with the
//! system's C compiler (`$CC`, else `cc`) into `CARGO_TARGET_TMPDIR`.

#![allow(dead_code)] // each test binary uses part of it

use std::path::{Path, PathBuf};
use std::process::Command;

/// The libraries a Rust static library needs from the system (rustc's `native-static-libs`).
pub const STATIC_DEPS: &[&str] = &["-lgcc_s", "-lutil", "-lrt", "-lpthread", "-lm", "-ldl"];

/// The directory holding the freshly built `libknote_capi.{a,so}`: the test executable's own.
pub fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let dir = exe
        .parent()
        .expect("the test runs from <target>/<profile>/deps")
        .to_path_buf();
    assert!(
        dir.join("libknote_capi.a").exists() && dir.join("libknote_capi.so").exists(),
        "libknote_capi.a and .so not found in {}",
        dir.display()
    );
    dir
}

/// The package's directory (`capi/`).
pub fn package_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The header directory to put on the include path (`<sys/event.h>` is in it).
pub fn include_dir() -> PathBuf {
    package_dir().join("include")
}

/// Where compiled programs go.
pub fn out_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

fn compiler() -> String {
    std::env::var("CC").unwrap_or_else(|_| "cc".to_string())
}

/// Compiles `source` into `out_dir()/name` with warnings as errors and the extra `args` (the
/// libraries to link); panics with the compiler's output if it fails.
pub fn compile(name: &str, source: &Path, args: &[String]) -> PathBuf {
    let out = out_dir().join(name);
    let result = Command::new(compiler())
        .args([
            "-std=c11", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-pthread",
        ])
        .arg(source)
        .arg("-o")
        .arg(&out)
        .args(args)
        .output()
        .expect("running the C compiler");
    assert!(
        result.status.success(),
        "compiling {} failed:\n{}{}",
        source.display(),
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
    out
}

/// Link arguments for the static library: `-I include` plus `libknote_capi.a` and its needs.
pub fn static_link_args() -> Vec<String> {
    let mut args = vec![
        format!("-I{}", include_dir().display()),
        lib_dir().join("libknote_capi.a").display().to_string(),
    ];
    args.extend(STATIC_DEPS.iter().map(|s| s.to_string()));
    args
}
