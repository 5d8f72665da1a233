//! The e-mail channel against real peers: Python's smtplib sends mail to our SMTP listener, which stores it through
//! a real intake on a real nats-server; aiosmtpd receives our answers. Needs `HOTLINE_NATS_SERVER` (or a
//! nats-server found as scripts/lib/nats-server.sh finds it) and `HOTLINE_PYTHONPATH` (from
//! scripts/lib/python-tools.sh); scripts/test sets both.

mod corpus;
mod inbound;
mod outbound;
mod support;
