//! Responses as nwaku writes them (plain-text errors, `OK` bodies, JSON
//! with `application/json`), and the request body reader nwaku's handlers
//! share.

use axum::{
    body::Bytes,
    extract::{FromRequest, Request},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde::{de::DeserializeOwned, Serialize};

/// A `text/plain` answer, as every nwaku error and `OK` is.
pub(crate) fn text(status: StatusCode, body: impl Into<String>) -> Response {
    let mut response = (status, body.into()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// `200 OK` with the body `OK`.
pub(crate) fn ok() -> Response {
    text(StatusCode::OK, "OK")
}

/// A JSON answer.
pub(crate) fn json(status: StatusCode, value: &impl Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response(),
        // Our own types serialize; this is not reachable from a request.
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// A request body read as nwaku's `decodeRequestBody` does: JSON, sent as
/// `application/json` or `text/plain`; the errors are its words.
pub(crate) struct Body<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let kind = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            });
        let bytes = read(req, state).await?;
        if bytes.is_empty() {
            return Err(text(StatusCode::BAD_REQUEST, "Missing content body"));
        }
        if !matches!(kind.as_deref(), Some("application/json" | "text/plain")) {
            return Err(text(
                StatusCode::BAD_REQUEST,
                "Wrong Content-Type, expected application/json or text/plain",
            ));
        }
        serde_json::from_slice(&bytes).map(Body).map_err(|e| {
            text(
                StatusCode::BAD_REQUEST,
                format!("Invalid content body, could not decode: {e}"),
            )
        })
    }
}

/// The body's bytes; one over the server's limit is a 413 with the reason.
pub(crate) async fn read<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, Response> {
    Bytes::from_request(req, state).await.map_err(|e| {
        text(
            e.status(),
            format!("Invalid content body: {}", e.body_text()),
        )
    })
}
