//! Domain verticals: the `convergio:platform/vertical` world.
//!
//! A vertical imports and exports exactly what an agent does (it exports
//! `convergio:platform/agent` and calls [`inference`] and [`tools`]), so this
//! module re-exports [`crate::agent`]: implement [`Guest`] and register it with
//! [`export_vertical!`](crate::export_vertical).

pub use crate::agent::{
    AgentError, AgentInfo, Guest, Outcome, Result, StateEntry, Task, describe_tool_error,
    inference, invoke_tool, tools,
};
