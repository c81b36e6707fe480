//! `${VAR}` and `${VAR:-default}` interpolation of configuration text, done before parsing (as Vector does)
//! so that any value, including numbers, can come from the environment.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum InterpolateError {
    #[error("line {line}: environment variable `{var}` is not set (use `${{{var}:-default}}` for a default)")]
    Missing { var: String, line: usize },
    #[error("line {line}: unterminated `${{` (expected `${{NAME}}` or `${{NAME:-default}}`)")]
    Unterminated { line: usize },
    #[error("line {line}: `{name}` is not a valid variable name (letters, digits and `_`)")]
    BadName { name: String, line: usize },
}

/// Replaces `${VAR}` and `${VAR:-default}` using `lookup`; `$$` stands for a literal `$`.
/// Every problem is reported, not only the first, so a person fixes a file in one pass.
pub fn interpolate(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, Vec<InterpolateError>> {
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    let mut rest = text;
    let mut line = 1;
    while let Some(idx) = rest.find('$') {
        let (before, after) = rest.split_at(idx);
        line += before.matches('\n').count();
        out.push_str(before);
        let after = &after[1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
            continue;
        }
        let Some(body_start) = after.strip_prefix('{') else {
            out.push('$');
            rest = after;
            continue;
        };
        let Some(end) = body_start.find('}') else {
            errors.push(InterpolateError::Unterminated { line });
            rest = "";
            break;
        };
        let body = &body_start[..end];
        rest = &body_start[end + 1..];
        let (name, default) = match body.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (body, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            errors.push(InterpolateError::BadName { name: name.to_string(), line });
            continue;
        }
        match lookup(name).filter(|v| !v.is_empty()).or(default.map(str::to_string)) {
            Some(value) => out.push_str(&value),
            None => errors.push(InterpolateError::Missing { var: name.to_string(), line }),
        }
    }
    out.push_str(rest);
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("db1".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn replaces_defaults_and_escapes() {
        let got = interpolate("a=${HOST} b=${PORT:-3306} c=$$x d=$e f=${EMPTY:-z}", env).unwrap();
        assert_eq!(got, "a=db1 b=3306 c=$x d=$e f=z");
    }

    #[test]
    fn reports_every_missing_variable_with_its_line() {
        let errs = interpolate("x=${A}\ny=${B}\nz=${C D}", env).unwrap_err();
        assert_eq!(
            errs,
            vec![
                InterpolateError::Missing { var: "A".into(), line: 1 },
                InterpolateError::Missing { var: "B".into(), line: 2 },
                InterpolateError::BadName { name: "C D".into(), line: 3 },
            ]
        );
    }

    #[test]
    fn unterminated_is_an_error() {
        assert_eq!(interpolate("x=${A", env).unwrap_err(), vec![InterpolateError::Unterminated { line: 1 }]);
    }
}
