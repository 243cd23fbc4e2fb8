//! What progenitor leaves to the user of a generated client, through its `ClientHooks` extension
//! point: credentials (Bearer, HTTP Basic for the token endpoint, HTTP Digest with its
//! challenge round trip) and the Atlas family's vendor media type on the wire.

use std::sync::{Arc, Mutex};

use progenitor_client::{ClientHooks, ClientInfo, OperationInfo};
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};

use crate::Client;

/// The Atlas family's media type, which the document gives for every Atlas body and which the
/// server requires in `Accept` (the generated code sends `application/json`).
pub const ATLAS_MEDIA_TYPE: &str = "application/vnd.atlas.2023-01-01+json";

/// The credentials a client sends.
#[derive(Clone, Debug)]
pub enum Auth {
    /// No credentials: every protected operation answers 401.
    None,
    /// `Authorization: Bearer <token>` (a community token, or an Atlas service-account token).
    Bearer(String),
    /// HTTP Basic (the service account's id and secret at the token endpoint).
    Basic { username: String, password: String },
    /// HTTP Digest (an API key's public and private key).
    Digest(Arc<Digest>),
}

impl Auth {
    pub fn bearer(token: impl Into<String>) -> Self {
        Auth::Bearer(token.into())
    }

    pub fn basic(username: impl Into<String>, password: impl Into<String>) -> Self {
        Auth::Basic {
            username: username.into(),
            password: password.into(),
        }
    }

    pub fn digest(username: impl Into<String>, password: impl Into<String>) -> Self {
        Auth::Digest(Arc::new(Digest {
            username: username.into(),
            password: password.into(),
            challenge: Mutex::new(None),
        }))
    }
}

/// An API key for HTTP Digest and the last challenge the server sent, reused (the nonce count
/// rising) until the server refuses it, as RFC 7616 allows: one round trip per request, not two.
#[derive(Debug)]
pub struct Digest {
    username: String,
    password: String,
    challenge: Mutex<Option<digest_auth::WwwAuthenticateHeader>>,
}

impl Digest {
    /// The `Authorization` value for this request under the cached challenge, if there is one.
    fn authorization(&self, request: &reqwest::Request) -> Option<HeaderValue> {
        let mut guard = self.challenge.lock().unwrap_or_else(|p| p.into_inner());
        let challenge = guard.as_mut()?;
        let url = request.url();
        let uri = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let body = request.body().and_then(reqwest::Body::as_bytes);
        let context = digest_auth::AuthContext::new_with_method(
            self.username.as_str(),
            self.password.as_str(),
            uri.as_str(),
            body,
            digest_auth::HttpMethod::from(request.method().as_str()),
        );
        let answer = challenge.respond(&context).ok()?;
        HeaderValue::from_str(&answer.to_header_string()).ok()
    }

    /// Keeps a new challenge; false when the header is not a Digest challenge.
    fn remember(&self, header: &str) -> bool {
        match digest_auth::parse(header) {
            Ok(challenge) => {
                *self.challenge.lock().unwrap_or_else(|p| p.into_inner()) = Some(challenge);
                true
            }
            Err(_) => false,
        }
    }
}

impl ClientHooks<Auth> for Client {
    async fn pre<E>(
        &self,
        request: &mut reqwest::Request,
        _info: &OperationInfo,
    ) -> Result<(), progenitor_client::Error<E>> {
        if request.url().path().starts_with("/api/atlas/") {
            let vendor = HeaderValue::from_static(ATLAS_MEDIA_TYPE);
            if request.body().is_some() {
                request.headers_mut().insert(CONTENT_TYPE, vendor.clone());
            }
            request.headers_mut().insert(ACCEPT, vendor);
        }
        let value = match self.inner() {
            Auth::Bearer(token) => HeaderValue::from_str(&format!("Bearer {token}")).ok(),
            Auth::Basic { username, password } => {
                use base64::Engine as _;
                let pair = base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{password}"));
                HeaderValue::from_str(&format!("Basic {pair}")).ok()
            }
            Auth::Digest(digest) => digest.authorization(request),
            Auth::None => None,
        };
        if let Some(value) = value {
            request.headers_mut().insert(AUTHORIZATION, value);
        }
        Ok(())
    }

    async fn exec(
        &self,
        request: reqwest::Request,
        _info: &OperationInfo,
    ) -> reqwest::Result<reqwest::Response> {
        let Auth::Digest(digest) = self.inner() else {
            return self.client().execute(request).await;
        };
        let retry = request.try_clone();
        let response = self.client().execute(request).await?;
        if response.status() != reqwest::StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        // Answer the challenge once; a second 401 is the caller's answer (a wrong key).
        let challenge = response
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.trim_start().to_ascii_lowercase().starts_with("digest"))
            .map(str::to_owned);
        let (Some(challenge), Some(mut retry)) = (challenge, retry) else {
            return Ok(response);
        };
        if !digest.remember(&challenge) {
            return Ok(response);
        }
        match digest.authorization(&retry) {
            Some(value) => {
                retry.headers_mut().insert(AUTHORIZATION, value);
                self.client().execute(retry).await
            }
            None => Ok(response),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHALLENGE: &str = r#"Digest realm="MMS Public API", domain="", nonce="abc123", algorithm=MD5, qop="auth", stale=false"#;

    fn request(method: reqwest::Method, url: &str) -> reqwest::Request {
        reqwest::Request::new(method, url.parse().unwrap())
    }

    #[test]
    fn digest_answers_only_after_a_challenge_and_counts_nonces() {
        let Auth::Digest(digest) = Auth::digest("pub", "priv") else {
            unreachable!()
        };
        let get = request(reqwest::Method::GET, "http://h/api/x?pretty=true");
        assert!(digest.authorization(&get).is_none(), "no challenge yet");
        assert!(digest.remember(CHALLENGE));
        let first = digest.authorization(&get).unwrap();
        let second = digest.authorization(&get).unwrap();
        let first = first.to_str().unwrap();
        assert!(first.starts_with("Digest "), "{first}");
        assert!(first.contains(r#"username="pub""#), "{first}");
        assert!(first.contains(r#"uri="/api/x?pretty=true""#), "{first}");
        assert!(first.contains("nc=00000001"), "{first}");
        assert!(second.to_str().unwrap().contains("nc=00000002"));
    }

    #[test]
    fn a_basic_challenge_is_not_kept() {
        let Auth::Digest(digest) = Auth::digest("pub", "priv") else {
            unreachable!()
        };
        assert!(!digest.remember(r#"Basic realm="x""#));
        let get = request(reqwest::Method::GET, "http://h/");
        assert!(digest.authorization(&get).is_none());
    }
}
