//! One SQL connection to a MySQL/MariaDB or PostgreSQL target for the execution modes that run their own
//! statements (batched, DDL backups): text-protocol statements, affected rows, a scalar as text.

use mysql_async::prelude::Queryable;
use sluice_core::Engine;

use crate::ConnectSpec;

pub(crate) enum Conn {
    My(mysql_async::Conn),
    Pg(tokio_postgres::Client),
}

pub(crate) fn pg_err(e: tokio_postgres::Error) -> String {
    e.as_db_error().map(|d| format!("{}: {}", d.code().code(), d.message())).unwrap_or_else(|| e.to_string())
}

pub(crate) fn my_ident(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

impl Conn {
    pub(crate) async fn open(spec: &ConnectSpec) -> Result<Self, String> {
        match spec.engine {
            Engine::Mysql | Engine::Mariadb => {
                crate::connect::resolve(spec).await.map_err(|f| f.message)?;
                let c = mysql_async::Conn::new(crate::mysql::opts(spec)).await.map_err(|e| crate::mysql::classify(&e, spec).message)?;
                Ok(Conn::My(c))
            }
            Engine::Postgres => Ok(Conn::Pg(crate::connect::postgres_client(spec).await.map_err(|f| f.message)?)),
            Engine::Redis => Err("Redis tickets are not batched".into()),
        }
    }

    pub(crate) async fn exec(&mut self, sql: &str) -> Result<u64, String> {
        match self {
            Conn::My(c) => {
                c.query_drop(sql).await.map_err(|e| e.to_string())?;
                Ok(c.affected_rows())
            }
            Conn::Pg(c) => {
                let m = c.simple_query(sql).await.map_err(pg_err)?;
                Ok(m.iter()
                    .rev()
                    .find_map(|m| match m {
                        tokio_postgres::SimpleQueryMessage::CommandComplete(n) => Some(*n),
                        _ => None,
                    })
                    .unwrap_or(0))
            }
        }
    }

    /// The first column of the first row, as text (simple protocol).
    pub(crate) async fn scalar(&mut self, sql: &str) -> Result<Option<String>, String> {
        match self {
            Conn::My(c) => {
                let row: Option<mysql_async::Row> = c.query_first(sql).await.map_err(|e| e.to_string())?;
                Ok(row.and_then(|r| r.get::<Option<String>, _>(0).flatten()))
            }
            Conn::Pg(c) => {
                for m in c.simple_query(sql).await.map_err(pg_err)? {
                    if let tokio_postgres::SimpleQueryMessage::Row(r) = m {
                        return Ok(r.get(0).map(str::to_string));
                    }
                }
                Ok(None)
            }
        }
    }

    pub(crate) fn is_pg(&self) -> bool {
        matches!(self, Conn::Pg(_))
    }

    pub(crate) fn quote(&self, s: &str) -> String {
        if self.is_pg() { format!("'{}'", s.replace('\'', "''")) } else { format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''")) }
    }

    pub(crate) fn ident(&self, s: &str) -> String {
        if self.is_pg() { crate::rollback::pg_quote(s) } else { my_ident(s) }
    }
}
