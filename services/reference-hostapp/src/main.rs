//! The reference hostapp binary: reads settings, installs logging and serves until stopped.

use clap::Parser;
use reference_hostapp::config::Settings;
use reference_hostapp::startup::Application;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    web_kit::telemetry::init("reference-hostapp", "json");
    let result = Application::build(settings).await?.run_until_stopped().await;
    web_kit::telemetry::shutdown();
    Ok(result?)
}
