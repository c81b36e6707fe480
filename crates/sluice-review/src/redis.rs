//! Redis tickets: their commands, one per line in `redis-cli` syntax (words split on spaces, `"…"` with
//! backslash escapes and `'…'` quoting, `#` comment lines), and their review. An argument written
//! `%hex:…` is the bytes it spells (how rollback tickets carry `DUMP` payloads).
//!
//! Only allow-listed commands run; each names the keys it touches, so a dry run can report them and
//! backup mode can `DUMP` them first. Sluice adds one form: `DEL MATCH <pattern> LIMIT <n>`, deleting the
//! keys a `SCAN` finds (at most `n`; without `LIMIT` it is an error finding, an unbounded delete).
//! Dangerous commands (`FLUSHALL`, `FLUSHDB`, `KEYS`, `CONFIG`, `SHUTDOWN`, `EVAL`, …) are error findings;
//! so is anything not on the list.

use crate::{Finding, Level, Review};

/// One command of a Redis ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisCommand {
    /// 1-based line in the ticket.
    pub line: usize,
    /// The command name, upper-cased.
    pub name: String,
    pub args: Vec<Vec<u8>>,
    /// `DEL MATCH pattern LIMIT n`: the pattern and the limit.
    pub pattern: Option<(Vec<u8>, Option<u64>)>,
}

/// A `# sluice:expect KEY %hex:DUMP` or `# sluice:expect KEY absent` line of a rollback ticket: what the
/// key must hold for the rollback to touch it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    pub key: Vec<u8>,
    pub dump: Option<Vec<u8>>,
}

/// How each allowed command's arguments name keys.
enum Keys {
    First,
    All,
    /// `MSET k v k v …`
    EveryOther,
    /// `RENAME src dst`, `COPY src dst`
    FirstTwo,
}

const ALLOWED: &[(&str, Keys)] = &[
    ("SET", Keys::First),
    ("SETEX", Keys::First),
    ("PSETEX", Keys::First),
    ("SETNX", Keys::First),
    ("GETSET", Keys::First),
    ("APPEND", Keys::First),
    ("INCR", Keys::First),
    ("INCRBY", Keys::First),
    ("INCRBYFLOAT", Keys::First),
    ("DECR", Keys::First),
    ("DECRBY", Keys::First),
    ("EXPIRE", Keys::First),
    ("PEXPIRE", Keys::First),
    ("EXPIREAT", Keys::First),
    ("PEXPIREAT", Keys::First),
    ("PERSIST", Keys::First),
    ("HSET", Keys::First),
    ("HMSET", Keys::First),
    ("HSETNX", Keys::First),
    ("HDEL", Keys::First),
    ("HINCRBY", Keys::First),
    ("HINCRBYFLOAT", Keys::First),
    ("LPUSH", Keys::First),
    ("RPUSH", Keys::First),
    ("LPOP", Keys::First),
    ("RPOP", Keys::First),
    ("LREM", Keys::First),
    ("LSET", Keys::First),
    ("LTRIM", Keys::First),
    ("SADD", Keys::First),
    ("SREM", Keys::First),
    ("ZADD", Keys::First),
    ("ZREM", Keys::First),
    ("ZINCRBY", Keys::First),
    ("XADD", Keys::First),
    ("RESTORE", Keys::First),
    ("DEL", Keys::All),
    ("UNLINK", Keys::All),
    ("MSET", Keys::EveryOther),
    ("RENAME", Keys::FirstTwo),
    ("COPY", Keys::FirstTwo),
];

const DANGEROUS: &[(&str, &str)] = &[
    ("FLUSHALL", "deletes every key of every database"),
    ("FLUSHDB", "deletes every key of the database"),
    ("KEYS", "blocks the server while it walks every key (use DEL MATCH … LIMIT, which SCANs)"),
    ("CONFIG", "changes the server's configuration"),
    ("SHUTDOWN", "stops the server"),
    ("DEBUG", "can crash or stall the server"),
    ("EVAL", "runs a script whose keys cannot be known up front"),
    ("EVALSHA", "runs a script whose keys cannot be known up front"),
    ("FUNCTION", "loads or deletes server-side functions"),
    ("SCRIPT", "manages server-side scripts"),
    ("MIGRATE", "moves keys to another server"),
    ("SWAPDB", "swaps whole databases"),
    ("REPLICAOF", "changes replication"),
    ("SLAVEOF", "changes replication"),
    ("ACL", "changes users and permissions"),
    ("MODULE", "loads code into the server"),
];

/// Splits one line into words, `redis-cli` style; `None` when a quote is not closed.
fn words(line: &str) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else { return Some(out) };
        let mut word = Vec::new();
        if first == '"' || first == '\'' {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                if c == first {
                    closed = true;
                    break;
                }
                if c == '\\' && first == '"' {
                    match chars.next()? {
                        'n' => word.push(b'\n'),
                        'r' => word.push(b'\r'),
                        't' => word.push(b'\t'),
                        'x' => {
                            let h: String = [chars.next()?, chars.next()?].iter().collect();
                            word.push(u8::from_str_radix(&h, 16).ok()?);
                        }
                        other => word.extend(other.to_string().as_bytes()),
                    }
                } else {
                    word.extend(c.to_string().as_bytes());
                }
            }
            if !closed {
                return None;
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                word.extend(c.to_string().as_bytes());
                chars.next();
            }
        }
        if let Some(hex) = word.strip_prefix(b"%hex:") {
            word = std::str::from_utf8(hex).ok().and_then(|h| hex::decode(h).ok())?;
        }
        out.push(word);
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The ticket's commands and expectations, and the problems found in its text (line by line).
pub fn parse(ticket: &str) -> (Vec<RedisCommand>, Vec<Expect>, Vec<Finding>) {
    let mut cmds = Vec::new();
    let mut expects = Vec::new();
    let mut findings = Vec::new();
    let finding =
        |line: usize, level: Level, rule: &str, message: String, statement: usize| Finding { rule: rule.into(), level, message, line, column: 1, statement };
    for (i, raw) in ticket.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if let Some(rest) = trimmed.strip_prefix("# sluice:expect ") {
            match words(rest).as_deref() {
                Some([key, state]) if state.as_slice() == b"absent" => expects.push(Expect { key: key.clone(), dump: None }),
                Some([key, dump]) => expects.push(Expect { key: key.clone(), dump: Some(dump.clone()) }),
                _ => findings.push(finding(line, Level::Error, "parse-error", "`# sluice:expect` takes a key and a %hex: dump or `absent`".into(), cmds.len())),
            }
            continue;
        }
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let Some(mut args) = words(trimmed) else {
            findings.push(finding(line, Level::Error, "parse-error", "a quote is not closed (or a %hex: argument is not hex)".into(), cmds.len()));
            continue;
        };
        let name = text(&args.remove(0)).to_ascii_uppercase();
        let mut pattern = None;
        if name == "DEL" && args.first().is_some_and(|a| a.eq_ignore_ascii_case(b"MATCH")) {
            let limit = match args.as_slice() {
                [_, _] => None,
                [_, _, l, n] if l.eq_ignore_ascii_case(b"LIMIT") => match text(n).parse::<u64>() {
                    Ok(n) if n > 0 => Some(n),
                    _ => {
                        findings.push(finding(line, Level::Error, "parse-error", format!("LIMIT `{}` is not a positive number", text(n)), cmds.len()));
                        continue;
                    }
                },
                _ => {
                    findings.push(finding(line, Level::Error, "parse-error", "write DEL MATCH <pattern> LIMIT <n>".into(), cmds.len()));
                    continue;
                }
            };
            if limit.is_none() {
                findings.push(finding(
                    line,
                    Level::Error,
                    "redis-unbounded-delete",
                    format!("DEL MATCH {} deletes every key it matches, however many: add LIMIT <n>", text(&args[1])),
                    cmds.len(),
                ));
            }
            pattern = Some((args[1].clone(), limit));
        } else if let Some((_, why)) = DANGEROUS.iter().find(|(d, _)| *d == name) {
            findings.push(finding(line, Level::Error, "redis-dangerous-command", format!("{name} {why}"), cmds.len()));
        } else if !ALLOWED.iter().any(|(a, _)| *a == name) {
            findings.push(finding(
                line,
                Level::Error,
                "redis-command-not-allowed",
                format!("{name} is not on the allow-list of commands a ticket may run"),
                cmds.len(),
            ));
        } else if args.is_empty() {
            findings.push(finding(line, Level::Error, "parse-error", format!("{name} needs a key"), cmds.len()));
        } else if name == "DEL" || name == "UNLINK" {
            if args.len() > 1000 {
                findings.push(finding(line, Level::Warning, "redis-large-delete", format!("{name} of {} keys in one command", args.len()), cmds.len()));
            }
        } else if name == "MSET" && args.len() % 2 != 0 {
            findings.push(finding(line, Level::Error, "parse-error", "MSET takes key value pairs".into(), cmds.len()));
        }
        cmds.push(RedisCommand { line, name, args, pattern });
    }
    (cmds, expects, findings)
}

impl RedisCommand {
    /// The keys the command names (a `DEL MATCH` names none: its keys come from a SCAN).
    pub fn keys(&self) -> Vec<Vec<u8>> {
        if self.pattern.is_some() {
            return Vec::new();
        }
        match ALLOWED.iter().find(|(a, _)| *a == self.name).map(|(_, k)| k) {
            Some(Keys::First) => self.args.first().cloned().into_iter().collect(),
            Some(Keys::All) => self.args.clone(),
            Some(Keys::EveryOther) => self.args.iter().step_by(2).cloned().collect(),
            Some(Keys::FirstTwo) => self.args.iter().take(2).cloned().collect(),
            None => Vec::new(),
        }
    }
}

/// The review of a Redis ticket, in the SQL review's shape.
pub fn review(ticket: &str) -> Review {
    let (cmds, _, findings) = parse(ticket);
    Review { statements: cmds.len(), findings }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_like_redis_cli() {
        assert_eq!(words(r#"SET "a b" 'c d' e\x"#).unwrap(), [b"SET".to_vec(), b"a b".to_vec(), b"c d".to_vec(), b"e\\x".to_vec()]);
        assert_eq!(words(r#"SET k "tab\there \x41""#).unwrap()[2], b"tab\there A");
        assert_eq!(words("RESTORE k 0 %hex:00ff").unwrap()[3], [0u8, 255]);
        assert!(words(r#"SET "open"#).is_none());
    }

    #[test]
    fn review_flags_what_must_not_run() {
        let r = review("# a comment\nSET user:1 alice\nFLUSHALL\nKEYS *\nDEL MATCH session:*\nDEL MATCH tmp:* LIMIT 100\nOBJECT ENCODING k\nMSET a 1 b\n");
        let rules: Vec<(usize, &str)> = r.findings.iter().map(|f| (f.line, f.rule.as_str())).collect();
        assert_eq!(
            rules,
            [
                (3, "redis-dangerous-command"),
                (4, "redis-dangerous-command"),
                (5, "redis-unbounded-delete"),
                (7, "redis-command-not-allowed"),
                (8, "parse-error")
            ]
        );
        let (cmds, _, _) = parse("MSET a 1 b 2\nRENAME x y\nDEL MATCH t:* LIMIT 5\n");
        assert_eq!(cmds[0].keys(), [b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(cmds[1].keys(), [b"x".to_vec(), b"y".to_vec()]);
        assert_eq!(cmds[2].pattern, Some((b"t:*".to_vec(), Some(5))));
    }

    #[test]
    fn rollback_expectations_parse() {
        let (cmds, expects, findings) = parse("# sluice:expect k %hex:0a0b\nRESTORE k 0 %hex:00 REPLACE\n# sluice:expect n absent\nDEL n\n");
        assert!(findings.is_empty(), "{findings:?}");
        assert_eq!(cmds.len(), 2);
        assert_eq!(expects, [Expect { key: b"k".to_vec(), dump: Some(vec![10, 11]) }, Expect { key: b"n".to_vec(), dump: None }]);
    }
}
