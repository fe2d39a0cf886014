//! The end-to-end pipeline suite lives in `tests/pipeline.rs`; this crate
//! has no code of its own. `make e2e` runs it with its stages printed.
