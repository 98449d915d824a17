//! What the fuzz targets (`fuzz/`) and the property tests check, written once: for any
//! input, the decoders answer with a value or a clear error and never panic, and what
//! they accept survives a round trip.

use crate::frame::{ClientFrame, decode_client, reference_of};
use crate::registry::RegistryDoc;

/// A client frame, as a phone's bytes: decoding never panics; anything over the size
/// limit is `too_large` before it is parsed; an accepted frame encodes and decodes to
/// itself.
pub fn client_frame(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = reference_of(text);
    match decode_client(text) {
        Ok(frame) => {
            assert!(text.len() <= crate::MAX_MESSAGE_BYTES);
            let again = serde_json::to_string(&frame).expect("a decoded frame encodes");
            let back: ClientFrame = decode_client(&again).expect("an encoded frame decodes");
            assert_eq!(back, frame, "round trip of {text:?}");
        }
        Err(e) => {
            if text.len() > crate::MAX_MESSAGE_BYTES {
                assert_eq!(e.code, crate::ErrorCode::TooLarge);
            }
            assert!(!e.message.is_empty());
        }
    }
}

/// A registry document: validation never panics, lists at least one problem when it
/// refuses, and what it accepts validates again, unchanged, from its own document.
pub fn registry(data: &[u8]) {
    let Ok(doc) = serde_json::from_slice::<RegistryDoc>(data) else {
        return;
    };
    match doc.validate() {
        Ok(registry) => {
            let again = registry.to_doc();
            let twice = again
                .validate()
                .expect("a valid registry's document is valid");
            assert_eq!(twice.to_doc(), again);
        }
        Err(problems) => assert!(!problems.is_empty()),
    }
}

/// The command center's JSON bodies: parsing never panics, and the codes of an
/// activation either parse as targets or are refused with a message.
pub fn api_bodies(data: &[u8]) {
    if let Ok(req) = serde_json::from_slice::<crate::api::CreateIncident>(data) {
        let _ = serde_json::to_vec(&req).expect("a parsed body encodes");
        for code in &req.targets.codes {
            let _ = crate::Target::parse(code.as_str());
        }
    }
    let _ = serde_json::from_slice::<crate::api::CreateTask>(data);
    let _ = serde_json::from_slice::<crate::api::PromoteReport>(data);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(e) = crate::Target::parse(text) {
            assert!(!e.to_string().is_empty());
        }
        let _ = crate::GridCode::parse(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every seed the fuzz targets start from, run through the same checks.
    #[test]
    fn the_fuzz_seeds_pass_the_checks() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds");
        let mut n = 0;
        for (target, check) in [
            ("client_frame", client_frame as fn(&[u8])),
            ("registry", registry),
            ("api_bodies", api_bodies),
        ] {
            for f in std::fs::read_dir(dir.join(target)).unwrap() {
                check(&std::fs::read(f.unwrap().path()).unwrap());
                n += 1;
            }
        }
        assert!(n >= 10, "{n} seeds");
    }

    fn json_frame() -> impl Strategy<Value = String> {
        let ty = prop_oneof![
            proptest::sample::select(vec![
                "hello",
                "receipt",
                "ack",
                "task_update",
                "report",
                "ping"
            ])
            .prop_map(str::to_owned),
            "[a-z_]{0,8}",
        ];
        let value = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            ".{0,40}".prop_map(serde_json::Value::from),
        ];
        let key = prop_oneof![
            proptest::sample::select(vec![
                "ref", "token", "incident", "rev", "response", "note", "task", "status",
                "category", "title", "detail", "grid", "location",
            ])
            .prop_map(str::to_owned),
            "[a-z]{1,6}",
        ];
        (ty, proptest::collection::vec((key, value), 0..8)).prop_map(|(ty, fields)| {
            let mut m = serde_json::Map::new();
            m.insert("type".into(), ty.into());
            for (k, v) in fields {
                m.insert(k, v);
            }
            serde_json::Value::Object(m).to_string()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn frames_of_any_shape_are_answered_and_round_trip(text in json_frame()) {
            client_frame(text.as_bytes());
        }

        #[test]
        fn any_bytes_are_a_clear_error_at_worst(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            client_frame(&data);
            registry(&data);
            api_bodies(&data);
        }
    }
}
