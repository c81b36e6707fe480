//! Running a Redis ticket's commands. Everything that changes keys runs in **one Lua script** (`EVAL`),
//! which Redis executes atomically: no other client's command runs in between. In backup mode the same
//! script first `DUMP`s (with `PTTL`) every key the commands name and, after them, dumps the keys again,
//! so the before-images are exactly what the commands overwrote and the after-images what they left. A
//! rollback script checks first that each key still holds what the ticket left (its `# sluice:expect`
//! lines) and changes nothing when one does not.
//!
//! Redis has no transaction rollback: a command that fails inside the script stops the rest, and the
//! commands before it stay applied; the report says which. `DEL MATCH pattern LIMIT n` is expanded with
//! `SCAN` just before the script (keys created after that scan are not touched). A dry run only reads:
//! the keys each command would touch that exist.

use redis::Value;

use crate::ConnectSpec;
use crate::execute::{ExecReport, Outcome, StatementOutcome};

/// One command: its words (name first), the keys it names, or a `DEL MATCH` pattern and limit.
#[derive(Debug, Clone)]
pub struct RedisOp {
    pub words: Vec<Vec<u8>>,
    pub keys: Vec<Vec<u8>>,
    pub pattern: Option<(Vec<u8>, u64)>,
}

/// What a key held before the ticket (`DUMP` payload and `PTTL`; `None`: absent) and after it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyImage {
    #[serde(with = "hex_bytes")]
    pub key: Vec<u8>,
    #[serde(with = "hex_opt")]
    pub before: Option<Vec<u8>>,
    /// Milliseconds to live before the ticket; -1: no expiry.
    pub pttl: i64,
    #[serde(with = "hex_opt")]
    pub after: Option<Vec<u8>>,
}

mod hex_bytes {
    pub fn serialize<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let t: String = serde::Deserialize::deserialize(d)?;
        hex::decode(t).map_err(serde::de::Error::custom)
    }
}

mod hex_opt {
    pub fn serialize<S: serde::Serializer>(b: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match b {
            Some(b) => s.serialize_some(&hex::encode(b)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let t: Option<String> = serde::Deserialize::deserialize(d)?;
        t.map(|t| hex::decode(t).map_err(serde::de::Error::custom)).transpose()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisMode {
    DryRun,
    Commit,
    /// Commit, keeping every named key's before- and after-image.
    Backup,
}

/// The outcome of a run, and the key images in backup mode.
#[derive(Debug)]
pub struct RedisRun {
    pub report: ExecReport,
    pub images: Vec<KeyImage>,
    /// Keys that no longer hold what a rollback expected (nothing was changed).
    pub conflicts: Vec<Vec<u8>>,
}

const SCRIPT: &str = r#"
local capture = ARGV[1] == '1'
local nexp = tonumber(ARGV[2])
local i = 3
local conflicts = {}
for e = 1, nexp do
  local k, kind, d = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  i = i + 3
  local cur = redis.call('DUMP', k)
  if kind == 'absent' then
    if cur then table.insert(conflicts, k) end
  elseif cur ~= d then
    table.insert(conflicts, k)
  end
end
if #conflicts > 0 then return {'conflict', conflicts} end
local before, ttls = {}, {}
if capture then
  for j, k in ipairs(KEYS) do
    before[j] = redis.call('DUMP', k) or ''
    ttls[j] = redis.call('PTTL', k)
  end
end
local ncmd = tonumber(ARGV[i])
i = i + 1
local counts = {}
for c = 1, ncmd do
  local argc = tonumber(ARGV[i])
  i = i + 1
  local args = {}
  for a = 1, argc do
    args[a] = ARGV[i]
    i = i + 1
  end
  local r = redis.pcall(unpack(args))
  if type(r) == 'table' and r.err then return {'failed', c, r.err, counts, before, ttls} end
  if type(r) == 'number' then counts[c] = r else counts[c] = 1 end
end
local after = {}
if capture then
  for j, k in ipairs(KEYS) do after[j] = redis.call('DUMP', k) or '' end
end
return {'ok', counts, before, ttls, after}
"#;

async fn connect(spec: &ConnectSpec) -> Result<redis::aio::MultiplexedConnection, String> {
    crate::connect::resolve(spec).await.map_err(|f| f.message)?;
    let client = redis::Client::open(crate::redis::connection_info(spec).map_err(|f| f.message)?).map_err(|e| e.to_string())?;
    client.get_multiplexed_async_connection().await.map_err(|e| crate::redis::classify(&e, spec).message)
}

/// The keys a `SCAN MATCH pattern` finds, at most `limit`.
async fn scan(conn: &mut redis::aio::MultiplexedConnection, pattern: &[u8], limit: u64) -> Result<Vec<Vec<u8>>, String> {
    let mut cursor: u64 = 0;
    let mut out = Vec::new();
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) =
            redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(1000).query_async(conn).await.map_err(|e| e.to_string())?;
        for k in keys {
            if !out.contains(&k) && (out.len() as u64) < limit {
                out.push(k);
            }
        }
        cursor = next;
        if cursor == 0 || out.len() as u64 >= limit {
            return Ok(out);
        }
    }
}

fn bytes(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.clone().into_bytes()),
        Value::Okay => Some(b"OK".to_vec()),
        _ => None,
    }
}

fn items(v: &Value) -> &[Value] {
    match v {
        Value::Array(a) => a,
        _ => &[],
    }
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(n) => *n,
        _ => 0,
    }
}

/// Runs the commands as `mode` says; `expects` (rollback tickets) must all hold first.
pub async fn run(spec: &ConnectSpec, ops: &[RedisOp], mode: RedisMode, expects: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<RedisRun, String> {
    let mut conn = connect(spec).await?;
    // Patterns become the keys a SCAN finds now.
    let mut ops = ops.to_vec();
    for op in &mut ops {
        if let Some((pattern, limit)) = &op.pattern {
            op.keys = scan(&mut conn, pattern, *limit).await?;
            op.words = std::iter::once(b"DEL".to_vec()).chain(op.keys.iter().cloned()).collect();
        }
    }
    let n = ops.len();
    if mode == RedisMode::DryRun {
        let mut statements = Vec::new();
        for (idx, op) in ops.iter().enumerate() {
            let existing: u64 =
                if op.keys.is_empty() { 0 } else { redis::cmd("EXISTS").arg(&op.keys).query_async(&mut conn).await.map_err(|e| e.to_string())? };
            statements.push(StatementOutcome { idx, outcome: Outcome::RolledBack, affected_rows: Some(existing), error: None, plan: None });
        }
        return Ok(RedisRun { report: ExecReport { transactional: false, statements }, images: Vec::new(), conflicts: Vec::new() });
    }
    let mut keys: Vec<Vec<u8>> = Vec::new();
    for op in &ops {
        for k in &op.keys {
            if !keys.contains(k) {
                keys.push(k.clone());
            }
        }
    }
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(SCRIPT).arg(keys.len()).arg(&keys).arg(if mode == RedisMode::Backup { "1" } else { "0" }).arg(expects.len());
    for (k, dump) in expects {
        match dump {
            Some(d) => cmd.arg(k).arg("dump").arg(d),
            None => cmd.arg(k).arg("absent").arg(""),
        };
    }
    // A DEL MATCH that found nothing has no command to run.
    let runnable: Vec<(usize, &RedisOp)> = ops.iter().enumerate().filter(|(_, o)| !(o.pattern.is_some() && o.keys.is_empty())).collect();
    cmd.arg(runnable.len());
    for (_, op) in &runnable {
        cmd.arg(op.words.len()).arg(&op.words);
    }
    let reply: Value = cmd.query_async(&mut conn).await.map_err(|e| format!("the commands' script failed: {e}"))?;
    let parts = items(&reply);
    let tag = parts.first().and_then(bytes).unwrap_or_default();
    let outcome = |ran: usize, counts: &[Value], failed: Option<(usize, String)>| {
        let mut statements: Vec<StatementOutcome> =
            (0..n).map(|idx| StatementOutcome { idx, outcome: Outcome::NotRun, affected_rows: None, error: None, plan: None }).collect();
        for (j, (idx, _)) in runnable.iter().enumerate() {
            if j < ran {
                statements[*idx] =
                    StatementOutcome { idx: *idx, outcome: Outcome::Committed, affected_rows: counts.get(j).map(|c| int(c) as u64), error: None, plan: None };
            } else if let Some((at, e)) = &failed
                && j == *at
            {
                statements[*idx] = StatementOutcome { idx: *idx, outcome: Outcome::Failed, affected_rows: None, error: Some(e.clone()), plan: None };
            }
        }
        for (idx, op) in ops.iter().enumerate() {
            if op.pattern.is_some() && op.keys.is_empty() {
                statements[idx] = StatementOutcome { idx, outcome: Outcome::Committed, affected_rows: Some(0), error: None, plan: None };
            }
        }
        ExecReport { transactional: false, statements }
    };
    let images = |before: &Value, ttls: &Value, after: Option<&Value>| -> Vec<KeyImage> {
        keys.iter()
            .enumerate()
            .map(|(j, k)| {
                let b = items(before).get(j).and_then(bytes).filter(|b| !b.is_empty());
                let a = after.and_then(|a| items(a).get(j)).and_then(bytes).filter(|b| !b.is_empty());
                KeyImage { key: k.clone(), before: b, pttl: items(ttls).get(j).map(int).unwrap_or(-1), after: a }
            })
            .collect()
    };
    match tag.as_slice() {
        b"conflict" => {
            let conflicts = items(parts.get(1).unwrap_or(&Value::Nil)).iter().filter_map(bytes).collect();
            let statements = (0..n).map(|idx| StatementOutcome { idx, outcome: Outcome::NotRun, affected_rows: None, error: None, plan: None }).collect();
            Ok(RedisRun { report: ExecReport { transactional: false, statements }, images: Vec::new(), conflicts })
        }
        b"failed" => {
            let at = parts.get(1).map(int).unwrap_or(1) as usize - 1;
            let err = parts.get(2).and_then(bytes).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
            let counts = items(parts.get(3).unwrap_or(&Value::Nil)).to_vec();
            let report = outcome(at, &counts, Some((at, err)));
            // The keys' state after a partial run is read back now (the script stopped).
            let mut imgs = images(parts.get(4).unwrap_or(&Value::Nil), parts.get(5).unwrap_or(&Value::Nil), None);
            if mode == RedisMode::Backup {
                for img in &mut imgs {
                    img.after = redis::cmd("DUMP").arg(&img.key).query_async::<Option<Vec<u8>>>(&mut conn).await.map_err(|e| e.to_string())?;
                }
            } else {
                imgs.clear();
            }
            Ok(RedisRun { report, images: imgs, conflicts: Vec::new() })
        }
        b"ok" => {
            let counts = items(parts.get(1).unwrap_or(&Value::Nil)).to_vec();
            let report = outcome(runnable.len(), &counts, None);
            let imgs = if mode == RedisMode::Backup { images(&parts[2], &parts[3], parts.get(4)) } else { Vec::new() };
            Ok(RedisRun { report, images: imgs, conflicts: Vec::new() })
        }
        _ => Err("the commands' script answered something unexpected".into()),
    }
}

/// A word in `redis-cli` syntax that reads back as exactly these bytes.
pub fn word(b: &[u8]) -> String {
    let plain = !b.is_empty() && b.iter().all(|c| c.is_ascii_graphic() && !matches!(c, b'"' | b'\'' | b'\\' | b'%' | b'#'));
    if plain { String::from_utf8_lossy(b).into_owned() } else { format!("%hex:{}", hex::encode(b)) }
}

/// The rollback ticket's text: per key, what it must still hold (unless forced), then its restore.
pub fn rollback_script(images: &[KeyImage], guarded: bool) -> String {
    let mut out = String::new();
    for img in images {
        if img.before == img.after {
            continue;
        }
        let key = word(&img.key);
        if guarded {
            match &img.after {
                Some(a) => out.push_str(&format!("# sluice:expect {key} %hex:{}\n", hex::encode(a))),
                None => out.push_str(&format!("# sluice:expect {key} absent\n")),
            }
        }
        match &img.before {
            Some(b) => out.push_str(&format!("RESTORE {key} {} %hex:{} REPLACE\n", img.pttl.max(0), hex::encode(b))),
            None => out.push_str(&format!("DEL {key}\n")),
        }
    }
    out
}
