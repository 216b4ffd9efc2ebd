//! The CLI's command for a run: its arguments, environment, working directory and sandbox,
//! the same whether it is started for a request or ahead of one (`warm.rs`).

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;

use crate::agent::admission::request::Run;
use crate::agent::error::Error;
use crate::agent::lifecycle::prompt_file::SystemPromptFile;
use crate::agent::lifecycle::state::Core;
use crate::cli::home;
use crate::process;

/// What to spawn for `run`, reading `input` as the CLI's arguments say it does (`cli_input`);
/// and its system prompt's file, which must outlive the CLI.
pub fn command(
    core: &Core,
    run: &Run,
    cli_input: crate::cli::Input,
    input: process::Input,
    idle_paused: Option<watch::Receiver<bool>>,
) -> Result<(process::Spec, Option<SystemPromptFile>), Error> {
    let system_prompt = match &run.system_prompt {
        Some(text) => Some(SystemPromptFile::write(&core.settings.prompts, text)?),
        None => None,
    };
    let mut invocation = run.invocation(system_prompt.as_ref().map(|file| file.path.clone()));
    invocation.input = cli_input;
    let spec = process::Spec {
        program: core.settings.cli.clone(),
        args: invocation.args(),
        env: Arc::clone(&core.settings.cli_env),
        cwd: run.cwd.to_path_buf(),
        input,
        idle_paused,
        sandbox: match &core.settings.sandbox {
            Some(sandbox) => {
                let mut confinement = confinement(core, run)?;
                confinement
                    .read_only
                    .extend(system_prompt.as_ref().map(|file| file.path.clone()));
                Some((Arc::clone(sandbox), confinement))
            }
            None => None,
        },
    };
    Ok((spec, system_prompt))
}

/// What a sandboxed CLI is given of the host: its working directory, and its client's home.
fn confinement(core: &Core, run: &Run) -> Result<process::Confinement, Error> {
    let home_inside = PathBuf::from(home::HOME_INSIDE_SANDBOX);
    // The operator's stored login, so that a CLI logged in with `claude login` is logged in
    // here too.
    let login = core
        .settings
        .claude_config_dir
        .as_ref()
        .map(|dir| home::login_file_in(dir))
        .filter(|file| file.is_file())
        .map(|file| {
            (
                file,
                home::login_file_in(&home::config_dir_in(&home_inside)),
            )
        });
    Ok(process::Confinement {
        cwd: run.cwd.to_path_buf(),
        home: core.home_of(run.owner)?,
        home_inside,
        host_name: home::SANDBOX_HOST_NAME.to_owned(),
        read_only: Vec::new(),
        shared_file: login,
        // Its sessions are in its home, whatever the operator's CLI uses.
        unset: vec![crate::cli::CONFIG_DIR.to_owned()],
    })
}
