//! PostgreSQL set-up shared by the services: one connection policy (connect and pool waits
//! bounded, statements timed out server side), one pool shape, and the embedded migrations run
//! under an advisory lock with their history table in the service's own schema.

use std::time::Duration;

use anyhow::Context;
use deadpool_postgres::{Manager, ManagerConfig, Pool, QueueMode, RecyclingMethod, Runtime};

/// One connection attempt, and the longest a request waits for a pooled connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Held while migrating, so replicas (and services sharing a database) starting together take
/// turns.
const MIGRATION_LOCK: i64 = 816_001;

/// The connection settings of `url`, with the server-side statement timeout (§13.3).
pub fn config(url: &str, statement_timeout_ms: u64) -> anyhow::Result<tokio_postgres::Config> {
    let mut config: tokio_postgres::Config = url.parse().context("parsing DATABASE_URL")?;
    config.options(format!("-c statement_timeout={statement_timeout_ms}"));
    config.connect_timeout(CONNECT_TIMEOUT);
    Ok(config)
}

/// A pool of at most `max_size` connections. Connections are made on demand, so a database that
/// is down at start only fails the requests that need it (503), and the pool recovers by itself.
pub fn pool(config: tokio_postgres::Config, max_size: usize) -> anyhow::Result<Pool> {
    let manager =
        Manager::from_config(config, tokio_postgres::NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    // LIFO: at low concurrency the same few connections (and PostgreSQL backends) serve every
    // request and stay hot in the CPU caches, instead of the whole pool taking turns.
    Pool::builder(manager)
        .max_size(max_size)
        .queue_mode(QueueMode::Lifo)
        .wait_timeout(Some(CONNECT_TIMEOUT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .runtime(Runtime::Tokio1)
        .build()
        .context("building the PostgreSQL pool")
}

/// Runs `runner`'s migrations under the advisory lock, recording them in
/// `<schema>.refinery_schema_history`, so services sharing a database keep separate histories.
pub async fn migrate(
    config: &tokio_postgres::Config,
    schema: &str,
    mut runner: refinery::Runner,
) -> anyhow::Result<()> {
    let (mut client, conn) = config.connect(tokio_postgres::NoTls).await.context("connecting to PostgreSQL")?;
    let conn = tokio::spawn(conn);
    client.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})")).await?;
    let outcome = async {
        client.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}")).await?;
        adopt_legacy_history(&client, schema).await?;
        runner.set_migration_table_name(format!("{schema}.refinery_schema_history"));
        runner.run_async(&mut client).await.with_context(|| format!("running the {schema} migrations"))?;
        anyhow::Ok(())
    }
    .await;
    let unlocked = client
        .batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
        .await
        .context("releasing the migration lock");
    drop(client);
    let _ = conn.await;
    // A failed migration is the error to report, not the unlock that failed after it.
    outcome.and(unlocked)
}

/// Moves a history kept in `public.<schema>_refinery_schema_history` (auth-bridge's first place
/// for it) into the schema, so a database migrated before keeps its record of what ran.
async fn adopt_legacy_history(client: &tokio_postgres::Client, schema: &str) -> anyhow::Result<()> {
    let sql = format!(
        "DO $$ BEGIN
           IF to_regclass('public.{schema}_refinery_schema_history') IS NOT NULL
              AND to_regclass('{schema}.refinery_schema_history') IS NULL THEN
             ALTER TABLE public.{schema}_refinery_schema_history SET SCHEMA {schema};
             ALTER TABLE {schema}.{schema}_refinery_schema_history RENAME TO refinery_schema_history;
           END IF;
         END $$"
    );
    client.batch_execute(&sql).await.context("moving the migration history into its schema")
}
