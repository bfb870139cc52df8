//! `hooks`: a CodeDeploy-style lifecycle hook runner for servers you run yourself.
//!
//! Data flows one way: the CLI reads an [`appspec`], the [`lifecycle`] engine plans and runs the
//! events, the [`bundle`] module fetches and unpacks the artifact into a [`release`], built-in
//! steps drive the [`runtime`], [`health`] and [`db`] modules, and the outcome lands in the
//! release history; the [`presenter`] shows the lifecycle's progress events on a terminal, a
//! pipe or as JSON lines. A runtime never parses the appspec; the appspec module never touches the
//! disk beyond reading the file.

pub mod agent;
pub mod appspec;
pub mod bundle;
pub mod db;
pub mod health;
pub mod lifecycle;
pub mod notify;
pub mod plan;
pub mod presenter;
pub mod publish;
pub mod release;
pub mod runtime;
pub mod testpoint;
pub mod yaml;
