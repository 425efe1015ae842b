//! Component values as JSON, and readable signatures of component functions.
//!
//! JSON mapping: records are objects; lists and tuples arrays; `option` is
//! `null` or the value; `result` is `{"ok": v}` or `{"err": v}`; a variant is
//! `{"case": payload}` or `"case"` without payload; enums are strings; flags
//! are arrays of strings.

use serde_json::{Map, Value as Json};
use wasmtime::component::Val;
use wasmtime::component::types::{ComponentFunc, Type};

/// `func(a: string) -> result<string, variant{...}>`, structurally.
pub fn render_func(func: &ComponentFunc) -> String {
    let params: Vec<String> = func
        .params()
        .map(|(name, ty)| format!("{name}: {}", render_type(&ty)))
        .collect();
    let results: Vec<String> = func.results().map(|ty| render_type(&ty)).collect();
    match results.as_slice() {
        [] => format!("func({})", params.join(", ")),
        [one] => format!("func({}) -> {one}", params.join(", ")),
        many => format!("func({}) -> ({})", params.join(", "), many.join(", ")),
    }
}

/// A structural rendering of `ty`; equal renderings mean compatible types.
pub fn render_type(ty: &Type) -> String {
    match ty {
        Type::Bool => "bool".into(),
        Type::S8 => "s8".into(),
        Type::U8 => "u8".into(),
        Type::S16 => "s16".into(),
        Type::U16 => "u16".into(),
        Type::S32 => "s32".into(),
        Type::U32 => "u32".into(),
        Type::S64 => "s64".into(),
        Type::U64 => "u64".into(),
        Type::Float32 => "f32".into(),
        Type::Float64 => "f64".into(),
        Type::Char => "char".into(),
        Type::String => "string".into(),
        Type::List(l) => format!("list<{}>", render_type(&l.ty())),
        Type::FixedLengthList(l) => format!("list<{}, {}>", render_type(&l.ty()), l.len()),
        Type::Map(m) => format!(
            "map<{}, {}>",
            render_type(&m.key()),
            render_type(&m.value())
        ),
        Type::Record(r) => {
            let fields: Vec<String> = r
                .fields()
                .map(|f| format!("{}: {}", f.name, render_type(&f.ty)))
                .collect();
            format!("record{{{}}}", fields.join(", "))
        }
        Type::Tuple(t) => {
            let types: Vec<String> = t.types().map(|t| render_type(&t)).collect();
            format!("tuple<{}>", types.join(", "))
        }
        Type::Variant(v) => {
            let cases: Vec<String> = v
                .cases()
                .map(|c| match c.ty {
                    Some(ty) => format!("{}({})", c.name, render_type(&ty)),
                    None => c.name.to_string(),
                })
                .collect();
            format!("variant{{{}}}", cases.join(", "))
        }
        Type::Enum(e) => format!("enum{{{}}}", e.names().collect::<Vec<_>>().join(", ")),
        Type::Option(o) => format!("option<{}>", render_type(&o.ty())),
        Type::Result(r) => {
            let side = |t: Option<Type>| t.map_or("_".to_string(), |t| render_type(&t));
            format!("result<{}, {}>", side(r.ok()), side(r.err()))
        }
        Type::Flags(f) => format!("flags{{{}}}", f.names().collect::<Vec<_>>().join(", ")),
        Type::Own(_) => "own<resource>".into(),
        Type::Borrow(_) => "borrow<resource>".into(),
        Type::Future(_) => "future".into(),
        Type::Stream(_) => "stream".into(),
        Type::ErrorContext => "error-context".into(),
    }
}

/// Whether values of `ty` can cross from one store to another (no resources,
/// futures or streams inside).
pub fn is_plain(ty: &Type) -> bool {
    match ty {
        Type::List(l) => is_plain(&l.ty()),
        Type::FixedLengthList(l) => is_plain(&l.ty()),
        Type::Map(m) => is_plain(&m.key()) && is_plain(&m.value()),
        Type::Record(r) => r.fields().all(|f| is_plain(&f.ty)),
        Type::Tuple(t) => t.types().all(|t| is_plain(&t)),
        Type::Variant(v) => v.cases().all(|c| c.ty.as_ref().is_none_or(is_plain)),
        Type::Option(o) => is_plain(&o.ty()),
        Type::Result(r) => {
            r.ok().as_ref().is_none_or(is_plain) && r.err().as_ref().is_none_or(is_plain)
        }
        Type::Own(_) | Type::Borrow(_) | Type::Future(_) | Type::Stream(_) | Type::ErrorContext => {
            false
        }
        _ => true,
    }
}

/// Convert JSON arguments (an array in parameter order, or an object keyed by
/// parameter name) into values for `func`.
pub fn json_to_params(func: &ComponentFunc, args: &Json) -> Result<Vec<Val>, String> {
    let params: Vec<(String, Type)> = func.params().map(|(n, t)| (n.to_string(), t)).collect();
    let values: Vec<&Json> = match args {
        Json::Array(items) => {
            if items.len() != params.len() {
                return Err(format!(
                    "expected {} argument(s) ({}), got {}",
                    params.len(),
                    params
                        .iter()
                        .map(|(n, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    items.len()
                ));
            }
            items.iter().collect()
        }
        Json::Object(map) => {
            if let Some(extra) = map.keys().find(|k| !params.iter().any(|(n, _)| n == *k)) {
                return Err(format!("unknown parameter `{extra}`"));
            }
            params
                .iter()
                .map(|(n, _)| map.get(n).ok_or_else(|| format!("missing parameter `{n}`")))
                .collect::<Result<_, _>>()?
        }
        Json::Null if params.is_empty() => Vec::new(),
        other if params.len() == 1 => vec![other],
        _ => {
            return Err(
                "pass the arguments as a JSON array or an object keyed by parameter name".into(),
            );
        }
    };
    params
        .iter()
        .zip(values)
        .map(|((name, ty), v)| json_to_val(ty, v).map_err(|e| format!("parameter `{name}`: {e}")))
        .collect()
}

/// Convert one JSON value to a value of type `ty`.
pub fn json_to_val(ty: &Type, json: &Json) -> Result<Val, String> {
    let mismatch = || format!("expected {}, got {json}", render_type(ty));
    macro_rules! int {
        ($variant:ident, $t:ty) => {{
            let n = json
                .as_i64()
                .map(i128::from)
                .or_else(|| json.as_u64().map(i128::from))
                .ok_or_else(mismatch)?;
            Val::$variant(
                <$t>::try_from(n)
                    .map_err(|_| format!("{n} is out of range for {}", render_type(ty)))?,
            )
        }};
    }
    Ok(match ty {
        Type::Bool => Val::Bool(json.as_bool().ok_or_else(mismatch)?),
        Type::S8 => int!(S8, i8),
        Type::U8 => int!(U8, u8),
        Type::S16 => int!(S16, i16),
        Type::U16 => int!(U16, u16),
        Type::S32 => int!(S32, i32),
        Type::U32 => int!(U32, u32),
        Type::S64 => int!(S64, i64),
        Type::U64 => int!(U64, u64),
        #[allow(clippy::cast_possible_truncation)]
        Type::Float32 => Val::Float32(json.as_f64().ok_or_else(mismatch)? as f32),
        Type::Float64 => Val::Float64(json.as_f64().ok_or_else(mismatch)?),
        Type::Char => {
            let s = json.as_str().ok_or_else(mismatch)?;
            let mut chars = s.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Val::Char(c),
                _ => return Err(format!("expected one character, got {json}")),
            }
        }
        Type::String => Val::String(json.as_str().ok_or_else(mismatch)?.to_string()),
        Type::List(l) => {
            let elem = l.ty();
            let items = json.as_array().ok_or_else(mismatch)?;
            Val::List(
                items
                    .iter()
                    .map(|i| json_to_val(&elem, i))
                    .collect::<Result<_, _>>()?,
            )
        }
        Type::Record(r) => {
            let map = json.as_object().ok_or_else(mismatch)?;
            let fields: Vec<_> = r.fields().collect();
            if let Some(extra) = map
                .keys()
                .find(|k| !fields.iter().any(|f| f.name == k.as_str()))
            {
                return Err(format!("unknown field `{extra}`"));
            }
            let mut out = Vec::with_capacity(fields.len());
            for f in fields {
                let value = match (map.get(f.name), &f.ty) {
                    (Some(v), ty) => {
                        json_to_val(ty, v).map_err(|e| format!("field `{}`: {e}", f.name))?
                    }
                    (None, Type::Option(_)) => Val::Option(None),
                    (None, _) => return Err(format!("missing field `{}`", f.name)),
                };
                out.push((f.name.to_string(), value));
            }
            Val::Record(out)
        }
        Type::Tuple(t) => {
            let items = json.as_array().ok_or_else(mismatch)?;
            let types: Vec<Type> = t.types().collect();
            if items.len() != types.len() {
                return Err(mismatch());
            }
            Val::Tuple(
                types
                    .iter()
                    .zip(items)
                    .map(|(t, i)| json_to_val(t, i))
                    .collect::<Result<_, _>>()?,
            )
        }
        Type::Variant(v) => {
            let (name, payload) = case_of(json).ok_or_else(mismatch)?;
            let case = v
                .cases()
                .find(|c| c.name == name)
                .ok_or_else(|| format!("unknown case `{name}` of {}", render_type(ty)))?;
            let payload = match (case.ty, payload) {
                (Some(t), Some(p)) => Some(Box::new(json_to_val(&t, p)?)),
                (None, None) => None,
                (None, Some(Json::Null)) => None,
                _ => {
                    return Err(format!(
                        "case `{name}`: payload does not match {}",
                        render_type(ty)
                    ));
                }
            };
            Val::Variant(name.to_string(), payload)
        }
        Type::Enum(e) => {
            let s = json.as_str().ok_or_else(mismatch)?;
            if !e.names().any(|n| n == s) {
                return Err(format!("unknown case `{s}` of {}", render_type(ty)));
            }
            Val::Enum(s.to_string())
        }
        Type::Option(o) => match json {
            Json::Null => Val::Option(None),
            v => Val::Option(Some(Box::new(json_to_val(&o.ty(), v)?))),
        },
        Type::Result(r) => {
            let (name, payload) = case_of(json).ok_or_else(mismatch)?;
            let side = |t: Option<Type>| -> Result<Option<Box<Val>>, String> {
                match (t, payload) {
                    (Some(t), Some(p)) => Ok(Some(Box::new(json_to_val(&t, p)?))),
                    (None, None | Some(Json::Null)) => Ok(None),
                    _ => Err(mismatch()),
                }
            };
            match name {
                "ok" => Val::Result(Ok(side(r.ok())?)),
                "err" => Val::Result(Err(side(r.err())?)),
                _ => return Err(mismatch()),
            }
        }
        Type::Flags(f) => {
            let items = json.as_array().ok_or_else(mismatch)?;
            let mut set = Vec::new();
            for i in items {
                let s = i.as_str().ok_or_else(mismatch)?;
                if !f.names().any(|n| n == s) {
                    return Err(format!("unknown flag `{s}`"));
                }
                set.push(s.to_string());
            }
            Val::Flags(set)
        }
        other => {
            return Err(format!(
                "{} values cannot be written as JSON",
                render_type(other)
            ));
        }
    })
}

/// `"name"` or `{"name": payload}`.
fn case_of(json: &Json) -> Option<(&str, Option<&Json>)> {
    match json {
        Json::String(s) => Some((s.as_str(), None)),
        Json::Object(map) if map.len() == 1 => {
            map.iter().next().map(|(k, v)| (k.as_str(), Some(v)))
        }
        _ => None,
    }
}

/// Convert a value to JSON.
pub fn val_to_json(val: &Val) -> Json {
    match val {
        Val::Bool(b) => Json::Bool(*b),
        Val::S8(n) => (*n).into(),
        Val::U8(n) => (*n).into(),
        Val::S16(n) => (*n).into(),
        Val::U16(n) => (*n).into(),
        Val::S32(n) => (*n).into(),
        Val::U32(n) => (*n).into(),
        Val::S64(n) => (*n).into(),
        Val::U64(n) => (*n).into(),
        Val::Float32(n) => Json::from(f64::from(*n)),
        Val::Float64(n) => Json::from(*n),
        Val::Char(c) => Json::String(c.to_string()),
        Val::String(s) => Json::String(s.clone()),
        Val::List(items) | Val::Tuple(items) | Val::FixedLengthList(items) => {
            Json::Array(items.iter().map(val_to_json).collect())
        }
        Val::Map(entries) => Json::Array(
            entries
                .iter()
                .map(|(k, v)| Json::Array(vec![val_to_json(k), val_to_json(v)]))
                .collect(),
        ),
        Val::Record(fields) => Json::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), val_to_json(v)))
                .collect::<Map<_, _>>(),
        ),
        Val::Variant(name, payload) => case_json(name, payload.as_deref()),
        Val::Enum(name) => Json::String(name.clone()),
        Val::Option(v) => v.as_deref().map_or(Json::Null, val_to_json),
        Val::Result(Ok(v)) => case_json_always("ok", v.as_deref()),
        Val::Result(Err(v)) => case_json_always("err", v.as_deref()),
        Val::Flags(names) => Json::Array(names.iter().cloned().map(Json::String).collect()),
        Val::Resource(_) => Json::String("<resource>".into()),
        Val::Future(_) => Json::String("<future>".into()),
        Val::Stream(_) => Json::String("<stream>".into()),
        Val::ErrorContext(_) => Json::String("<error-context>".into()),
    }
}

fn case_json(name: &str, payload: Option<&Val>) -> Json {
    match payload {
        Some(p) => case_json_always(name, Some(p)),
        None => Json::String(name.to_string()),
    }
}

fn case_json_always(name: &str, payload: Option<&Val>) -> Json {
    let mut map = Map::new();
    map.insert(name.to_string(), payload.map_or(Json::Null, val_to_json));
    Json::Object(map)
}
