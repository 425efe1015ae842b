//! The graph document model of Convergio's agent graphs.
//!
//! For now this crate holds [`expr`], the condition language: what a
//! `condition` node evaluates over the run's state and earlier node outputs
//! to pick its route. It is a small, total expression language — literals,
//! paths, comparisons, boolean and arithmetic operators, `in`, and four pure
//! functions — with no assignment, loops, user functions or I/O. Its grammar
//! and semantics are in the [`expr`] module's documentation and in
//! `docs/graphs.md`.
//!
//! ```
//! use convergio_graph::expr::{Expr, Known, Scope};
//! use serde_json::json;
//!
//! let cond = Expr::parse(r#"state.count >= 3 && "urgent" in state.tags"#)?;
//! let state = json!({"count": 4, "tags": ["urgent", "billing"]});
//! let nodes = json!({});
//! assert!(cond.truthy(&Scope::new(&state, &nodes))?);
//!
//! let known = Known::new(["count", "tags"], ["classify"]);
//! assert!(cond.check(&known).is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod document;
pub mod expr;
pub mod model;
pub mod schema;
pub mod template;
pub mod validate;
