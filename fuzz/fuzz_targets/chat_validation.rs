//! Chat request validation (`shared/src/validation.rs`) on arbitrary bytes: a request
//! or a 400 naming a field, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llm_proxy_shared::validation::validate_chat_request;

fuzz_target!(|bytes: &[u8]| {
    if let Err(error) = validate_chat_request(bytes) {
        assert_eq!(error.status().as_u16(), 400, "{error:?}");
    }
});
