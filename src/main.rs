use std::process::ExitCode;

use clap::Parser;
use rushes::app::AppError;
use rushes::cli::{Cli, Exit};
use rushes::config::ConfigError;

#[tokio::main]
async fn main() -> ExitCode {
    // A missing .env is normal; a broken one is reported.
    if let Err(e) = dotenvy::dotenv()
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
                || e.downcast_ref::<AppError>()
                    .is_some_and(AppError::is_config)
                || e.downcast_ref::<rushes::proxy::ProxyError>()
                    .is_some_and(rushes::proxy::ProxyError::is_config);
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
