//! SSE framing (`shared/src/sse/events.rs`) on arbitrary bytes: no panic, and what it
//! reports stays inside the buffer and on event boundaries.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llm_proxy_shared::sse::events::{check_events, event_data, last_event_end};

fuzz_target!(|bytes: &[u8]| {
    let scan_from = bytes
        .first()
        .map_or(0, |b| usize::from(*b) % (bytes.len() + 1));
    if let Some(end) = last_event_end(bytes, scan_from) {
        assert!(end <= bytes.len());
        assert!(bytes[..end].ends_with(b"\n\n") || bytes[..end].ends_with(b"\n\r\n"));
        if let Err(valid) = check_events(&bytes[..end]) {
            assert!(valid <= end);
        }
    }
    for data in event_data(bytes) {
        assert!(data.len() <= bytes.len());
    }
});
