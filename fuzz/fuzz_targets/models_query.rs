//! The catalogue's query string (`functions/models/src/query.rs`): any query is a
//! model query and a page, or a 400 naming the parameter, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use models::query::{MAX_LIMIT, Params};

fuzz_target!(|query: &str| {
    let params = Params::parse(Some(query));
    match params.limit("limit", 50) {
        Ok(limit) => assert!((1..=MAX_LIMIT).contains(&limit)),
        Err(error) => assert_eq!(error.status().as_u16(), 400),
    }
    if let Err(error) = params.offset("offset") {
        assert_eq!(error.status().as_u16(), 400);
    }
    if let Err(error) = params.model_query() {
        assert_eq!(error.status().as_u16(), 400);
    }
    let _ = params.with_page(0, 50);
});
