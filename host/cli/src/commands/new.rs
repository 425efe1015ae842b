//! `convergio new`: a plugin crate from the SDK's templates.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::ValueEnum;

/// Create a new plugin crate from a template.
#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// What to create.
    kind: NewKind,
    /// Plugin id (lowercase letters, digits, dashes); also the folder name.
    name: String,
    /// Folder to create the crate in (default: ./NAME).
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// Kinds of plugin `new` can create.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum NewKind {
    /// A tool component.
    Tool,
    /// A model provider adapter.
    Provider,
    /// An agent.
    Agent,
}

impl NewArgs {
    /// Create the crate and say how to build it.
    pub fn run(self) -> Result<ExitCode> {
        let dir = self.dir.unwrap_or_else(|| PathBuf::from(&self.name));
        create(self.kind, &self.name, &dir)?;
        println!("created {} in {}", self.name, dir.display());
        println!(
            "build it:  cd {} && cargo build --target wasm32-wasip2 --release",
            dir.display()
        );
        Ok(ExitCode::SUCCESS)
    }
}

/// (path in the new crate, template text) for each kind.
fn templates(kind: NewKind) -> Vec<(&'static str, &'static str)> {
    macro_rules! kind {
        ($dir:literal) => {
            [
                (
                    "Cargo.toml",
                    include_str!(concat!(
                        "../../../../sdk/templates/",
                        $dir,
                        "/Cargo.toml.tmpl"
                    )),
                ),
                (
                    "src/lib.rs",
                    include_str!(concat!(
                        "../../../../sdk/templates/",
                        $dir,
                        "/src/lib.rs.tmpl"
                    )),
                ),
                (
                    "plugin.toml",
                    include_str!(concat!(
                        "../../../../sdk/templates/",
                        $dir,
                        "/plugin.toml.tmpl"
                    )),
                ),
                (
                    "README.md",
                    include_str!(concat!(
                        "../../../../sdk/templates/",
                        $dir,
                        "/README.md.tmpl"
                    )),
                ),
            ]
        };
    }
    // A provider's modules: the SDK's one adapter shape.
    macro_rules! module {
        ($file:literal) => {
            (
                concat!("src/", $file, ".rs"),
                include_str!(concat!(
                    "../../../../sdk/templates/provider/src/",
                    $file,
                    ".rs.tmpl"
                )),
            )
        };
    }
    match kind {
        NewKind::Tool => kind!("tool").to_vec(),
        NewKind::Provider => [
            kind!("provider").as_slice(),
            &[
                module!("config"),
                module!("models"),
                module!("wire"),
                module!("map"),
            ],
        ]
        .concat(),
        NewKind::Agent => kind!("agent").to_vec(),
    }
}

/// Where the SDK is: `CONVERGIO_SDK_PATH`, else the source tree this binary was built from.
fn sdk_dependency() -> String {
    let path = std::env::var_os("CONVERGIO_SDK_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk"));
    match path.canonicalize() {
        Ok(abs) => format!("{{ path = {:?} }}", abs.display().to_string()),
        // A binary installed away from its sources: use the published crate.
        Err(_) => format!("\"{}\"", env!("CARGO_PKG_VERSION")),
    }
}

/// Create crate `name` of `kind` in `dir`, which must not exist or be empty.
fn create(kind: NewKind, name: &str, dir: &Path) -> Result<()> {
    if let Some(problem) = convergio_runtime::manifest::id_problem(name) {
        bail!("{problem}");
    }
    if dir.exists()
        && dir
            .read_dir()
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!(
            "{} already exists and is not empty; choose another name or --dir",
            dir.display()
        );
    }
    let crate_name = name.replace('-', "_");
    let sdk = sdk_dependency();
    for (relative, template) in templates(kind) {
        let text = template
            .replace("{{name}}", name)
            .replace("{{crate_name}}", &crate_name)
            .replace("{{sdk_dependency}}", &sdk);
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
