//! Stage two: the profile — certificate policy per purpose, HPKI hcRole.

use std::collections::HashMap;

use x509_parser::extensions::ParsedExtension;

use super::{CertError, ParsedCert, Purpose, VerifiedChain};
use crate::der::{self, OID, SEQUENCE, SET, Tlv};

/// subjectDirectoryAttributes (RFC 5280 §4.2.1.8).
const SUBJECT_DIRECTORY_ATTRIBUTES: &str = "2.5.29.9";

/// ISO 17090 hcRole attribute (`id-hcpki-at-healthcareactor`), the attribute
/// the Japanese HPKI certificate profile carries in subjectDirectoryAttributes.
pub const HC_ROLE_ISO17090: &str = "1.0.17090.0.1";

/// JPKI signing certificate policy (J-LIS, 署名用電子証明書).
pub const JPKI_SIGN_POLICY: &str = "1.2.392.200149.8.5.1.1";
/// JPKI user authentication certificate policy (J-LIS, 利用者証明用電子証明書).
pub const JPKI_AUTH_POLICY: &str = "1.2.392.200149.8.5.1.3";

/// A professional role, as decoded from hcRole through the configured names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// 医師.
    MedicalDoctor,
    /// 歯科医師.
    Dentist,
    /// 薬剤師.
    Pharmacist,
    /// 看護師.
    Nurse,
}

impl Role {
    /// Every role, with its configuration name.
    pub const ALL: [(Role, &'static str); 4] = [
        (Role::MedicalDoctor, "medical-doctor"),
        (Role::Dentist, "dentist"),
        (Role::Pharmacist, "pharmacist"),
        (Role::Nurse, "nurse"),
    ];

    /// The configuration name (`medical-doctor`, `dentist`, `pharmacist`, `nurse`).
    pub fn name(self) -> &'static str {
        Role::ALL
            .iter()
            .find(|(r, _)| *r == self)
            .map_or("", |(_, n)| n)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    /// A configuration name; the error lists them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .iter()
            .find(|(_, n)| *n == s)
            .map(|(r, _)| *r)
            .ok_or_else(|| {
                let names: Vec<&str> = Role::ALL.iter().map(|(_, n)| *n).collect();
                format!("{s:?} is not a role ({})", names.join(", "))
            })
    }
}

/// What the certificate policies must contain for one purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyRule {
    /// One of these dotted OIDs must be present.
    AnyOf(Vec<String>),
    /// No policy requirement (facility CAs that issue no policy OID).
    NotRequired,
}

/// OIDs and role names; everything here is configuration.
#[derive(Debug, Clone)]
pub struct ProfileConfig {
    /// Policy rule per purpose. A purpose with no entry is refused (fail closed).
    pub policies: HashMap<Purpose, PolicyRule>,
    /// The hcRole attribute type inside subjectDirectoryAttributes.
    pub hc_role_attribute: String,
    /// Role names accepted from codeDataValue or codeDataFreeText, compared
    /// after trimming, ASCII case-insensitively.
    pub role_names: Vec<(String, Role)>,
}

impl Default for ProfileConfig {
    /// JPKI policies are J-LIS's published OIDs; facility certificates need
    /// no policy. **HPKI policy OIDs have no default**: they differ per HPKI
    /// CA and CP version, so HpkiSign/HpkiAuth are refused until the
    /// deployment configures them. hcRole is ISO 17090's `1.0.17090.0.1`;
    /// role names are the English labels and the Japanese ones.
    fn default() -> Self {
        let mut policies = HashMap::new();
        policies.insert(
            Purpose::JpkiSign,
            PolicyRule::AnyOf(vec![JPKI_SIGN_POLICY.to_owned()]),
        );
        policies.insert(
            Purpose::JpkiAuth,
            PolicyRule::AnyOf(vec![JPKI_AUTH_POLICY.to_owned()]),
        );
        policies.insert(Purpose::Facility, PolicyRule::NotRequired);
        let role_names = [
            ("Medical Doctor", Role::MedicalDoctor),
            ("医師", Role::MedicalDoctor),
            ("Dentist", Role::Dentist),
            ("歯科医師", Role::Dentist),
            ("Pharmacist", Role::Pharmacist),
            ("薬剤師", Role::Pharmacist),
            ("Nurse", Role::Nurse),
            ("看護師", Role::Nurse),
        ]
        .into_iter()
        .map(|(n, r)| (n.to_owned(), r))
        .collect();
        ProfileConfig {
            policies,
            hc_role_attribute: HC_ROLE_ISO17090.to_owned(),
            role_names,
        }
    }
}

/// Stage-two checks over a [`VerifiedChain`].
#[derive(Debug, Clone)]
pub struct Profile {
    config: ProfileConfig,
}

impl Profile {
    /// Checks with this configuration.
    pub fn new(config: ProfileConfig) -> Self {
        Profile { config }
    }

    /// The configuration.
    pub fn config(&self) -> &ProfileConfig {
        &self.config
    }

    /// The leaf's certificate policies contain the purpose's OID; for HPKI
    /// purposes the leaf also carries at least one hcRole.
    pub fn check(&self, chain: &VerifiedChain) -> Result<(), CertError> {
        let leaf = chain.leaf();
        let purpose = chain.purpose();
        self.check_policy(leaf, purpose)?;
        if matches!(purpose, Purpose::HpkiSign | Purpose::HpkiAuth)
            && hc_roles(leaf, &self.config.hc_role_attribute)?.is_empty()
        {
            return Err(CertError::MissingRole {
                subject: leaf.subject().to_owned(),
            });
        }
        Ok(())
    }

    /// Refuses `cert` unless its policies satisfy the rule for `purpose`.
    pub fn check_policy(&self, cert: &ParsedCert, purpose: Purpose) -> Result<(), CertError> {
        let refuse = |needed: String| CertError::Policy {
            subject: cert.subject().to_owned(),
            purpose,
            needed,
        };
        let wanted = match self.config.policies.get(&purpose) {
            None => return Err(refuse("(none configured)".to_owned())),
            Some(PolicyRule::NotRequired) => return Ok(()),
            Some(PolicyRule::AnyOf(w)) => w,
        };
        let held = policies(cert)?;
        if held.iter().any(|p| wanted.contains(p)) {
            Ok(())
        } else {
            Err(refuse(wanted.join(" | ")))
        }
    }

    /// The roles of `cert` mapped through the configured names (unknown names
    /// are dropped).
    pub fn roles(&self, cert: &ParsedCert) -> Result<Vec<Role>, CertError> {
        let names = hc_roles(cert, &self.config.hc_role_attribute)?;
        let mut out = Vec::new();
        for n in &names {
            if let Some(r) = self.role_of(n)
                && !out.contains(&r)
            {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Refuses a certificate without hcRole, or whose roles include none of
    /// `allowed`.
    pub fn require_role(&self, cert: &ParsedCert, allowed: &[Role]) -> Result<Role, CertError> {
        let names = hc_roles(cert, &self.config.hc_role_attribute)?;
        if names.is_empty() {
            return Err(CertError::MissingRole {
                subject: cert.subject().to_owned(),
            });
        }
        if let Some(r) = names
            .iter()
            .filter_map(|n| self.role_of(n))
            .find(|r| allowed.contains(r))
        {
            return Ok(r);
        }
        Err(CertError::RoleNotAllowed {
            subject: cert.subject().to_owned(),
            held: names.join(", "),
            needed: format!("{allowed:?}"),
        })
    }

    fn role_of(&self, name: &str) -> Option<Role> {
        let name = name.trim();
        self.config
            .role_names
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, r)| *r)
    }
}

/// The dotted policy OIDs of the certificatePolicies extension (empty if absent).
fn policies(cert: &ParsedCert) -> Result<Vec<String>, CertError> {
    let x = cert.x509()?;
    let mut out = Vec::new();
    for ext in x.extensions() {
        if let ParsedExtension::CertificatePolicies(ps) = ext.parsed_extension() {
            out.extend(ps.iter().map(|p| p.policy_id.to_id_string()));
        } else if ext.oid.to_id_string() == "2.5.29.32" {
            return Err(CertError::parse(
                "certificatePolicies",
                "extension present but not decodable",
            ));
        }
    }
    Ok(out)
}

/// Role names (codeDataValue and codeDataFreeText) of every HCActor in the
/// hcRole attribute `attr_oid` of subjectDirectoryAttributes.
///
/// Decoded leniently, as profiles differ on tagging: HCActorData may be a SET
/// or SEQUENCE of HCActor; HCActor's `codedData [0]` may be EXPLICIT or
/// IMPLICIT; within CodedData the `[0]` OID is the coding scheme and every
/// other field that holds a string (`[n]` explicit or implicit, or untagged)
/// is taken as a role name. Malformed DER is an error, never a panic.
pub fn hc_roles(cert: &ParsedCert, attr_oid: &str) -> Result<Vec<String>, CertError> {
    let x = cert.x509()?;
    let mut names = Vec::new();
    for ext in x.extensions() {
        if ext.oid.to_id_string() != SUBJECT_DIRECTORY_ATTRIBUTES {
            continue;
        }
        decode_sda(ext.value, attr_oid, &mut names)
            .map_err(|e| CertError::parse("subjectDirectoryAttributes", e))?;
    }
    Ok(names)
}

fn decode_sda(value: &[u8], attr_oid: &str, names: &mut Vec<String>) -> Result<(), &'static str> {
    let outer = der::read_only(value)?;
    if outer.tag != SEQUENCE {
        return Err("not a SEQUENCE of Attribute");
    }
    for attr in der::read_all(outer.value)? {
        if attr.tag != SEQUENCE {
            return Err("Attribute is not a SEQUENCE");
        }
        let parts = der::read_all(attr.value)?;
        let [ty, values] = parts.as_slice() else {
            return Err("Attribute is not { type, values }");
        };
        if ty.tag != OID || values.tag != SET {
            return Err("Attribute type/values mistyped");
        }
        if der::oid_to_string(ty.value)? != attr_oid {
            continue;
        }
        for actor_data in der::read_all(values.value)? {
            if actor_data.tag != SET && actor_data.tag != SEQUENCE {
                return Err("HCActorData is not a SET OF HCActor");
            }
            for actor in der::read_all(actor_data.value)? {
                decode_actor(&actor, names)?;
            }
        }
    }
    Ok(())
}

fn decode_actor(actor: &Tlv<'_>, names: &mut Vec<String>) -> Result<(), &'static str> {
    if actor.tag != SEQUENCE {
        return Err("HCActor is not a SEQUENCE");
    }
    for field in der::read_all(actor.value)? {
        // codedData [0]; regionalHCActorData [1] is ignored.
        if field.context_number() != Some(0) || !field.is_constructed() {
            continue;
        }
        let inner = der::read_all(field.value)?;
        let coded = match inner.as_slice() {
            // EXPLICIT: [0] { SEQUENCE { ... } }
            [seq] if seq.tag == SEQUENCE => der::read_all(seq.value)?,
            // IMPLICIT: the fields directly.
            _ => inner,
        };
        decode_coded_data(&coded, names)?;
    }
    Ok(())
}

fn decode_coded_data(fields: &[Tlv<'_>], names: &mut Vec<String>) -> Result<(), &'static str> {
    for f in fields {
        let text = match f.context_number() {
            // codingSchemeReference
            Some(0) => None,
            Some(_) if f.is_constructed() => {
                let inner = der::read_only(f.value)?;
                der::string_value(&inner)
            }
            Some(_) => std::str::from_utf8(f.value).ok().map(str::to_owned),
            None => der::string_value(f),
        };
        if let Some(t) = text {
            let t = t.trim();
            if !t.is_empty() {
                names.push(t.to_owned());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_have_names() {
        for (role, name) in Role::ALL {
            assert_eq!(name.parse::<Role>(), Ok(role));
            assert_eq!(role.to_string(), name);
        }
        let e = "Surgeon".parse::<Role>().unwrap_err();
        assert!(
            e.contains("medical-doctor, dentist, pharmacist, nurse"),
            "{e}"
        );
    }
}
