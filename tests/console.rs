//! The console's browser test: runs `tests/console/console.test.mjs` (headless
//! Chromium driven by playwright-core) against the real daemon, simulator and
//! console started from the built binary. Skipped with a note when Chromium,
//! Node or the npm packages are missing, except under CI (`CI=true`), where
//! that is a failure: `.ci/run` installs them through
//! `tests/console/install.sh`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

fn has_node() -> bool {
    Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn console_works_in_headless_chromium_against_the_real_daemon() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console");
    let mut missing = Vec::new();
    if !chromium().exists() {
        missing.push(format!("chromium ({})", chromium().display()));
    }
    if !has_node() {
        missing.push("node".to_string());
    }
    if !dir.join("node_modules/playwright-core").exists() {
        missing.push("tests/console/node_modules (npm ci)".to_string());
    }
    if !missing.is_empty() {
        let msg = format!(
            "console browser test cannot run, missing: {}; run tests/console/install.sh",
            missing.join(", ")
        );
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
        eprintln!("skipped: {msg}");
        return;
    }
    let status = Command::new("node")
        .arg(dir.join("console.test.mjs"))
        .env("SMPPGW_BIN", env!("CARGO_BIN_EXE_smppgw"))
        .env("CHROMIUM", chromium())
        .status()
        .expect("node starts");
    assert!(
        status.success(),
        "the browser test failed: see its output above and target/console-shots/"
    );
}
