//! What a call can fail with.

use domain::ErrorBody;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The service refused with the §4 error body.
    #[error("{what} answered {status}: {} ({:?})", body.desc, body.details)]
    Api { what: String, status: u16, body: ErrorBody },
    /// An answer with a status or body the API does not document for this call.
    #[error("{what} answered {status}: {text}")]
    Unexpected { what: String, status: u16, text: String },
    #[error("{what}: {source}")]
    Http { what: String, source: reqwest::Error },
    #[error("websocket: {0}")]
    Socket(#[from] tokio_tungstenite::tungstenite::Error),
    /// The socket said something other than what was waited for, or nothing in time.
    #[error("websocket: {0}")]
    Stream(String),
}

impl Error {
    /// The HTTP status of a refusal.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } | Error::Unexpected { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The §4 body of a refusal.
    pub fn body(&self) -> Option<&ErrorBody> {
        match self {
            Error::Api { body, .. } => Some(body),
            _ => None,
        }
    }
}

/// Reads an answer: `expected` status gives `T`, any other status an [`Error`].
pub async fn read<T: serde::de::DeserializeOwned>(what: &str, expected: u16, res: reqwest::Response) -> Result<T> {
    let status = res.status().as_u16();
    let bytes = res.bytes().await.map_err(|source| Error::Http { what: what.to_owned(), source })?;
    if status == expected {
        // An empty 204 reads as `()` (JSON `null`).
        let bytes: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
        return serde_json::from_slice(bytes).map_err(|e| Error::Unexpected {
            what: what.to_owned(),
            status,
            text: format!("unreadable answer: {e}"),
        });
    }
    Err(refusal(what, status, &bytes))
}

pub(crate) fn refusal(what: &str, status: u16, bytes: &[u8]) -> Error {
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(body) => Error::Api { what: what.to_owned(), status, body },
        Err(_) => {
            Error::Unexpected { what: what.to_owned(), status, text: String::from_utf8_lossy(bytes).into_owned() }
        }
    }
}

pub(crate) async fn send(what: &str, rb: reqwest::RequestBuilder) -> Result<reqwest::Response> {
    rb.send().await.map_err(|source| Error::Http { what: what.to_owned(), source })
}
