//! The feed projector against a real nats-server: the feed must equal what the log implies, message for message,
//! after clean runs, crashes at random points and concurrent projectors.

mod erasure;
mod projector;
mod support;
