//! The domain crate's integration tests: ticket rules (given/when/then) and the classifier on the sample set.

mod classifier;
mod docs;
mod ticket;
mod workflow;
mod phone;
mod calendar;
