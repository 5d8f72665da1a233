//! The hotline's domain: tickets, their events and the rules that decide them. Pure and synchronous: no I/O,
//! no clock, no async runtime. Everything a decision needs (the province configuration, the time, new ids) is
//! passed in.

pub mod access;
pub mod classify;
pub mod deadline;
pub mod event;
pub mod province;
pub mod reference;
pub mod summary;
pub mod ticket;

pub use event::{Actor, ActorKind, CommandMeta, Envelope, TicketEvent};
pub use reference::Reference;
pub use ticket::{Command, DomainError, Status, Ticket};
pub mod calendar;
