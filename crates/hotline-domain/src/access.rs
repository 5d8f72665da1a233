//! Who may use the system: the roles of API tokens, and what a role may see.

use serde::{Deserialize, Serialize};

use crate::event::{Actor, ActorKind};

/// The role of an API token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Hotline desk staff: verify, answer from the knowledge base, triage, dispatch.
    Operator,
    /// Staff of one agency: see and handle only the tickets assigned to it.
    Agency,
    /// Oversees operators and agencies; receives escalations.
    Supervisor,
    /// Manages tokens and runs admin operations.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Operator, Role::Agency, Role::Supervisor, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Agency => "agency",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }

    fn actor_kind(self) -> ActorKind {
        match self {
            Role::Operator => ActorKind::Operator,
            Role::Agency => ActorKind::Agency,
            Role::Supervisor => ActorKind::Supervisor,
            Role::Admin => ActorKind::Admin,
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub role: Role,
    /// The agency an `agency` token is bound to; None for other roles.
    pub agency: Option<String>,
    /// The token's id (stable, recorded in events).
    pub token_id: String,
    /// The token's human name ("Nguyễn Văn A, Sở GTVT"), recorded in events for readers of the timeline.
    pub name: String,
}

impl Principal {
    /// The actor recorded in the events this caller's commands produce.
    pub fn actor(&self) -> Actor {
        Actor {
            kind: self.role.actor_kind(),
            id: self.token_id.clone(),
            name: Some(self.name.clone()),
            agency: self.agency.clone(),
        }
    }

    /// Whether the caller may see a ticket currently assigned to `assigned` (an agency sees only its own).
    pub fn may_see(&self, assigned: Option<&str>) -> bool {
        match self.role {
            Role::Agency => self.agency.is_some() && self.agency.as_deref() == assigned,
            Role::Operator | Role::Supervisor | Role::Admin => true,
        }
    }
}
