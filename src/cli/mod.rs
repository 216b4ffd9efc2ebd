//! The Claude Code CLI as a program, and nothing of HTTP or agents: its arguments from a plain
//! description of a run ([`Invocation`]), the lines written to its stdin ([`stdin`]) and those it writes ([`stdout`]), the environment it is given ([`environment`]), where it keeps its directory, login and sessions ([`home`]), and
//! `claude auth status` ([`auth`]). The agent core and the compatible routes speak to the CLI
//! through this; `process` runs it as it would any program.

mod args;
pub mod auth;
mod env;
pub mod home;
pub mod json_line;
pub mod stdin;
pub mod stdout;

pub use args::{Input, Invocation, ToolFlags};
pub use env::{
    API_KEY, AUTH_TOKEN, BASE_URL, CONFIG_DIR, OAUTH_TOKEN, config_dir, environment,
    login_environment, through_gateway, with_traceparent,
};
