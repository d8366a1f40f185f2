//! The auth-bridge binary: reads settings, installs logging and serves until stopped.

use auth_bridge::config::Settings;
use auth_bridge::startup::Application;
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    web_kit::telemetry::init("auth-bridge", "json");
    let result = Application::build(settings).await?.run_until_stopped().await;
    web_kit::telemetry::shutdown();
    Ok(result?)
}
