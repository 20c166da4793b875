use std::process::ExitCode;

use clap::Parser;
use rushes::app::AppError;
use rushes::cli::{Cli, Exit};
use rushes::config::ConfigError;

#[tokio::main]
async fn main() -> ExitCode {
    // The tunnel guard must hand its agent exactly the environment rushes gave it.
    let guard = std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == "tunnel-guard");
    // A missing .env is normal; a broken one is reported.
    if !guard
        && let Err(e) = dotenvy::dotenv()
        && !e.not_found()
    {
        eprintln!("error: cannot read .env: {e}");
        return ExitCode::from(2);
    }
    let cli = Cli::parse();
    match cli.run().await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            let config_error = e.downcast_ref::<ConfigError>().is_some()
                || matches!(e.downcast_ref::<AppError>(), Some(AppError::Config(_)));
            if config_error {
                ExitCode::from(2)
            } else if let Some(exit) = e.downcast_ref::<Exit>() {
                ExitCode::from(exit.code)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
