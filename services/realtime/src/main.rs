use clap::Parser;
use realtime::config::Settings;
use realtime::startup::Application;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    web_kit::telemetry::init("realtime", &settings.server.log_format);
    let result = Application::build(settings).await?.run_until_stopped().await;
    web_kit::telemetry::shutdown();
    result
}
