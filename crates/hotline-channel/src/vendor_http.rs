//! An HTTP(S) client for vendors' send APIs (SMS gateways, Zalo): one request, explicit timeouts, a bounded
//! response body, rustls with the ring provider and the system's root certificates.
//!
//! Deliberately small: adapters build the vendor's request (JSON or form body, auth header) and map the vendor's
//! answer to `DeliveryError`s themselves; this only moves bytes and reports transport failures, all of which are
//! worth retrying.

use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Longest response body read; vendors answer a send with a few hundred octets.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Timeouts of the client.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// To open the TCP connection.
    pub connect: Duration,
    /// For the whole exchange (connect, TLS, request, response body).
    pub request: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts { connect: Duration::from_secs(5), request: Duration::from_secs(20) }
    }
}

/// A vendor's answer.
#[derive(Debug, Clone)]
pub struct VendorResponse {
    pub status: u16,
    pub body: Bytes,
}

/// Why no answer came. Every variant is a transport failure: the request may or may not have reached the vendor.
#[derive(Debug, thiserror::Error)]
pub enum VendorHttpError {
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("request failed: {0}")]
    Transport(String),
    #[error("the answer is larger than {MAX_RESPONSE_BYTES} octets")]
    TooLarge,
}

/// The client. Cheap to clone (connections are pooled and shared).
#[derive(Clone)]
pub struct VendorHttp {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeouts: Timeouts,
}

impl std::fmt::Debug for VendorHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VendorHttp").field("timeouts", &self.timeouts).finish_non_exhaustive()
    }
}

impl VendorHttp {
    /// A client trusting the system's root certificates. Plain `http://` URLs are allowed too (a vendor's
    /// sandbox, a local stand-in in tests).
    pub fn new(timeouts: Timeouts) -> Result<VendorHttp, VendorHttpError> {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let builder = match hyper_rustls::HttpsConnectorBuilder::new().with_provider_and_native_roots(provider.clone()) {
            Ok(b) => b,
            Err(e) => {
                // Without roots every HTTPS request fails with a certificate error that names the cause, while
                // plain HTTP still works: starting anyway keeps the inbound side of a channel running.
                tracing::warn!(error = %e, "no system root certificates: HTTPS requests to vendors will fail");
                let config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| VendorHttpError::Invalid(e.to_string()))?
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth();
                hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config)
            }
        };
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeouts.connect));
        http.set_nodelay(true);
        let connector = builder.https_or_http().enable_http1().wrap_connector(http);
        let client = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build(connector);
        Ok(VendorHttp { client, timeouts })
    }

    /// Sends one request and reads the whole answer, within the request timeout.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<VendorResponse, VendorHttpError> {
        let mut request = Request::builder().method(method).uri(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(Bytes::from(body))).map_err(|e| VendorHttpError::Invalid(e.to_string()))?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| VendorHttpError::Transport(chain(&e)))?;
            let status = response.status().as_u16();
            let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES).collect().await.map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                    VendorHttpError::TooLarge
                } else {
                    VendorHttpError::Transport(e.to_string())
                }
            })?;
            Ok(VendorResponse { status, body: body.to_bytes() })
        };
        tokio::time::timeout(self.timeouts.request, exchange).await.map_err(|_| VendorHttpError::Timeout(self.timeouts.request))?
    }
}

/// The error and its sources on one line ("client error (Connect): tcp connect error: Connection refused").
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_plain_http_exchange_and_a_refused_connection() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut buf = vec![0; 4096];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") || !seen.ends_with(b"ping") {
                let n = socket.read(&mut buf).await.expect("read");
                assert!(n > 0, "closed early");
                seen.extend_from_slice(&buf[..n]);
            }
            socket.write_all(b"HTTP/1.1 201 Created\r\ncontent-length: 4\r\nconnection: close\r\n\r\npong").await.expect("write");
            String::from_utf8_lossy(&seen).into_owned()
        });
        let client = VendorHttp::new(Timeouts::default()).expect("client");
        let url = format!("http://{addr}/send");
        let answer = client.send(Method::POST, &url, &[("x-key", "v")], b"ping".to_vec()).await.expect("answer");
        assert_eq!((answer.status, answer.body.as_ref()), (201, b"pong".as_slice()));
        let request = server.await.expect("server");
        assert!(request.starts_with("POST /send HTTP/1.1"), "{request}");
        assert!(request.to_lowercase().contains("x-key: v"), "{request}");

        // Nothing listens there any more.
        let e = client.send(Method::POST, &url, &[], vec![]).await.expect_err("refused");
        assert!(matches!(e, VendorHttpError::Transport(_)), "{e:?}");
    }
}
