//! The format of `proto/examples.jsonl` and its matcher, so the examples in
//! the spec are replayed against a running daemon and cannot drift. Pure.
//!
//! Each line is one step:
//! `{"title": "...", "send": {request} | "send_raw": "line", "expect":
//! {pattern}, "events": [pattern, ...], "layer": "framing" | "daemon"}`.
//! `send` is written as one JSON line; `send_raw` is written verbatim (for
//! bad input). The next response line must match `expect`; then, when
//! `events` is given, the next event lines must match those patterns in
//! order. `layer: "framing"` marks steps the server answers without the
//! daemon's state (hello, bad input); the default is `"daemon"`.
//!
//! Patterns are JSON where these strings are placeholders:
//! - `"$any"` any value, `"$number"`, `"$string"`, `"$bool"`;
//! - `"$time"` an RFC 3339 UTC time with milliseconds;
//! - `"${name}"` binds `name` to the value the first time and must equal it
//!   afterwards; in `send` it is replaced by the bound value, so a later step
//!   can use the conversation id an earlier answer gave.
//!
//! Objects match when they have exactly the pattern's keys (add `"$more":
//! true` to allow others); arrays match element by element, or every
//! element when the pattern is `["$each", pattern]`.

use std::collections::BTreeMap;

use serde_json::Value;

/// What one step writes.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    /// A request object, written as one line after substitution.
    Json(Value),
    /// A line written verbatim (bad input).
    Raw(String),
}

/// One step of `examples.jsonl`.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// What the step shows.
    pub title: String,
    /// The line to write.
    pub send: Outgoing,
    /// The pattern of the response.
    pub expect: Value,
    /// Patterns of the events that follow, in order.
    pub events: Vec<Value>,
    /// True for steps the server answers without the daemon's state.
    pub framing_only: bool,
}

/// A line of the examples file that is not a valid step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("examples line {line}: {reason}")]
pub struct ExampleError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// Parses an examples file; blank lines are skipped.
///
/// # Errors
/// [`ExampleError`] naming the first bad line.
pub fn parse_examples(text: &str) -> Result<Vec<Example>, ExampleError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let err = |reason: &str| ExampleError {
            line: i + 1,
            reason: reason.into(),
        };
        let v: Value = serde_json::from_str(line).map_err(|e| err(&e.to_string()))?;
        let title = v
            .get("title")
            .and_then(Value::as_str)
            .ok_or_else(|| err("missing `title`"))?
            .to_string();
        let send = match (v.get("send"), v.get("send_raw")) {
            (Some(s @ Value::Object(_)), None) => Outgoing::Json(s.clone()),
            (None, Some(Value::String(s))) => Outgoing::Raw(s.clone()),
            _ => {
                return Err(err(
                    "needs exactly one of `send` (object) or `send_raw` (string)",
                ));
            }
        };
        let expect = v
            .get("expect")
            .cloned()
            .ok_or_else(|| err("missing `expect`"))?;
        let events = match v.get("events") {
            None => Vec::new(),
            Some(Value::Array(a)) => a.clone(),
            Some(_) => return Err(err("`events` must be an array")),
        };
        let framing_only = match v.get("layer").and_then(Value::as_str) {
            None | Some("daemon") => false,
            Some("framing") => true,
            Some(_) => return Err(err("`layer` must be \"framing\" or \"daemon\"")),
        };
        out.push(Example {
            title,
            send,
            expect,
            events,
            framing_only,
        });
    }
    Ok(out)
}

/// Values bound by `"${name}"` placeholders across the steps of a replay.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bindings(pub BTreeMap<String, Value>);

/// Where and why an actual value does not match its pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at {path}: {reason}")]
pub struct Mismatch {
    /// JSON-pointer-like path (`/result/parts`).
    pub path: String,
    /// What differs.
    pub reason: String,
}

fn binding_name(s: &str) -> Option<&str> {
    s.strip_prefix("${").and_then(|r| r.strip_suffix('}'))
}

/// Replaces every `"${name}"` in `template` by its bound value.
///
/// # Errors
/// [`Mismatch`] for a name not bound yet.
pub fn substitute(template: &Value, b: &Bindings) -> Result<Value, Mismatch> {
    fn go(t: &Value, b: &Bindings, path: &str) -> Result<Value, Mismatch> {
        Ok(match t {
            Value::String(s) => match binding_name(s) {
                Some(name) => b.0.get(name).cloned().ok_or_else(|| Mismatch {
                    path: path.into(),
                    reason: format!("`{name}` is not bound by an earlier step"),
                })?,
                None => t.clone(),
            },
            Value::Array(a) => Value::Array(
                a.iter()
                    .enumerate()
                    .map(|(i, v)| go(v, b, &format!("{path}/{i}")))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| Ok((k.clone(), go(v, b, &format!("{path}/{k}"))?)))
                    .collect::<Result<_, Mismatch>>()?,
            ),
            _ => t.clone(),
        })
    }
    go(template, b, "")
}

/// Checks `actual` against `pattern`, binding `"${name}"` placeholders.
///
/// # Errors
/// The first [`Mismatch`] found.
pub fn match_value(pattern: &Value, actual: &Value, b: &mut Bindings) -> Result<(), Mismatch> {
    go(pattern, actual, b, &mut String::new())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn go(p: &Value, a: &Value, b: &mut Bindings, path: &mut String) -> Result<(), Mismatch> {
    let fail = |path: &str, reason: String| {
        Err(Mismatch {
            path: if path.is_empty() {
                "/".into()
            } else {
                path.into()
            },
            reason,
        })
    };
    match p {
        Value::String(s) if s.starts_with('$') => {
            let ok = match s.as_str() {
                "$any" => true,
                "$number" => a.is_number(),
                "$string" => a.is_string(),
                "$bool" => a.is_boolean(),
                "$time" => a.as_str().is_some_and(is_rfc3339_ms_utc),
                other => match binding_name(other) {
                    Some(name) => match b.0.get(name) {
                        Some(bound) if bound == a => true,
                        Some(bound) => {
                            return fail(path, format!("expected `{name}` = {bound}, got {a}"));
                        }
                        None => {
                            b.0.insert(name.to_string(), a.clone());
                            true
                        }
                    },
                    None => return fail(path, format!("unknown placeholder `{other}`")),
                },
            };
            if ok {
                Ok(())
            } else {
                fail(path, format!("expected {s}, got {a}"))
            }
        }
        Value::Object(pm) => {
            let Value::Object(am) = a else {
                return fail(path, format!("expected an object, got {}", kind(a)));
            };
            let more = pm.get("$more") == Some(&Value::Bool(true));
            for (k, pv) in pm {
                if k == "$more" {
                    continue;
                }
                let len = path.len();
                path.push('/');
                path.push_str(k);
                let r = match am.get(k) {
                    Some(av) => go(pv, av, b, path),
                    None => fail(path, "missing".into()),
                };
                path.truncate(len);
                r?;
            }
            if !more {
                if let Some(extra) = am.keys().find(|k| !pm.contains_key(*k)) {
                    return fail(path, format!("unexpected key `{extra}`"));
                }
            }
            Ok(())
        }
        Value::Array(pa) => {
            let Value::Array(aa) = a else {
                return fail(path, format!("expected an array, got {}", kind(a)));
            };
            if let [Value::String(tag), each] = pa.as_slice() {
                if tag == "$each" {
                    for (i, av) in aa.iter().enumerate() {
                        let len = path.len();
                        path.push_str(&format!("/{i}"));
                        let r = go(each, av, b, path);
                        path.truncate(len);
                        r?;
                    }
                    return Ok(());
                }
            }
            if pa.len() != aa.len() {
                return fail(
                    path,
                    format!("expected {} elements, got {}", pa.len(), aa.len()),
                );
            }
            for (i, (pv, av)) in pa.iter().zip(aa).enumerate() {
                let len = path.len();
                path.push_str(&format!("/{i}"));
                let r = go(pv, av, b, path);
                path.truncate(len);
                r?;
            }
            Ok(())
        }
        _ if p == a => Ok(()),
        _ => fail(path, format!("expected {p}, got {a}")),
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, digits where digits belong.
fn is_rfc3339_ms_utc(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(p: Value, a: Value) -> Result<(), Mismatch> {
        match_value(&p, &a, &mut Bindings::default())
    }

    #[test]
    fn placeholders_match_their_kinds_only() {
        assert!(m(json!("$any"), json!(null)).is_ok());
        assert!(m(json!("$number"), json!(3)).is_ok());
        assert!(m(json!("$number"), json!("3")).is_err());
        assert!(m(json!("$string"), json!("x")).is_ok());
        assert!(m(json!("$string"), json!(1)).is_err());
        assert!(m(json!("$bool"), json!(false)).is_ok());
        assert!(m(json!("$time"), json!("2026-11-25T13:00:00.123Z")).is_ok());
        assert!(m(json!("$time"), json!("2026-11-25T13:00:00Z")).is_err());
        assert!(m(json!("$time"), json!("2026-11-25 13:00:00.123Z")).is_err());
    }

    #[test]
    fn rejects_unknown_placeholders() {
        let e = m(json!("$numbr"), json!(1)).unwrap_err();
        assert!(e.reason.contains("unknown placeholder"), "{e}");
    }

    #[test]
    fn objects_match_exact_keys_unless_more_is_allowed() {
        assert!(m(json!({"a": 1}), json!({"a": 1})).is_ok());
        let e = m(json!({"a": 1}), json!({"a": 1, "b": 2})).unwrap_err();
        assert_eq!(e.path, "/");
        assert!(m(json!({"a": 1, "$more": true}), json!({"a": 1, "b": 2})).is_ok());
        let e = m(json!({"a": {"b": 1}}), json!({"a": {}})).unwrap_err();
        assert_eq!((e.path.as_str(), e.reason.as_str()), ("/a/b", "missing"));
    }

    #[test]
    fn mismatch_names_the_path_of_the_difference() {
        let e = m(
            json!({"result": {"parts": [1, "$number"]}}),
            json!({"result": {"parts": [1, "x"]}}),
        )
        .unwrap_err();
        assert_eq!(e.path, "/result/parts/1");
    }

    #[test]
    fn arrays_match_by_length_or_each() {
        assert!(m(json!([1, 2]), json!([1, 2, 3])).is_err());
        assert!(
            m(
                json!(["$each", {"id": "$number"}]),
                json!([{"id": 1}, {"id": 2}])
            )
            .is_ok()
        );
        assert!(m(json!(["$each", {"id": "$number"}]), json!([{"id": "x"}])).is_err());
        assert!(m(json!(["$each", "$number"]), json!([])).is_ok());
    }

    #[test]
    fn bindings_capture_then_compare_then_substitute() {
        let mut b = Bindings::default();
        match_value(
            &json!({"conversation": "${c}"}),
            &json!({"conversation": 7}),
            &mut b,
        )
        .unwrap();
        assert!(match_value(&json!("${c}"), &json!(7), &mut b).is_ok());
        assert!(match_value(&json!("${c}"), &json!(8), &mut b).is_err());
        let req = substitute(&json!({"op": "transcript", "conversation": "${c}"}), &b).unwrap();
        assert_eq!(req, json!({"op": "transcript", "conversation": 7}));
        assert!(substitute(&json!({"x": "${unbound}"}), &b).is_err());
    }

    #[test]
    fn literal_values_must_be_equal() {
        assert!(m(json!(1), json!(1)).is_ok());
        assert!(m(json!(1), json!(2)).is_err());
        assert!(m(json!("a"), json!("a")).is_ok());
        assert!(m(json!(null), json!(0)).is_err());
    }

    #[test]
    fn rejects_malformed_example_lines_with_their_number() {
        let e =
            parse_examples("{\"title\":\"t\",\"send\":{},\"expect\":{}}\nnot json\n").unwrap_err();
        assert_eq!(e.line, 2);
        let e = parse_examples("{\"title\":\"t\",\"expect\":{}}").unwrap_err();
        assert!(e.reason.contains("send"));
        let e =
            parse_examples(r#"{"title":"t","send":{},"send_raw":"x","expect":{}}"#).unwrap_err();
        assert!(e.reason.contains("exactly one"));
    }

    #[test]
    fn the_shipped_examples_parse_and_their_patterns_are_well_formed() {
        let text = include_str!("../../proto/examples.jsonl");
        let ex = parse_examples(text).unwrap();
        assert!(ex.len() >= 20, "{} examples", ex.len());
        for e in &ex {
            if let Outgoing::Json(req) = &e.send {
                let op = req.get("op").and_then(Value::as_str).unwrap_or("");
                assert!(
                    super::super::proto::OPS.contains(&op)
                        || e.expect["error"]["code"] != json!(null),
                    "{}: op `{op}`",
                    e.title
                );
            }
        }
    }
}
