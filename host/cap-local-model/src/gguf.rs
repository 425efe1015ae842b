//! A GGUF metadata reader in pure Rust: what a model is (architecture,
//! context and embedding lengths, quantization) and whether the file is
//! whole, without loading llama.cpp or the file into memory.
//!
//! [`read_info`] walks the header, every metadata key/value pair and every
//! tensor description, checks them the way llama.cpp's loader does (magic,
//! version 2 or 3, alignment, tensor shapes and types, contiguous offsets)
//! and checks that the file holds the whole data section, so a truncated
//! download is caught before llama.cpp is ever asked to load it. Every
//! length read from the file is checked against the bytes left in the file
//! before anything is allocated or skipped, so a hostile header cannot make
//! it allocate or loop without bound.
//!
//! ```no_run
//! let info = convergio_cap_local_model::gguf::read_info("model.gguf".as_ref())?;
//! println!("{} {} ctx {}", info.architecture, info.quantization, info.context_length);
//! # Ok::<(), convergio_cap_local_model::Error>(())
//! ```

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use crate::{Error, Result};

/// What a GGUF file says about the model it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufInfo {
    /// `general.architecture`, e.g. `llama`.
    pub architecture: String,
    /// `general.name`, if the file has one.
    pub name: Option<String>,
    /// `<architecture>.context_length`: the context the model was trained for (tokens).
    pub context_length: u32,
    /// `<architecture>.embedding_length`: the embedding dimension.
    pub embedding_length: u32,
    /// llama.cpp's name of `general.file_type` (`Q4_1`, `Q4_K_M`, ...), or
    /// `type N` for a file type this reader does not know; from the file name
    /// when the key is absent, `unknown` when neither says.
    pub quantization: String,
    /// Number of tensors.
    pub tensor_count: u64,
}

/// The four bytes every GGUF file starts with.
const MAGIC: [u8; 4] = *b"GGUF";
/// `general.alignment` when the file does not set it.
const DEFAULT_ALIGNMENT: u64 = 32;
/// Longest metadata key accepted (real keys are a few dozen bytes).
const MAX_KEY_LEN: u64 = 64 * 1024;
/// Longest string value kept in memory (only the few keys this reader
/// needs are kept; every other value is skipped without being read).
const MAX_KEPT_STRING: u64 = 1024 * 1024;
/// Most metadata values kept in memory.
const MAX_KEPT_VALUES: usize = 256;
/// llama.cpp's `GGML_MAX_NAME`: tensor names are shorter than this.
const MAX_TENSOR_NAME: u64 = 64;
/// llama.cpp's `GGML_MAX_DIMS`.
const MAX_DIMS: u32 = 4;

/// GGUF metadata value types.
const T_U8: u32 = 0;
const T_I8: u32 = 1;
const T_U16: u32 = 2;
const T_I16: u32 = 3;
const T_U32: u32 = 4;
const T_I32: u32 = 5;
const T_F32: u32 = 6;
const T_BOOL: u32 = 7;
const T_STRING: u32 = 8;
const T_ARRAY: u32 = 9;
const T_U64: u32 = 10;
const T_I64: u32 = 11;
const T_F64: u32 = 12;

/// Read and check the GGUF file at `path`.
///
/// Errors: [`Error::NotFound`] if there is no such file,
/// [`Error::LoadFailed`] naming the file and what is wrong for anything that
/// is not a whole, well-formed GGUF v2/v3 model file.
#[tracing::instrument(name = "convergio.local_model.gguf.read_info", skip_all, fields(path = %path.display()))]
pub fn read_info(path: &Path) -> Result<GgufInfo> {
    let file = File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::NotFound(format!("no file `{}`", path.display())),
        _ => Error::LoadFailed(format!("cannot open `{}`: {e}", path.display())),
    })?;
    let len = file
        .metadata()
        .map_err(|e| Error::LoadFailed(format!("cannot stat `{}`: {e}", path.display())))?
        .len();
    let mut reader = Reader {
        inner: BufReader::with_capacity(64 * 1024, file),
        pos: 0,
        len,
        path,
    };
    parse(&mut reader)
}

/// llama.cpp's name for a `general.file_type` (`LLAMA_FTYPE_*`), `None` for
/// a value it does not define.
pub fn file_type_name(file_type: u64) -> Option<&'static str> {
    Some(match file_type {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        36 => "TQ1_0",
        37 => "TQ2_0",
        38 => "MXFP4_MOE",
        39 => "NVFP4",
        40 => "Q1_0",
        41 => "Q2_0",
        _ => return None,
    })
}

/// The quantization a file name announces, as model publishers name their
/// files (`SmolLM2-135M-Instruct.Q4_1.gguf`, `llama-3-8b-q4_k_m.gguf`):
/// the longest llama.cpp quantization name found between separators.
pub fn quantization_from_file_name(name: &str) -> Option<&'static str> {
    let upper = name.to_ascii_uppercase();
    let mut names: Vec<&'static str> = (0..64).filter_map(file_type_name).collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    names.into_iter().find(|quant| {
        upper.match_indices(quant).any(|(at, _)| {
            let before = upper[..at].chars().next_back();
            let after = upper[at + quant.len()..].chars().next();
            !before.is_some_and(is_word) && !after.is_some_and(is_word)
        })
    })
}

/// `(elements per block, bytes per block)` of a ggml tensor type, as
/// ggml's `type_traits` table defines them; `None` for removed or unknown types.
fn ggml_type_layout(ggml_type: u32) -> Option<(u64, u64)> {
    Some(match ggml_type {
        0 => (1, 4),      // F32
        1 => (1, 2),      // F16
        2 => (32, 18),    // Q4_0
        3 => (32, 20),    // Q4_1
        6 => (32, 22),    // Q5_0
        7 => (32, 24),    // Q5_1
        8 => (32, 34),    // Q8_0
        9 => (32, 36),    // Q8_1
        10 => (256, 84),  // Q2_K
        11 => (256, 110), // Q3_K
        12 => (256, 144), // Q4_K
        13 => (256, 176), // Q5_K
        14 => (256, 210), // Q6_K
        15 => (256, 292), // Q8_K
        16 => (256, 66),  // IQ2_XXS
        17 => (256, 74),  // IQ2_XS
        18 => (256, 98),  // IQ3_XXS
        19 => (256, 50),  // IQ1_S
        20 => (32, 18),   // IQ4_NL
        21 => (256, 110), // IQ3_S
        22 => (256, 82),  // IQ2_S
        23 => (256, 136), // IQ4_XS
        24 => (1, 1),     // I8
        25 => (1, 2),     // I16
        26 => (1, 4),     // I32
        27 => (1, 8),     // I64
        28 => (1, 8),     // F64
        29 => (256, 56),  // IQ1_M
        30 => (1, 2),     // BF16
        34 => (256, 54),  // TQ1_0
        35 => (256, 66),  // TQ2_0
        39 => (32, 17),   // MXFP4
        40 => (64, 36),   // NVFP4
        41 => (128, 18),  // Q1_0
        42 => (64, 18),   // Q2_0
        _ => return None,
    })
}

/// A metadata value this reader keeps.
#[derive(Debug, Clone)]
enum Scalar {
    Unsigned(u64),
    Signed(i64),
    Str(String),
    /// A value of another type (float, bool, array), by type name.
    Other(&'static str),
}

impl Scalar {
    fn as_u64(&self) -> Option<u64> {
        match *self {
            Scalar::Unsigned(v) => Some(v),
            Scalar::Signed(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    fn describe(&self) -> String {
        match self {
            Scalar::Unsigned(v) => format!("the number {v}"),
            Scalar::Signed(v) => format!("the number {v}"),
            Scalar::Str(s) => format!("the string {s:?}"),
            Scalar::Other(t) => format!("a value of type {t}"),
        }
    }
}

/// Whether the value of `key` is one this reader needs. Of these, only
/// `general.architecture` and `general.name` are kept when they are strings.
fn kept(key: &str) -> bool {
    matches!(
        key,
        "general.architecture" | "general.name" | "general.file_type" | "general.alignment"
    ) || key.ends_with(".context_length")
        || key.ends_with(".embedding_length")
}

/// Size in bytes of a fixed-size value type.
fn fixed_size(value_type: u32) -> Option<u64> {
    match value_type {
        T_U8 | T_I8 | T_BOOL => Some(1),
        T_U16 | T_I16 => Some(2),
        T_U32 | T_I32 | T_F32 => Some(4),
        T_U64 | T_I64 | T_F64 => Some(8),
        _ => None,
    }
}

/// A buffered reader that knows where it is and how long the file is, so
/// every read and skip is checked against the end of the file first.
struct Reader<'a> {
    inner: BufReader<File>,
    pos: u64,
    len: u64,
    path: &'a Path,
}

impl Reader<'_> {
    fn fail(&self, what: impl std::fmt::Display) -> Error {
        Error::LoadFailed(format!("`{}`: {what}", self.path.display()))
    }

    fn left(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    /// Refuse to read `n` bytes for `what` if the file does not have them.
    fn need(&self, n: u64, what: &dyn Fn() -> String) -> Result<()> {
        if n > self.left() {
            return Err(self.fail(format_args!(
                "truncated: the file is {} bytes, {} needs {n} bytes at offset {}; the download is incomplete or the file is damaged, pull it again",
                self.len,
                what(),
                self.pos
            )));
        }
        Ok(())
    }

    fn bytes<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N]> {
        self.need(N as u64, what)?;
        let mut buf = [0u8; N];
        self.inner.read_exact(&mut buf).map_err(|e| {
            self.fail(format_args!(
                "cannot read {} at offset {}: {e}",
                what(),
                self.pos
            ))
        })?;
        self.pos += N as u64;
        Ok(buf)
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32> {
        self.bytes::<4>(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64> {
        self.bytes::<8>(what).map(u64::from_le_bytes)
    }

    fn skip(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<()> {
        self.need(n, what)?;
        let offset = i64::try_from(n)
            .map_err(|_| self.fail(format_args!("{} is {n} bytes long", what())))?;
        self.inner.seek_relative(offset).map_err(|e| {
            self.fail(format_args!(
                "cannot skip {} at offset {}: {e}",
                what(),
                self.pos
            ))
        })?;
        self.pos += n;
        Ok(())
    }

    /// The length prefix of a string, checked against what is left in the file.
    fn string_len(&mut self, what: &dyn Fn() -> String) -> Result<u64> {
        let at = self.pos;
        let n = self.u64(&|| format!("the length of {}", what()))?;
        if n > self.left() {
            return Err(self.fail(format_args!(
                "{} at offset {at} claims to be {n} bytes long, but only {} bytes are left in the file; the header is corrupt or the file is truncated",
                what(),
                self.left()
            )));
        }
        Ok(n)
    }

    /// A string of at most `max` bytes.
    fn string(&mut self, max: u64, what: &dyn Fn() -> String) -> Result<String> {
        let n = self.string_len(what)?;
        if n > max {
            return Err(self.fail(format_args!(
                "{} at offset {} is {n} bytes long, more than the {max} bytes allowed",
                what(),
                self.pos - 8
            )));
        }
        // `n <= max`, a small constant, so this allocation is bounded.
        let mut buf = vec![0u8; usize::try_from(n).map_err(|_| self.fail("string too long"))?];
        self.inner.read_exact(&mut buf).map_err(|e| {
            self.fail(format_args!(
                "cannot read {} at offset {}: {e}",
                what(),
                self.pos
            ))
        })?;
        self.pos += n;
        String::from_utf8(buf).map_err(|_| self.fail(format_args!("{} is not UTF-8", what())))
    }

    fn skip_string(&mut self, what: &dyn Fn() -> String) -> Result<()> {
        let n = self.string_len(what)?;
        self.skip(n, what)
    }

    /// Read a string, array or unknown-typed value of `key`; keep a string if `keep`.
    fn value(&mut self, key: &str, value_type: u32, keep: bool) -> Result<Scalar> {
        let what = || format!("the value of `{key}`");
        match value_type {
            T_STRING if keep && matches!(key, "general.architecture" | "general.name") => {
                self.string(MAX_KEPT_STRING, &what).map(Scalar::Str)
            }
            T_STRING => self.skip_string(&what).map(|()| Scalar::Other("string")),
            T_ARRAY => {
                let element_type = self.u32(&|| format!("the element type of `{key}`"))?;
                let count = self.u64(&|| format!("the element count of `{key}`"))?;
                let at = self.pos;
                let min_size = match element_type {
                    T_STRING => 8,
                    T_ARRAY => {
                        return Err(self.fail(format_args!(
                            "`{key}` is an array of arrays, which GGUF does not allow"
                        )));
                    }
                    t => fixed_size(t).ok_or_else(|| {
                        self.fail(format_args!(
                            "`{key}` is an array of unknown GGUF type {t} (offset {at})"
                        ))
                    })?,
                };
                let bytes = count.checked_mul(min_size).filter(|&b| b <= self.left()).ok_or_else(|| {
                    self.fail(format_args!(
                        "`{key}` at offset {at} claims {count} elements, more than the {} bytes left in the file can hold; the header is corrupt or the file is truncated",
                        self.left()
                    ))
                })?;
                if element_type == T_STRING {
                    for i in 0..count {
                        self.skip_string(&|| format!("element {i} of `{key}`"))?;
                    }
                } else {
                    self.skip(bytes, &what)?;
                }
                Ok(Scalar::Other("array"))
            }
            t => Err(self.fail(format_args!(
                "`{key}` has unknown GGUF value type {t} (offset {})",
                self.pos - 4
            ))),
        }
    }
}

fn parse(r: &mut Reader<'_>) -> Result<GgufInfo> {
    if r.len < 4 {
        return Err(r.fail(format_args!(
            "not a GGUF file (it is {} bytes long, shorter than the 4-byte magic `GGUF`)",
            r.len
        )));
    }
    let magic = r.bytes::<4>(&|| "the magic".into())?;
    if magic != MAGIC {
        return Err(r.fail(format_args!(
            "not a GGUF file (magic {}, expected `GGUF`); llama.cpp models are .gguf files",
            show_magic(&magic)
        )));
    }
    let version = r.u32(&|| "the version".into())?;
    match version {
        2 | 3 => {}
        1 => {
            return Err(r.fail(
                "GGUF version 1 is no longer supported by llama.cpp; get a newer conversion of the model",
            ));
        }
        v if v.swap_bytes() == 2 || v.swap_bytes() == 3 => {
            return Err(
                r.fail("a big-endian GGUF file; only little-endian GGUF files are supported")
            );
        }
        v => {
            return Err(r.fail(format_args!(
                "GGUF version {v} is not supported (only versions 2 and 3)"
            )));
        }
    }
    let tensor_count = r.u64(&|| "the tensor count".into())?;
    let kv_count = r.u64(&|| "the metadata count".into())?;
    // Each pair takes at least a key length, a type and one byte of value.
    if kv_count > r.left() / 13 {
        return Err(r.fail(format_args!(
            "the header claims {kv_count} metadata entries, more than the {} bytes of the file can hold; the header is corrupt or the file is truncated",
            r.len
        )));
    }

    let mut values: HashMap<String, Scalar> = HashMap::new();
    for i in 0..kv_count {
        let key = r.string(MAX_KEY_LEN, &|| format!("the key of metadata entry {i}"))?;
        let value_type = r.u32(&|| format!("the type of `{key}`"))?;
        // Real files have a handful of these keys; a hostile one with
        // thousands gets the rest ignored (and fails for a missing key).
        let keep = kept(&key) && values.len() < MAX_KEPT_VALUES;
        let value = read_value(r, &key, value_type, keep)?;
        if keep && values.insert(key.clone(), value).is_some() {
            return Err(r.fail(format_args!("duplicate metadata key `{key}`")));
        }
    }

    let alignment = match values.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(Scalar::Unsigned(a)) if a.is_power_of_two() && *a <= u64::from(u32::MAX) => *a,
        Some(other) => {
            return Err(r.fail(format_args!(
                "`general.alignment` must be a power of two (uint32), not {}",
                other.describe()
            )));
        }
    };

    let architecture = match values.get("general.architecture") {
        Some(Scalar::Str(a)) if !a.is_empty() => a.clone(),
        Some(other) => {
            return Err(r.fail(format_args!(
                "`general.architecture` must be a non-empty string, not {}",
                other.describe()
            )));
        }
        None => {
            return Err(
                r.fail("no `general.architecture` key: not a model file llama.cpp can load")
            );
        }
    };
    let name = match values.get("general.name") {
        Some(Scalar::Str(n)) => Some(n.clone()),
        _ => None,
    };
    let length = |suffix: &str| -> Result<u32> {
        let key = format!("{architecture}.{suffix}");
        match values.get(&key) {
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|&n| n > 0)
                .ok_or_else(|| {
                    r.fail(format_args!(
                        "`{key}` must be a positive integer that fits 32 bits, not {}",
                        v.describe()
                    ))
                }),
            None => Err(r.fail(format_args!(
                "no `{key}` key: not a {architecture} model llama.cpp can run"
            ))),
        }
    };
    let context_length = length("context_length")?;
    let embedding_length = length("embedding_length")?;
    let quantization = match values.get("general.file_type").and_then(Scalar::as_u64) {
        Some(t) => file_type_name(t).map_or_else(|| format!("type {t}"), str::to_owned),
        None => r
            .path
            .file_name()
            .and_then(|n| quantization_from_file_name(&n.to_string_lossy()))
            .unwrap_or("unknown")
            .to_owned(),
    };

    // Each tensor description takes at least a name length, a dimension
    // count, a type and an offset.
    if tensor_count > r.left() / 24 {
        return Err(r.fail(format_args!(
            "the header claims {tensor_count} tensors, more than the {} bytes of the file can hold; the header is corrupt or the file is truncated",
            r.len
        )));
    }
    let mut expected_offset: u64 = 0;
    let mut data_end: u64 = 0;
    for i in 0..tensor_count {
        let tensor = r.string(MAX_TENSOR_NAME - 1, &|| format!("the name of tensor {i}"))?;
        let n_dims = r.u32(&|| format!("the dimension count of tensor `{tensor}`"))?;
        if n_dims > MAX_DIMS {
            return Err(r.fail(format_args!(
                "tensor `{tensor}` has {n_dims} dimensions, more than {MAX_DIMS}"
            )));
        }
        let mut dims = [1u64; MAX_DIMS as usize];
        for (d, dim) in dims.iter_mut().enumerate().take(n_dims as usize) {
            *dim = r.u64(&|| format!("dimension {d} of tensor `{tensor}`"))?;
            if i64::try_from(*dim).is_err() {
                return Err(r.fail(format_args!(
                    "tensor `{tensor}` has a negative dimension {d}"
                )));
            }
        }
        let ggml_type = r.u32(&|| format!("the type of tensor `{tensor}`"))?;
        let offset = r.u64(&|| format!("the offset of tensor `{tensor}`"))?;
        let (block, type_size) = ggml_type_layout(ggml_type).ok_or_else(|| {
            r.fail(format_args!(
                "tensor `{tensor}` has ggml type {ggml_type}, which this reader does not know (a removed type, or a newer one: update Convergio)"
            ))
        })?;
        if dims[0] % block != 0 {
            return Err(r.fail(format_args!(
                "tensor `{tensor}` has {} elements per row, not a multiple of its type's block size {block}",
                dims[0]
            )));
        }
        let bytes = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .and_then(|n| (n / block).checked_mul(type_size))
            .ok_or_else(|| {
                r.fail(format_args!(
                    "tensor `{tensor}` has shape {:?}, too large to address",
                    &dims[..n_dims as usize]
                ))
            })?;
        if offset != expected_offset {
            return Err(r.fail(format_args!(
                "tensor `{tensor}` starts at data offset {offset}, expected {expected_offset}; the tensor table is corrupt"
            )));
        }
        data_end = offset
            .checked_add(bytes)
            .ok_or_else(|| r.fail(format_args!("tensor `{tensor}` ends past 2^64 bytes")))?;
        expected_offset = pad(data_end, alignment)
            .ok_or_else(|| r.fail(format_args!("tensor `{tensor}` ends past 2^64 bytes")))?;
    }

    let data_start =
        pad(r.pos, alignment).ok_or_else(|| r.fail("the data section starts past 2^64 bytes"))?;
    let needed = if tensor_count == 0 {
        r.pos
    } else {
        data_start
            .checked_add(data_end)
            .ok_or_else(|| r.fail("the data section ends past 2^64 bytes"))?
    };
    if r.len < needed {
        return Err(r.fail(format_args!(
            "truncated: the file is {} bytes, the tensors need {needed} ({} missing); the download is incomplete or the file is damaged, pull it again",
            r.len,
            needed - r.len
        )));
    }

    Ok(GgufInfo {
        architecture,
        name,
        context_length,
        embedding_length,
        quantization,
        tensor_count,
    })
}

/// Read one metadata value (dispatches on type; fixed-size scalars are read
/// exactly, strings and arrays through [`Reader::value`]).
fn read_value(r: &mut Reader<'_>, key: &str, value_type: u32, keep: bool) -> Result<Scalar> {
    let what = || format!("the value of `{key}`");
    Ok(match value_type {
        T_U8 => Scalar::Unsigned(u64::from(r.bytes::<1>(&what)?[0])),
        T_I8 => Scalar::Signed(i64::from(i8::from_le_bytes(r.bytes::<1>(&what)?))),
        T_U16 => Scalar::Unsigned(u64::from(u16::from_le_bytes(r.bytes::<2>(&what)?))),
        T_I16 => Scalar::Signed(i64::from(i16::from_le_bytes(r.bytes::<2>(&what)?))),
        T_U32 => Scalar::Unsigned(u64::from(r.u32(&what)?)),
        T_I32 => Scalar::Signed(i64::from(i32::from_le_bytes(r.bytes::<4>(&what)?))),
        T_U64 => Scalar::Unsigned(r.u64(&what)?),
        T_I64 => Scalar::Signed(i64::from_le_bytes(r.bytes::<8>(&what)?)),
        T_F32 => {
            r.bytes::<4>(&what)?;
            Scalar::Other("float32")
        }
        T_F64 => {
            r.bytes::<8>(&what)?;
            Scalar::Other("float64")
        }
        T_BOOL => {
            r.bytes::<1>(&what)?;
            Scalar::Other("bool")
        }
        _ => r.value(key, value_type, keep)?,
    })
}

/// `n` rounded up to a multiple of `alignment` (a power of two).
fn pad(n: u64, alignment: u64) -> Option<u64> {
    n.checked_add(alignment - 1).map(|v| v & !(alignment - 1))
}

/// The first bytes of a file, printable.
fn show_magic(magic: &[u8; 4]) -> String {
    let text: String = magic
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() {
                char::from(b).to_string()
            } else {
                format!("\\x{b:02x}")
            }
        })
        .collect();
    format!("`{text}`")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_announce_quantizations() {
        assert_eq!(
            quantization_from_file_name("SmolLM2-135M-Instruct.Q4_1.gguf"),
            Some("Q4_1")
        );
        assert_eq!(
            quantization_from_file_name("llama-3-8b-q4_k_m.gguf"),
            Some("Q4_K_M")
        );
        assert_eq!(quantization_from_file_name("model-f16.gguf"), Some("F16"));
        assert_eq!(quantization_from_file_name("xq4_0.gguf"), None);
        assert_eq!(quantization_from_file_name("model.gguf"), None);
    }

    #[test]
    fn padding() {
        assert_eq!(pad(0, 32), Some(0));
        assert_eq!(pad(1, 32), Some(32));
        assert_eq!(pad(32, 32), Some(32));
        assert_eq!(pad(u64::MAX, 32), None);
    }
}
