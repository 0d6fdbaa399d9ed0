//! End-to-end tests: the real `aiwaf` binary in front of a real upstream, with traffic from
//! several loopback source addresses. Every server binds 127.0.0.1 port 0.

mod support;

/// One test per protection: it blocks the attack and lets benign traffic through.
mod protections;

/// Forwarding: methods, headers, bodies, keep-alive, errors, shutdown.
mod proxy;

/// The CLI against a running server, persistence, detect mode, configuration errors.
mod operations;

/// `aiwaf train`, `aiwaf model`, and a running server picking up a new model.
mod training;

/// Several instances sharing PostgreSQL and Redis: global limits, ban propagation, outages.
mod cluster;

/// The admin API, metrics, dashboard and audit log.
mod admin;

/// A real site's own people, with default settings: admin pages with their assets, fast
/// submits, offices behind one address, webhooks, favicons, pasted links, training on the
/// site's own log — never blocked; and the bots among them still caught.
mod real_users;
