//! WebSocket messages (`shared/src/websocket/message.rs`): any text parses to a
//! message or a refusal, never a panic; any answer is cut into frames of at most
//! 32 KB whose chunks join back into it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llm_proxy_shared::websocket::message::{ClientMessage, FRAME_LIMIT, frames};
use serde_json::Value;

fuzz_target!(|text: &str| {
    let _ = ClientMessage::parse(text);

    let id: String = text.chars().take(128).collect();
    // A large message out of the input: the same text many times over.
    let message = text.repeat(1 + 40_000 / (text.len() + 1));
    let sent = frames(message.clone(), Some(&id), 7);
    if sent.len() == 1 {
        assert_eq!(sent[0], message);
        return;
    }
    let mut joined = String::new();
    for (i, frame) in sent.iter().enumerate() {
        assert!(frame.len() <= FRAME_LIMIT, "{} bytes", frame.len());
        let part: Value = serde_json::from_str(frame).unwrap();
        assert_eq!(part["part"], i);
        assert_eq!(part["parts"], sent.len());
        assert_eq!(part["id"], id.as_str());
        joined.push_str(part["chunk"].as_str().unwrap());
    }
    assert_eq!(joined, message);
});
