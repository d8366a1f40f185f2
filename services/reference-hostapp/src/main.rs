//! The reference hostapp binary: reads settings, installs logging and serves until stopped.

use clap::Parser;
use reference_hostapp::config::Settings;
use reference_hostapp::startup::Application;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    web_kit::telemetry::init("json");
    Application::build(settings).await?.run_until_stopped().await?;
    Ok(())
}
