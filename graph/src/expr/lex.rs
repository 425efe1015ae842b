//! Tokens of the expression language.

use serde_json::Number;

use super::ParseError;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Num(Number),
    Str(String),
    /// A name: a keyword, a function, a path root or a key after `.`.
    Word(String),
    Sym(&'static str),
    End,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) offset: usize,
}

const TWO: [&str; 6] = ["==", "!=", "<=", ">=", "&&", "||"];
const ONE: [&str; 12] = ["(", ")", "[", "]", ".", "<", ">", "!", "+", "-", "*", "/"];

/// Whether `s` can be written after a `.` (and so needs no brackets).
pub(crate) fn is_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Splits `src` into tokens, ending with [`Tok::End`] at `src.len()`.
pub(crate) fn lex(src: &str) -> Result<Vec<Token>, ParseError> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                let end = scan(bytes, i, |b| b.is_ascii_alphanumeric() || b == b'_');
                out.push(Token {
                    tok: Tok::Word(src.get(i..end).unwrap_or_default().to_owned()),
                    offset: i,
                });
                i = end;
            }
            b'0'..=b'9' => {
                let (num, end) = number(src, i)?;
                out.push(Token {
                    tok: Tok::Num(num),
                    offset: i,
                });
                i = end;
            }
            b'"' => {
                let (s, end) = string(src, i)?;
                out.push(Token {
                    tok: Tok::Str(s),
                    offset: i,
                });
                i = end;
            }
            _ => {
                let rest = src.get(i..).unwrap_or_default();
                let sym = TWO.iter().chain(ONE.iter()).find(|s| rest.starts_with(**s));
                let Some(sym) = sym else {
                    let c = rest.chars().next().unwrap_or('?');
                    let message = match c {
                        '=' => "expected '==' (a single '=' is not an operator)".to_owned(),
                        '&' => "expected '&&' (a single '&' is not an operator)".to_owned(),
                        '|' => "expected '||' (a single '|' is not an operator)".to_owned(),
                        '\'' => "strings are written in double quotes".to_owned(),
                        c => format!("unexpected character {c:?}"),
                    };
                    return Err(ParseError::new(src, i, message));
                };
                out.push(Token {
                    tok: Tok::Sym(sym),
                    offset: i,
                });
                i += sym.len();
            }
        }
    }
    out.push(Token {
        tok: Tok::End,
        offset: src.len(),
    });
    Ok(out)
}

fn scan(bytes: &[u8], from: usize, keep: impl Fn(u8) -> bool) -> usize {
    let mut i = from;
    while bytes.get(i).is_some_and(|&b| keep(b)) {
        i += 1;
    }
    i
}

/// A JSON number starting at `start`: digits, an optional fraction and an
/// optional exponent. Whole numbers that fit in 64 bits stay integers.
fn number(src: &str, start: usize) -> Result<(Number, usize), ParseError> {
    let bytes = src.as_bytes();
    let digit = |b: u8| b.is_ascii_digit();
    let mut end = scan(bytes, start, digit);
    let mut whole = true;
    if bytes.get(end) == Some(&b'.') && bytes.get(end + 1).is_some_and(|b| b.is_ascii_digit()) {
        end = scan(bytes, end + 1, digit);
        whole = false;
    }
    if matches!(bytes.get(end), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(bytes.get(end + 1), Some(b'+' | b'-')));
        if bytes
            .get(end + 1 + sign)
            .is_some_and(|b| b.is_ascii_digit())
        {
            end = scan(bytes, end + 1 + sign, digit);
            whole = false;
        }
    }
    let text = src.get(start..end).unwrap_or_default();
    if whole && let Ok(n) = text.parse::<u64>() {
        return Ok((Number::from(n), end));
    }
    text.parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map(|n| (n, end))
        .ok_or_else(|| ParseError::new(src, start, format!("the number {text} is out of range")))
}

/// A double-quoted string starting at `start`, with `\"`, `\\` and `\n`.
fn string(src: &str, start: usize) -> Result<(String, usize), ParseError> {
    let body = src.get(start + 1..).unwrap_or_default();
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, start + 1 + i + 1)),
            '\\' => match chars.next() {
                Some((_, '"')) => out.push('"'),
                Some((_, '\\')) => out.push('\\'),
                Some((_, 'n')) => out.push('\n'),
                Some((_, other)) => {
                    return Err(ParseError::new(
                        src,
                        start + 1 + i,
                        format!(
                            "unknown escape '\\{other}' in a string; the escapes are \\\" \\\\ and \\n"
                        ),
                    ));
                }
                None => break,
            },
            c => out.push(c),
        }
    }
    Err(ParseError::new(
        src,
        start,
        "unterminated string: expected a closing '\"'",
    ))
}
