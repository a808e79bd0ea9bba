//! Integration tests: the functions' paths against moto, PostgreSQL with TLS and the
//! Kubernetes emulator. Run with `tests/bin/test.sh`, which starts the stack.
mod alarms;
mod aws_tls;
mod cli;
mod cluster;
mod cold_storage;
mod credentials;
mod faults;
mod iam;
mod infra;
mod log_hygiene;
mod runtime_api;
mod telemetry;
mod ttl_api;
