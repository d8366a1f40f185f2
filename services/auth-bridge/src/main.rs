//! The auth-bridge binary: reads settings, installs logging and serves until stopped.

use auth_bridge::config::Settings;
use auth_bridge::startup::Application;
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    web_kit::telemetry::init("json");
    Application::build(settings).await?.run_until_stopped().await?;
    Ok(())
}
