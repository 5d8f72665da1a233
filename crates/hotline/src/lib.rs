//! The `hotline` program: wires the components into one process (`hotline up`) or runs one of them
//! (`hotline serve <component>`). `main.rs` only parses arguments and calls in here.

pub mod audit;
pub mod erasure;
pub mod settings;
mod subscriber;
mod system;

pub use subscriber::{SubscriberCommand, subscriber};

pub use system::{Component, TokenCommand, check_config, serve, token, up};
