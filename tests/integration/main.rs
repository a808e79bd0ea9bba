//! Integration tests: the functions' paths against moto, PostgreSQL with TLS and a real
//! kube-apiserver with RBAC and the real CRDs. Run with `tests/bin/test.sh`, which starts the stack.
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
mod spec_load;
mod telemetry;
mod ttl_api;
