//! A lean HTTP/1.1 client for the intake: one kept-alive connection per worker, so the bench measures the system
//! and not connection set-up. Every call has a timeout.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::BenchError;

/// Connecting to the system's HTTP port.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// One request, answer included. Intake answers within its own 5 s deadline, so this only catches a hung system.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// One connection to the system's HTTP port.
pub struct Client {
    addr: String,
    sender: SendRequest<Full<Bytes>>,
}

impl Client {
    pub async fn connect(addr: &str) -> Result<Client, BenchError> {
        let stream = timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| BenchError::Http(format!("connecting to {addr} timed out")))?
            .map_err(|e| BenchError::Http(format!("connecting to {addr}: {e}")))?;
        // Small requests one after another on one connection: Nagle would add tens of milliseconds.
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| BenchError::Http(format!("handshake with {addr}: {e}")))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Client { addr: addr.to_owned(), sender })
    }

    /// Sends one request and returns the status and the body.
    pub async fn request(&mut self, method: Method, path: &str, headers: &[(&str, &str)], body: Bytes) -> Result<(u16, Bytes), BenchError> {
        let exchange = async {
            self.sender.ready().await.map_err(|e| BenchError::Http(format!("connection to {}: {e}", self.addr)))?;
            let mut request = Request::builder().method(method).uri(path).header(HOST, self.addr.as_str());
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            let request = request.body(Full::new(body)).map_err(|e| BenchError::Http(format!("building a request: {e}")))?;
            let response = self.sender.send_request(request).await.map_err(|e| BenchError::Http(format!("{path}: {e}")))?;
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| BenchError::Http(format!("{path}: reading the answer: {e}")))?
                .to_bytes();
            Ok((status, body))
        };
        timeout(REQUEST_TIMEOUT, exchange).await.map_err(|_| BenchError::Http(format!("{path}: no answer within {REQUEST_TIMEOUT:?}")))?
    }

    /// `POST /v1/petitions`; returns the ticket id of the `202`.
    pub async fn petition(&mut self, body: Bytes, idempotency_key: &str) -> Result<uuid::Uuid, BenchError> {
        let headers = [(CONTENT_TYPE.as_str(), "application/json"), ("Idempotency-Key", idempotency_key)];
        let (status, answer) = self.request(Method::POST, "/v1/petitions", &headers, body).await?;
        if status != 202 {
            return Err(BenchError::Http(format!("POST /v1/petitions answered {status}: {}", String::from_utf8_lossy(&answer))));
        }
        let json: serde_json::Value =
            serde_json::from_slice(&answer).map_err(|e| BenchError::Http(format!("POST /v1/petitions: the 202 is not JSON: {e}")))?;
        json.get("ticket_id")
            .and_then(serde_json::Value::as_str)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| BenchError::Http(format!("POST /v1/petitions: no ticket_id in {json}")))
    }

    /// `GET /healthz` as JSON.
    pub async fn health(&mut self) -> Result<serde_json::Value, BenchError> {
        let (status, body) = self.request(Method::GET, "/healthz", &[], Bytes::new()).await?;
        if status != 200 {
            return Err(BenchError::Http(format!("GET /healthz answered {status}: {}", String::from_utf8_lossy(&body))));
        }
        serde_json::from_slice(&body).map_err(|e| BenchError::Http(format!("GET /healthz: not JSON: {e}")))
    }
}
