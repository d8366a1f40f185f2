use boxes::config::Settings;
use boxes::startup::Application;
use clap::Parser;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    web_kit::telemetry::init("boxes", &settings.server.log_format);
    let result = Application::build(settings).await?.run_until_stopped().await;
    web_kit::telemetry::shutdown();
    result
}
