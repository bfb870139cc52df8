//! The integration tests of `hooks`, as one test binary (linked once, sharing its support
//! modules): each module below is the tests of one area, run against the real `hooks` binary and
//! the real services it talks to (PostgreSQL, an S3 server, the Docker engine, a live systemd,
//! the CodeDeploy agent), which `scripts/test` starts. Run one area with
//! `cargo test -p hooks --test integration AREA::`.

// Support shared by several areas.
mod codedeploy_support;
mod common;
mod crash_support;
mod engine_support;
mod s3_support;
mod services_support;
mod systemd_support;

mod agent_pull;
mod agent_unit;
mod appspec_corpus;
mod bail_out;
mod bundle_unpack;
mod cli_edges;
mod codedeploy_agent;
mod crash_matrix;
mod deploy_lifecycle;
mod deploy_migrate;
mod deploy_safety;
mod deploy_scripts;
mod detached;
mod engine_compose;
mod engine_deploy;
mod engine_mounts;
mod engine_replicas;
mod engine_stack;
mod engine_start_first;
mod file_modes;
mod lock_holder;
mod notify;
mod plan_branches;
mod presenter;
mod report_commands;
mod rollback_guard;
mod run_hook_cli;
mod run_hook_contract;
mod s3_deploy;
mod s3_faults;
mod services_appspec;
mod services_promote;
mod services_rolling;
mod services_supervisor;
mod services_systemd;
mod systemd_live;
mod systemd_sudo;
mod wait_for;
mod workflows;
