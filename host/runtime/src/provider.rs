//! Provider plugins as the router's providers: each call opens a session of
//! the plugin (its limits and grants apply), a stream keeps its session
//! until it ends.

use std::sync::{Arc, Weak};

use convergio_cap_inference as ci;
use convergio_cap_inference::{BoxFuture, DeltaStream, ModelError};
use wasmtime::component::ResourceAny;

use convergio_cap_inference::wit::provider as wit_provider;
use convergio_cap_inference::wit::{FromWit, ToWit};

use crate::bound::Bound;
use crate::inner::Inner;
use crate::session::Session;
use crate::slot::Slot;
use crate::{Error, Result};

/// A loaded provider plugin, called through `convergio:platform/provider`.
pub(crate) struct ComponentProvider {
    pub(crate) inner: Weak<Inner>,
    pub(crate) slot: Weak<Slot>,
    /// Plugin id.
    pub(crate) plugin: String,
    /// Provider id from its `info()`, used in `provider/model` names.
    pub(crate) id: String,
    /// The key it attaches (`provider/name`), from its `key` config value.
    pub(crate) key: Option<String>,
}

impl ComponentProvider {
    /// Open a session (on a warm instance if one is idle) and load the
    /// provider exports in it. Give it back with `Session::release` once its
    /// calls went well.
    pub(crate) async fn session(&self) -> Result<(Session, wit_provider::Guest), ModelError> {
        let (Some(inner), Some(slot)) = (self.inner.upgrade(), self.slot.upgrade()) else {
            return Err(ModelError::Upstream("the runtime is shutting down".into()));
        };
        let loaded = slot.current.load_full();
        if !loaded.provider {
            return Err(ModelError::BadRequest(format!(
                "plugin `{}` does not export the provider interface",
                self.plugin
            )));
        }
        let mut session = Session::open_warm(&inner, &slot, &loaded)
            .await
            .map_err(|e| self.failed(&e))?;
        let guest = <wit_provider::Guest as Bound>::of(&mut session.store, &session.instance)
            .map_err(|e| ModelError::BadRequest(format!("plugin `{}`: {e}", self.plugin)))?;
        Ok((session, guest))
    }

    /// A host-side failure (trap, deadline, busy) as a model error.
    fn failed(&self, err: &Error) -> ModelError {
        let text = format!("provider plugin `{}`: {err}", self.plugin);
        if text.contains("deadline") {
            ModelError::Timeout(text)
        } else if matches!(err, Error::Busy { .. }) {
            ModelError::Overloaded(text)
        } else {
            ModelError::Upstream(text)
        }
    }
}

impl ci::Provider for ComponentProvider {
    fn id(&self) -> &str {
        &self.id
    }

    fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    fn models(&self) -> BoxFuture<'_, Result<Vec<ci::ModelInfo>, ModelError>> {
        Box::pin(async move {
            let (mut session, guest) = self.session().await?;
            let listed = session
                .run(async |store, _| guest.call_models(store).await)
                .await
                .map_err(|e| self.failed(&e))?;
            session.release();
            listed
                .map(|models| models.into_iter().map(ci::ModelInfo::from_wit).collect())
                .map_err(ModelError::from_wit)
        })
    }

    fn complete(
        &self,
        request: ci::ProviderRequest,
    ) -> BoxFuture<'_, Result<ci::Completion, ModelError>> {
        Box::pin(async move {
            let (mut session, guest) = self.session().await?;
            let request = provider_request(&request);
            let done = session
                .run(async |store, _| guest.call_complete(store, &request).await)
                .await
                .map_err(|e| self.failed(&e))?;
            session.release();
            done.map(ci::Completion::from_wit)
                .map_err(ModelError::from_wit)
        })
    }

    fn stream(
        &self,
        request: ci::ProviderRequest,
    ) -> BoxFuture<'_, Result<Box<dyn DeltaStream>, ModelError>> {
        Box::pin(async move {
            let (mut session, guest) = self.session().await?;
            let request = provider_request(&request);
            let opened = session
                .run(async |store, _| guest.call_stream(store, &request).await)
                .await
                .map_err(|e| self.failed(&e))?;
            let stream = opened.map_err(ModelError::from_wit)?;
            Ok(Box::new(ComponentStream {
                session: Some(session),
                guest,
                stream,
                plugin: self.plugin.clone(),
            }) as Box<dyn DeltaStream>)
        })
    }

    fn embed(
        &self,
        model: String,
        inputs: Vec<String>,
    ) -> BoxFuture<'_, Result<ci::Embeddings, ModelError>> {
        Box::pin(async move {
            let (mut session, guest) = self.session().await?;
            let done = session
                .run(async |store, _| guest.call_embed(store, &model, &inputs).await)
                .await
                .map_err(|e| self.failed(&e))?;
            session.release();
            done.map(ci::Embeddings::from_wit)
                .map_err(ModelError::from_wit)
        })
    }
}

/// The provider plugins (kind `provider`) as the router's providers: see
/// [`crate::Runtime::providers`].
pub(crate) async fn discover(inner: &Arc<Inner>) -> Result<Vec<Arc<dyn ci::Provider>>> {
    let slots: Vec<(String, Arc<Slot>)> = inner
        .read_slots()
        .iter()
        .filter(|(_, slot)| slot.current.load().spec.manifest.kind == crate::PluginKind::Provider)
        .map(|(id, slot)| (id.clone(), slot.clone()))
        .collect();
    let mut found = Vec::new();
    for (plugin, slot) in slots {
        let mut provider = ComponentProvider {
            inner: Arc::downgrade(inner),
            slot: Arc::downgrade(&slot),
            plugin: plugin.clone(),
            id: String::new(),
            key: None,
        };
        let (mut session, guest) = provider.session().await.map_err(|e| Error::Load {
            plugin: plugin.clone(),
            message: e.to_string(),
        })?;
        let info = session
            .run(async |store, _| guest.call_info(store).await)
            .await?;
        session.release();
        let grants = &slot.current.load().spec.grants;
        provider.key = grants
            .config
            .as_ref()
            .and_then(|c| c.get("key").cloned())
            // `NAME` alone is a key of this provider, as the adapters read it.
            .map(|k| {
                if k.contains('/') {
                    k
                } else {
                    format!("{}/{k}", info.id)
                }
            })
            .or_else(|| (!grants.keys.is_empty()).then(|| format!("{}/default", info.id)));
        provider.id = info.id;
        found.push(provider);
    }
    let found_ids: Vec<String> = found
        .iter()
        .map(|p: &ComponentProvider| p.id.clone())
        .collect();
    let mut out: Vec<Arc<dyn ci::Provider>> = Vec::new();
    for mut provider in std::mem::take(&mut found) {
        let shared = found_ids.iter().filter(|id| **id == provider.id).count() > 1;
        if shared {
            tracing::info!(plugin = %provider.plugin, provider = %provider.id, "several plugins provide `{}`; this one is named `{}`", provider.id, provider.plugin);
            provider.id = provider.plugin.clone();
        }
        out.push(Arc::new(provider));
    }
    Ok(out)
}

fn provider_request(request: &ci::ProviderRequest) -> wit_provider::ProviderRequest {
    wit_provider::ProviderRequest {
        model: request.model.clone(),
        messages: request.messages.iter().map(ToWit::to_wit).collect(),
        tools: request.tools.iter().map(ToWit::to_wit).collect(),
        sampling: request.sampling.to_wit(),
        format: request.format.to_wit(),
    }
}

/// A `completion-stream` resource of a provider plugin, with the session
/// that owns it. The session ends (and its instance slot frees) with the
/// stream.
struct ComponentStream {
    session: Option<Session>,
    guest: wit_provider::Guest,
    stream: ResourceAny,
    plugin: String,
}

impl DeltaStream for ComponentStream {
    fn next(&mut self) -> BoxFuture<'_, Option<Result<ci::Delta, ModelError>>> {
        Box::pin(async move {
            let session = self.session.as_mut()?;
            let stream = self.stream;
            let guest = &self.guest;
            let outcome = session
                .run(async |store, _| guest.completion_stream().call_next(store, stream).await)
                .await;
            let item = match outcome {
                Err(e) => Some(Err(ModelError::Upstream(format!(
                    "provider plugin `{}`: {e}",
                    self.plugin
                )))),
                Ok(None) => None,
                Ok(Some(delta)) => {
                    Some(delta.map(ci::Delta::from_wit).map_err(ModelError::from_wit))
                }
            };
            if !matches!(item, Some(Ok(_))) {
                // Done or failed: drop the resource, then give the instance
                // back (kept warm if every call on it went well).
                if let Some(mut session) = self.session.take() {
                    let dropped = session
                        .run(async |store, _| stream.resource_drop_async(store).await)
                        .await;
                    if dropped.is_ok() {
                        session.release();
                    }
                }
            }
            item
        })
    }
}

/// Reports every model call: a tracing event (target `usage`), and tokens,
/// cost and failures against the key version in the vault (the request
/// itself is counted by the HTTP capability when it leaves). The router
/// books the call in the usage ledger itself, with its budget hold.
pub(crate) struct MeteringSink {
    pub(crate) vault: Option<convergio_cap_keys::Vault>,
}

impl ci::UsageSink for MeteringSink {
    fn record(&self, call: &ci::CallRecord<'_>) {
        tracing::info!(
            target: "usage",
            plugin = %call.caller.plugin,
            agent = call.caller.agent.as_deref(),
            provider = call.provider,
            model = call.model,
            input_tokens = call.usage.input_tokens,
            output_tokens = call.usage.output_tokens,
            cost_micro_usd = call.usage.cost_micro_usd,
            error = call.error.map(ModelError::kind),
            "model call"
        );
        let (Some(vault), Some(key)) = (self.vault.clone(), call.key) else {
            return;
        };
        let Some((provider, name)) = key.split_once('/') else {
            return;
        };
        let (provider, name) = (provider.to_owned(), name.to_owned());
        let usage = convergio_cap_keys::UsageDelta {
            requests: 0,
            input_tokens: u64::from(call.usage.input_tokens),
            output_tokens: u64::from(call.usage.output_tokens),
            cost_micro_usd: call.usage.cost_micro_usd,
            errors: u64::from(call.error.is_some()),
        };
        // SQLite may wait on a lock: keep it off the async workers.
        tokio::task::spawn_blocking(move || {
            let recorded = vault
                .info(&provider, &name)
                .and_then(|info| vault.record_usage(&provider, &name, info.version, &usage));
            if let Err(e) = recorded {
                tracing::warn!(key = %format!("{provider}/{name}"), error = %e, "could not record model usage");
            }
        });
    }
}
