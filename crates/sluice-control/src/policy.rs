//! Who may do what: one table of permissions per role, and one table of routes with the permission each
//! needs and the audit action it records. The auth middleware refuses any route missing from the table, so a
//! new route is closed until someone decides who may call it.

use axum::http::Method;
use sluice_core::Role;

/// A capability a route requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// No token needed (health probes only).
    Public,
    /// Any valid token: who am I, the API description, metrics.
    Authenticated,
    InstanceRead,
    InstanceWrite,
    InstanceCheck,
    AuditRead,
    UserAdmin,
    PipelineRead,
    PipelineWrite,
    /// Projects the caller belongs to (the handler scopes what is seen).
    ProjectRead,
    ProjectAdmin,
    /// Tickets of the caller's projects (the handler scopes; the project role decides each action).
    TicketRead,
    TicketWrite,
    FlowRead,
    FlowAdmin,
    ChannelRead,
    ChannelAdmin,
    /// The backup catalog, policies and repositories (names only); the handler scopes backups to visible
    /// instances.
    BackupRead,
    /// Policies, backing up now, verifying, pinning, deleting backups.
    BackupWrite,
    /// Repositories: they point the server at storage (admin).
    BackupRepoAdmin,
    /// The Prometheus-compatible query API; the handler scopes series to visible instances.
    MetricsRead,
    /// Alerts (scoped to visible instances), rules and silences.
    AlertRead,
    /// Alert rules, silences, and posting Alertmanager webhooks.
    AlertWrite,
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Public => "public",
            Permission::Authenticated => "authenticated",
            Permission::InstanceRead => "instance.read",
            Permission::InstanceWrite => "instance.write",
            Permission::InstanceCheck => "instance.check",
            Permission::AuditRead => "audit.read",
            Permission::UserAdmin => "user.admin",
            Permission::PipelineRead => "pipeline.read",
            Permission::PipelineWrite => "pipeline.write",
            Permission::ProjectRead => "project.read",
            Permission::ProjectAdmin => "project.admin",
            Permission::TicketRead => "ticket.read",
            Permission::TicketWrite => "ticket.write",
            Permission::FlowRead => "flow.read",
            Permission::FlowAdmin => "flow.admin",
            Permission::ChannelRead => "channel.read",
            Permission::ChannelAdmin => "channel.admin",
            Permission::BackupRead => "backup.read",
            Permission::BackupWrite => "backup.write",
            Permission::BackupRepoAdmin => "backup.repository.admin",
            Permission::MetricsRead => "metrics.query",
            Permission::AlertRead => "alert.read",
            Permission::AlertWrite => "alert.write",
        }
    }
}

/// The role table. Reading the registry is open to every role; changing it is for admins and DBAs; the
/// audit log is for admins and auditors; users and tokens are for admins.
pub fn allows(role: Role, p: Permission) -> bool {
    use Permission::*;
    use Role::*;
    match p {
        Public | Authenticated | InstanceRead | PipelineRead | ProjectRead | TicketRead | FlowRead | BackupRead | MetricsRead | AlertRead => true,
        // Every role may act on tickets through its project role, except the read-only auditor.
        TicketWrite => !matches!(role, Auditor),
        ProjectAdmin | FlowAdmin | ChannelAdmin | BackupRepoAdmin => matches!(role, Admin),
        InstanceWrite | InstanceCheck | PipelineWrite | BackupWrite | AlertWrite => matches!(role, Admin | Dba),
        AuditRead | ChannelRead => matches!(role, Admin | Auditor),
        UserAdmin => matches!(role, Admin),
    }
}

/// One API route: method, axum path pattern, what it needs, and the audit action it records when it
/// mutates.
#[derive(Debug)]
pub struct RouteRule {
    pub method: Method,
    pub path: &'static str,
    pub permission: Permission,
    pub action: &'static str,
}

macro_rules! routes {
    ($($method:ident $path:literal => $perm:ident, $action:literal;)+) => {
        /// Every route the server answers.
        pub fn route_table() -> Vec<RouteRule> {
            vec![$(RouteRule { method: Method::$method, path: $path, permission: Permission::$perm, action: $action }),+]
        }
    };
}

routes! {
    GET    "/healthz"                          => Public,        "health.read";
    GET    "/readyz"                           => Public,        "health.read";
    GET    "/metrics"                          => Authenticated, "metrics.read";
    GET    "/api/v1/openapi.json"              => Authenticated, "openapi.read";
    GET    "/api/v1/me"                        => Authenticated, "me.read";
    GET    "/api/v1/instances"                 => InstanceRead,  "instance.list";
    POST   "/api/v1/instances"                 => InstanceWrite, "instance.create";
    GET    "/api/v1/instances/{id}"            => InstanceRead,  "instance.read";
    PATCH  "/api/v1/instances/{id}"            => InstanceWrite, "instance.update";
    DELETE "/api/v1/instances/{id}"            => InstanceWrite, "instance.delete";
    POST   "/api/v1/instances/{id}/check"      => InstanceCheck, "instance.check";
    GET    "/api/v1/pipelines"                 => PipelineRead,  "pipeline.list";
    POST   "/api/v1/pipelines"                 => PipelineWrite, "pipeline.create";
    GET    "/api/v1/pipelines/{id}"            => PipelineRead,  "pipeline.read";
    DELETE "/api/v1/pipelines/{id}"            => PipelineWrite, "pipeline.delete";
    POST   "/api/v1/pipelines/{id}/start"      => PipelineWrite, "pipeline.start";
    POST   "/api/v1/pipelines/{id}/stop"       => PipelineWrite, "pipeline.stop";
    POST   "/api/v1/review"                    => Authenticated, "review.run";
    GET    "/api/v1/projects"                  => ProjectRead,   "project.list";
    POST   "/api/v1/projects"                  => ProjectAdmin,  "project.create";
    GET    "/api/v1/projects/{id}"             => ProjectRead,   "project.read";
    PUT    "/api/v1/projects/{id}/members/{user}" => ProjectAdmin, "project.member.set";
    DELETE "/api/v1/projects/{id}/members/{user}" => ProjectAdmin, "project.member.remove";
    POST   "/api/v1/projects/{id}/instances"   => ProjectAdmin,  "project.instance.add";
    GET    "/api/v1/tickets"                   => TicketRead,    "ticket.list";
    POST   "/api/v1/tickets"                   => TicketWrite,   "ticket.create";
    GET    "/api/v1/tickets/{id}"              => TicketRead,    "ticket.read";
    PATCH  "/api/v1/tickets/{id}"              => TicketWrite,   "ticket.edit";
    POST   "/api/v1/tickets/{id}/submit"       => TicketWrite,   "ticket.submit";
    POST   "/api/v1/tickets/{id}/approve"      => TicketWrite,   "ticket.approve";
    POST   "/api/v1/tickets/{id}/reject"       => TicketWrite,   "ticket.reject";
    POST   "/api/v1/tickets/{id}/cancel"       => TicketWrite,   "ticket.cancel";
    POST   "/api/v1/tickets/{id}/comments"     => TicketWrite,   "ticket.comment";
    POST   "/api/v1/tickets/{id}/override"     => TicketWrite,   "ticket.override";
    POST   "/api/v1/tickets/{id}/run"          => TicketWrite,   "ticket.run";
    POST   "/api/v1/tickets/{id}/rollback"     => TicketWrite,   "ticket.rollback";
    POST   "/api/v1/tickets/{id}/export-link"  => TicketWrite,   "ticket.export_link";
    GET    "/api/v1/exports/{token}"           => TicketRead,    "export.download";
    GET    "/api/v1/flows"                     => FlowRead,      "flow.list";
    POST   "/api/v1/flows"                     => FlowAdmin,     "flow.create";
    GET    "/api/v1/flows/{id}"                => FlowRead,      "flow.read";
    PUT    "/api/v1/flows/{id}"                => FlowAdmin,     "flow.update";
    DELETE "/api/v1/flows/{id}"                => FlowAdmin,     "flow.delete";
    GET    "/api/v1/windows"                   => FlowRead,      "window.list";
    POST   "/api/v1/windows"                   => FlowAdmin,     "window.create";
    DELETE "/api/v1/windows/{id}"              => FlowAdmin,     "window.delete";
    GET    "/api/v1/channels"                  => ChannelRead,   "channel.list";
    POST   "/api/v1/channels"                  => ChannelAdmin,  "channel.create";
    GET    "/api/v1/channels/{id}"             => ChannelRead,   "channel.read";
    DELETE "/api/v1/channels/{id}"             => ChannelAdmin,  "channel.delete";
    GET    "/api/v1/channels/{id}/deliveries"  => ChannelRead,   "channel.deliveries";
    POST   "/api/v1/channels/{id}/test"        => ChannelAdmin,  "channel.test";
    GET    "/api/v1/backup/repositories"       => BackupRead,    "backup.repository.list";
    POST   "/api/v1/backup/repositories"       => BackupRepoAdmin, "backup.repository.create";
    GET    "/api/v1/backup/repositories/{id}"  => BackupRead,    "backup.repository.read";
    DELETE "/api/v1/backup/repositories/{id}"  => BackupRepoAdmin, "backup.repository.delete";
    POST   "/api/v1/backup/repositories/{id}/rotate-key" => BackupRepoAdmin, "backup.repository.rotate_key";
    GET    "/api/v1/backup/archives"           => BackupRead,    "backup.archive.list";
    GET    "/api/v1/backup/policies"           => BackupRead,    "backup.policy.list";
    POST   "/api/v1/backup/policies"           => BackupWrite,   "backup.policy.create";
    GET    "/api/v1/backup/policies/{id}"      => BackupRead,    "backup.policy.read";
    PUT    "/api/v1/backup/policies/{id}"      => BackupWrite,   "backup.policy.update";
    DELETE "/api/v1/backup/policies/{id}"      => BackupWrite,   "backup.policy.delete";
    GET    "/api/v1/backups"                   => BackupRead,    "backup.list";
    POST   "/api/v1/backups"                   => BackupWrite,   "backup.run";
    GET    "/api/v1/backups/{id}"              => BackupRead,    "backup.read";
    DELETE "/api/v1/backups/{id}"              => BackupWrite,   "backup.delete";
    POST   "/api/v1/backups/{id}/verify"       => BackupWrite,   "backup.verify";
    POST   "/api/v1/backups/{id}/pin"          => BackupWrite,   "backup.pin";
    POST   "/api/v1/backups/{id}/unpin"        => BackupWrite,   "backup.unpin";
    GET    "/api/v1/query"                     => MetricsRead,   "metrics.query";
    POST   "/api/v1/query"                     => MetricsRead,   "metrics.query";
    GET    "/api/v1/query_range"               => MetricsRead,   "metrics.query_range";
    POST   "/api/v1/query_range"               => MetricsRead,   "metrics.query_range";
    GET    "/api/v1/series"                    => MetricsRead,   "metrics.series";
    POST   "/api/v1/series"                    => MetricsRead,   "metrics.series";
    GET    "/api/v1/labels"                    => MetricsRead,   "metrics.labels";
    POST   "/api/v1/labels"                    => MetricsRead,   "metrics.labels";
    GET    "/api/v1/label/{name}/values"       => MetricsRead,   "metrics.label_values";
    GET    "/api/v1/status/buildinfo"          => MetricsRead,   "metrics.buildinfo";
    GET    "/api/v1/metadata"                  => MetricsRead,   "metrics.metadata";
    GET    "/api/v1/alerts"                    => AlertRead,     "alert.list";
    GET    "/api/v1/alerts/{fingerprint}"      => AlertRead,     "alert.get";
    POST   "/api/v1/alerts/alertmanager"       => AlertWrite,    "alert.receive";
    GET    "/api/v1/alert-rules"               => AlertRead,     "alert.rule.list";
    POST   "/api/v1/alert-rules"               => AlertWrite,    "alert.rule.create";
    GET    "/api/v1/alert-rules/{id}"          => AlertRead,     "alert.rule.read";
    PUT    "/api/v1/alert-rules/{id}"          => AlertWrite,    "alert.rule.update";
    DELETE "/api/v1/alert-rules/{id}"          => AlertWrite,    "alert.rule.delete";
    GET    "/api/v1/silences"                  => AlertRead,     "alert.silence.list";
    POST   "/api/v1/silences"                  => AlertWrite,    "alert.silence.create";
    DELETE "/api/v1/silences/{id}"             => AlertWrite,    "alert.silence.expire";
    GET    "/api/v1/audit"                     => AuditRead,     "audit.list";
    GET    "/api/v1/audit/verify"              => AuditRead,     "audit.verify";
    GET    "/api/v1/users"                     => UserAdmin,     "user.list";
    POST   "/api/v1/users"                     => UserAdmin,     "user.create";
    GET    "/api/v1/users/{id}"                => UserAdmin,     "user.read";
    DELETE "/api/v1/users/{id}"                => UserAdmin,     "user.delete";
    POST   "/api/v1/users/{id}/tokens"         => UserAdmin,     "token.create";
    GET    "/api/v1/tokens"                    => UserAdmin,     "token.list";
    DELETE "/api/v1/tokens/{id}"               => UserAdmin,     "token.delete";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_reads_and_only_admin_manages_users() {
        for r in Role::ALL {
            assert!(allows(*r, Permission::InstanceRead));
            assert_eq!(allows(*r, Permission::UserAdmin), *r == Role::Admin);
        }
        assert!(!allows(Role::Developer, Permission::InstanceWrite));
        assert!(allows(Role::Auditor, Permission::AuditRead));
    }

    #[test]
    fn routes_are_unique() {
        let t = route_table();
        let mut seen = std::collections::HashSet::new();
        for r in &t {
            assert!(seen.insert((r.method.clone(), r.path)), "duplicate {} {}", r.method, r.path);
        }
    }
}
