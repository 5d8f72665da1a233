//! The HTTP API for operators, agencies and admins: ticket queries, timelines, the router's explanation, health.
//! Channel adapters add their own routes (the app's `POST /v1/petitions`) to the same server.

pub mod as_of;
mod attachments;
pub mod auth;
mod commands;
mod public;
pub mod tokens;
mod routes;
mod stats;

use std::sync::Arc;

use axum::Router;
use hotline_domain::province::Province;
use hotline_projections::TimelineReader;
use hotline_store::EventStore;

pub use auth::{AdminToken, Auth};

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub province: Arc<Province>,
    pub reader: TimelineReader,
    pub store: Arc<dyn EventStore>,
    pub auth: Auth,
    /// Checks citizens' access codes on the public endpoints.
    pub codes: hotline_channel::AccessCodes,
    /// Files attached to answers.
    pub blobs: hotline_channel::blobs::BlobStore,
}

/// The whole HTTP surface: API routes plus the channels' routes.
pub fn router(state: ApiState, channel_routes: Vec<Router>) -> Router {
    let mut app = routes::routes(state);
    for routes in channel_routes {
        app = app.merge(routes);
    }
    app.method_not_allowed_fallback(hotline_channel::http::method_not_allowed).fallback(hotline_channel::http::fallback)
}

/// A channel's routes served alone (`hotline serve app`), with the health check and the shared error shape.
pub fn channel_router(store: Arc<dyn EventStore>, channel_routes: Vec<Router>) -> Router {
    let mut app = routes::health_only(store);
    for routes in channel_routes {
        app = app.merge(routes);
    }
    app.method_not_allowed_fallback(hotline_channel::http::method_not_allowed).fallback(hotline_channel::http::fallback)
}
