//! The adapter's settings, read from `wasi:config` (the values the operator
//! sets under the plugin's `[plugin.grants]` `config = { … }` in
//! `platform.toml`) and checked before any request is sent.
//!
//! One component speaks to OpenAI or, with `flavor = "azure"`, to an Azure
//! OpenAI resource, where the model named in a request is a deployment.

use convergio_sdk::provider::{ModelError, ModelInfo};

use crate::models::{self, ModelSpec};

/// Where OpenAI's API lives unless `base-url` says otherwise.
pub const DEFAULT_OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
/// The OpenAI key unless `key` says otherwise.
pub const DEFAULT_OPENAI_KEY: &str = "openai/default";
/// The Azure OpenAI key unless `key` says otherwise (its auth header,
/// `api-key`, follows from the key's scheme in the vault).
pub const DEFAULT_AZURE_KEY: &str = "azure-openai/default";
/// The newest generally available dated Azure OpenAI data-plane version.
pub const DEFAULT_AZURE_API_VERSION: &str = "2024-10-21";

/// The configuration keys, as the operator writes them.
pub const KEYS: [&str; 5] = ["flavor", "base-url", "key", "api-version", "deployments"];

/// Which API the component speaks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flavor {
    OpenAi,
    Azure {
        api: AzureApi,
        /// The deployments `models()` lists, in the operator's order.
        deployments: Vec<Deployment>,
    },
}

/// How Azure request URLs are built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AzureApi {
    /// `{endpoint}/openai/deployments/{deployment}/…?api-version=…`.
    Dated(String),
    /// `{endpoint}/openai/v1/…`, the deployment named in the body's `model`.
    V1,
}

/// An Azure deployment and the declared model it runs (for its limits,
/// features and prices).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    pub name: String,
    pub model: &'static str,
}

/// The checked settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub flavor: Flavor,
    /// `scheme://host[:port][/prefix]`, without a trailing slash.
    pub base_url: String,
    /// The key's provider in the vault.
    pub key_provider: String,
    /// The key's name.
    pub key_name: String,
}

impl Flavor {
    /// Whether `flavor` names Azure; `get` as for [`Settings::load`]. An
    /// unreadable or unknown value reads as OpenAI here; [`Settings::load`]
    /// reports it.
    pub fn is_azure(get: impl Fn(&str) -> Result<Option<String>, String>) -> bool {
        matches!(get("flavor"), Ok(Some(v)) if matches!(flavor(&v), Ok(true)))
    }
}

impl Settings {
    /// Read and check every setting; `get` returns the value of a key, `None`
    /// when the operator did not set it, or why it could not be read.
    pub fn load(get: impl Fn(&str) -> Result<Option<String>, String>) -> Result<Self, ModelError> {
        let read = |key: &str| {
            get(key).map_err(|e| {
                ModelError::BadRequest(format!(
                    "configuration `{key}` of the OpenAI provider could not be read: {e}"
                ))
            })
        };
        let azure = match read("flavor")? {
            Some(v) => flavor(&v)?,
            None => false,
        };
        if !azure {
            for key in ["api-version", "deployments"] {
                if read(key)?.is_some() {
                    return Err(invalid(
                        key,
                        "(set)",
                        "applies only to Azure OpenAI (flavor = \"azure\")",
                        "\"azure\"",
                        Some("flavor"),
                    ));
                }
            }
        }
        let base_url = match read("base-url")? {
            Some(url) => base_url(&url, azure)?,
            None if azure => return Err(missing_endpoint()),
            None => DEFAULT_OPENAI_BASE_URL.to_owned(),
        };
        let default_key = if azure {
            DEFAULT_AZURE_KEY
        } else {
            DEFAULT_OPENAI_KEY
        };
        let key = read("key")?.unwrap_or_else(|| default_key.to_owned());
        let (key_provider, key_name) = key_name(&key, default_key)?;
        let flavor = if azure {
            let api = match read("api-version")? {
                Some(v) => api_version(&v)?,
                None => AzureApi::Dated(DEFAULT_AZURE_API_VERSION.to_owned()),
            };
            let deployments = match read("deployments")? {
                Some(v) => deployments(&v)?,
                None => Vec::new(),
            };
            Flavor::Azure { api, deployments }
        } else {
            Flavor::OpenAi
        };
        Ok(Self {
            flavor,
            base_url,
            key_provider,
            key_name,
        })
    }

    /// The id in `provider/model` names.
    pub fn provider_id(&self) -> &'static str {
        provider_id(matches!(self.flavor, Flavor::Azure { .. }))
    }

    /// The Chat Completions endpoint for `model` (an Azure deployment).
    pub fn chat_url(&self, model: &str) -> Result<String, ModelError> {
        self.url(model, "chat/completions")
    }

    /// The Embeddings endpoint for `model` (an Azure deployment).
    pub fn embeddings_url(&self, model: &str) -> Result<String, ModelError> {
        self.url(model, "embeddings")
    }

    fn url(&self, model: &str, endpoint: &str) -> Result<String, ModelError> {
        match &self.flavor {
            Flavor::OpenAi => Ok(format!("{}/{endpoint}", self.base_url)),
            Flavor::Azure {
                api: AzureApi::V1, ..
            } => Ok(format!("{}/openai/v1/{endpoint}", self.base_url)),
            Flavor::Azure {
                api: AzureApi::Dated(version),
                ..
            } => {
                if !is_deployment_name(model) {
                    return Err(ModelError::BadRequest(format!(
                        "azure-openai/{model}: `{model}` is not an Azure deployment name (letters, \
                         digits, '.', '_' and '-')"
                    )));
                }
                Ok(format!(
                    "{}/openai/deployments/{model}/{endpoint}?api-version={version}",
                    self.base_url
                ))
            }
        }
    }

    /// The declared model behind `model`: an Azure deployment's model, or
    /// the model of that id.
    pub fn spec(&self, model: &str) -> Option<&'static ModelSpec> {
        match &self.flavor {
            Flavor::Azure { deployments, .. } => deployments
                .iter()
                .find(|d| d.name == model)
                .and_then(|d| models::find(d.model))
                .or_else(|| models::find(model)),
            Flavor::OpenAi => models::find(model),
        }
    }

    /// The models `models()` lists: the declared ones, or Azure's deployments.
    pub fn model_infos(&self) -> Result<Vec<ModelInfo>, ModelError> {
        match &self.flavor {
            Flavor::OpenAi => Ok(models::model_infos()),
            Flavor::Azure { deployments, .. } if deployments.is_empty() => {
                Err(ModelError::BadRequest(
                    "the azure-openai provider lists no models: its deployments are named by the \
                     operator; set `deployments` under the provider's [plugin.grants] in \
                     platform.toml, e.g. config = { deployments = \"chat=gpt-6-luna, \
                     embed=text-embedding-3-small\" } (DEPLOYMENT=MODEL, MODEL one of the \
                     declared models)"
                        .to_owned(),
                ))
            }
            Flavor::Azure { deployments, .. } => Ok(deployments
                .iter()
                .filter_map(|d| models::find(d.model).map(|m| models::model_info(&d.name, m)))
                .collect()),
        }
    }
}

/// The provider id of a flavor.
pub fn provider_id(azure: bool) -> &'static str {
    if azure { "azure-openai" } else { "openai" }
}

/// A config error naming the key, what is wrong and the `platform.toml` line
/// that fixes it (`fix_key` when another key is the fix).
fn invalid(
    key: &str,
    value: &str,
    problem: &str,
    example: &str,
    fix_key: Option<&str>,
) -> ModelError {
    let fix = fix_key.unwrap_or(key);
    ModelError::BadRequest(format!(
        "configuration `{key}` = `{value}` of the OpenAI provider {problem}; set it under the \
         provider's [plugin.grants] in platform.toml, e.g. config = {{ {fix} = {example} }}"
    ))
}

fn missing_endpoint() -> ModelError {
    ModelError::BadRequest(
        "configuration `base-url` of the azure-openai provider is not set: Azure OpenAI has no \
         default endpoint; set it under the provider's [plugin.grants] in platform.toml, e.g. \
         config = { flavor = \"azure\", base-url = \"https://NAME.openai.azure.com\" }"
            .to_owned(),
    )
}

/// `true` for Azure.
fn flavor(value: &str) -> Result<bool, ModelError> {
    match value.trim() {
        "openai" => Ok(false),
        "azure" | "azure-openai" => Ok(true),
        _ => Err(invalid(
            "flavor",
            value,
            "is neither \"openai\" nor \"azure\"",
            "\"azure\"",
            None,
        )),
    }
}

fn base_url(value: &str, azure: bool) -> Result<String, ModelError> {
    let example = if azure {
        "\"https://NAME.openai.azure.com\""
    } else {
        "\"https://api.openai.com/v1\""
    };
    let bad = |problem| invalid("base-url", value, problem, example, None);
    let mut trimmed = value.trim().trim_end_matches('/');
    if azure {
        // The resource endpoint; `/openai` is added per request.
        trimmed = trimmed.strip_suffix("/openai").unwrap_or(trimmed);
    }
    let rest = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"))
        .ok_or_else(|| bad("is not an http:// or https:// URL"))?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    if trimmed.contains(['?', '#']) || trimmed.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(bad(
            "must be a plain base URL (no query, fragment or spaces)",
        ));
    }
    Ok(trimmed.to_owned())
}

/// `PROVIDER/NAME`, or just `NAME` for a key of the default provider.
fn key_name(value: &str, default_key: &str) -> Result<(String, String), ModelError> {
    let default_provider = default_key.split('/').next().unwrap_or(default_key);
    let (provider, name) = value.split_once('/').unwrap_or((default_provider, value));
    let valid = |s: &str| {
        (1..=64).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && s.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
            })
    };
    if valid(provider) && valid(name) {
        Ok((provider.to_owned(), name.to_owned()))
    } else {
        Err(invalid(
            "key",
            value,
            "is not a key name: it must be PROVIDER/NAME or NAME, of a-z 0-9 . _ -",
            &format!("\"{default_key}\""),
            None,
        ))
    }
}

/// `v1`, or a dated version such as `2024-10-21` or `2025-04-01-preview`.
fn api_version(value: &str) -> Result<AzureApi, ModelError> {
    let v = value.trim();
    if v == "v1" {
        return Ok(AzureApi::V1);
    }
    let dated = v.len() >= 10
        && v.as_bytes()[..10].iter().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                *b == b'-'
            } else {
                b.is_ascii_digit()
            }
        })
        && v[10..].chars().all(|c| c.is_ascii_lowercase() || c == '-');
    if dated {
        Ok(AzureApi::Dated(v.to_owned()))
    } else {
        Err(invalid(
            "api-version",
            value,
            "is not an Azure OpenAI API version (YYYY-MM-DD[-preview] or v1)",
            &format!("\"{DEFAULT_AZURE_API_VERSION}\""),
            None,
        ))
    }
}

fn is_deployment_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// `DEPLOYMENT=MODEL, …`; a bare `MODEL` is a deployment named like its model.
fn deployments(value: &str) -> Result<Vec<Deployment>, ModelError> {
    const EXAMPLE: &str = "\"chat=gpt-6-luna, embed=text-embedding-3-small\"";
    let bad = |problem: String| invalid("deployments", value, &problem, EXAMPLE, None);
    let mut out: Vec<Deployment> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, model) = match entry.split_once('=') {
            Some((name, model)) => (name.trim(), model.trim()),
            None => (entry, entry),
        };
        if !is_deployment_name(name) {
            return Err(bad(format!(
                "names `{name}`, which is not a deployment name (letters, digits, '.', '_', '-')"
            )));
        }
        let Some(spec) = models::find(model) else {
            let known: Vec<&str> = models::MODELS.iter().map(|m| m.id).collect();
            return Err(bad(format!(
                "maps `{name}` to `{model}`, which is not a declared model; name the declared \
                 model closest to the deployment's (its prices and limits are used): {}",
                known.join(", ")
            )));
        };
        if out.iter().any(|d| d.name == name) {
            return Err(bad(format!("lists deployment `{name}` twice")));
        }
        out.push(Deployment {
            name: name.to_owned(),
            model: spec.id,
        });
    }
    if out.is_empty() {
        return Err(bad("lists no deployment".to_owned()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, ModelError> {
        Settings::load(|key| {
            assert!(KEYS.contains(&key), "undocumented key {key}");
            Ok(pairs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| (*v).to_owned()))
        })
    }

    fn message(err: ModelError) -> String {
        match err {
            ModelError::BadRequest(m) => m,
            other => panic!("expected bad-request, got {other:?}"),
        }
    }

    #[test]
    fn openai_defaults() {
        let s = load(&[]).unwrap();
        assert_eq!(s.provider_id(), "openai");
        assert_eq!(
            s.chat_url("gpt-6-luna").unwrap(),
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(
            s.embeddings_url("text-embedding-3-small").unwrap(),
            "https://api.openai.com/v1/embeddings"
        );
        assert_eq!(
            (s.key_provider.as_str(), s.key_name.as_str()),
            ("openai", "default")
        );
        assert_eq!(s.model_infos().unwrap().len(), models::MODELS.len());
        assert_eq!(s.spec("gpt-6-luna").map(|m| m.id), Some("gpt-6-luna"));
    }

    #[test]
    fn openai_overrides() {
        let s = load(&[("base-url", "http://127.0.0.1:8080/v1/"), ("key", "team-b")]).unwrap();
        assert_eq!(
            s.chat_url("x").unwrap(),
            "http://127.0.0.1:8080/v1/chat/completions"
        );
        assert_eq!(
            (s.key_provider.as_str(), s.key_name.as_str()),
            ("openai", "team-b")
        );
        let s = load(&[("key", "openai-eu/prod")]).unwrap();
        assert_eq!(
            (s.key_provider.as_str(), s.key_name.as_str()),
            ("openai-eu", "prod")
        );
    }

    #[test]
    fn azure_deployments_and_urls() {
        let s = load(&[
            ("flavor", "azure"),
            ("base-url", "https://contoso.openai.azure.com/openai/"),
            (
                "deployments",
                " chat = gpt-6-luna , text-embedding-3-small,big=gpt-6.2-astra ",
            ),
        ])
        .unwrap();
        assert_eq!(s.provider_id(), "azure-openai");
        assert_eq!(
            (s.key_provider.as_str(), s.key_name.as_str()),
            ("azure-openai", "default")
        );
        assert_eq!(
            s.chat_url("chat").unwrap(),
            "https://contoso.openai.azure.com/openai/deployments/chat/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(
            s.embeddings_url("text-embedding-3-small").unwrap(),
            "https://contoso.openai.azure.com/openai/deployments/text-embedding-3-small/embeddings?api-version=2024-10-21"
        );
        assert!(matches!(
            s.chat_url("a/b").unwrap_err(),
            ModelError::BadRequest(_)
        ));
        let infos = s.model_infos().unwrap();
        let ids: Vec<&str> = infos.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["chat", "text-embedding-3-small", "big"]);
        assert_eq!(infos[0].input_price_per_mtok, 0.10);
        assert_eq!(s.spec("chat").map(|m| m.id), Some("gpt-6-luna"));
        assert_eq!(s.spec("gpt-6-sol").map(|m| m.id), Some("gpt-6-sol"));
        assert!(s.spec("unknown").is_none());

        let v1 = load(&[
            ("flavor", "azure"),
            ("base-url", "https://contoso.openai.azure.com"),
            ("api-version", "v1"),
            ("key", "prod"),
        ])
        .unwrap();
        assert_eq!(
            v1.chat_url("chat").unwrap(),
            "https://contoso.openai.azure.com/openai/v1/chat/completions"
        );
        assert_eq!(
            (v1.key_provider.as_str(), v1.key_name.as_str()),
            ("azure-openai", "prod")
        );
        // No deployments: models() says how to list them.
        let m = message(v1.model_infos().unwrap_err());
        assert!(
            m.contains("deployments") && m.contains("platform.toml"),
            "{m}"
        );
        let preview = load(&[
            ("flavor", "azure-openai"),
            ("base-url", "https://x.openai.azure.com"),
            ("api-version", "2025-04-01-preview"),
        ])
        .unwrap();
        assert!(
            preview
                .chat_url("d")
                .unwrap()
                .ends_with("?api-version=2025-04-01-preview")
        );
    }

    #[test]
    fn invalid_values_name_the_key_and_the_fix() {
        for (pairs, key) in [
            (vec![("flavor", "bedrock")], "flavor"),
            (vec![("base-url", "ftp://example.com")], "base-url"),
            (vec![("base-url", "https://")], "base-url"),
            (vec![("base-url", "https://x/?a=1")], "base-url"),
            (vec![("key", "OpenAI/Default")], "key"),
            (vec![("key", "a/b/c")], "key"),
            (vec![("api-version", "2024-10-21")], "api-version"),
            (vec![("deployments", "a=gpt-6-luna")], "deployments"),
            (vec![("flavor", "azure")], "base-url"),
            (
                vec![
                    ("flavor", "azure"),
                    ("base-url", "https://x"),
                    ("api-version", "latest"),
                ],
                "api-version",
            ),
            (
                vec![
                    ("flavor", "azure"),
                    ("base-url", "https://x"),
                    ("deployments", "a=gpt-4"),
                ],
                "deployments",
            ),
            (
                vec![
                    ("flavor", "azure"),
                    ("base-url", "https://x"),
                    ("deployments", "a b=gpt-6-sol"),
                ],
                "deployments",
            ),
            (
                vec![
                    ("flavor", "azure"),
                    ("base-url", "https://x"),
                    ("deployments", "a=gpt-6-sol,a=gpt-6-luna"),
                ],
                "deployments",
            ),
            (
                vec![
                    ("flavor", "azure"),
                    ("base-url", "https://x"),
                    ("deployments", " , "),
                ],
                "deployments",
            ),
        ] {
            let m = message(load(&pairs).unwrap_err());
            assert!(m.contains(&format!("`{key}`")), "{m}");
            assert!(
                m.contains("platform.toml") && m.contains("config = {"),
                "{m}"
            );
        }
    }

    #[test]
    fn unreadable_config_is_a_bad_request() {
        let m = message(Settings::load(|_| Err("store offline".into())).unwrap_err());
        assert!(m.contains("`flavor`") && m.contains("store offline"), "{m}");
        assert!(!Flavor::is_azure(|_| Err("x".into())));
        assert!(Flavor::is_azure(|_| Ok(Some("azure".into()))));
        assert!(!Flavor::is_azure(|_| Ok(None)));
    }
}
