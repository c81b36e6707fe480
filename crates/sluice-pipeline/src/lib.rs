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
//! Channels are bounded, so a slow or dead sink stops the source instead of filling memory.

pub mod checkpoint;
pub mod component;
pub mod dead_letter;
pub mod runtime;
pub mod shape;
pub mod status;

pub use component::{Batch, Rejected, Sink, SinkError, Source, SourceError, SourceItem, StreamCursor, Transform, TransformError};
pub use runtime::{Pipeline, PipelineError};
