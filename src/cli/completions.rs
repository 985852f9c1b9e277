//! `cmat completions SHELL`: completion scripts from clap's own generator, so they always
//! match the parser.

use clap::{Args, CommandFactory, ValueEnum};
use clap_complete::Shell;

use super::{Cli, CommandResult, Exit};

#[derive(Debug, Args)]
#[command(
    after_help = "Install, for example:\n  bash: cmat completions bash > ~/.local/share/bash-completion/completions/cmat\n  zsh:  cmat completions zsh > ~/.zfunc/_cmat   (with fpath+=~/.zfunc before compinit)\n  fish: cmat completions fish > ~/.config/fish/completions/cmat.fish\n  PowerShell: cmat completions powershell >> $PROFILE"
)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
    Powershell,
}

pub fn run(args: CompletionsArgs) -> CommandResult {
    let shell = match args.shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
        CompletionShell::Powershell => Shell::PowerShell,
    };
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "cmat", &mut std::io::stdout());
    Ok(Exit::Success)
}
