//! What flows from the shaping stage to sinks.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::change::ChangeEvent;

/// open-falcon's counter types (Prometheus has no such field: both become gauges there, a COUNTER's name
/// gains no suffix and its value is passed as is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum CounterType {
    Gauge,
    Counter,
}

impl CounterType {
    pub fn as_str(self) -> &'static str {
        match self {
            CounterType::Gauge => "GAUGE",
            CounterType::Counter => "COUNTER",
        }
    }
}

/// One sample, shaped from a row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metric {
    pub endpoint: String,
    pub metric: String,
    /// Unix seconds.
    pub timestamp: i64,
    pub step: u32,
    pub value: f64,
    pub counter_type: CounterType,
    /// Sorted by key.
    pub tags: BTreeMap<String, String>,
}

/// An item a sink delivers.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Record {
    Change(Arc<ChangeEvent>),
    Metric(Metric),
}
