//! What the text-reading rules may read: the statement's code as the tokenizer sees it — unquoted words
//! and punctuation with their parenthesis depth — never the inside of a string literal, a quoted identifier
//! or a comment, and never part of a longer word (`charset_name` is not `CHARSET`). For the options
//! sqlparser keeps no structure for (ENGINE, CHARSET, COLLATE, table COMMENT, ALGORITHM and LOCK).

use sqlparser::dialect::{MySqlDialect, PostgreSqlDialect};
use sqlparser::tokenizer::{Token, Tokenizer};

use crate::SqlDialect;

/// One code token: an unquoted word (upper-cased), or punctuation / a number / a literal's text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Code {
    /// The upper-cased word when the token is an unquoted word.
    pub word: Option<String>,
    /// The token's value as written (a string literal's content, a number's digits, a word's text).
    pub value: String,
    pub is_eq: bool,
    /// Parentheses open around the token (table options sit at 0, column definitions at 1).
    pub depth: u32,
}

/// The statement's code tokens (comments and whitespace dropped). A statement the tokenizer refuses
/// yields nothing, so rules stay silent rather than guess.
pub(crate) fn code(text: &str, dialect: SqlDialect) -> Vec<Code> {
    // MySQL runs what `/*!NNNNN … */` holds: it is code.
    let opened = if dialect == SqlDialect::MySql { crate::recover::open_versioned_comments(text) } else { std::borrow::Cow::Borrowed(text) };
    let text = opened.as_ref();
    let tokens = match dialect {
        SqlDialect::MySql => Tokenizer::new(&MySqlDialect {}, text).tokenize(),
        SqlDialect::Postgres => Tokenizer::new(&PostgreSqlDialect {}, text).tokenize(),
    };
    let Ok(tokens) = tokens else { return Vec::new() };
    let mut depth: u32 = 0;
    let mut out = Vec::with_capacity(tokens.len());
    for t in tokens {
        let (word, value, is_eq) = match &t {
            Token::Whitespace(_) => continue,
            Token::LParen => {
                depth += 1;
                continue;
            }
            Token::RParen => {
                depth = depth.saturating_sub(1);
                continue;
            }
            Token::Word(w) if w.quote_style.is_none() => (Some(w.value.to_ascii_uppercase()), w.value.clone(), false),
            Token::Word(w) => (None, w.value.clone(), false),
            Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => (None, s.clone(), false),
            Token::Number(n, _) => (None, n.clone(), false),
            Token::Eq => (None, "=".into(), true),
            other => (None, other.to_string(), false),
        };
        out.push(Code { word, value, is_eq, depth });
    }
    out
}

/// Words after which the next word names a column (or a table), so it is not an option keyword.
const NAME_BEFORE: &[&str] = &["ADD", "COLUMN", "CHANGE", "MODIFY", "DROP", "RENAME", "AFTER", "TO", "AS", "TABLE", "EXISTS"];

/// Whether the token at `i` stands where a name would (first in a column list, or after ADD, CHANGE …).
fn in_name_position(code: &[Code], i: usize) -> bool {
    match i.checked_sub(1).map(|p| &code[p]) {
        None => true,
        Some(prev) if prev.depth < code[i].depth => true,
        // A comma separates columns inside parentheses; at the top of an ALTER it separates operations.
        Some(prev) => (prev.value == "," && code[i].depth > 0) || prev.word.as_deref().is_some_and(|w| NAME_BEFORE.contains(&w)),
    }
}

/// The values of an option `KEYWORD [=] value` (keyword of one or two words, e.g. `["CHARACTER", "SET"]`),
/// lower-cased, where the keyword is code in an option position; `table_level`: only outside parentheses.
pub(crate) fn option_values(code: &[Code], keyword: &[&str], table_level: bool) -> Vec<String> {
    let mut out = Vec::new();
    let n = keyword.len();
    for i in 0..code.len() {
        if code.len() < i + n || (table_level && code[i].depth > 0) || in_name_position(code, i) {
            continue;
        }
        if !(0..n).all(|k| code[i + k].word.as_deref() == Some(keyword[k])) {
            continue;
        }
        let mut j = i + n;
        if code.get(j).is_some_and(|c| c.is_eq) {
            j += 1;
        }
        if let Some(v) = code.get(j).filter(|c| !c.is_eq) {
            out.push(v.value.to_ascii_lowercase());
        }
    }
    out
}

/// The code tokens of an `ALTER DATABASE` / `ALTER SCHEMA` (MySQL's defaults for new tables), for the
/// allow-list rules over statements sqlparser has no grammar for; `None` for any other statement.
pub(crate) fn alter_database(text: &str, dialect: SqlDialect) -> Option<Vec<Code>> {
    let code = code(text, dialect);
    let w = |i: usize| code.get(i).and_then(|c| c.word.as_deref());
    (w(0) == Some("ALTER") && matches!(w(1), Some("DATABASE" | "SCHEMA"))).then_some(code)
}

/// The last part of the (possibly qualified) name starting at token `i`: `public.t` → `t`.
pub(crate) fn name_at(code: &[Code], i: usize) -> Option<String> {
    let mut last = code.get(i)?.value.clone();
    let mut j = i + 1;
    while code.get(j).is_some_and(|c| c.value == ".") {
        last = code.get(j + 1)?.value.clone();
        j += 2;
    }
    Some(last)
}

/// Whether the unquoted word `word` appears as code (not in a string, comment or quoted identifier).
pub(crate) fn has_word(code: &[Code], word: &str, table_level: bool) -> bool {
    code.iter().any(|c| c.word.as_deref() == Some(word) && (!table_level || c.depth == 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn my(text: &str) -> Vec<Code> {
        code(text, SqlDialect::MySql)
    }

    #[test]
    fn options_are_read_from_code_only() {
        let t = my(
            "CREATE TABLE cars (id INT PRIMARY KEY, engine VARCHAR(20), charset_name VARCHAR(5) CHARACTER SET latin1 COMMENT 'ENGINE=MyISAM') ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
        );
        assert_eq!(option_values(&t, &["ENGINE"], true), ["innodb"]);
        assert_eq!(option_values(&t, &["CHARSET"], false), ["utf8mb4"]);
        assert_eq!(option_values(&t, &["CHARACTER", "SET"], false), ["latin1"]);
        assert!(!has_word(&t, "COMMENT", true), "the column comment is inside the parentheses");
        let quoted = my("CREATE TABLE t (`engine` INT, /* ENGINE=MyISAM */ x INT) COMMENT 'zerofill'");
        assert!(option_values(&quoted, &["ENGINE"], false).is_empty());
        assert!(!has_word(&quoted, "ZEROFILL", false));
        assert!(has_word(&quoted, "COMMENT", true));
        let alter = my("ALTER TABLE t ADD COLUMN engine INT, ALGORITHM=INPLACE, LOCK=NONE");
        assert!(option_values(&alter, &["ENGINE"], true).is_empty(), "a column named engine");
        assert_eq!(option_values(&alter, &["ALGORITHM"], true), ["inplace"]);
        let block = my("ALTER TABLE t MODIFY block_algorithm INT");
        assert!(!has_word(&block, "ALGORITHM", true));
        assert_eq!(option_values(&my("CREATE TABLE t (id INT AUTO_INCREMENT) AUTO_INCREMENT = 1000"), &["AUTO_INCREMENT"], true), ["1000"]);
    }
}
