//! Integration tests of the published contract: the JSON against the protos compiled with protox, privacy of the
//! public feed and the headers, the compatibility baseline, the committed descriptor set and docs/feed.md.

mod compat;
mod docs;
mod erasure;
mod fixtures;
mod flow;
mod privacy;
mod proto;
mod schema;
