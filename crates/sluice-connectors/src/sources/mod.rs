#[cfg(feature = "source-mysql-binlog")]
pub mod mysql_binlog;
#[cfg(feature = "source-pg-logical")]
pub mod pg_logical;
#[cfg(any(feature = "source-mysql-binlog", feature = "source-pg-logical"))]
mod reconnect;

/// The connection a source uses: the one the control plane resolved from the instance registry (a
/// password-free `url = "instance:NAME"` in the spec), else the file's own `url`, parsed into the same typed
/// [`ConnectSpec`](sluice_engines::ConnectSpec) (TLS from `?tls=` / `?sslmode=`).
#[cfg(any(feature = "source-mysql-binlog", feature = "source-pg-logical"))]
pub(crate) fn connection(
    url: &str,
    resolved: Option<&sluice_engines::ConnectSpec>,
    accepts: &[sluice_core::Engine],
) -> Result<sluice_engines::ConnectSpec, String> {
    let spec = match resolved {
        Some(s) => s.clone(),
        None if url.starts_with(crate::pipeline_file::INSTANCE_URL_PREFIX) => {
            return Err(format!("`url`: `{url}` names a registered instance: that works only for pipelines managed by `sluice serve`"));
        }
        None => sluice_engines::ConnectSpec::from_url(url).map_err(|e| format!("`url`: {e}"))?,
    };
    if !accepts.contains(&spec.engine) {
        let names: Vec<String> = accepts.iter().map(|e| format!("{e}://")).collect();
        return Err(format!("`url`: this source reads {}, not {}", names.join(" or "), spec.engine));
    }
    Ok(spec)
}

/// `*`/`?` pattern match of `db.table` names, shared by the sources' table filters.
#[allow(dead_code)]
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == t[ti] || p[pi] == b'?') {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}
