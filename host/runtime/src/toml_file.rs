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
    fn line_column_counts_from_one() {
        assert_eq!(line_column("ab\ncd", 0), (1, 1));
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
    }
}
