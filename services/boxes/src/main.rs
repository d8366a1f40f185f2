use boxes::config::Settings;
use boxes::startup::Application;
use clap::Parser;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    web_kit::telemetry::init(&settings.log_format);
    Application::build(settings).await?.run_until_stopped().await
}
