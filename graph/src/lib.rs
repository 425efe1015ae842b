//! Convergio's agent graphs: the document users write, the typed graph it
//! means, and the rules a graph must follow to run.
//!
//! - [`document`] reads a YAML or JSON document into a [`model::Graph`],
//!   reporting every mistake at once at its line and column;
//! - [`model`] is the typed graph, whose serde form is the canonical one;
//! - [`validate`] checks a graph's rules (names, cycles, reducers,
//!   expressions, plugins), on a document or a canonical graph;
//! - [`expr`] is the expression language of conditions and templates: a
//!   small, total language with no assignment, loops, user functions or
//!   I/O;
//! - [`template`] renders a node's input from `{{ expr }}` templates;
//! - [`schema`] checks values against JSON Schemas.
//!
//! The document is described in `docs/graphs.md`.
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
pub mod engine;
pub mod expr;
pub mod model;
pub mod plan;
pub mod schema;
pub mod snapshot;
pub mod template;
pub mod validate;
