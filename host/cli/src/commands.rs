//! One module per verb of `convergio`, each with its `XArgs` struct (the
//! verb's options and help) and `XArgs::run`.

pub mod agent;
pub mod chat;
pub mod check;
pub mod graph;
pub mod init;
pub mod invoke;
pub mod keys;
pub mod knowledge;
pub mod models;
pub mod new;
pub mod plugin;
pub mod run;
pub mod schema;
pub mod usage;
