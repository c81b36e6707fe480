//! Reading a data export: one SELECT in a read-only transaction, streamed (a server-side cursor on
//! PostgreSQL, a streamed result set on MySQL/MariaDB) and cut at the row limit, values as the server's text.
//! Also the base tables' columns of the target database, which the export's column lineage is traced
//! against (views are left out: their columns cannot be traced).

use std::collections::BTreeMap;

use mysql_async::prelude::Queryable;
use sluice_core::Engine;

use crate::ConnectSpec;

fn my_text(v: mysql_async::Value) -> Option<String> {
    match v {
        mysql_async::Value::NULL => None,
        mysql_async::Value::Bytes(b) => Some(String::from_utf8_lossy(&b).into_owned()),
        other => Some(other.as_sql(true).trim_matches('\'').to_string()),
    }
}

/// The columns of every base table of the spec's database, by lower-cased table name.
pub async fn base_columns(spec: &ConnectSpec) -> Result<BTreeMap<String, Vec<String>>, String> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    match spec.engine {
        Engine::Mysql | Engine::Mariadb => {
            crate::connect::resolve(spec).await.map_err(|f| f.message)?;
            let mut c = mysql_async::Conn::new(crate::mysql::opts(spec)).await.map_err(|e| crate::mysql::classify(&e, spec).message)?;
            let rows: Vec<(String, String)> = c
                .query(
                    "SELECT c.TABLE_NAME, c.COLUMN_NAME FROM information_schema.COLUMNS c JOIN information_schema.TABLES t \
                     ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME \
                     WHERE c.TABLE_SCHEMA = DATABASE() AND t.TABLE_TYPE = 'BASE TABLE' ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION",
                )
                .await
                .map_err(|e| e.to_string())?;
            let _ = c.disconnect().await;
            for (t, col) in rows {
                out.entry(t.to_ascii_lowercase()).or_default().push(col);
            }
        }
        Engine::Postgres => {
            let c = crate::connect::postgres_client(spec).await.map_err(|f| f.message)?;
            let rows = c
                .query(
                    "SELECT c.table_name::text, c.column_name::text FROM information_schema.columns c JOIN information_schema.tables t \
                     ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
                     WHERE t.table_type = 'BASE TABLE' AND c.table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY c.table_name, c.ordinal_position",
                    &[],
                )
                .await
                .map_err(|e| e.to_string())?;
            for r in rows {
                out.entry(r.get::<_, String>(0).to_ascii_lowercase()).or_default().push(r.get(1));
            }
        }
        Engine::Redis => return Err("exports read SQL databases".into()),
    }
    Ok(out)
}

/// Runs `sql` read-only and hands each row (at most `limit`) to `on_row`; returns the column names and
/// the number of rows read. `on_row` failing stops the export.
pub async fn stream(
    spec: &ConnectSpec,
    sql: &str,
    limit: u64,
    mut on_row: impl FnMut(&[String], Vec<Option<String>>) -> Result<(), String>,
) -> Result<(Vec<String>, u64), String> {
    let mut n = 0u64;
    match spec.engine {
        Engine::Mysql | Engine::Mariadb => {
            crate::connect::resolve(spec).await.map_err(|f| f.message)?;
            let mut c = mysql_async::Conn::new(crate::mysql::opts(spec)).await.map_err(|e| crate::mysql::classify(&e, spec).message)?;
            c.query_drop("START TRANSACTION READ ONLY").await.map_err(|e| e.to_string())?;
            let mut result = c.query_iter(sql).await.map_err(|e| e.to_string())?;
            let columns: Vec<String> = result.columns().map(|cs| cs.iter().map(|c| c.name_str().into_owned()).collect()).unwrap_or_default();
            while n < limit {
                let Some(row) = result.next().await.map_err(|e| e.to_string())? else { break };
                on_row(&columns, row.unwrap_raw().into_iter().map(|v| v.and_then(my_text)).collect())?;
                n += 1;
            }
            // Rows past the limit are left unread: the connection is dropped rather than drained.
            drop(result);
            drop(c);
            Ok((columns, n))
        }
        Engine::Postgres => {
            let c = crate::connect::postgres_client(spec).await.map_err(|f| f.message)?;
            let err = |e: tokio_postgres::Error| crate::sqlconn::pg_err(e);
            c.batch_execute("BEGIN READ ONLY").await.map_err(err)?;
            c.batch_execute(&format!("DECLARE sluice_export NO SCROLL CURSOR FOR {sql}")).await.map_err(err)?;
            let mut columns: Vec<String> = Vec::new();
            'fetch: loop {
                let batch = c.simple_query("FETCH 1000 FROM sluice_export").await.map_err(err)?;
                let mut got = 0;
                for m in batch {
                    match m {
                        tokio_postgres::SimpleQueryMessage::RowDescription(cols) if columns.is_empty() => {
                            columns = cols.iter().map(|c| c.name().to_string()).collect();
                        }
                        tokio_postgres::SimpleQueryMessage::Row(r) => {
                            if columns.is_empty() {
                                columns = r.columns().iter().map(|c| c.name().to_string()).collect();
                            }
                            if n >= limit {
                                break 'fetch;
                            }
                            on_row(&columns, (0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())?;
                            n += 1;
                            got += 1;
                        }
                        _ => {}
                    }
                }
                if got == 0 || n >= limit {
                    break;
                }
            }
            let _ = c.batch_execute("ROLLBACK").await;
            Ok((columns, n))
        }
        Engine::Redis => Err("exports read SQL databases".into()),
    }
}
