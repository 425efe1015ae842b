//! The adapter's settings, read from `wasi:config` (the values the operator
//! sets under the plugin's `[plugin.grants]` `config = { … }` in
//! `platform.toml`) and checked before any request is sent.
//!
//! One component speaks to OpenAI or, with `flavor = "azure"`, to an Azure
//! OpenAI resource, where the model named in a request is a deployment.

use convergio_sdk::provider::{
    AdapterSettings, ConfigSource, KeyName, ModelError, ModelInfo, ProviderConfig, Upstream,
    check_base_url,
};

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
    /// The key (`openai/default` or `azure-openai/default` unless named).
    pub key: KeyName,
}

impl Flavor {
    /// Whether `flavor` names Azure; `get` as for [`Settings::load`]. An
    /// unreadable or unknown value reads as OpenAI here; [`Settings::load`]
    /// reports it.
    pub fn is_azure(get: impl Fn(&str) -> Result<Option<String>, String>) -> bool {
        matches!(get("flavor"), Ok(Some(v)) if flavor(&v) == Some(true))
    }
}

impl Settings {
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
                .filter_map(|d| models::find(d.model).map(|m| m.info_as(&d.name)))
                .collect()),
        }
    }
}

impl AdapterSettings for Settings {
    /// Read and check every setting; `get` returns the value of a key, `None`
    /// when the operator did not set it, or why it could not be read.
    fn load(get: impl ConfigSource) -> Result<Self, ModelError> {
        let config = ProviderConfig::new("OpenAI", get);
        let azure = match config.optional("flavor")? {
            Some(v) => flavor(&v).ok_or_else(|| {
                config.invalid("flavor", &v, "is neither \"openai\" nor \"azure\"", "azure")
            })?,
            None => false,
        };
        if !azure {
            for key in ["api-version", "deployments"] {
                if config.optional(key)?.is_some() {
                    return Err(config.error(
                        key,
                        Some("(set)"),
                        "applies only to Azure OpenAI (flavor = \"azure\")",
                        "flavor = \"azure\"",
                    ));
                }
            }
        }
        let base_url = if azure {
            match config.optional("base-url")? {
                Some(url) => azure_endpoint(&url)
                    .map_err(|problem| config.invalid("base-url", &url, problem, AZURE_EXAMPLE))?,
                None => {
                    return Err(config.error(
                        "base-url",
                        None,
                        "is not set: Azure OpenAI has no default endpoint",
                        &format!("flavor = \"azure\", base-url = \"{AZURE_EXAMPLE}\""),
                    ));
                }
            }
        } else {
            config.base_url(DEFAULT_OPENAI_BASE_URL)?
        };
        let key = config.key(if azure {
            DEFAULT_AZURE_KEY
        } else {
            DEFAULT_OPENAI_KEY
        })?;
        let flavor = if azure {
            let api = match config.optional("api-version")? {
                Some(v) => api_version(&v).ok_or_else(|| {
                    config.invalid(
                        "api-version",
                        &v,
                        "is not an Azure OpenAI API version (YYYY-MM-DD[-preview] or v1)",
                        DEFAULT_AZURE_API_VERSION,
                    )
                })?,
                None => AzureApi::Dated(DEFAULT_AZURE_API_VERSION.to_owned()),
            };
            let deployments = match config.optional("deployments")? {
                Some(v) => deployments(&v).map_err(|problem| {
                    config.invalid("deployments", &v, &problem, DEPLOYMENTS_EXAMPLE)
                })?,
                None => Vec::new(),
            };
            Flavor::Azure { api, deployments }
        } else {
            Flavor::OpenAi
        };
        Ok(Self {
            flavor,
            base_url,
            key,
        })
    }

    /// The API, for requests and error messages.
    fn upstream(&self) -> Upstream {
        let name = match self.flavor {
            Flavor::OpenAi => "OpenAI API",
            Flavor::Azure { .. } => "Azure OpenAI API",
        };
        Upstream::new(name, &self.base_url, self.key.clone())
    }
}

/// The provider id of a flavor.
pub fn provider_id(azure: bool) -> &'static str {
    if azure { "azure-openai" } else { "openai" }
}

/// The example of an Azure endpoint.
const AZURE_EXAMPLE: &str = "https://NAME.openai.azure.com";
/// The example of `deployments`.
const DEPLOYMENTS_EXAMPLE: &str = "chat=gpt-6-luna, embed=text-embedding-3-small";

/// `true` for Azure, `None` for an unknown flavor.
fn flavor(value: &str) -> Option<bool> {
    match value.trim() {
        "openai" => Some(false),
        "azure" | "azure-openai" => Some(true),
        _ => None,
    }
}

/// An Azure resource endpoint: a base URL without the `/openai` that is
/// added per request.
fn azure_endpoint(value: &str) -> Result<String, &'static str> {
    let trimmed = value.trim().trim_end_matches('/');
    check_base_url(trimmed.strip_suffix("/openai").unwrap_or(trimmed))
}

/// `v1`, or a dated version such as `2024-10-21` or `2025-04-01-preview`.
fn api_version(value: &str) -> Option<AzureApi> {
    let v = value.trim();
    if v == "v1" {
        return Some(AzureApi::V1);
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
    dated.then(|| AzureApi::Dated(v.to_owned()))
}

fn is_deployment_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// `DEPLOYMENT=MODEL, …`; a bare `MODEL` is a deployment named like its
/// model. The error is what is wrong with the value.
fn deployments(value: &str) -> Result<Vec<Deployment>, String> {
    let mut out: Vec<Deployment> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, model) = match entry.split_once('=') {
            Some((name, model)) => (name.trim(), model.trim()),
            None => (entry, entry),
        };
        if !is_deployment_name(name) {
            return Err(format!(
                "names `{name}`, which is not a deployment name (letters, digits, '.', '_', '-')"
            ));
        }
        let Some(spec) = models::find(model) else {
            let known: Vec<&str> = models::MODELS.iter().map(|m| m.id).collect();
            return Err(format!(
                "maps `{name}` to `{model}`, which is not a declared model; name the declared \
                 model closest to the deployment's (its prices and limits are used): {}",
                known.join(", ")
            ));
        };
        if out.iter().any(|d| d.name == name) {
            return Err(format!("lists deployment `{name}` twice"));
        }
        out.push(Deployment {
            name: name.to_owned(),
            model: spec.id,
        });
    }
    if out.is_empty() {
        return Err("lists no deployment".to_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use convergio_sdk::provider::testing::{bad_request, documented_config};

    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, ModelError> {
        Settings::load(documented_config(&KEYS, pairs))
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
            (s.key.provider.as_str(), s.key.name.as_str()),
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
            (s.key.provider.as_str(), s.key.name.as_str()),
            ("openai", "team-b")
        );
        let s = load(&[("key", "openai-eu/prod")]).unwrap();
        assert_eq!(
            (s.key.provider.as_str(), s.key.name.as_str()),
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
            (s.key.provider.as_str(), s.key.name.as_str()),
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
            (v1.key.provider.as_str(), v1.key.name.as_str()),
            ("azure-openai", "prod")
        );
        // No deployments: models() says how to list them.
        let m = bad_request(v1.model_infos().unwrap_err());
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
            let m = bad_request(load(&pairs).unwrap_err());
            assert!(m.contains(&format!("`{key}`")), "{m}");
            assert!(
                m.contains("platform.toml") && m.contains("config = {"),
                "{m}"
            );
        }
    }

    #[test]
    fn unreadable_config_is_a_bad_request() {
        let m = bad_request(Settings::load(|_| Err("store offline".into())).unwrap_err());
        assert!(m.contains("`flavor`") && m.contains("store offline"), "{m}");
        assert!(!Flavor::is_azure(|_| Err("x".into())));
        assert!(Flavor::is_azure(|_| Ok(Some("azure".into()))));
        assert!(!Flavor::is_azure(|_| Ok(None)));
    }
}
