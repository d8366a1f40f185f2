//! Running statements through the connection's statement cache: each SQL text is prepared once
//! per pooled connection (deadpool-postgres keeps the cache), then every execution is a single
//! Bind/Execute round trip instead of a Parse/Describe round trip followed by the execution.
//!
//! The helpers are `#[track_caller]`: a failure names the line of `store/` that ran the
//! statement or read the column ([`Error`]).

use std::future::Future;
use std::panic::Location;

use tokio_postgres::row::RowIndex;
use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::Row;

use super::{Error, GenericClient};

pub type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// The four ways to run a cached statement, each named after the client method it calls.
macro_rules! cached {
    ($($method:ident -> $out:ty;)*) => {$(
        #[track_caller]
        pub fn $method<'a, C: GenericClient>(
            c: &'a C,
            sql: &'a str,
            params: Params<'a>,
        ) -> impl Future<Output = Result<$out, Error>> + 'a {
            let at = Location::caller();
            async move {
                let stmt = c.prepare_cached(sql).await.map_err(|e| Error::statement(at, e))?;
                c.$method(&stmt, params).await.map_err(|e| Error::statement(at, e))
            }
        }
    )*};
}

cached! {
    query -> Vec<Row>;
    query_one -> Row;
    query_opt -> Option<Row>;
    execute -> u64;
}

/// One column of a row; a value that does not decode is an error.
#[track_caller]
pub fn get<'a, I, T>(row: &'a Row, idx: I) -> Result<T, Error>
where
    I: RowIndex + std::fmt::Display,
    T: FromSql<'a>,
{
    row.try_get(idx).map_err(|e| Error::Row { at: Location::caller(), source: e.into() })
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
