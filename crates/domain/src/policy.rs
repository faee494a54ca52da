//! Who may do what. A [`Principal`] is a user acting through a credential: a login session
//! (the user's full rights) or one of its API keys (the owner's rights narrowed by the key's
//! scopes). Visibility rules answer "can this principal see that?"; the server turns an unseen
//! resource into a 404 so existence is never revealed across tenants or owners.

use thiserror::Error;
use uuid::Uuid;

use crate::model::{Actor, ActorType, Role};
use crate::scope::KeywardRight;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A signed-in session (a login JWT, the console's cookie, the operator's CLI): the user's
    /// full rights. `id` is the API session's (the JWT's `jti`); `None` for the others.
    Session { id: Option<Uuid> },
    /// An API key of the user: its rights narrowed to the key's scopes.
    ApiKey {
        key_id: Uuid,
        scopes: crate::scope::Scopes,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: Uuid,
    pub role: Role,
    pub tenant_id: Option<Uuid>,
    pub credential: Credential,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum Forbidden {
    #[error("this credential lacks the {0} scope")]
    MissingRight(&'static str),
    #[error("this action needs the {0} role")]
    Role(&'static str),
    #[error("a key cannot grant the scope {0:?}, which the caller does not hold")]
    ScopeNotHeld(String),
}

impl Principal {
    /// Whether the credential carries `scope`. A session carries every scope.
    pub fn holds(&self, scope: &str) -> bool {
        match &self.credential {
            Credential::Session { .. } => true,
            Credential::ApiKey { scopes, .. } => scopes.contains(scope),
        }
    }

    pub fn require(&self, right: KeywardRight) -> Result<(), Forbidden> {
        if self.holds(right.scope()) {
            Ok(())
        } else {
            Err(Forbidden::MissingRight(right.scope()))
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Installation-wide administration (tenants): admins through `keyward:admin`.
    pub fn require_admin(&self) -> Result<(), Forbidden> {
        self.require(KeywardRight::Admin)?;
        if self.is_admin() {
            Ok(())
        } else {
            Err(Forbidden::Role("admin"))
        }
    }

    /// Keys this principal can see: all (admin), its tenant's (tenant admin), its own (member).
    pub fn sees_key(&self, tenant_id: Option<Uuid>, owner_id: Uuid) -> bool {
        match self.role {
            Role::Admin => true,
            Role::TenantAdmin => {
                owner_id == self.user_id || (tenant_id.is_some() && tenant_id == self.tenant_id)
            }
            Role::Member => owner_id == self.user_id,
        }
    }

    /// Tenants this principal can see: all (admin) or its own.
    pub fn sees_tenant(&self, tenant_id: Uuid) -> bool {
        self.is_admin() || self.tenant_id == Some(tenant_id)
    }

    /// Audit entries this principal can see: all (admin), its tenant's (tenant admin), or those
    /// it did or that are about it (member).
    pub fn sees_audit(
        &self,
        tenant_id: Option<Uuid>,
        actor_user_id: Option<Uuid>,
        subject_user_id: Option<Uuid>,
    ) -> bool {
        match self.role {
            Role::Admin => true,
            Role::TenantAdmin => tenant_id.is_some() && tenant_id == self.tenant_id,
            Role::Member => {
                actor_user_id == Some(self.user_id) || subject_user_id == Some(self.user_id)
            }
        }
    }

    /// Creating a user: admins anywhere; tenant admins in their own tenant, never an admin.
    pub fn may_create_user(&self, role: Role, tenant_id: Option<Uuid>) -> Result<(), Forbidden> {
        self.require(KeywardRight::Admin)?;
        match self.role {
            Role::Admin => Ok(()),
            Role::TenantAdmin
                if role != Role::Admin && tenant_id.is_some() && tenant_id == self.tenant_id =>
            {
                Ok(())
            }
            _ => Err(Forbidden::Role("admin, or tenant_admin of that tenant,")),
        }
    }

    /// Users this principal can see: itself, its tenant's (tenant admin), all (admin). Any
    /// other is answered as if it did not exist.
    pub fn sees_user(&self, user: &crate::model::User) -> bool {
        user.id == self.user_id
            || self.role == Role::Admin
            || (self.role == Role::TenantAdmin
                && self.tenant_id.is_some()
                && user.tenant_id == self.tenant_id)
    }

    /// Managing a user (role, disabling, deleting, setting its password): admins anyone
    /// (themselves included, which the last-admin rule bounds); tenant admins the members of
    /// their tenant. Needs `keyward:admin`.
    pub fn may_manage_user(&self, user: &crate::model::User) -> Result<(), Forbidden> {
        self.require(KeywardRight::Admin)?;
        match self.role {
            Role::Admin => Ok(()),
            Role::TenantAdmin
                if user.role == Role::Member
                    && self.tenant_id.is_some()
                    && user.tenant_id == self.tenant_id =>
            {
                Ok(())
            }
            _ => Err(Forbidden::Role(
                "admin, or tenant_admin of a member's tenant,",
            )),
        }
    }

    /// Giving a user `role`: never above the caller's own.
    pub fn may_assign_role(&self, role: Role) -> Result<(), Forbidden> {
        if role.rank() <= self.role.rank() {
            Ok(())
        } else {
            Err(Forbidden::Role(role.as_str()))
        }
    }

    /// A caller can never grant scopes it does not hold itself.
    pub fn may_grant(&self, scopes: &[impl AsRef<str>]) -> Result<(), Forbidden> {
        match scopes.iter().find(|s| !self.holds(s.as_ref())) {
            Some(s) => Err(Forbidden::ScopeNotHeld(s.as_ref().to_owned())),
            None => Ok(()),
        }
    }

    /// How this principal appears in the audit log.
    pub fn actor(&self, source_ip: Option<String>, request_id: Option<String>) -> Actor {
        let (id, kind) = match &self.credential {
            Credential::Session { .. } => (self.user_id.to_string(), ActorType::Jwt),
            Credential::ApiKey { key_id, .. } => (key_id.to_string(), ActorType::ApiKey),
        };
        Actor {
            id,
            kind,
            user_id: Some(self.user_id),
            source_ip,
            request_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(role: Role, tenant: Option<Uuid>, credential: Credential) -> Principal {
        Principal {
            user_id: Uuid::from_u128(1),
            role,
            tenant_id: tenant,
            credential,
        }
    }

    #[test]
    fn visibility_follows_role() {
        let t = Some(Uuid::from_u128(10));
        let other_t = Some(Uuid::from_u128(11));
        let other_user = Uuid::from_u128(2);
        let admin = principal(Role::Admin, None, Credential::Session { id: None });
        let tadmin = principal(Role::TenantAdmin, t, Credential::Session { id: None });
        let member = principal(Role::Member, t, Credential::Session { id: None });
        assert!(admin.sees_key(other_t, other_user));
        assert!(tadmin.sees_key(t, other_user));
        assert!(!tadmin.sees_key(other_t, other_user));
        assert!(!tadmin.sees_key(None, other_user));
        assert!(member.sees_key(t, member.user_id));
        assert!(!member.sees_key(t, other_user));
    }

    #[test]
    fn keys_are_narrowed_by_scopes() {
        let key = principal(
            Role::Admin,
            None,
            Credential::ApiKey {
                key_id: Uuid::nil(),
                scopes: crate::Scopes::parse(&["keyward:read", "orders"]).unwrap(),
            },
        );
        assert!(key.require(KeywardRight::Read).is_ok());
        assert_eq!(
            key.require(KeywardRight::Write),
            Err(Forbidden::MissingRight("keyward:write"))
        );
        assert!(key.require_admin().is_err());
        assert!(key.may_grant(&["orders"]).is_ok());
        assert_eq!(
            key.may_grant(&["billing"]),
            Err(Forbidden::ScopeNotHeld("billing".into()))
        );
        let session = principal(Role::Member, None, Credential::Session { id: None });
        assert!(session.may_grant(&["anything", "keyward:admin"]).is_ok());
    }

    #[test]
    fn user_creation_rights() {
        let t = Some(Uuid::from_u128(10));
        let tadmin = principal(Role::TenantAdmin, t, Credential::Session { id: None });
        assert!(tadmin.may_create_user(Role::Member, t).is_ok());
        assert!(tadmin.may_create_user(Role::Admin, t).is_err());
        assert!(tadmin
            .may_create_user(Role::Member, Some(Uuid::from_u128(11)))
            .is_err());
        assert!(principal(Role::Member, t, Credential::Session { id: None })
            .may_create_user(Role::Member, t)
            .is_err());
    }
}
