//! Running statements through the connection's statement cache: each SQL text is prepared once
//! per pooled connection (deadpool-postgres keeps the cache), then every execution is a single
//! Bind/Execute round trip instead of a Parse/Describe round trip followed by the execution.

use tokio_postgres::types::ToSql;
use tokio_postgres::{Error, Row};

use super::GenericClient;

pub type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

pub async fn query<C: GenericClient>(c: &C, sql: &str, params: Params<'_>) -> Result<Vec<Row>, Error> {
    let stmt = c.prepare_cached(sql).await?;
    c.query(&stmt, params).await
}

pub async fn query_one<C: GenericClient>(c: &C, sql: &str, params: Params<'_>) -> Result<Row, Error> {
    let stmt = c.prepare_cached(sql).await?;
    c.query_one(&stmt, params).await
}

pub async fn query_opt<C: GenericClient>(c: &C, sql: &str, params: Params<'_>) -> Result<Option<Row>, Error> {
    let stmt = c.prepare_cached(sql).await?;
    c.query_opt(&stmt, params).await
}

pub async fn execute<C: GenericClient>(c: &C, sql: &str, params: Params<'_>) -> Result<u64, Error> {
    let stmt = c.prepare_cached(sql).await?;
    c.execute(&stmt, params).await
}

/// A `json` or `jsonb` column as its JSON text, not parsed: for content that is passed through
/// to a response as it was stored. PostgreSQL only ever hands out valid JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonText(pub String);

impl<'a> tokio_postgres::types::FromSql<'a> for JsonText {
    fn from_sql(
        ty: &tokio_postgres::types::Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        // jsonb's binary form is a version byte (1) followed by the text.
        let text = if *ty == tokio_postgres::types::Type::JSONB {
            match raw.split_first() {
                Some((1, text)) => text,
                _ => return Err("unsupported jsonb encoding version".into()),
            }
        } else {
            raw
        };
        Ok(JsonText(std::str::from_utf8(text)?.to_owned()))
    }

    tokio_postgres::types::accepts!(JSON, JSONB);
}
