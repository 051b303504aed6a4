//! Any line (UTF-8, or lossily decoded bytes) given to the agent request
//! parser: no panic; a rejection carries a stable code and renders to an
//! error line that reads back; a parsed request re-serialises to a line
//! that parses to the same request.
#![no_main]
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use smppgw::agent::proto::{self, ErrorCode};

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    match proto::parse_request(&line) {
        Err(r) => {
            let code = r.error.code;
            assert!(
                matches!(code, ErrorCode::BadRequest | ErrorCode::UnknownOp),
                "{code}"
            );
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
            assert!(!r.error.message.is_empty());
            assert!(!matches!(r.id, Some(Value::Array(_) | Value::Object(_))));
            let back: Value = serde_json::from_str(&proto::error_line(r.id.as_ref(), &r.error))
                .expect("error line is JSON");
            assert_eq!(back["ok"], Value::Bool(false));
            assert_eq!(back["error"]["code"].as_str(), Some(code.as_str()));
            assert_eq!(
                back["error"]["message"].as_str(),
                Some(r.error.message.as_str())
            );
        }
        Ok(req) => {
            assert!(proto::OPS.contains(&req.op.name()));
            let mut v = serde_json::to_value(&req.op).expect("op serialises");
            assert_eq!(v["op"].as_str(), Some(req.op.name()));
            v["id"] = req.id.clone();
            let again = proto::parse_request(&v.to_string()).expect("re-serialised line parses");
            assert_eq!(again.op, req.op);
            // A float id may move by one ulp through text; everything else
            // comes back exactly.
            if !req.id.is_f64() {
                assert_eq!(again.id, req.id);
            }
        }
    }
});
