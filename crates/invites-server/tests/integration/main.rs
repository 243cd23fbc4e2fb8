//! Integration tests of the running service: one binary, every test on its own server bound to
//! `127.0.0.1:0` over its own fresh SQLite file.

mod atlas_operations;
mod auth;
mod authz;
mod community;
mod errors;
mod hostile;
mod invitations;
mod metrics;
mod opsmanager;
mod readiness;
mod real_clients;
mod request_ids;
mod slow_clients;
mod support;
