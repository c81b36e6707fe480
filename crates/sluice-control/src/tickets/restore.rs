//! Restore tickets: a backup (or a point in time) restored into a registered instance goes through the
//! ticket's review and approval flow like any change. The ticket's `statements` are the restore's spec, as
//! JSON:
//!
//! ```json
//! {"backup": "1796405518712-76b92358"}
//! {"from": "orders-db", "policy": "nightly", "at": "2026-12-04T17:20:00Z"}
//! {"from": "orders-db", "gtid": "0-1-4711"}
//! {"backup": "…", "table": "shop.orders", "as": "shop.orders_restored"}
//! {"backup": "…", "database": "shop", "as": "shop_restored"}
//! ```
//!
//! Its one target is the instance to restore into. Review checks the plan (the backup exists, its instance
//! is in the ticket's project, the engines match, the method restores into a running server) and warns
//! what it will do; execution re-plans and runs it in `direct` mode (`dry_run` only plans).

use serde::Deserialize;
use sluice_core::Engine;
use sluice_review::{Finding, Level, Review};
use sluice_store::backup_catalog::RunRecord;
use sluice_store::instances::InstanceRecord;
use sluice_store::tickets::TicketRecord;

use crate::backups::restore::{Destination, Point, choose_full, restore};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RestoreSpec {
    /// Exactly this backup, or
    backup: Option<String>,
    /// the newest backup of this instance (under `policy`) before `at` / up to `gtid`, plus its logs.
    from: Option<String>,
    policy: Option<String>,
    /// An instant with its offset.
    at: Option<String>,
    gtid: Option<String>,
    /// One table (`db.table` / `schema.table`), optionally renamed (`as`), or
    table: Option<String>,
    /// one database of a MariaDB logical backup, optionally renamed (`as`).
    database: Option<String>,
    #[serde(rename = "as")]
    rename: Option<String>,
}

/// A checked restore.
pub struct Plan {
    pub full: RunRecord,
    pub point: Point,
    pub table: Option<sluice_backup::table_restore::TablePick>,
    /// One database, and its name at the target.
    pub database: Option<(String, Option<String>)>,
    pub source: InstanceRecord,
    pub warnings: Vec<String>,
}

fn finding(level: Level, message: String) -> Finding {
    Finding { rule: "restore-plan".into(), level, message, line: 1, column: 1, statement: 0 }
}

fn same_family(a: Engine, b: Engine) -> bool {
    matches!((a, b), (Engine::Postgres, Engine::Postgres) | (Engine::Mariadb | Engine::Mysql, Engine::Mariadb | Engine::Mysql))
}

/// Checks a restore ticket's spec against the catalog; the error is what review reports.
pub async fn plan(state: &AppState, t: &TicketRecord, target: &InstanceRecord) -> Result<Plan, String> {
    let spec: RestoreSpec = serde_json::from_str(&t.statements).map_err(|e| format!("the restore spec is not valid: {e} (docs/backup.md, restore tickets)"))?;
    let point = match (&spec.backup, &spec.at, &spec.gtid) {
        (Some(b), None, None) => Point::Backup(b.clone()),
        (Some(_), _, _) => return Err("give `backup`, or `from` with `at` or `gtid`; not both".into()),
        (None, Some(at), None) => {
            let ts: jiff::Timestamp = at.parse().map_err(|e| format!("`at`: `{at}` is not an instant with its offset (2026-12-04T17:20:00Z): {e}"))?;
            Point::Time(ts.as_millisecond())
        }
        (None, None, Some(g)) => Point::Gtid(g.clone()),
        (None, None, None) => Point::Latest,
        (None, Some(_), Some(_)) => return Err("give `at` or `gtid`, not both".into()),
    };
    let full = match (&point, &spec.from) {
        (Point::Backup(id), _) => state.store.get_run(id).await.map_err(|_| format!("no backup `{id}`"))?,
        (_, Some(from)) => {
            let src = state.store.find_instance(from).await.map_err(|_| format!("`from`: no instance `{from}`"))?;
            let policy = match &spec.policy {
                Some(p) => Some(state.store.get_policy(p).await.map_err(|_| format!("`policy`: no policy `{p}`"))?.id),
                None => None,
            };
            choose_full(&state.store, &src.id, policy.as_deref(), &point).await?
        }
        (_, None) => return Err("name the backup (`backup`), or the instance whose backups to use (`from`)".into()),
    };
    if full.state != "done" || full.deleted_at.is_some() {
        return Err(format!("backup {} is {}{}: it cannot be restored", full.id, full.state, if full.deleted_at.is_some() { " and deleted" } else { "" }));
    }
    let source = state.store.get_instance(&full.instance_id).await.map_err(|e| e.to_string())?;
    // A ticket restores only its own project's data: the backup's instance must be in the project too.
    if !state.store.project_has_instance(&t.project_id, &source.id).await.map_err(|e| e.to_string())? {
        return Err(format!("backup {} is of instance `{}`, which is not in this ticket's project", full.id, source.name));
    }
    if !same_family(source.engine, target.engine) {
        return Err(format!("a {} backup does not restore into {} instance `{}`", source.engine, target.engine, target.name));
    }
    if full.method == "physical" {
        return Err(
            "a physical PostgreSQL backup restores into a new data directory (`sluice backup restore --to-datadir`), not into a running instance".into()
        );
    }
    if full.method == "rdb" {
        return Err("an RDB snapshot restores by replacing a stopped Redis's dump file (docs/backup.md), not through a ticket".into());
    }
    if source.engine == Engine::Postgres && matches!(point, Point::Time(_) | Point::Gtid(_)) {
        return Err(
            "a logical PostgreSQL backup restores as it was taken: point in time needs a physical base and WAL (`sluice backup restore --to-datadir`)".into()
        );
    }
    let table = match &spec.table {
        Some(tbl) => {
            let (container, name) = tbl.split_once('.').ok_or_else(|| format!("`table`: `{tbl}` is not `db.table` / `schema.table`"))?;
            let (new_container, new_table) = match spec.rename.as_deref() {
                Some(r) => match r.split_once('.') {
                    Some((c, n)) => (Some(c.to_string()), Some(n.to_string())),
                    None => (None, Some(r.to_string())),
                },
                None => (None, None),
            };
            if !matches!(point, Point::Backup(_) | Point::Latest) || spec.at.is_some() || spec.gtid.is_some() {
                return Err("a table restores from a backup as it was taken (`backup`), not from a point in time".into());
            }
            Some(sluice_backup::table_restore::TablePick { container: container.into(), table: name.into(), new_container, new_table })
        }
        None if spec.rename.is_some() && spec.database.is_none() => return Err("`as` renames a `table` or `database`: name it too".into()),
        None => None,
    };
    let database = match &spec.database {
        Some(_) if table.is_some() => return Err("give `table` or `database`, not both".into()),
        Some(_) if source.engine == Engine::Postgres => {
            return Err("a PostgreSQL logical backup holds one database: restore the whole backup into the target's database".into());
        }
        Some(_) if !matches!(point, Point::Backup(_) | Point::Latest) => {
            return Err("a database restores from a backup as it was taken (`backup`), not from a point in time".into());
        }
        Some(d) if full.method != "logical" => return Err(format!("database `{d}` restores from a logical backup; backup {} is {}", full.id, full.method)),
        Some(d) => Some((d.clone(), spec.rename.clone())),
        None => None,
    };
    let mut warnings = Vec::new();
    if full.verify_state != "verified" {
        warnings.push(format!("backup {} has not been verified (verification {})", full.id, full.verify_state));
    }
    if table.is_none() && database.is_none() {
        warnings.push(format!(
            "a whole restore replaces the tables backup {} holds in `{}` (its DROP TABLE and CREATE TABLE statements){}",
            full.id,
            target.name,
            if matches!(point, Point::Backup(_)) { String::new() } else { ", then replays the logs after it".into() }
        ));
    }
    Ok(Plan { full, point, table, database, source, warnings })
}

/// The review of a restore ticket's target: the plan's error, or its warnings.
pub async fn review(state: &AppState, t: &TicketRecord, target: &InstanceRecord) -> Review {
    let findings = match plan(state, t, target).await {
        Ok(p) => p.warnings.into_iter().map(|w| finding(Level::Warning, w)).collect(),
        Err(e) => vec![finding(Level::Error, e)],
    };
    Review { statements: 1, findings }
}

/// Runs a restore ticket's job into `target` (its registered credentials); returns rows restored (tables)
/// or 0 (whole restores), with a note of what ran.
pub async fn execute(state: &AppState, t: &TicketRecord, target: &InstanceRecord, database: Option<&str>) -> Result<(u64, String), String> {
    let p = plan(state, t, target).await?;
    let password = state.store.instance_password(&target.id).await.map_err(|e| e.to_string())?.map(|s| s.expose().clone()).unwrap_or_default();
    let user = target.username.clone().unwrap_or_else(|| if target.engine == Engine::Postgres { "postgres".into() } else { "root".into() });
    let scratch = state.settings.data_dir.join("scratch");
    let egress = &state.settings.egress;
    if let Some((db, new_name)) = &p.database {
        let repo = crate::backups::open_repository(&state.store, &p.full.repository_id, egress).await?;
        let key = crate::backups::data_key(&state.store, &p.full.repository_id, p.full.key_id.as_deref().unwrap_or_default()).await?;
        let server = sluice_backup::mariadb_dump::Server { host: target.host.clone(), port: target.port, socket: None, user, password };
        let rows = sluice_backup::table_restore::restore_mariadb_database(&repo, &p.full.id, &key, db, new_name.as_deref(), &server, &scratch).await?;
        let to = new_name.as_deref().unwrap_or(db);
        return Ok((rows, format!("restored database {db} as {to} from backup {} of `{}`", p.full.id, p.source.name)));
    }
    match &p.table {
        Some(pick) => {
            let repo = crate::backups::open_repository(&state.store, &p.full.repository_id, egress).await?;
            let key = crate::backups::data_key(&state.store, &p.full.repository_id, p.full.key_id.as_deref().unwrap_or_default()).await?;
            let rows = if target.engine == Engine::Postgres {
                let db = sluice_backup::pg_dump::Database {
                    host: target.host.clone(),
                    port: target.port,
                    user,
                    password,
                    dbname: database.map(str::to_string).or(target.database.clone()).unwrap_or_else(|| "postgres".into()),
                };
                sluice_backup::table_restore::restore_pg_table(&repo, &p.full.id, &key, pick, &db, &scratch).await?
            } else {
                let server = sluice_backup::mariadb_dump::Server { host: target.host.clone(), port: target.port, socket: None, user, password };
                sluice_backup::table_restore::restore_mariadb_table(&repo, &p.full.id, &key, pick, &server, &scratch).await?
            };
            Ok((rows, format!("restored {}.{} from backup {} of `{}`", pick.container, pick.table, p.full.id, p.source.name)))
        }
        None => {
            let to = if target.engine == Engine::Postgres {
                Destination::PgDatabase(sluice_backup::pg_dump::Database {
                    host: target.host.clone(),
                    port: target.port,
                    user,
                    password,
                    dbname: database.map(str::to_string).or(target.database.clone()).ok_or("name the target database (the ticket target's `database`)")?,
                })
            } else {
                Destination::Mariadb(sluice_backup::mariadb_dump::Server { host: target.host.clone(), port: target.port, socket: None, user, password })
            };
            let r = restore(&state.store, egress, &scratch, &p.full, &p.point, &to).await?;
            Ok((0, format!("restored backup {} of `{}`{}", r.backup, p.source.name, r.replayed.map(|x| format!("; {x}")).unwrap_or_default())))
        }
    }
}
