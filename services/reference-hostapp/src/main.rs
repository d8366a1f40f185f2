//! The reference hostapp binary: reads settings, installs logging and serves until stopped.

use clap::Parser;
use reference_hostapp::config::Settings;
use reference_hostapp::startup::Application;
use reference_hostapp::telemetry;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    telemetry::init(telemetry::subscriber("reference_hostapp=info,info", std::io::stdout));
    Application::build(settings).await?.run_until_stopped().await?;
    Ok(())
}
