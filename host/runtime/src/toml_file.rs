//! Reading TOML files with one-line, located error messages.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::{Error, Result};

/// Read and parse `path`; errors read `path:line:column: field `x`: what is wrong`.
pub(crate) fn read<T: DeserializeOwned>(path: &Path) -> Result<(T, String)> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let value = parse(path, &text)?;
    Ok((value, text))
}

/// Parse `text` (the contents of `path`).
pub(crate) fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T> {
    toml::from_str(text).map_err(|err| Error::Config(describe(path, text, &err)))
}

fn describe(path: &Path, text: &str, err: &toml::de::Error) -> String {
    let message = err.message().trim().replace('\n', " ");
    let Some(span) = err.span() else {
        return format!("{}: {message}", path.display());
    };
    let (line, column) = line_column(text, span.start);
    let key = text
        .lines()
        .nth(line - 1)
        .and_then(|l| l.split_once('='))
        .map(|(k, _)| k.trim().trim_matches('"'))
        .filter(|k| !k.is_empty() && !k.starts_with('['));
    match key {
        Some(key) if !message.contains("field") => {
            format!(
                "{}:{line}:{column}: field `{key}`: {message}",
                path.display()
            )
        }
        _ => format!("{}:{line}:{column}: {message}", path.display()),
    }
}

/// 1-based line and column of a byte offset.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, column)
}

/// 1-based line of the first line that holds `needle` once spaces are removed.
pub(crate) fn line_of(text: &str, needle: &str) -> Option<usize> {
    let needle: String = needle.chars().filter(|c| !c.is_whitespace()).collect();
    text.lines()
        .position(|l| {
            let compact: String = l.chars().filter(|c| !c.is_whitespace()).collect();
            compact.contains(&needle)
        })
        .map(|i| i + 1)
}

/// 1-based line where `name` is written under the dotted key `path` (e.g.
/// `inference.chains`): as a key or a value in the table `[path]` or one
/// below it, in `key = …` of a table above it (`chains = …` under
/// `[inference]`), or on a later line of such a value (a long array).
pub(crate) fn line_of_key_value(text: &str, path: &str, name: &str) -> Option<usize> {
    let mut table = String::new();
    let mut context = String::new();
    for (i, line) in text.lines().enumerate() {
        let code = outside_quotes(line, '#')
            .map_or(line, |at| &line[..at])
            .trim();
        if code.starts_with('[') {
            table = dotted(code.trim_matches(|c| c == '[' || c == ']'));
            context = table.clone();
        } else if let Some(at) = outside_quotes(code, '=') {
            let key = dotted(&code[..at]);
            context = if table.is_empty() {
                key
            } else {
                format!("{table}.{key}")
            };
        }
        let under = context == path
            || context
                .strip_prefix(path)
                .is_some_and(|rest| rest.starts_with('.'));
        if under && has_token(code, name) {
            return Some(i + 1);
        }
    }
    None
}

/// A dotted key without quotes and spaces: `"a/b" . c` → `a/b.c`.
fn dotted(key: &str) -> String {
    key.chars()
        .filter(|c| !c.is_whitespace() && *c != '"')
        .collect()
}

/// Byte offset of the first `wanted` outside a quoted string.
fn outside_quotes(line: &str, wanted: char) -> Option<usize> {
    let mut quote = None;
    for (at, c) in line.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, c) if c == wanted => return Some(at),
            _ => {}
        }
    }
    None
}

/// `name` appears in `code` as a whole word (not inside a longer name).
fn has_token(code: &str, name: &str) -> bool {
    let part = |c: char| c.is_alphanumeric() || "_-./".contains(c);
    code.match_indices(name).any(|(at, _)| {
        !code[..at].chars().next_back().is_some_and(part)
            && !code[at + name.len()..].chars().next().is_some_and(part)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        name: String,
        count: u32,
    }

    #[test]
    fn unknown_field_is_located() {
        let err = parse::<Sample>(Path::new("x.toml"), "name = \"a\"\ncount = 1\ncolour = 2\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("x.toml:3:1: "), "{err}");
        assert!(err.contains("unknown field `colour`"), "{err}");
        assert!(!err.contains('\n'));
    }

    #[test]
    fn wrong_type_names_the_field() {
        let err = parse::<Sample>(Path::new("x.toml"), "name = \"a\"\ncount = \"many\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("x.toml:2:9: field `count`: "), "{err}");
    }

    #[test]
    fn names_are_found_under_their_key() {
        let text = "[runtime]\n# tutor = 1\n\n[inference]\nfallback = [\n  \"a/x\",\n  \"b/y\", # b/z\n]\n\
                    [inference.chains]\n\"a/x\" = [\"b/y\"]\n\
                    [inference.budgets]\nplugins = { tutor = 1.0 }\nagents = { tutor = 2.0 }\n\
                    [inference.budgets.keys]\n\"openai/default\" = 5.0\n";
        let at = |path: &str, name: &str| line_of_key_value(text, path, name);
        assert_eq!(at("inference.fallback", "b/y"), Some(7));
        assert_eq!(
            at("inference.fallback", "b/z"),
            None,
            "comments do not count"
        );
        assert_eq!(at("inference.chains", "a/x"), Some(10));
        assert_eq!(at("inference.chains", "b/y"), Some(10));
        assert_eq!(at("inference.budgets.plugins", "tutor"), Some(12));
        assert_eq!(at("inference.budgets.agents", "tutor"), Some(13));
        assert_eq!(at("inference.budgets.keys", "openai/default"), Some(15));
        assert_eq!(
            at("inference.budgets.agents", "tut"),
            None,
            "whole names only"
        );
    }

    #[test]
    fn line_column_counts_from_one() {
        assert_eq!(line_column("ab\ncd", 0), (1, 1));
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
    }
}
