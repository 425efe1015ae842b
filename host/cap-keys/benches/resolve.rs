//! The request path: resolving a key that is already decrypted in the cache
//! (target: under 5 µs median), beside the uncached path (SQLite read, data
//! key unwrap, secret decryption) and usage recording.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use convergio_cap_keys::secrecy::SecretString;
use convergio_cap_keys::{AuthScheme, DataKey, StaticSource, UsageDelta, Vault};
use criterion::{Criterion, criterion_group, criterion_main};

fn vault(dir: &std::path::Path) -> Vault {
    let master = Arc::new(StaticSource::new(DataKey::generate().unwrap(), "bench key"));
    let vault = Vault::open(dir.join("vault.db"), master).unwrap();
    for provider in ["openai", "anthropic", "gemini", "mistral", "groq"] {
        vault
            .add(
                provider,
                "default",
                &SecretString::from("sk-bench-0123456789abcdefghijklmnop"),
                None,
                &[format!("api.{provider}.com")],
                AuthScheme::for_provider(provider),
            )
            .unwrap();
    }
    vault
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let vault = vault(dir.path());
    vault.resolve("anthropic", "default").unwrap();

    c.bench_function("resolve_cached", |b| {
        b.iter(|| {
            let key = vault
                .resolve(black_box("anthropic"), black_box("default"))
                .unwrap();
            black_box(key.allows("https", "api.anthropic.com", 443))
        });
    });

    // The uncached path: SQLite read, data key unwrap, secret decryption.
    // `resolve_version` never caches, so every iteration pays it.
    c.bench_function("resolve_uncached", |b| {
        b.iter(|| {
            black_box(
                vault
                    .resolve_version(black_box("openai"), "default", 1)
                    .unwrap(),
            )
        });
    });

    c.bench_function("record_usage", |b| {
        let delta = UsageDelta {
            requests: 1,
            input_tokens: 100,
            output_tokens: 50,
            cost_micro_usd: 12,
            errors: 0,
        };
        b.iter(|| {
            vault
                .record_usage("anthropic", "default", 1, black_box(&delta))
                .unwrap()
        });
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
