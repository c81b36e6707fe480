//! The data-plane runtime.
//!
//! ```text
//! source ──(bounded)──▶ transforms ──(bounded, per sink)──▶ sink … ──acks──▶ checkpointer ──▶ checkpoint store
//! ```
//! The source sends changes and, after each transaction, a commit marker carrying the position to resume
//! from. The runtime numbers every item; the transforms turn changes into records (metrics, or the changes
//! themselves) and hands each sink batches that say which sequence number they cover. A sink acknowledges a
//! batch only once its destination accepted every record. A commit marker's position is saved only when
//! every sink has acknowledged everything up to it, so after a crash the source resumes at a transaction
//! boundary that all sinks had fully delivered: nothing is lost, and only the unacknowledged tail repeats.
//! Each sink has its own lane ([`lane`]): a filter, a timing, and a disk buffer, so that a slow, down or
//! scheduled sink falls behind on disk without holding back the others; only a full disk buffer (or a lane
//! without one) makes the source wait instead of filling memory.

pub mod checkpoint;
pub mod component;
pub mod dead_letter;
pub mod lane;
pub mod runtime;
pub mod shape;
mod spill;
pub mod status;

pub use component::{Batch, Rejected, Sink, SinkError, Source, SourceError, SourceItem, StreamCursor, Transform, TransformError};
pub use runtime::{Pipeline, PipelineError};
