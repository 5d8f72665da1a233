//! The JetStream event store against a real nats-server (started per test on a free port, temp store).

mod store;
mod feed;
mod access;
mod audit;
