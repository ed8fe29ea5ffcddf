//! The Rust side's floors for `scripts/bench` (`echo`, `echo-powertools`) and the
//! hot-path benchmarks (`cargo bench -p bench`).
