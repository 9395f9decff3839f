//! The access decision: a pure function of the request, the time and the
//! patient's consents. No I/O, no clock; the ledger
//! ([`super::Ledger::decide`]) gathers the inputs.
//!
//! # Rules
//!
//! 1. The physician must hold a role the data category requires
//!    ([`RolePolicy`]); otherwise [`DenyReason::RoleNotAllowed`].
//! 2. Only the request's patient's records that cover the requested action
//!    are considered; none gives [`DenyReason::NoConsent`].
//! 3. A record *matches* when it names the facility, the purpose and the
//!    category, covers the visit, is in its period and is not revoked.
//! 4. A matching **deny** wins over every permit ([`DenyReason::DecisionDeny`]),
//!    as in FHIR Consent.
//! 5. Otherwise the most recently created matching permit permits.
//! 6. Otherwise the denial names the check that the closest record failed,
//!    in this order: facility, purpose, category, visit, not yet valid,
//!    expired, revoked, the patient's login.
//!
//! When the patient logged in at the requesting side
//! ([`AccessRequest::patient_login`]), a record matches only if it names that
//! login's card ([`ConsentRecord::login`]): another person's card, present
//! beside the physician, does not stand for this patient.

use crate::cert::{CertError, Profile, Purpose, Role, VerifiedChain};

use super::record::{
    ConsentDecision, ConsentPurpose, ConsentRecord, Coverage, DataCategory, FacilityId, PatientId,
    RecordId, Scope, VisitId,
};

/// A physician whose HPKI certificate was verified, with the roles it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Physician {
    /// An identifier for the audit trail: the certificate's subject, or a
    /// pseudonym of it.
    pub id: String,
    /// Roles from hcRole.
    pub roles: Vec<Role>,
}

impl Physician {
    /// The physician of a chain verified for [`Purpose::HpkiAuth`] or
    /// [`Purpose::HpkiSign`]: the profile is checked again here, the id is
    /// the leaf's subject and the roles are its hcRoles.
    pub fn from_chain(profile: &Profile, chain: &VerifiedChain) -> Result<Self, CertError> {
        if !matches!(chain.purpose(), Purpose::HpkiAuth | Purpose::HpkiSign) {
            return Err(CertError::Policy {
                subject: chain.leaf().subject().to_owned(),
                purpose: chain.purpose(),
                needed: "an HPKI purpose".to_owned(),
            });
        }
        profile.check(chain)?;
        Ok(Physician {
            id: chain.leaf().subject().to_owned(),
            roles: profile.roles(chain.leaf())?,
        })
    }
}

/// Who wants what, for which patient, from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRequest {
    /// The requesting physician.
    pub physician: Physician,
    /// The facility the request comes from (from the link's certificate).
    pub facility: FacilityId,
    /// The patient's pseudonym.
    pub patient: PatientId,
    /// The data asked for.
    pub category: DataCategory,
    /// Why.
    pub purpose: ConsentPurpose,
    /// The action: [`Scope::Disclose`] to view across the link.
    pub action: Scope,
    /// The visit the data belongs to, when known; a per-visit consent
    /// needs it.
    pub visit: Option<VisitId>,
    /// The pseudonym of the JPKI authentication certificate the patient
    /// logged in with at the requesting side, when they did.
    pub patient_login: Option<PatientId>,
}

/// A consent record as the ledger holds it, with its revocation time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentState {
    /// The verified record.
    pub record: ConsentRecord,
    /// When the patient revoked it (the revocation's `created`), if ever.
    pub revoked_at: Option<i64>,
}

/// The outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed by this consent record.
    Permit {
        /// The record that permits.
        consent_id: RecordId,
    },
    /// Refused, and why.
    Deny(DenyReason),
}

/// Why access is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DenyReason {
    /// The patient has no consent covering the action.
    NoConsent,
    /// Consents exist, but for other facilities.
    OtherFacility,
    /// Consents exist for this facility, but for other purposes.
    OtherPurpose,
    /// Consents exist, but not for this data category.
    CategoryNotCovered,
    /// The consent is per visit and names another visit (or none was given).
    VisitMismatch,
    /// The consent's period has not started.
    NotYetValid,
    /// The consent's period has ended.
    Expired,
    /// The patient revoked the consent.
    Revoked,
    /// The physician's role may not see this category.
    RoleNotAllowed,
    /// The patient refused (a matching deny record).
    DecisionDeny,
    /// The patient who logged in is not the one whose card the consent
    /// names (or the consent names no card).
    LoginNotBound,
}

impl std::fmt::Display for DenyReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DenyReason::NoConsent => "no consent",
            DenyReason::OtherFacility => "consent is for other facilities",
            DenyReason::OtherPurpose => "consent is for other purposes",
            DenyReason::CategoryNotCovered => "data category not covered",
            DenyReason::VisitMismatch => "consent is for another visit",
            DenyReason::NotYetValid => "consent not yet valid",
            DenyReason::Expired => "consent expired",
            DenyReason::Revoked => "consent revoked",
            DenyReason::RoleNotAllowed => "role not allowed for this data category",
            DenyReason::DecisionDeny => "the patient refused",
            DenyReason::LoginNotBound => "the patient's card is not the one the consent names",
        })
    }
}

/// Which roles may see which category. The default: endoscope video and
/// pathology images need a Medical Doctor or Dentist; the visit history also
/// admits Pharmacists and Nurses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolePolicy {
    /// Allowed roles per category; a category with no entry is refused to all.
    pub allowed: Vec<(DataCategory, Vec<Role>)>,
}

impl Default for RolePolicy {
    fn default() -> Self {
        let clinicians = vec![Role::MedicalDoctor, Role::Dentist];
        let all = vec![
            Role::MedicalDoctor,
            Role::Dentist,
            Role::Pharmacist,
            Role::Nurse,
        ];
        RolePolicy {
            allowed: vec![
                (DataCategory::EndoscopeVideo, clinicians.clone()),
                (DataCategory::PathologyImages, clinicians),
                (DataCategory::VisitHistory, all),
            ],
        }
    }
}

impl RolePolicy {
    /// Whether any of `roles` may see `category`.
    pub fn allows(&self, category: DataCategory, roles: &[Role]) -> bool {
        self.allowed
            .iter()
            .filter(|(c, _)| *c == category)
            .any(|(_, allowed)| roles.iter().any(|r| allowed.contains(r)))
    }
}

/// [`decide_with`] under the default [`RolePolicy`]. `now` is unix seconds.
pub fn decide(request: &AccessRequest, now: i64, consents: &[ConsentState]) -> Decision {
    decide_with(&RolePolicy::default(), request, now, consents)
}

/// Decides `request` at `now` (unix seconds) from `consents` under `roles`,
/// following the rules in the module docs.
pub fn decide_with(
    roles: &RolePolicy,
    request: &AccessRequest,
    now: i64,
    consents: &[ConsentState],
) -> Decision {
    if !roles.allows(request.category, &request.physician.roles) {
        return Decision::Deny(DenyReason::RoleNotAllowed);
    }
    let mut best_miss: Option<DenyReason> = None;
    let mut permit: Option<&ConsentRecord> = None;
    let candidates = consents.iter().filter(|c| {
        c.record.patient == request.patient && c.record.scope.contains(&request.action)
    });
    for state in candidates {
        match mismatch(request, now, state) {
            Some(reason) => {
                if best_miss.is_none_or(|b| rank(reason) > rank(b)) {
                    best_miss = Some(reason);
                }
            }
            None => match state.record.decision {
                ConsentDecision::Deny => return Decision::Deny(DenyReason::DecisionDeny),
                ConsentDecision::Permit => {
                    if permit.is_none_or(|p| state.record.created > p.created) {
                        permit = Some(&state.record);
                    }
                }
            },
        }
    }
    match (permit, best_miss) {
        (Some(p), _) => Decision::Permit {
            consent_id: p.id.clone(),
        },
        (None, Some(reason)) => Decision::Deny(reason),
        (None, None) => Decision::Deny(DenyReason::NoConsent),
    }
}

/// How far a record got through the checks (higher: closer to matching).
fn rank(reason: DenyReason) -> u8 {
    match reason {
        DenyReason::OtherFacility => 1,
        DenyReason::OtherPurpose => 2,
        DenyReason::CategoryNotCovered => 3,
        DenyReason::VisitMismatch => 4,
        DenyReason::NotYetValid => 5,
        DenyReason::Expired => 6,
        DenyReason::Revoked => 7,
        DenyReason::LoginNotBound => 8,
        DenyReason::NoConsent | DenyReason::RoleNotAllowed | DenyReason::DecisionDeny => 0,
    }
}

/// The first check `state` fails for `request` at `now`, or `None` if it
/// matches.
fn mismatch(request: &AccessRequest, now: i64, state: &ConsentState) -> Option<DenyReason> {
    let r = &state.record;
    if !r.grantees.contains(&request.facility) {
        return Some(DenyReason::OtherFacility);
    }
    if !r.purposes.contains(&request.purpose) {
        return Some(DenyReason::OtherPurpose);
    }
    if !r.categories.contains(&request.category) {
        return Some(DenyReason::CategoryNotCovered);
    }
    if let Coverage::PerVisit(visit) = &r.coverage
        && request.visit.as_ref() != Some(visit)
    {
        return Some(DenyReason::VisitMismatch);
    }
    if now < r.period.start {
        return Some(DenyReason::NotYetValid);
    }
    if now >= r.period.end {
        return Some(DenyReason::Expired);
    }
    if state.revoked_at.is_some_and(|t| t <= now) {
        return Some(DenyReason::Revoked);
    }
    if let Some(login) = &request.patient_login
        && r.login.as_ref() != Some(login)
    {
        return Some(DenyReason::LoginNotBound);
    }
    None
}
