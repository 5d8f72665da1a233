//! The Asterisk AMI bridge: a TCP client of the manager interface that logs in as a `manager.conf` user, reads
//! call events, turns them into call facts ([`calls`]) and hands them on. [`frame`] is the wire format.

pub mod calls;
pub mod frame;
pub mod session;
