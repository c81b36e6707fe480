#[cfg(feature = "source-mysql-binlog")]
pub mod mysql_binlog;
#[cfg(feature = "source-pg-logical")]
pub mod pg_logical;
#[cfg(any(feature = "source-mysql-binlog", feature = "source-pg-logical"))]
mod reconnect;

/// The connection a source uses: the one the control plane resolved from the instance registry (a
/// password-free `url = "instance:NAME"` in the spec), else the file's own `url`, parsed into the same typed
/// [`ConnectSpec`](sluice_engines::ConnectSpec) (TLS from `?tls=` / `?sslmode=`).
#[cfg(any(feature = "source-mysql-binlog", feature = "source-pg-logical", feature = "sink-database"))]
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

/// Where a source connects: the resolved instance's host, else the host of its own `url`.
#[cfg(any(feature = "source-mysql-binlog", feature = "source-pg-logical", feature = "sink-database"))]
pub(crate) fn endpoint(url: &str, resolved: Option<&sluice_engines::ConnectSpec>, default_port: u16) -> Option<crate::component::Endpoint> {
    let (host, port) = match resolved {
        Some(spec) => (spec.host.clone(), spec.port),
        None => crate::scope::url_host_port(url, default_port)?,
    };
    Some(crate::component::Endpoint { key: "url", host, port })
}

/// `*`/`?` pattern match of `db.table` names, shared by the sources' table filters.
#[allow(unused_imports)]
pub(crate) use sluice_core::glob::glob_match;
