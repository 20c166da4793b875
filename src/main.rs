use std::process::ExitCode;

use rushes::cli::{self, Cli};

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
        return ExitCode::from(cli::Exit::CONFIG);
    }
    match Cli::parse_args().run().await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(cli::exit_code(&e))
        }
    }
}
