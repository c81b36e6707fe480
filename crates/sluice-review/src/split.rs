//! Statement splitting that survives real files: comments (`--`, `#` on MySQL, nested `/* */` on
//! PostgreSQL), quotes (`'…'` with `''` and, on MySQL, backslash escapes; `"…"`; MySQL backticks),
//! PostgreSQL dollar quotes (`$tag$ … $tag$`), MySQL client `DELIMITER` lines, and a missing final
//! semicolon. Every statement keeps its byte range and the line and column where it starts.

use crate::SqlDialect;

/// One statement of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// Byte range of the statement text (without its delimiter) in the file.
    pub start: usize,
    pub end: usize,
    /// 1-based line and column (in characters) where the statement starts.
    pub line: usize,
    pub column: usize,
    /// Comment text between the previous statement and this one (where `sluice:ignore` is looked for).
    pub leading: String,
    /// A comment on the same line right after the delimiter.
    pub trailing: String,
}

impl Piece {
    pub fn text<'a>(&self, sql: &'a str) -> &'a str {
        &sql[self.start..self.end]
    }
}

/// Byte offsets where lines start, for turning offsets into line and column in O(log n).
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(sql: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(sql.bytes().enumerate().filter(|(_, b)| *b == b'\n').map(|(i, _)| i + 1));
        Self { starts }
    }

    /// Line and column (1-based, characters) of a byte offset.
    pub fn position(&self, sql: &str, offset: usize) -> (usize, usize) {
        let offset = offset.min(sql.len());
        let line = self.starts.partition_point(|s| *s <= offset);
        let start = self.starts[line - 1];
        (line, sql[start..offset].chars().count() + 1)
    }
}

impl LineIndex {
    /// The byte offset of a 1-based line and character column (clamped to the text).
    pub fn offset(&self, sql: &str, line: usize, column: usize) -> usize {
        let Some(start) = line.checked_sub(1).and_then(|l| self.starts.get(l)) else { return sql.len() };
        sql[*start..].char_indices().nth(column.saturating_sub(1)).map(|(o, _)| start + o).unwrap_or(sql.len())
    }
}

/// Line and column (1-based, characters) of a byte offset (one-off; `LineIndex` for many).
pub fn position(sql: &str, offset: usize) -> (usize, usize) {
    LineIndex::new(sql).position(sql, offset)
}

/// A file's statements, and a `DELIMITER` line still in force at the end of the file (its line, column
/// and delimiter) when one is.
pub struct Split {
    pub pieces: Vec<Piece>,
    pub open_delimiter: OpenDelimiter,
}

/// A `DELIMITER` line still in force at the end of a file: its line, column and delimiter.
pub type OpenDelimiter = Option<(usize, usize, String)>;

pub fn split(sql: &str, dialect: SqlDialect) -> Vec<Piece> {
    split_file(sql, dialect).pieces
}

/// Splits a file. Under a client `DELIMITER x`, a statement that carries no routine body (anything but
/// CREATE PROCEDURE / FUNCTION / TRIGGER / EVENT and MariaDB's `BEGIN NOT ATOMIC`) still holds several
/// `;`-separated statements: the client sends the text as one packet and the server runs each of them
/// (multi-statements are on in the mysql client), so those are split again at `;` and reviewed one by one.
pub fn split_file(sql: &str, dialect: SqlDialect) -> Split {
    let lines = LineIndex::new(sql);
    let (raw, open_delimiter) = split_range(sql, &lines, 0, dialect, b";", true);
    if !raw.iter().any(|(_, custom)| *custom) {
        return Split { pieces: raw.into_iter().map(|(p, _)| p).collect(), open_delimiter };
    }
    let mut pieces = Vec::with_capacity(raw.len());
    for (piece, custom) in raw {
        if custom && !carries_routine_body(piece.text(sql)) {
            let sub = &sql[..piece.end];
            let (parts, _) = split_range(sub, &lines, piece.start, dialect, b";", false);
            let first = pieces.len();
            for (part, _) in parts {
                // A routine that starts inside the packet runs to its end (its body holds the `;`s).
                if carries_routine_body(part.text(sql)) {
                    pieces.push(Piece { end: piece.end, trailing: piece.trailing.clone(), ..part });
                    break;
                }
                pieces.push(part);
            }
            if let Some(p) = pieces.get_mut(first) {
                p.leading = piece.leading.clone();
            }
        } else {
            pieces.push(piece);
        }
    }
    Split { pieces, open_delimiter }
}

/// Whether a statement sent under a custom delimiter is one whose body holds `;` (a stored routine,
/// trigger or event, or an anonymous compound statement).
fn carries_routine_body(text: &str) -> bool {
    let head = text.get(..text.len().min(400)).unwrap_or(text);
    let upper = crate::recover::open_versioned_comments(head).to_ascii_uppercase();
    let mut words = upper.split(|c: char| c.is_whitespace() || c == '(').filter(|w| !w.is_empty()).peekable();
    match words.next() {
        Some("BEGIN") => true,
        Some("CREATE") => words
            .find(|w| {
                !matches!(*w, "OR" | "REPLACE" | "AGGREGATE" | "IF" | "NOT" | "EXISTS") && !w.starts_with("DEFINER") && !w.starts_with('`') && !w.contains('@')
            })
            .is_some_and(|w| matches!(w, "PROCEDURE" | "FUNCTION" | "TRIGGER" | "EVENT")),
        _ => false,
    }
}

/// Splits `sql[from..]` at `delimiter` (and at client `DELIMITER` lines when `delimiter_lines`); each piece
/// says whether it ended under a delimiter other than `;`.
fn split_range(sql: &str, lines: &LineIndex, from: usize, dialect: SqlDialect, first: &[u8], delimiter_lines: bool) -> (Vec<(Piece, bool)>, OpenDelimiter) {
    let b = sql.as_bytes();
    let mut pieces = Vec::new();
    let mut delimiter: Vec<u8> = first.to_vec();
    let mut delimiter_at: Option<(usize, usize)> = None;
    let mut i = from;
    let mut stmt_start: Option<usize> = None;
    let mut leading = String::new();
    // Tracks where the line containing the previous statement's end is, for trailing comments.
    let mut at_line_start = true;
    while i < b.len() {
        let c = b[i];
        // MySQL client `DELIMITER x` at the start of a line (outside a statement).
        if delimiter_lines && dialect == SqlDialect::MySql && stmt_start.is_none() && at_line_start && starts_with_ci(&b[i..], b"delimiter ") {
            let line_end = b[i..].iter().position(|x| *x == b'\n').map(|p| i + p).unwrap_or(b.len());
            let new = sql[i + 10..line_end].trim();
            if !new.is_empty() {
                delimiter = new.as_bytes().to_vec();
                delimiter_at = Some(lines.position(sql, i));
            }
            i = line_end;
            continue;
        }
        at_line_start = c == b'\n' || (at_line_start && (c == b' ' || c == b'\t' || c == b'\r'));
        // Comments.
        let line_comment = (c == b'-' && b.get(i + 1) == Some(&b'-')) || (c == b'#' && dialect == SqlDialect::MySql);
        if line_comment {
            let end = b[i..].iter().position(|x| *x == b'\n').map(|p| i + p).unwrap_or(b.len());
            if stmt_start.is_none() {
                leading.push_str(&sql[i..end]);
                leading.push('\n');
            }
            i = end;
            continue;
        }
        // MySQL runs what `/*!NNNNN … */` holds: it is code, not a comment.
        let versioned = dialect == SqlDialect::MySql && b.get(i + 2) == Some(&b'!');
        if c == b'/' && b.get(i + 1) == Some(&b'*') && !versioned {
            let end = block_comment_end(b, i, dialect);
            if stmt_start.is_none() {
                leading.push_str(&sql[i..end]);
                leading.push('\n');
            }
            i = end;
            continue;
        }
        if stmt_start.is_none() {
            if c.is_ascii_whitespace() {
                i += 1;
                continue;
            }
            if b[i..].starts_with(&delimiter) {
                // An empty statement.
                i += delimiter.len();
                continue;
            }
            stmt_start = Some(i);
        }
        match c {
            b'\'' => i = quoted_end(b, i, b'\'', dialect == SqlDialect::MySql),
            b'"' => i = quoted_end(b, i, b'"', dialect == SqlDialect::MySql),
            b'`' if dialect == SqlDialect::MySql => i = quoted_end(b, i, b'`', false),
            b'$' if dialect == SqlDialect::Postgres => match dollar_tag(b, i) {
                Some(tag) => {
                    let body = i + tag.len();
                    i = find(b, body, tag).map(|p| p + tag.len()).unwrap_or(b.len());
                }
                None => i += 1,
            },
            _ if b[i..].starts_with(&delimiter) => {
                let start = stmt_start.take().expect("in a statement");
                let end = trim_end(b, start, i);
                i += delimiter.len();
                // A comment on the rest of this line belongs to this statement.
                let mut trailing = String::new();
                let mut j = i;
                while j < b.len() && (b[j] == b' ' || b[j] == b'\t') {
                    j += 1;
                }
                if j + 1 < b.len() && ((b[j] == b'-' && b[j + 1] == b'-') || (b[j] == b'#' && dialect == SqlDialect::MySql)) {
                    let e = b[j..].iter().position(|x| *x == b'\n').map(|p| j + p).unwrap_or(b.len());
                    trailing = sql[j..e].to_string();
                    i = e;
                }
                let (line, column) = lines.position(sql, start);
                pieces.push((Piece { start, end, line, column, leading: std::mem::take(&mut leading), trailing }, delimiter != b";"));
                at_line_start = false;
            }
            _ => i += utf8_len(c),
        }
    }
    if let Some(start) = stmt_start {
        let end = trim_end(b, start, b.len());
        if end > start {
            let (line, column) = lines.position(sql, start);
            pieces.push((Piece { start, end, line, column, leading, trailing: String::new() }, delimiter != b";"));
        }
    }
    let open = (delimiter != b";").then(|| delimiter_at.map(|(l, c)| (l, c, String::from_utf8_lossy(&delimiter).into_owned()))).flatten();
    (pieces, open)
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

fn starts_with_ci(hay: &[u8], needle: &[u8]) -> bool {
    hay.len() >= needle.len() && hay[..needle.len()].eq_ignore_ascii_case(needle)
}

fn trim_end(b: &[u8], start: usize, mut end: usize) -> usize {
    while end > start && b[end - 1].is_ascii_whitespace() {
        end -= 1;
    }
    end
}

fn find(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    b.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|p| from + p)
}

/// End (exclusive) of a quoted run starting at `i`; doubled quotes escape, and on MySQL so does `\`.
fn quoted_end(b: &[u8], i: usize, q: u8, backslash: bool) -> usize {
    let mut j = i + 1;
    while j < b.len() {
        if backslash && b[j] == b'\\' {
            j += 2;
            continue;
        }
        if b[j] == q {
            if b.get(j + 1) == Some(&q) {
                j += 2;
                continue;
            }
            return j + 1;
        }
        j += 1;
    }
    b.len()
}

/// End (exclusive) of a block comment; PostgreSQL nests them.
fn block_comment_end(b: &[u8], i: usize, dialect: SqlDialect) -> usize {
    let mut depth = 0;
    let mut j = i;
    while j + 1 < b.len() {
        if b[j] == b'/' && b[j + 1] == b'*' {
            depth += 1;
            j += 2;
            if dialect == SqlDialect::MySql && depth > 1 {
                depth = 1;
            }
            continue;
        }
        if b[j] == b'*' && b[j + 1] == b'/' {
            depth -= 1;
            j += 2;
            if depth == 0 {
                return j;
            }
            continue;
        }
        j += 1;
    }
    b.len()
}

/// `$tag$` at `i` (tag: letters, digits, `_`, not starting with a digit), including both dollars.
fn dollar_tag(b: &[u8], i: usize) -> Option<&[u8]> {
    let mut j = i + 1;
    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
        j += 1;
    }
    if j < b.len() && b[j] == b'$' && !b.get(i + 1).is_some_and(|c| c.is_ascii_digit()) { Some(&b[i..=j]) } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(sql: &str, d: SqlDialect) -> Vec<String> {
        split(sql, d).iter().map(|p| p.text(sql).to_string()).collect()
    }

    #[test]
    fn splits_on_semicolons_outside_quotes_and_comments() {
        let sql = "SELECT 'a;b'; -- c;d\nSELECT \"x;y\" /* ; */ ;\n\nSELECT 3";
        assert_eq!(texts(sql, SqlDialect::Postgres), ["SELECT 'a;b'", "SELECT \"x;y\" /* ; */", "SELECT 3"]);
        let p = split(sql, SqlDialect::Postgres);
        assert_eq!((p[1].line, p[1].column), (2, 1));
        assert_eq!(p[0].trailing, "-- c;d");
    }

    #[test]
    fn dollar_quotes_and_nested_comments() {
        let sql = "CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql; /* a /* b; */ c; */ SELECT $$;$$;";
        assert_eq!(texts(sql, SqlDialect::Postgres), ["CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql", "SELECT $$;$$"]);
    }

    #[test]
    fn mysql_delimiter_blocks_backslashes_and_hash_comments() {
        let sql =
            "DELIMITER //\nCREATE TRIGGER t BEFORE INSERT ON x FOR EACH ROW BEGIN SET NEW.a = 'it\\'s;'; END//\nDELIMITER ;\n# note;\nSELECT `a;b` FROM t;";
        assert_eq!(texts(sql, SqlDialect::MySql), ["CREATE TRIGGER t BEFORE INSERT ON x FOR EACH ROW BEGIN SET NEW.a = 'it\\'s;'; END", "SELECT `a;b` FROM t"]);
        let p = split(sql, SqlDialect::MySql);
        assert!(p[1].leading.contains("# note;"));
        assert_eq!(p[1].line, 5);
    }

    /// Cacti's installer sets `DELIMITER //` and never uses it: the client sends the rest as one packet and
    /// the server runs each statement, so each is reviewed; a routine body stays whole.
    #[test]
    fn a_delimiter_never_reset_still_yields_each_statement() {
        let sql =
            "DELIMITER //\nSET @m = '';\nCREATE TABLE a (id INT PRIMARY KEY);\nCREATE PROCEDURE p() BEGIN SELECT 1; SELECT 2; END//\nINSERT INTO a VALUES (1);";
        let s = split_file(sql, SqlDialect::MySql);
        let t: Vec<&str> = s.pieces.iter().map(|p| p.text(sql)).collect();
        assert_eq!(t, ["SET @m = ''", "CREATE TABLE a (id INT PRIMARY KEY)", "CREATE PROCEDURE p() BEGIN SELECT 1; SELECT 2; END", "INSERT INTO a VALUES (1)"]);
        assert_eq!((s.pieces[1].line, s.pieces[1].column), (3, 1));
        assert_eq!(s.open_delimiter, Some((1, 1, "//".to_string())));
        assert!(split_file("DELIMITER //\nSELECT 1//\nDELIMITER ;\nSELECT 2;", SqlDialect::MySql).open_delimiter.is_none());
    }

    #[test]
    fn positions_are_lines_and_character_columns() {
        let sql = "ab\né😀x\n";
        let idx = LineIndex::new(sql);
        assert_eq!(idx.position(sql, 0), (1, 1));
        assert_eq!(idx.position(sql, 3), (2, 1));
        assert_eq!(idx.position(sql, sql.find('x').unwrap()), (2, 3));
    }

    #[test]
    fn unterminated_input_does_not_panic() {
        for sql in ["SELECT 'abc", "/* open", "$a$ unterminated", "DELIMITER", "\"", "é'"] {
            let _ = split(sql, SqlDialect::Postgres);
            let _ = split(sql, SqlDialect::MySql);
        }
    }
}
