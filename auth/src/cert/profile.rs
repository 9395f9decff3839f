//! Stage two: the profile — certificate policy per purpose, HPKI hcRole.

use std::collections::HashMap;

use x509_parser::extensions::ParsedExtension;

use super::{CertError, ParsedCert, Purpose, VerifiedChain};
use crate::der::{self, OID, SEQUENCE, SET, Tlv};

/// certificatePolicies (RFC 5280 §4.2.1.4).
const CERTIFICATE_POLICIES: &str = "2.5.29.32";
/// anyPolicy: a CA that asserts it vouches for every policy.
pub const ANY_POLICY: &str = "2.5.29.32.0";

/// subjectDirectoryAttributes (RFC 5280 §4.2.1.8).
const SUBJECT_DIRECTORY_ATTRIBUTES: &str = "2.5.29.9";

/// ISO 17090 hcRole attribute (`id-hcpki-at-healthcareactor`), the attribute
/// the Japanese HPKI certificate profile carries in subjectDirectoryAttributes.
pub const HC_ROLE_ISO17090: &str = "1.0.17090.0.1";

/// JPKI signing certificate policy (J-LIS, 署名用電子証明書).
pub const JPKI_SIGN_POLICY: &str = "1.2.392.200149.8.5.1.1";
/// JPKI user authentication certificate policy (J-LIS, 利用者証明用電子証明書).
pub const JPKI_AUTH_POLICY: &str = "1.2.392.200149.8.5.1.3";

/// The Japanese HPKI coding scheme of national qualifications (医師, 歯科医師,
/// 薬剤師, ...): the `codingSchemeReference` under which hcRole codes are
/// taken by default.
pub const HPKI_ROLE_SCHEME: &str = "1.2.392.100495.1.6.1.1";
/// The Japanese HPKI coding scheme of directors (管理者: heads of medical
/// institutions). Not taken unless configured ([`ProfileConfig::role_schemes`]).
pub const HPKI_DIRECTOR_SCHEME: &str = "1.2.392.100495.1.6.1.2";

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
    /// Policy rule per purpose. A purpose with no entry is refused (fail
    /// closed). An `AnyOf` rule must hold on the leaf (one of the OIDs) and
    /// on every CA between it and the trust anchor (one of the OIDs, or
    /// anyPolicy): a CA for pharmacists cannot vouch for a doctors' policy.
    pub policies: HashMap<Purpose, PolicyRule>,
    /// The hcRole attribute type inside subjectDirectoryAttributes.
    pub hc_role_attribute: String,
    /// The `codingSchemeReference` OIDs whose codes are taken as roles
    /// ([`HPKI_ROLE_SCHEME`] by default; add [`HPKI_DIRECTOR_SCHEME`] to take
    /// directors' codes). A code under any other scheme is no role here.
    pub role_schemes: Vec<String>,
    /// Role names accepted from codeDataValue or codeDataFreeText, compared
    /// after trimming, ASCII case-insensitively.
    pub role_names: Vec<(String, Role)>,
}

impl Default for ProfileConfig {
    /// JPKI policies are J-LIS's published OIDs; facility certificates need
    /// no policy. **HPKI policy OIDs have no default**: they differ per HPKI
    /// CA and CP version, so HpkiSign/HpkiAuth are refused until the
    /// deployment configures them. hcRole is ISO 17090's `1.0.17090.0.1`,
    /// its codes taken under [`HPKI_ROLE_SCHEME`]; role names are the
    /// English labels and the Japanese ones.
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
            role_schemes: vec![HPKI_ROLE_SCHEME.to_owned()],
            role_names,
        }
    }
}

/// One ISO 17090 `CodedData` of an hcRole `HCActor`, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HcCode {
    /// `codingSchemeReference`, dotted.
    pub scheme: String,
    /// `codeDataValue` (e.g. "Medical Doctor").
    pub value: Option<String>,
    /// `codeDataFreeText` (e.g. "医師").
    pub free_text: Option<String>,
}

impl HcCode {
    /// The value and the free text, trimmed, those that are not empty.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        [self.value.as_deref(), self.free_text.as_deref()]
            .into_iter()
            .flatten()
            .map(str::trim)
            .filter(|n| !n.is_empty())
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

    /// The purpose's policy holds along the path (the leaf's policies
    /// contain one of its OIDs; every CA below the trust anchor lists one
    /// of them or anyPolicy); for HPKI purposes the leaf also carries at
    /// least one hcRole under a configured coding scheme.
    pub fn check(&self, chain: &VerifiedChain) -> Result<(), CertError> {
        let leaf = chain.leaf();
        let purpose = chain.purpose();
        self.check_policy(leaf, purpose)?;
        let certs = chain.certs();
        // The anchor (last) is the trust decision itself, not part of the
        // path (RFC 5280 §6.1).
        for ca in certs.get(1..certs.len().saturating_sub(1)).unwrap_or(&[]) {
            self.check_ca_policy(ca, purpose)?;
        }
        if matches!(purpose, Purpose::HpkiSign | Purpose::HpkiAuth) && self.names(leaf)?.is_empty()
        {
            return Err(CertError::MissingRole {
                subject: leaf.subject().to_owned(),
            });
        }
        Ok(())
    }

    fn wanted(&self, cert: &ParsedCert, purpose: Purpose) -> Result<Option<&[String]>, CertError> {
        match self.config.policies.get(&purpose) {
            None => Err(CertError::Policy {
                subject: cert.subject().to_owned(),
                purpose,
                needed: "(none configured)".to_owned(),
            }),
            Some(PolicyRule::NotRequired) => Ok(None),
            Some(PolicyRule::AnyOf(w)) => Ok(Some(w)),
        }
    }

    /// Refuses `cert` unless its policies satisfy the rule for `purpose`.
    pub fn check_policy(&self, cert: &ParsedCert, purpose: Purpose) -> Result<(), CertError> {
        let Some(wanted) = self.wanted(cert, purpose)? else {
            return Ok(());
        };
        let held = policies(cert)?;
        if held.iter().any(|p| wanted.contains(p)) {
            Ok(())
        } else {
            Err(CertError::Policy {
                subject: cert.subject().to_owned(),
                purpose,
                needed: wanted.join(" | "),
            })
        }
    }

    /// Refuses an intermediate CA that does not vouch for the purpose's
    /// policy: it must list one of the OIDs, or anyPolicy.
    fn check_ca_policy(&self, ca: &ParsedCert, purpose: Purpose) -> Result<(), CertError> {
        let Some(wanted) = self.wanted(ca, purpose)? else {
            return Ok(());
        };
        let held = policies(ca)?;
        if held.iter().any(|p| p == ANY_POLICY || wanted.contains(p)) {
            Ok(())
        } else {
            Err(CertError::Policy {
                subject: ca.subject().to_owned(),
                purpose,
                needed: format!("{} (or anyPolicy) on this CA", wanted.join(" | ")),
            })
        }
    }

    /// The role names of `cert` under the configured coding schemes.
    fn names(&self, cert: &ParsedCert) -> Result<Vec<String>, CertError> {
        let codes = hc_role_codes(cert, &self.config.hc_role_attribute)?;
        Ok(codes
            .iter()
            .filter(|c| self.config.role_schemes.contains(&c.scheme))
            .flat_map(|c| c.names().map(str::to_owned).collect::<Vec<_>>())
            .collect())
    }

    /// The roles of `cert` (codes under the configured coding schemes)
    /// mapped through the configured names (unknown names are dropped).
    pub fn roles(&self, cert: &ParsedCert) -> Result<Vec<Role>, CertError> {
        let mut out = Vec::new();
        for n in &self.names(cert)? {
            if let Some(r) = self.role_of(n)
                && !out.contains(&r)
            {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Refuses a certificate without hcRole under a configured coding
    /// scheme, or whose roles include none of `allowed`.
    pub fn require_role(&self, cert: &ParsedCert, allowed: &[Role]) -> Result<Role, CertError> {
        let names = self.names(cert)?;
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
        } else if ext.oid.to_id_string() == CERTIFICATE_POLICIES {
            return Err(CertError::parse(
                "certificatePolicies",
                "extension present but not decodable",
            ));
        }
    }
    Ok(out)
}

/// Role names (codeDataValue and codeDataFreeText) of every HCActor in the
/// hcRole attribute `attr_oid`, whatever their coding scheme (for display;
/// [`Profile::roles`] takes only the configured schemes).
pub fn hc_roles(cert: &ParsedCert, attr_oid: &str) -> Result<Vec<String>, CertError> {
    Ok(hc_role_codes(cert, attr_oid)?
        .iter()
        .flat_map(|c| c.names().map(str::to_owned).collect::<Vec<_>>())
        .collect())
}

/// Every CodedData of the hcRole attribute `attr_oid` of
/// subjectDirectoryAttributes.
///
/// ISO 17090-2: `HCActorData ::= SET OF HCActor`, `HCActor ::= SEQUENCE {
/// codedData [0] CodedData OPTIONAL, regionalHCActorData [1] ... OPTIONAL }`,
/// `CodedData ::= SET { codingSchemeReference [0] OBJECT IDENTIFIER,
/// codeDataValue [1] PrintableString OPTIONAL, codeDataFreeText [2]
/// DirectoryString OPTIONAL }`. CAs differ on tagging, so `codedData` is
/// read EXPLICIT (`[0] { SET or SEQUENCE { … } }`) or IMPLICIT (`[0] { …
/// }`), and its fields EXPLICIT or, where the type allows it, IMPLICIT; the
/// strings may be any DirectoryString choice. A CodedData without its
/// scheme, with an unknown or repeated field, a string that is not one, or
/// an OID with a non-minimal arc is an error, never a role; malformed DER
/// is an error, never a panic.
pub fn hc_role_codes(cert: &ParsedCert, attr_oid: &str) -> Result<Vec<HcCode>, CertError> {
    let x = cert.x509()?;
    let mut codes = Vec::new();
    for ext in x.extensions() {
        if ext.oid.to_id_string() != SUBJECT_DIRECTORY_ATTRIBUTES {
            continue;
        }
        decode_sda(ext.value, attr_oid, &mut codes)
            .map_err(|e| CertError::parse("subjectDirectoryAttributes", e))?;
    }
    Ok(codes)
}

fn decode_sda(value: &[u8], attr_oid: &str, codes: &mut Vec<HcCode>) -> Result<(), &'static str> {
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
                decode_actor(&actor, codes)?;
            }
        }
    }
    Ok(())
}

fn decode_actor(actor: &Tlv<'_>, codes: &mut Vec<HcCode>) -> Result<(), &'static str> {
    if actor.tag != SEQUENCE {
        return Err("HCActor is not a SEQUENCE");
    }
    let mut seen_coded = false;
    for field in der::read_all(actor.value)? {
        match field.tag {
            // codedData [0], constructed either way (CodedData is a SET).
            0xa0 if !seen_coded => {
                seen_coded = true;
                let inner = der::read_all(field.value)?;
                let fields = match inner.as_slice() {
                    // EXPLICIT: [0] { SET/SEQUENCE { fields } }
                    [one] if one.tag == SET || one.tag == SEQUENCE => der::read_all(one.value)?,
                    // IMPLICIT: [0] { fields }
                    _ => inner,
                };
                codes.push(decode_coded_data(&fields)?);
            }
            // regionalHCActorData [1]: not a role here.
            0xa1 => {}
            _ => return Err("HCActor has an unexpected or repeated field"),
        }
    }
    Ok(())
}

fn decode_coded_data(fields: &[Tlv<'_>]) -> Result<HcCode, &'static str> {
    let mut scheme = None;
    let mut value = None;
    let mut free_text = None;
    for f in fields {
        let (slot, text) = match f.tag {
            // codingSchemeReference: [0] { OID } or [0] IMPLICIT OID
            0xa0 | 0x80 => {
                let oid = if f.tag == 0xa0 {
                    der::read_single(f.value, OID)?.value
                } else {
                    f.value
                };
                if scheme.replace(der::oid_to_string(oid)?).is_some() {
                    return Err("CodedData has codingSchemeReference twice");
                }
                continue;
            }
            // codeDataValue: [1] { PrintableString } or [1] IMPLICIT
            0xa1 => (&mut value, string_in(f.value)?),
            0x81 => (
                &mut value,
                der::string_value(&Tlv {
                    tag: 0x13,
                    value: f.value,
                    raw: f.raw,
                })
                .ok_or("codeDataValue is not a PrintableString")?,
            ),
            // codeDataFreeText: [2] { DirectoryString } (a CHOICE: always explicit)
            0xa2 => (&mut free_text, string_in(f.value)?),
            _ => return Err("CodedData has an unexpected field"),
        };
        if slot.replace(text).is_some() {
            return Err("CodedData has a field twice");
        }
    }
    Ok(HcCode {
        scheme: scheme.ok_or("CodedData without codingSchemeReference")?,
        value,
        free_text,
    })
}

/// The one string TLV inside an explicit tag.
fn string_in(value: &[u8]) -> Result<String, &'static str> {
    let inner = der::read_only(value)?;
    der::string_value(&inner).ok_or("hcRole text is not a DirectoryString")
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
