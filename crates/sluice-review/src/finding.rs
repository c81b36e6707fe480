use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Warning,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

/// One problem at one place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The rule id, or `parse-error` / `unused-ignore`.
    pub rule: String,
    pub level: Level,
    pub message: String,
    /// 1-based line and column (characters) in the file.
    pub line: usize,
    pub column: usize,
    /// Index of the statement in the file (0-based).
    pub statement: usize,
}
