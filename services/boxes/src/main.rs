use boxes::config::Settings;
use boxes::startup::Application;
use clap::Parser;

// A request allocates some fifty times; glibc's allocator spent about a sixth of a post's
// instructions on it (BENCHMARKS.md, "Cheaper posts").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    web_kit::telemetry::init("boxes", &settings.server.log_format);
    let result = Application::build(settings).await?.run_until_stopped().await;
    web_kit::telemetry::shutdown();
    result
}
