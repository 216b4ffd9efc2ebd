//! The integration tests, as one test binary: the support code is compiled and linked once,
//! not once per file. Run one file's tests with `cargo test --test it <module>::`, for
//! example `cargo test --test it fake_cli::`.

mod support;

mod binary;
mod cluster;
mod codex;
mod come_back;
mod compat;
// The image and compose.yaml on a Docker engine: scripts/test-docker builds the image and runs
// these with `--features docker-test`.
#[cfg(feature = "docker-test")]
mod docker;
mod durable;
mod fake_cli;
mod fuzz;
mod interactive;
mod load;
mod mcp;
mod migration;
mod observability;
mod openapi;
mod otel;
mod pool;
mod queue;
mod real_cli;
mod run_options;
mod sandbox;
mod security;
mod ui;
mod usage;
mod webhooks;
