//! The auth-bridge binary: reads settings, installs logging and serves until stopped.

use auth_bridge::config::Settings;
use auth_bridge::startup::Application;
use auth_bridge::telemetry;
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    telemetry::init(telemetry::subscriber("auth_bridge=info,info", std::io::stdout));
    Application::build(settings).await?.run_until_stopped().await?;
    Ok(())
}
