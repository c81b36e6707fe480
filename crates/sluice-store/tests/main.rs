//! The store's suite, run against both backends: every test body runs once on a fresh SQLite file and once
//! on a fresh PostgreSQL database of the real test service.

use std::collections::BTreeMap;
use std::path::PathBuf;

use sluice_core::{Engine, Environment, Role, Secret, TlsMode};
use sluice_store::audit::AuditEntry;
use sluice_store::instances::{InstanceFilter, InstancePatch, NewInstance};
use sluice_store::{KeySource, OpenOptions, Store, StoreError, StoreLocation};

struct Fixture {
    store: Store,
    location: StoreLocation,
    key: KeySource,
    _dir: tempfile::TempDir,
}

enum Kind {
    Sqlite,
    Postgres,
}

async fn fixture(kind: Kind) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let key = KeySource::File(dir.path().join("master.key"));
    let location = match kind {
        Kind::Sqlite => StoreLocation::Sqlite(dir.path().join("sluice.db")),
        Kind::Postgres => StoreLocation::Postgres(Secret::new(sluice_testkit::fresh_postgres_database("store").await)),
    };
    let opened = Store::open(OpenOptions { location: location.clone(), key: key.clone(), max_connections: 4, read_cache: true }).await.unwrap();
    assert!(opened.created);
    Fixture { store: opened.store, location, key, _dir: dir }
}

fn entry(action: &str) -> AuditEntry {
    AuditEntry { actor: "user:test".into(), action: action.into(), target: None, outcome: "ok".into(), detail: None, request_id: None }
}

fn instance(name: &str) -> NewInstance {
    NewInstance {
        name: name.into(),
        engine: Engine::Mariadb,
        host: "127.0.0.1".into(),
        port: 3307,
        username: Some("sluice".into()),
        password: Some(Secret::new("canary-Pa55-word-7731".into())),
        tls_mode: TlsMode::Disable,
        tls_ca: None,
        database: None,
        environment: Environment::Dev,
        labels: BTreeMap::from([("team".into(), "payments".into())]),
        owner: Some("dba-team".into()),
    }
}

macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite { $( #[tokio::test] async fn $name() { super::$name(super::fixture(super::Kind::Sqlite).await).await } )+ }
        mod postgres { $( #[tokio::test] async fn $name() { super::$name(super::fixture(super::Kind::Postgres).await).await } )+ }
    };
}

both_backends!(
    reopen_checks_key,
    users_and_tokens,
    instances_crud,
    audit_chain_detects_tampering,
    pages_read_their_writes,
    projects_and_members,
    tickets_move_only_as_the_state_machine_says,
    approvals_count_once_per_actor_and_revision,
    racing_events_take_effect_once,
    tickets_filter_and_page,
    jobs_lease_run_and_settle_their_ticket,
    pipeline_leases_go_to_one_holder_and_fence_checkpoints
);

async fn pipeline_leases_go_to_one_holder_and_fence_checkpoints(f: Fixture) {
    let s = &f.store;
    let p = s.create_pipeline("p", "[source]", sluice_store::pipelines::DesiredState::Running, &entry("pipeline.create")).await.unwrap();
    // Two servers race: exactly one wins, and renews; the other is refused while the lease is live.
    let (a, b) = tokio::join!(s.acquire_pipeline_lease(&p.id, "server-a", 10_000), s.acquire_pipeline_lease(&p.id, "server-b", 10_000));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a ^ b, "exactly one holder: a={a} b={b}");
    let (winner, loser) = if a { ("server-a", "server-b") } else { ("server-b", "server-a") };
    assert!(s.acquire_pipeline_lease(&p.id, winner, 10_000).await.unwrap());
    assert!(!s.acquire_pipeline_lease(&p.id, loser, 10_000).await.unwrap());
    // Only the holder saves checkpoints.
    assert!(s.save_pipeline_checkpoint(&p.id, winner, r#"{"kind":"lsn","lsn":1}"#).await.unwrap());
    assert!(!s.save_pipeline_checkpoint(&p.id, loser, r#"{"kind":"lsn","lsn":2}"#).await.unwrap());
    assert_eq!(s.pipeline_checkpoint(&p.id).await.unwrap().as_deref(), Some(r#"{"kind":"lsn","lsn":1}"#));
    // A lease that ran out (its server died) goes to the next asker, and the old holder is fenced off.
    assert!(s.acquire_pipeline_lease(&p.id, winner, -1).await.unwrap());
    assert!(s.acquire_pipeline_lease(&p.id, loser, 10_000).await.unwrap());
    assert!(!s.save_pipeline_checkpoint(&p.id, winner, r#"{"kind":"lsn","lsn":3}"#).await.unwrap());
    assert!(s.save_pipeline_checkpoint(&p.id, loser, r#"{"kind":"lsn","lsn":4}"#).await.unwrap());
    assert_eq!(s.pipeline_lease(&p.id).await.unwrap().map(|(h, _)| h).as_deref(), Some(loser));
    s.release_pipeline_lease(&p.id, loser).await.unwrap();
    assert!(s.pipeline_lease(&p.id).await.unwrap().is_none());
    s.delete_pipeline(&p.id, &entry("pipeline.delete")).await.unwrap();
    assert!(s.pipeline_checkpoint(&p.id).await.unwrap().is_none());
}

async fn reopen_checks_key(f: Fixture) {
    let Fixture { store, location, key, _dir } = f;
    store.close().await;
    let again = Store::open(OpenOptions { location: location.clone(), key: key.clone(), max_connections: 2, read_cache: true }).await.unwrap();
    assert!(!again.created);
    again.store.close().await;

    let wrong = KeySource::Env(Secret::new("11".repeat(32)));
    let err = Store::open(OpenOptions { location: location.clone(), key: wrong, max_connections: 2, read_cache: true }).await.err().unwrap();
    assert!(matches!(err, StoreError::WrongKey { .. }), "{err}");
    assert!(err.to_string().contains("SLUICE_MASTER_KEY"), "{err}");

    let missing = KeySource::File(_dir.path().join("no-such.key"));
    let err = Store::open(OpenOptions { location, key: missing.clone(), max_connections: 2, read_cache: true }).await.err().unwrap();
    assert!(matches!(err, StoreError::KeyMissing { .. }), "{err}");
    let KeySource::File(p) = missing else { unreachable!() };
    assert!(!p.exists(), "a refused open must not create a key file");
}

async fn users_and_tokens(f: Fixture) {
    let s = &f.store;
    let u = s.create_user("alice", Role::Developer, &entry("user.create")).await.unwrap();
    let dup = s.create_user("alice", Role::Viewer, &entry("user.create")).await.err().unwrap();
    assert!(matches!(dup, StoreError::Conflict { .. }), "{dup}");

    let (tok, clear) = s.create_token(&u.id, "ci", None, None, &entry("token.create")).await.unwrap();
    assert!(clear.expose().starts_with("slc_"));
    let p = s.authenticate(clear.expose()).await.unwrap().expect("valid token");
    assert_eq!((p.user_name.as_str(), p.role, p.token_id.as_str()), ("alice", Role::Developer, tok.id.as_str()));
    assert!(s.authenticate("slc_not-a-token").await.unwrap().is_none());

    let (_, expired) = s.create_token(&u.id, "old", Some(1), None, &entry("token.create")).await.unwrap();
    assert!(s.authenticate(expired.expose()).await.unwrap().is_none(), "expired tokens are refused");

    s.touch_token(&tok.id).await.unwrap();
    assert!(s.get_token(&tok.id).await.unwrap().last_used_at.is_some());

    s.delete_user(&u.id, &entry("user.delete")).await.unwrap();
    assert!(s.authenticate(clear.expose()).await.unwrap().is_none(), "deleting a user revokes its tokens");
    assert!(s.list_tokens(Some(&u.id)).await.unwrap().is_empty());
}

async fn instances_crud(f: Fixture) {
    let s = &f.store;
    let a = s.create_instance(instance("db-a"), &entry("instance.create")).await.unwrap();
    assert!(a.has_password);
    assert_eq!(s.instance_password(&a.id).await.unwrap().unwrap().expose(), "canary-Pa55-word-7731");
    let dup = s.create_instance(instance("db-a"), &entry("instance.create")).await.err().unwrap();
    assert!(matches!(dup, StoreError::Conflict { .. }));

    for i in 0..5 {
        let mut n = instance(&format!("db-{i}"));
        n.environment = if i % 2 == 0 { Environment::Prod } else { Environment::Dev };
        n.password = None;
        s.create_instance(n, &entry("instance.create")).await.unwrap();
    }
    let page1 = s.list_instances(&InstanceFilter { limit: 4, ..Default::default() }).await.unwrap();
    assert_eq!(page1.len(), 4);
    let page2 = s.list_instances(&InstanceFilter { limit: 4, after: Some(page1[3].id.clone()), ..Default::default() }).await.unwrap();
    assert_eq!(page2.len(), 2, "6 instances in pages of 4");
    let prod = s.list_instances(&InstanceFilter { limit: 50, environment: Some(Environment::Prod), ..Default::default() }).await.unwrap();
    assert_eq!(prod.len(), 3);

    let patched = s
        .update_instance(&a.id, InstancePatch { port: Some(3310), password: Some(None), owner: Some(None), ..Default::default() }, &entry("instance.update"))
        .await
        .unwrap();
    assert_eq!((patched.port, patched.has_password, patched.owner.as_deref()), (3310, false, None));
    assert_eq!(patched.name, "db-a");
    assert_eq!(s.find_instance("db-a").await.unwrap().id, a.id);

    s.delete_instance(&a.id, &entry("instance.delete")).await.unwrap();
    assert!(matches!(s.get_instance(&a.id).await, Err(StoreError::NotFound { .. })));
    assert!(s.verify_audit().await.unwrap().ok());
}

async fn audit_chain_detects_tampering(f: Fixture) {
    let s = &f.store;
    for i in 0..5 {
        s.audit(&entry(&format!("test.{i}"))).await.unwrap();
    }
    let report = s.verify_audit().await.unwrap();
    assert!(report.ok(), "{:?}", report.breaks);
    assert_eq!(report.entries, 5);

    // The table refuses edits by itself.
    let refused = sqlx::query("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2").execute(s.pool()).await;
    assert!(refused.is_err(), "audit_log must be append-only");

    // An attacker who drops the guard and edits a row is still caught by the chain.
    let drop_guard = match s.backend() {
        sluice_store::Backend::Sqlite => "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;",
        sluice_store::Backend::Postgres => "DROP TRIGGER audit_log_append_only ON audit_log;",
    };
    sqlx::raw_sql(drop_guard).execute(s.pool()).await.unwrap();
    sqlx::query("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2").execute(s.pool()).await.unwrap();
    let report = s.verify_audit().await.unwrap();
    assert_eq!(report.breaks.len(), 1, "{:?}", report.breaks);
    assert_eq!(report.breaks[0].seq, 2);
    assert!(report.breaks[0].problem.contains("edited"));

    sqlx::query("DELETE FROM audit_log WHERE seq = 4").execute(s.pool()).await.unwrap();
    let report = s.verify_audit().await.unwrap();
    assert!(report.breaks.iter().any(|b| b.seq == 5 && b.problem.contains("missing")), "{:?}", report.breaks);

    sqlx::query("DELETE FROM audit_log WHERE seq = 5").execute(s.pool()).await.unwrap();
    let report = s.verify_audit().await.unwrap();
    assert!(report.breaks.iter().any(|b| b.problem.contains("deleted from the end")), "{:?}", report.breaks);
}

#[tokio::test]
async fn refuses_foreign_and_corrupt_files_without_changing_them() {
    let dir = tempfile::tempdir().unwrap();
    let key = KeySource::File(dir.path().join("master.key"));

    let garbage: PathBuf = dir.path().join("garbage.db");
    std::fs::write(&garbage, b"this is not a database at all, just some bytes").unwrap();
    let before = std::fs::read(&garbage).unwrap();
    let err = Store::open(OpenOptions { location: StoreLocation::Sqlite(garbage.clone()), key: key.clone(), max_connections: 1, read_cache: true })
        .await
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::NotSqlite { .. }), "{err}");
    assert!(std::fs::read(&garbage).unwrap() == before, "the refused file was changed");

    let foreign = dir.path().join("foreign.db");
    {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&format!("sqlite://{}?mode=rwc", foreign.display())).await.unwrap();
        sqlx::query("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)").execute(&pool).await.unwrap();
        pool.close().await;
    }
    let before = std::fs::read(&foreign).unwrap();
    let err = Store::open(OpenOptions { location: StoreLocation::Sqlite(foreign.clone()), key: key.clone(), max_connections: 1, read_cache: true })
        .await
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::Foreign { .. }), "{err}");
    assert!(err.to_string().contains("customers"), "{err}");
    assert!(std::fs::read(&foreign).unwrap() == before, "the refused file was changed");
    assert!(!dir.path().join("master.key").exists(), "a refused open must not create a key");
}

#[tokio::test]
async fn secrets_are_not_in_the_raw_store_file() {
    let f = fixture(Kind::Sqlite).await;
    f.store.create_instance(instance("canary"), &entry("instance.create")).await.unwrap();
    f.store.close().await;
    let StoreLocation::Sqlite(path) = &f.location else { unreachable!() };
    for file in [path.clone(), path.with_extension("db-wal")] {
        if let Ok(bytes) = std::fs::read(&file) {
            assert!(!bytes.windows(21).any(|w| w == b"canary-Pa55-word-7731"), "clear password in {}", file.display());
        }
    }
}

async fn pages_read_their_writes(f: Fixture) {
    let s = &f.store;
    let mut ids = Vec::new();
    for i in 0..6 {
        let mut n = instance(&format!("p-{i}"));
        n.environment = if i % 3 == 0 { Environment::Prod } else { Environment::Dev };
        ids.push(s.create_instance(n, &entry("instance.create")).await.unwrap().id);
    }
    let page = |after: Option<String>, env: Option<Environment>| InstanceFilter { limit: 2, after, environment: env, engine: None };
    let p1 = s.instance_page(&page(None, None)).await.unwrap();
    assert_eq!(p1.items.len(), 2);
    assert_eq!(p1.next_after.as_deref(), Some(ids[1].as_str()));
    let p3 = s.instance_page(&page(Some(ids[3].clone()), None)).await.unwrap();
    assert_eq!((p3.items.len(), p3.next_after.as_deref()), (2, None), "the last page has no cursor");
    let prod = s.instance_page(&InstanceFilter { limit: 10, ..page(None, Some(Environment::Prod)) }).await.unwrap();
    assert_eq!(prod.items.len(), 2);
    let first: serde_json::Value = serde_json::from_str(&p1.items[0]).unwrap();
    assert_eq!(first["name"], "p-0");
    assert!(first.get("password").is_none() && first.get("password_enc").is_none());

    // Every write is visible to the next read, cache or not.
    s.update_instance(&ids[0], InstancePatch { host: Some("changed.example".into()), ..Default::default() }, &entry("instance.update")).await.unwrap();
    let again: serde_json::Value = serde_json::from_str(&s.instance_page(&page(None, None)).await.unwrap().items[0]).unwrap();
    assert_eq!(again["host"], "changed.example");
    s.record_check(&ids[0], &serde_json::json!({"ok": true}), &entry("instance.check")).await.unwrap();
    let again: serde_json::Value = serde_json::from_str(&s.instance_page(&page(None, None)).await.unwrap().items[0]).unwrap();
    assert_eq!(again["last_check"]["ok"], true);
    s.delete_instance(&ids[0], &entry("instance.delete")).await.unwrap();
    let again: serde_json::Value = serde_json::from_str(&s.instance_page(&page(None, None)).await.unwrap().items[0]).unwrap();
    assert_eq!(again["name"], "p-1");
}

mod tickets_support {
    use super::*;
    use sluice_core::{ExecMode, TicketKind};
    use sluice_store::tickets::{NewTicket, Target};

    pub async fn project_with_instance(store: &Store, name: &str) -> (String, String) {
        let p = store.create_project(name, "", &entry("project.create")).await.unwrap();
        let i = store.create_instance(instance(&format!("{name}-db")), &entry("instance.create")).await.unwrap();
        store.add_project_instance(&p.id, &i.id, &entry("project.instance.add")).await.unwrap();
        (p.id, i.id)
    }

    pub fn new_ticket(project: &str, instance: &str, creator: &str, key: Option<&str>) -> NewTicket {
        NewTicket {
            project_id: project.into(),
            kind: TicketKind::Dml,
            title: "fix statuses".into(),
            description: String::new(),
            mode: ExecMode::Backup,
            statements: "UPDATE orders SET status = 'x' WHERE id = 1;".into(),
            targets: vec![Target { instance_id: instance.into(), database: Some("shop".into()) }],
            run_at: None,
            rollback_of: None,
            creator: creator.into(),
            idempotency_key: key.map(str::to_string),
        }
    }
}

async fn projects_and_members(f: Fixture) {
    use sluice_core::ProjectRole;
    let s = &f.store;
    let (project, inst) = tickets_support::project_with_instance(s, "payments").await;
    let dup = s.create_project("payments", "", &entry("project.create")).await;
    assert!(matches!(dup, Err(StoreError::Conflict { .. })), "{dup:?}");
    let ann = s.create_user("ann", Role::Developer, &entry("user.create")).await.unwrap();
    s.set_member(&project, &ann.id, ProjectRole::Developer, &entry("project.member.set")).await.unwrap();
    assert_eq!(s.member_role(&project, &ann.id).await.unwrap(), Some(ProjectRole::Developer));
    // Setting again changes the role; there is one membership.
    s.set_member(&project, &ann.id, ProjectRole::Owner, &entry("project.member.set")).await.unwrap();
    let members = s.members(&project).await.unwrap();
    assert_eq!((members.len(), members[0].role, members[0].user_name.as_str()), (1, ProjectRole::Owner, "ann"));
    assert_eq!(s.list_projects(Some(&ann.id)).await.unwrap().len(), 1);
    let other = s.create_project("search", "", &entry("project.create")).await.unwrap();
    assert_eq!(s.list_projects(Some(&ann.id)).await.unwrap().len(), 1, "only her projects");
    assert_eq!(s.list_projects(None).await.unwrap().len(), 2);
    assert!(s.project_has_instance(&project, &inst).await.unwrap());
    assert!(!s.project_has_instance(&other.id, &inst).await.unwrap());
    s.remove_member(&project, &ann.id, &entry("project.member.remove")).await.unwrap();
    assert_eq!(s.member_role(&project, &ann.id).await.unwrap(), None);
}

async fn tickets_move_only_as_the_state_machine_says(f: Fixture) {
    use sluice_core::ticket::{TicketEvent as E, TicketState as S};
    use sluice_store::tickets::Act;
    let s = &f.store;
    let (project, inst) = tickets_support::project_with_instance(s, "p1").await;
    let new = tickets_support::new_ticket(&project, &inst, "user:ann", Some("req-1"));
    let (t, created) = s.create_ticket(&new, &entry("ticket.create")).await.unwrap();
    assert!(created);
    assert_eq!((t.state, t.revision, t.targets.len()), (S::Draft, 1, 1));
    assert_eq!(t.statements_sha256, sluice_store::tickets::statements_sha256(&new.statements));
    // The same idempotency key from the same creator: the same ticket, no second one.
    let (again, created) = s.create_ticket(&new, &entry("ticket.create")).await.unwrap();
    assert!(!created);
    assert_eq!(again.id, t.id);
    let act = |event, revision| Act { event, actor: "user:ann", reason: Some("because"), revision };
    let t = s.ticket_event(&t.id, &act(E::Submit, 1), &entry("ticket.submit")).await.unwrap();
    assert_eq!(t.state, S::Reviewing);
    // Not allowed from reviewing: refused, nothing changes.
    let refused = s.ticket_event(&t.id, &act(E::Start, 1), &entry("ticket.run")).await;
    assert!(matches!(refused, Err(StoreError::Transition(_))), "{refused:?}");
    let t = s.ticket_event(&t.id, &act(E::Reviewed, 1), &entry("ticket.review")).await.unwrap();
    assert_eq!(t.state, S::PendingApproval);
    // An edit: back to review, a new revision; an event about the old revision is stale.
    let mut edited = new.clone();
    edited.statements = "UPDATE orders SET status = 'y' WHERE id = 1;".into();
    let t = s.edit_ticket(&t.id, &edited, 1, &entry("ticket.edit")).await.unwrap();
    assert_eq!((t.state, t.revision), (S::Reviewing, 2));
    assert_eq!(t.statements_sha256, sluice_store::tickets::statements_sha256(&edited.statements));
    let stale = s.ticket_event(&t.id, &act(E::Reviewed, 1), &entry("ticket.review")).await;
    assert!(matches!(stale, Err(StoreError::Stale { .. })), "{stale:?}");
    let t = s.ticket_event(&t.id, &act(E::Cancel, 2), &entry("ticket.cancel")).await.unwrap();
    assert_eq!(t.state, S::Cancelled);
    let history = s.ticket_history(&t.id).await.unwrap();
    let kinds: Vec<&str> = history.iter().map(|h| h.kind.as_str()).collect();
    assert_eq!(kinds, ["created", "submit", "reviewed", "edit", "cancel"]);
    assert_eq!(history[1].reason.as_deref(), Some("because"));
    assert_eq!((history[4].from_state, history[4].to_state), (Some(S::Reviewing), Some(S::Cancelled)));
    // Every change is in the audit log.
    let mut audited = s.list_audit(None, 1000).await.unwrap();
    audited.reverse();
    let actions: Vec<&str> = audited.iter().map(|e| e.action.as_str()).filter(|a| a.starts_with("ticket.")).collect();
    assert_eq!(actions, ["ticket.create", "ticket.submit", "ticket.review", "ticket.edit", "ticket.cancel"]);
}

async fn approvals_count_once_per_actor_and_revision(f: Fixture) {
    use sluice_core::ticket::{TicketEvent as E, TicketState as S};
    use sluice_store::tickets::{Act, Approval};
    let s = &f.store;
    let (project, inst) = tickets_support::project_with_instance(s, "p2").await;
    let (t, _) = s.create_ticket(&tickets_support::new_ticket(&project, &inst, "user:ann", None), &entry("ticket.create")).await.unwrap();
    for e in [E::Submit, E::Reviewed] {
        s.ticket_event(&t.id, &Act { event: e, actor: "user:ann", reason: None, revision: 1 }, &entry("ticket.x")).await.unwrap();
    }
    let approve = |actor: &'static str, stage, quorum, last_stage, revision| Approval { actor, revision, stage, quorum, last_stage, comment: Some("ok") };
    // Stage 1 needs two approvals.
    let (t1, complete) = s.approve_ticket(&t.id, &approve("user:bob", 1, 2, false, 1), &entry("ticket.approve")).await.unwrap();
    assert!(!complete);
    assert_eq!(t1.state, S::PendingApproval);
    let twice = s.approve_ticket(&t.id, &approve("user:bob", 1, 2, false, 1), &entry("ticket.approve")).await;
    assert!(matches!(twice, Err(StoreError::Conflict { .. })), "a second approval by the same person does not count: {twice:?}");
    let (_, complete) = s.approve_ticket(&t.id, &approve("user:cid", 1, 2, false, 1), &entry("ticket.approve")).await.unwrap();
    assert!(complete);
    assert_eq!(s.stage_approvals(&t.id, 1, 1).await.unwrap(), ["user:bob", "user:cid"]);
    // An edit now: approvals of revision 1 no longer count.
    let mut edited = tickets_support::new_ticket(&project, &inst, "user:ann", None);
    edited.statements.push_str(" -- changed");
    let t2 = s.edit_ticket(&t.id, &edited, 1, &entry("ticket.edit")).await.unwrap();
    assert!(s.stage_approvals(&t.id, 2, 1).await.unwrap().is_empty());
    let old = s.approve_ticket(&t.id, &approve("user:dan", 1, 1, true, 1), &entry("ticket.approve")).await;
    assert!(matches!(old, Err(StoreError::Stale { .. })), "an approval of the old revision: {old:?}");
    let early = s.approve_ticket(&t.id, &approve("user:dan", 1, 1, true, 2), &entry("ticket.approve")).await;
    assert!(matches!(early, Err(StoreError::Transition(_))), "not pending approval yet: {early:?}");
    s.ticket_event(&t.id, &Act { event: E::Reviewed, actor: "user:ann", reason: None, revision: t2.revision }, &entry("ticket.review")).await.unwrap();
    let (done, complete) = s.approve_ticket(&t.id, &approve("user:dan", 1, 1, true, 2), &entry("ticket.approve")).await.unwrap();
    assert!(complete);
    assert_eq!(done.state, S::Approved);
}

async fn racing_events_take_effect_once(f: Fixture) {
    use sluice_core::ticket::{TicketEvent as E, TicketState as S};
    use sluice_store::tickets::{Act, Approval};
    let s = &f.store;
    let (project, inst) = tickets_support::project_with_instance(s, "p3").await;
    let (t, _) = s.create_ticket(&tickets_support::new_ticket(&project, &inst, "user:ann", None), &entry("ticket.create")).await.unwrap();
    for e in [E::Submit, E::Reviewed] {
        s.ticket_event(&t.id, &Act { event: e, actor: "user:ann", reason: None, revision: 1 }, &entry("ticket.x")).await.unwrap();
    }
    // Two approvers of a two-person final stage, at once, eight times over each: the ticket is approved by
    // exactly one completing approval, and each person counted once.
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (s, id) = (s.clone(), t.id.clone());
        tasks.push(tokio::spawn(async move {
            let actor = if i % 2 == 0 { "user:bob" } else { "user:cid" };
            s.approve_ticket(&id, &Approval { actor, revision: 1, stage: 1, quorum: 2, last_stage: true, comment: None }, &entry("ticket.approve")).await
        }));
    }
    let mut completed = 0;
    for task in tasks {
        if let Ok((_, true)) = task.await.unwrap() {
            completed += 1;
        }
    }
    assert_eq!(completed, 1);
    let t = s.get_ticket(&t.id).await.unwrap();
    assert_eq!(t.state, S::Approved);
    let history = s.ticket_history(&t.id).await.unwrap();
    assert_eq!(history.iter().filter(|h| h.kind == "approval").count(), 2);
    assert_eq!(history.iter().filter(|h| h.kind == "approve_final").count(), 1);
    // Two `run`s at once: one starts it.
    let runs: Vec<_> = (0..8)
        .map(|_| {
            let (s, id) = (s.clone(), t.id.clone());
            tokio::spawn(async move { s.ticket_event(&id, &Act { event: E::Start, actor: "user:dba", reason: None, revision: 1 }, &entry("ticket.run")).await })
        })
        .collect();
    let mut started = 0;
    for r in runs {
        if r.await.unwrap().is_ok() {
            started += 1;
        }
    }
    assert_eq!(started, 1);
}

async fn tickets_filter_and_page(f: Fixture) {
    use sluice_core::ticket::{TicketEvent as E, TicketState as S};
    use sluice_store::tickets::{Act, TicketFilter};
    let s = &f.store;
    let (pa, ia) = tickets_support::project_with_instance(s, "pa").await;
    let (pb, ib) = tickets_support::project_with_instance(s, "pb").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let (t, _) = s
            .create_ticket(&tickets_support::new_ticket(&pa, &ia, if i % 2 == 0 { "user:ann" } else { "user:bob" }, None), &entry("ticket.create"))
            .await
            .unwrap();
        ids.push(t.id);
    }
    let tb = s.create_ticket(&tickets_support::new_ticket(&pb, &ib, "user:ann", None), &entry("ticket.create")).await.unwrap().0.id;
    s.ticket_event(&ids[0], &Act { event: E::Submit, actor: "user:ann", reason: None, revision: 1 }, &entry("ticket.submit")).await.unwrap();
    let list = |f: TicketFilter| async move { s.list_tickets(&TicketFilter { limit: 100, ..f }).await.unwrap().into_iter().map(|t| t.id).collect::<Vec<_>>() };
    assert_eq!(list(TicketFilter::default()).await.len(), 6);
    assert_eq!(list(TicketFilter { projects: Some(vec![pb.clone()]), ..Default::default() }).await, [tb.as_str()], "scoped to the caller's projects");
    assert!(list(TicketFilter { projects: Some(vec![]), ..Default::default() }).await.is_empty(), "no project, no tickets");
    assert_eq!(list(TicketFilter { state: Some(S::Reviewing), ..Default::default() }).await, [ids[0].as_str()]);
    assert_eq!(list(TicketFilter { creator: Some("user:bob".into()), ..Default::default() }).await.len(), 2);
    assert_eq!(list(TicketFilter { instance: Some(ib.clone()), ..Default::default() }).await, [tb.as_str()]);
    assert_eq!(list(TicketFilter { project: Some(pa.clone()), ..Default::default() }).await.len(), 5);
    assert!(list(TicketFilter { approver: Some("user:cid".into()), ..Default::default() }).await.is_empty());
    // Cursor pages: two at a time, in id order, every ticket once.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = s.list_tickets(&TicketFilter { after: after.clone(), limit: 2, ..Default::default() }).await.unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|t| t.id.clone());
        seen.extend(page.into_iter().map(|t| t.id));
    }
    let mut all = ids.clone();
    all.push(tb);
    all.sort();
    assert_eq!(seen, all);
}

async fn approved_ticket(s: &Store, project: &str, instances: &[&str]) -> sluice_store::tickets::TicketRecord {
    use sluice_core::ticket::TicketEvent as E;
    use sluice_store::tickets::{Act, Approval, Target};
    let mut new = tickets_support::new_ticket(project, instances[0], "user:ann", None);
    new.targets = instances.iter().map(|i| Target { instance_id: i.to_string(), database: None }).collect();
    let (t, _) = s.create_ticket(&new, &entry("ticket.create")).await.unwrap();
    for e in [E::Submit, E::Reviewed] {
        s.ticket_event(&t.id, &Act { event: e, actor: "user:ann", reason: None, revision: 1 }, &entry("ticket.x")).await.unwrap();
    }
    s.approve_ticket(&t.id, &Approval { actor: "user:bob", revision: 1, stage: 1, quorum: 1, last_stage: true, comment: None }, &entry("ticket.approve"))
        .await
        .unwrap();
    s.get_ticket(&t.id).await.unwrap()
}

async fn jobs_lease_run_and_settle_their_ticket(f: Fixture) {
    use sluice_core::ticket::TicketState as S;
    use sluice_store::jobs::JobState;
    let s = &f.store;
    let (project, inst) = tickets_support::project_with_instance(s, "pj").await;
    let other = s.create_instance(instance("pj-db2"), &entry("instance.create")).await.unwrap();
    s.add_project_instance(&project, &other.id, &entry("project.instance.add")).await.unwrap();
    let t = approved_ticket(s, &project, &[&inst, &other.id]).await;
    // What was approved is pinned: the hash of the statements at approval.
    assert_eq!(t.approved_sha256.as_deref(), Some(t.statements_sha256.as_str()));
    // Statements changed behind the API's back (not through an edit) are refused at run time.
    sqlx::query("UPDATE tickets SET statements_sha256 = 'x' WHERE id = $1").bind(&t.id).execute(s.pool()).await.unwrap();
    let wrong = s.start_ticket(&t.id, 1, "user:dba", 0, &entry("ticket.run")).await;
    assert!(matches!(wrong, Err(StoreError::Stale { .. })), "{wrong:?}");
    sqlx::query("UPDATE tickets SET statements_sha256 = approved_sha256 WHERE id = $1").bind(&t.id).execute(s.pool()).await.unwrap();
    // Eight racing runs: one starts it, with one job per target.
    let runs: Vec<_> = (0..8)
        .map(|_| {
            let (s, id) = (s.clone(), t.id.clone());
            tokio::spawn(async move { s.start_ticket(&id, 1, "user:dba", 0, &entry("ticket.run")).await })
        })
        .collect();
    let mut started = Vec::new();
    for r in runs {
        if let Ok(jobs) = r.await.unwrap() {
            started.push(jobs);
        }
    }
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].len(), 2);
    assert_eq!(s.get_ticket(&t.id).await.unwrap().state, S::Running);
    // Per instance one at a time: a second ticket on the first instance waits while its job runs.
    let t2 = approved_ticket(s, &project, &[&inst]).await;
    s.start_ticket(&t2.id, 1, "user:dba", 0, &entry("ticket.run")).await.unwrap();
    let a = s.lease_job("w1", 60_000, 1).await.unwrap().unwrap();
    let b = s.lease_job("w2", 60_000, 1).await.unwrap().unwrap();
    assert_ne!(a.instance_id, b.instance_id, "one job per instance at a time");
    assert!(s.lease_job("w3", 60_000, 1).await.unwrap().is_none(), "the third job's instance is busy");
    assert!(s.heartbeat(&a.id, "w1", 60_000, None).await.unwrap());
    assert!(!s.heartbeat(&a.id, "w2", 60_000, None).await.unwrap(), "not w2's lease");
    s.finish_job(&a.id, "w1", &sluice_store::jobs::JobEnd { ok: true, outcome: "ok", backup: None, export: None }, &entry("job.finish")).await.unwrap();
    assert_eq!(s.get_ticket(&a.ticket_id).await.unwrap().state, S::Running, "one target still runs");
    assert!(
        matches!(
            s.finish_job(&a.id, "w1", &sluice_store::jobs::JobEnd { ok: true, outcome: "ok", backup: None, export: None }, &entry("job.finish")).await,
            Err(StoreError::Stale { .. })
        ),
        "finished once"
    );
    // b's server dies: its lease runs out, and the next lease call declares it unknown and fails its ticket.
    sqlx::query("UPDATE jobs SET lease_until = 1 WHERE id = $1").bind(&b.id).execute(s.pool()).await.unwrap();
    let c = s.lease_job("w3", 60_000, 1).await.unwrap().expect("the waiting job is free to run now");
    let b = s.get_job(&b.id).await.unwrap();
    assert_eq!(b.state, JobState::Unknown);
    assert!(b.outcome.unwrap().contains("unknown"));
    assert!(!s.heartbeat(&b.id, "w2", 60_000, None).await.unwrap(), "a dead lease cannot be revived");
    let tickets: Vec<_> = [a.ticket_id.clone(), c.ticket_id.clone()].into_iter().collect();
    let first = s.get_ticket(&tickets[0]).await.unwrap();
    assert_eq!(first.state, S::Failed, "{first:?}");
    s.finish_job(&c.id, "w3", &sluice_store::jobs::JobEnd { ok: true, outcome: "ok", backup: None, export: None }, &entry("job.finish")).await.unwrap();
    assert_eq!(s.get_ticket(&c.ticket_id).await.unwrap().state, S::Done);
    let history = s.ticket_history(&c.ticket_id).await.unwrap();
    assert_eq!(history.last().unwrap().kind, "succeed");
}

/// Polls `check` until it holds, for up to ten seconds; the caches of another server follow a write
/// when its notification arrives, which is soon but not at once.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !check().await {
        assert!(std::time::Instant::now() < until, "after 10 s: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Two servers on one PostgreSQL store, both serving from their read caches: a token revoked, a ticket
/// changed or an instance added on one is seen by the other once the commit's notification arrives; a
/// change that was never announced (the listener was away) does not survive the listener coming back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_servers_keep_each_others_caches_coherent() {
    let a = fixture(Kind::Postgres).await;
    let b = Store::open(OpenOptions { location: a.location.clone(), key: a.key.clone(), max_connections: 4, read_cache: true }).await.unwrap().store;
    for (name, s) in [("a", &a.store), ("b", &b)] {
        eventually(&format!("server {name}'s caches come on"), async || s.ticket_generation().is_some()).await;
    }
    let u = a.store.create_user("carol", Role::Developer, &entry("user.create")).await.unwrap();
    let (tok, clear) = a.store.create_token(&u.id, "ci", None, None, &entry("token.create")).await.unwrap();
    assert!(b.authenticate(clear.expose()).await.unwrap().is_some(), "b resolves (and caches) the token");
    a.store.delete_token(&tok.id, &entry("token.delete")).await.unwrap();
    assert!(a.store.authenticate(clear.expose()).await.unwrap().is_none(), "the server that revoked it refuses it at once");
    eventually("b refuses the revoked token", async || b.authenticate(clear.expose()).await.unwrap().is_none()).await;

    let before = b.ticket_generation().unwrap();
    let (project, inst) = tickets_support::project_with_instance(&a.store, "coh").await;
    let listed = |s: &Store| {
        let s = s.clone();
        async move { s.instance_page(&InstanceFilter { limit: 50, after: None, environment: None, engine: None }).await.unwrap().items.len() }
    };
    assert_eq!(listed(&b).await, 1, "b lists (and caches) the registry");
    a.store.create_ticket(&tickets_support::new_ticket(&project, &inst, &u.id, None), &entry("ticket.create")).await.unwrap();
    eventually("b's tickets generation moves", async || b.ticket_generation().is_some_and(|g| g != before)).await;
    a.store.create_instance(instance("coh-second"), &entry("instance.create")).await.unwrap();
    eventually("b lists the new instance", async || listed(&b).await == 2).await;

    // A change nobody announced (as if made while the listener was away): b's cache still holds the old
    // token; once b's listener is cut and comes back, the cache starts empty and the token is refused.
    let (_, clear) = a.store.create_token(&u.id, "ci2", None, None, &entry("token.create")).await.unwrap();
    assert!(b.authenticate(clear.expose()).await.unwrap().is_some());
    sqlx::query("DELETE FROM api_tokens WHERE name = 'ci2'").execute(a.store.pool()).await.unwrap();
    assert!(b.authenticate(clear.expose()).await.unwrap().is_some(), "an unannounced change is not seen through the cache");
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'sluice-cache-listener' AND datname = current_database()")
        .execute(a.store.pool())
        .await
        .unwrap();
    eventually("b refuses the token after its listener came back", async || b.authenticate(clear.expose()).await.unwrap().is_none()).await;
    eventually("b's caches come back on", async || b.ticket_generation().is_some()).await;
}

/// A request cancelled mid-transaction (a client that disconnects, a stopped worker) must not leave its pooled
/// connection inside a transaction. On SQLite that is `BEGIN IMMEDIATE`: the file's write lock, held until the
/// pool closes, and every other writer (another server, `sluice audit verify`, the CLI) fails with "database is
/// locked". On PostgreSQL the next borrower's statements would run, uncommitted, inside it. sqlx 0.8 has such
/// windows inside `begin` (sqlx issues #3932, #4385).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_writes_cancelled_at_any_point_leave_no_transaction_behind() {
    writes_cancelled_at_any_point_leave_no_transaction_behind(Kind::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_writes_cancelled_at_any_point_leave_no_transaction_behind() {
    writes_cancelled_at_any_point_leave_no_transaction_behind(Kind::Postgres).await
}

async fn writes_cancelled_at_any_point_leave_no_transaction_behind(kind: Kind) {
    let postgres = matches!(kind, Kind::Postgres);
    let f = fixture(kind).await;
    // How long a whole write takes here; cancellation points are spread over eight times that, as cancelled writes slow the next ones.
    let started = std::time::Instant::now();
    for i in 0..20 {
        f.store.create_user(&format!("timed-{i}"), Role::Viewer, &entry("user.create")).await.unwrap();
    }
    let write_time = started.elapsed() / 20;
    let rounds = 2000u32;
    for i in 0..rounds {
        let name = format!("cancelled-{i}");
        let audit = entry("user.create");
        let write = f.store.create_user(&name, Role::Viewer, &audit);
        // Dropped at a point spread over the write: inside acquire, BEGIN, the writes or COMMIT.
        let cancel_at = std::time::Instant::now() + write_time * 8 * i / rounds;
        tokio::select! {
            _ = write => {}
            _ = async { while std::time::Instant::now() < cancel_at { tokio::task::yield_now().await } } => {}
        }
    }
    // The cancellation points must span the whole write: some finished, some did not.
    let finished = f.store.list_users().await.unwrap().len() - 20;
    assert!(finished > 0 && finished < rounds as usize, "{finished} of {rounds} writes finished; the cancellation points do not span the write");
    if postgres {
        let stranded = async || {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'")
                .fetch_one(f.store.pool())
                .await
                .unwrap();
            n == 0
        };
        eventually("no pooled connection is left idle in a transaction", stranded).await;
    }
    // Another store on the same database (as a second process would be) must be able to write.
    let other = Store::open(OpenOptions { location: f.location.clone(), key: f.key.clone(), max_connections: 1, read_cache: false }).await.unwrap().store;
    let started = std::time::Instant::now();
    other
        .create_user("after", Role::Viewer, &entry("user.create"))
        .await
        .unwrap_or_else(|e| panic!("a cancelled write left the write lock held ({e}) after {:?}", started.elapsed()));
}
