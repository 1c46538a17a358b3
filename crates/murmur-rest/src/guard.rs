//! What every request passes before its handler: the origin check of
//! nwaku's `--rest-allow-origin` (and its CORS headers), answers to CORS
//! preflights, and the bearer token when one is configured.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::{header, HeaderValue, Method, StatusCode},
    middleware::Next,
    response::Response,
};

use crate::reply::text;

/// The server's origin patterns and token.
pub(crate) struct Guard {
    origins: Vec<Pattern>,
    allow_all: bool,
    token: Option<murmur_node::config::Token>,
}

impl Guard {
    pub(crate) fn new(config: &murmur_node::config::Rest) -> Self {
        let allow_all = config.allow_origin.iter().any(|o| o.trim() == "*");
        Self {
            origins: config
                .allow_origin
                .iter()
                .map(|o| Pattern::new(o.trim()))
                .collect(),
            allow_all,
            token: config.token.clone(),
        }
    }

    /// The headers a browser needs to read the answer, or the refusal.
    fn origin(
        &self,
        request: &Request,
    ) -> Result<Option<Vec<(header::HeaderName, String)>>, Response> {
        if self.origins.is_empty() {
            return Ok(None);
        }
        let mut origins = request.headers().get_all(header::ORIGIN).iter();
        let Some(origin) = origins.next() else {
            return Ok(None);
        };
        if origins.next().is_some() {
            return Err(text(
                StatusCode::BAD_REQUEST,
                "Only a single Origin header must be specified",
            ));
        }
        let allowed_headers = if self.token.is_some() {
            "Content-Type, Authorization"
        } else {
            "Content-Type"
        };
        let origin = origin.to_str().unwrap_or("");
        let mut headers = vec![(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            allowed_headers.to_owned(),
        )];
        if self.allow_all {
            headers.push((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*".to_owned()));
        } else if self.origins.iter().any(|p| p.matches(origin)) {
            headers.push((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.to_owned()));
            headers.push((header::VARY, "Origin".to_owned()));
        } else {
            return Err(text(StatusCode::FORBIDDEN, "Origin not allowed"));
        }
        Ok(Some(headers))
    }

    fn authorized(&self, request: &Request) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        if request.uri().path() == "/health" {
            return true;
        }
        request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| same(given.trim().as_bytes(), token.expose().as_bytes()))
    }
}

/// Compares in time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The middleware.
pub(crate) async fn check(
    State(guard): State<Arc<Guard>>,
    request: Request,
    next: Next,
) -> Response {
    let cors = match guard.origin(&request) {
        Ok(cors) => cors,
        Err(refusal) => return refusal,
    };
    let mut response = if request.method() == Method::OPTIONS {
        // A preflight carries no credentials: it is answered as nwaku
        // answers one on its relay routes.
        crate::reply::ok()
    } else if !guard.authorized(&request) {
        let mut refusal = text(
            StatusCode::UNAUTHORIZED,
            "Missing or wrong bearer token (Authorization: Bearer TOKEN)",
        );
        refusal
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        refusal
    } else {
        next.run(request).await
    };
    for (name, value) in cors.into_iter().flatten() {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// One `--rest-allow-origin` value: `*` any run of characters, `?` one
/// character or none, letters in any case; without `http://` or
/// `https://`, either scheme.
struct Pattern {
    scheme: Option<String>,
    rest: Vec<char>,
}

impl Pattern {
    fn new(pattern: &str) -> Self {
        let lower = pattern.to_ascii_lowercase();
        for scheme in ["http://", "https://"] {
            if let Some(rest) = lower.strip_prefix(scheme) {
                return Self {
                    scheme: Some(scheme.to_owned()),
                    rest: rest.chars().collect(),
                };
            }
        }
        Self {
            scheme: None,
            rest: lower.chars().collect(),
        }
    }

    fn matches(&self, origin: &str) -> bool {
        let origin = origin.to_ascii_lowercase();
        let rest = match &self.scheme {
            Some(scheme) => origin.strip_prefix(scheme.as_str()),
            None => origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://")),
        };
        rest.is_some_and(|r| glob(&self.rest, &r.chars().collect::<Vec<_>>()))
    }
}

/// Whether `text` matches `pattern` as a whole: the table of which
/// prefixes of each match, so that no input costs more than their product.
fn glob(pattern: &[char], text: &[char]) -> bool {
    let mut row = vec![false; text.len() + 1];
    row[0] = true;
    for p in pattern {
        let mut next = vec![false; text.len() + 1];
        for i in 0..=text.len() {
            next[i] = match p {
                '*' => row[i] || (i > 0 && next[i - 1]),
                '?' => row[i] || (i > 0 && row[i - 1]),
                c => i > 0 && row[i - 1] && text[i - 1] == *c,
            };
        }
        row = next;
    }
    row[text.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_match_as_nwaku_matches_them() {
        let p = Pattern::new("localhost:*");
        assert!(p.matches("http://localhost:3000"));
        assert!(p.matches("https://LOCALHOST:8080"));
        assert!(!p.matches("http://evil.com"));
        assert!(!p.matches("localhost:3000"));
        let p = Pattern::new("https://app.example.org");
        assert!(p.matches("https://app.example.org"));
        assert!(!p.matches("http://app.example.org"));
        assert!(!p.matches("https://app.example.org.evil.com"));
        let p = Pattern::new("http://host?.org");
        assert!(p.matches("http://host.org"));
        assert!(p.matches("http://host1.org"));
        assert!(!p.matches("http://host12.org"));
    }

    #[test]
    fn a_long_origin_against_many_stars_is_cheap() {
        let p = Pattern::new(&"*a".repeat(200));
        assert!(!p.matches(&format!("http://{}", "a".repeat(150))));
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
    }
}
