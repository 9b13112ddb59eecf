//! Access decisions: may this request receive this file or feed?
//!
//! Every media request passes through [`decide`] before a byte is read. Today only public content
//! exists for anonymous requests; members-only content is answered as not found, so its existence
//! does not leak. Accounts and personal feed tokens will extend [`Credentials`].

use crate::catalog::Access;

/// What the request proved about its sender.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Credentials {
    #[default]
    Anonymous,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessDecision {
    Allow,
    /// Answer 404, exactly as for a file that does not exist.
    Hide,
}

pub fn decide(required: Access, who: Credentials) -> AccessDecision {
    match (required, who) {
        (Access::Public, _) => AccessDecision::Allow,
        (Access::Members, Credentials::Anonymous) => AccessDecision::Hide,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_sees_public_only() {
        assert_eq!(
            decide(Access::Public, Credentials::Anonymous),
            AccessDecision::Allow
        );
        assert_eq!(
            decide(Access::Members, Credentials::Anonymous),
            AccessDecision::Hide
        );
    }
}
