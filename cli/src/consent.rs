//! `med8k consent`: a patient grants and revokes consent with the JPKI
//! signing key on their card (a SoftHSM2 token in the demo), and a physician's
//! access is checked against the consent ledger.
//!
//! - `grant` and `revoke` build a record for the pseudonym of the token's
//!   JPKI *signing* certificate, sign its canonical bytes as a detached CMS
//!   with the token's key (`CKM_RSA_PKCS` through the PKCS#11 signer), and
//!   store it with [`Ledger::grant`] / [`Ledger::revoke`], which verify the
//!   signature first;
//! - `list` shows a patient's consents with their status;
//! - `stop`: the facility stops a consent without the patient's signature
//!   (a lost card, a request at the desk, a legal order, an error), audited
//!   with the operator (hashed) and a fixed reason;
//! - `check` verifies a physician's HPKI certificate and prints the access
//!   decision: `permit (consent ID)` (exit 0) or `deny: REASON` (exit 1).
//!
//! # Files
//!
//! `--pki DIR` is a directory made by `med8k pki demo-init`; its `pki.toml`
//! names the PKCS#11 module, the SoftHSM2 configuration, the trust anchors,
//! the HPKI policy OIDs and the tokens with their demo PINs. A PIN comes from
//! the environment variable named by `--pin-env`, else from `pki.toml`; it is
//! never printed.
//!
//! The audit log hashes every identifier with a per-site secret salt, kept in
//! `DIR/audit.salt` (32 random bytes, made on first use). No patient data
//! reaches the log: the patient appears only as the hash of their pseudonym,
//! the record as its id, and failures as a fixed category, never an error text
//! (certificate errors can carry names).
//!
//! The workflows, their order of writes and what the audit log gets are
//! [`med8k_auth::consent::workflow`]'s; this module parses, prints and maps
//! a denial to exit code 1.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use med8k_auth::audit::AuditLog;
use med8k_auth::cert::{
    CertError, CrlFile, Profile, Purpose, Revocation, StoreKind, pem_blocks, verify_chain,
};
use med8k_auth::civil::{from_unix, parse_rfc3339, rfc3339, unix};
use med8k_auth::consent::workflow::{
    self, AccessAttempt, ConsentDraft, ConsentStatus, Desk, PatientCard, WorkflowError,
};
use med8k_auth::consent::{
    AccessRequest, ConsentPurpose, Coverage, DataCategory, Decision, FacilityId, PatientId, Period,
    Physician, RecordId, Scope, SignatureCheck, StopReason, VisitId,
};
use med8k_auth::pkifile::PkiFile;

use crate::Outcome;

/// `med8k consent` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConsentCommand {
    /// Sign a consent with the patient's token and store it in the ledger.
    Grant(GrantArgs),
    /// Sign a revocation of a stored consent with the patient's token.
    Revoke(RevokeArgs),
    /// A patient's consents with their status (in force, expired, revoked).
    List(ListArgs),
    /// Decide a physician's access: prints `permit (consent ID)` and exits
    /// 0, or `deny: REASON` and exits 1.
    Check(CheckArgs),
    /// The facility stops a consent without the patient's signature
    /// (audited): a lost card, a request at the desk, a legal order, an error.
    Stop(StopArgs),
}

/// Why a facility stops a consent.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum StopReasonArg {
    PatientRequest,
    CardLost,
    Legal,
    Error,
}

impl StopReasonArg {
    fn reason(self) -> StopReason {
        match self {
            StopReasonArg::PatientRequest => StopReason::PatientRequest,
            StopReasonArg::CardLost => StopReason::CardLost,
            StopReasonArg::Legal => StopReason::Legal,
            StopReasonArg::Error => StopReason::Error,
        }
    }
}

/// `med8k consent stop`.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// The demo PKI directory (for the site's audit salt).
    #[arg(long)]
    pki: PathBuf,
    /// The consent ledger (must exist).
    #[arg(long)]
    ledger: PathBuf,
    /// The audit log (created if missing).
    #[arg(long)]
    audit: PathBuf,
    /// The consent record to stop.
    #[arg(long)]
    id: String,
    /// Who stops it (kept hashed in the ledger and the audit log).
    #[arg(long)]
    operator: String,
    /// Why.
    #[arg(long, value_enum)]
    reason: StopReasonArg,
}

/// What the data is used for (`consent` and `fetch`).
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum PurposeArg {
    Treatment,
    RemoteConsultation,
    Research,
}

impl PurposeArg {
    pub(crate) fn purpose(self) -> ConsentPurpose {
        match self {
            PurposeArg::Treatment => ConsentPurpose::Treatment,
            PurposeArg::RemoteConsultation => ConsentPurpose::RemoteConsultation,
            PurposeArg::Research => ConsentPurpose::Research,
        }
    }
}

/// Which data (`consent` and `fetch`).
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum CategoryArg {
    EndoscopeVideo,
    PathologyImages,
    VisitHistory,
}

impl CategoryArg {
    pub(crate) fn category(self) -> DataCategory {
        match self {
            CategoryArg::EndoscopeVideo => DataCategory::EndoscopeVideo,
            CategoryArg::PathologyImages => DataCategory::PathologyImages,
            CategoryArg::VisitHistory => DataCategory::VisitHistory,
        }
    }
}

/// What may be done with it.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum ScopeArg {
    Register,
    Disclose,
}

impl ScopeArg {
    fn scope(self) -> Scope {
        match self {
            ScopeArg::Register => Scope::Register,
            ScopeArg::Disclose => Scope::Disclose,
        }
    }
}

/// Where the patient's token, the ledger and the audit log are.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The demo PKI directory (`med8k pki demo-init --out DIR`).
    #[arg(long)]
    pub(crate) pki: PathBuf,
    /// The consent ledger (SQLite; created if missing).
    #[arg(long)]
    ledger: PathBuf,
    /// The audit log (hash-chained JSON Lines; created if missing).
    #[arg(long)]
    audit: PathBuf,
    /// The patient's token label (e.g. med8k-patient).
    #[arg(long)]
    patient_token: String,
    /// Environment variable holding the token's PIN; without it, the demo
    /// PIN in pki.toml.
    #[arg(long)]
    pin_env: Option<String>,
}

/// `med8k consent grant`.
#[derive(Debug, Args)]
pub struct GrantArgs {
    #[command(flatten)]
    pub(crate) token: TokenArgs,
    /// Facility the consent is given to (repeat for several).
    #[arg(long, required = true)]
    grantee: Vec<String>,
    /// Purpose(s) covered.
    #[arg(long, value_enum, required = true, value_delimiter = ',')]
    purpose: Vec<PurposeArg>,
    /// Data categories covered.
    #[arg(long, value_enum, required = true, value_delimiter = ',', num_args = 1..)]
    category: Vec<CategoryArg>,
    /// Actions covered, comma-separated.
    #[arg(long, value_enum, required = true, value_delimiter = ',')]
    scope: Vec<ScopeArg>,
    /// Start of the period (RFC 3339); default now.
    #[arg(long)]
    from: Option<String>,
    /// End of the period (RFC 3339), exclusive.
    #[arg(long, conflicts_with = "days", required_unless_present = "days")]
    until: Option<String>,
    /// Length of the period in days from `--from`.
    #[arg(long)]
    days: Option<u32>,
    /// One visit only; without it, this and all later visits.
    #[arg(long)]
    visit: Option<String>,
    /// The record's id; default a fresh one.
    #[arg(long)]
    id: Option<String>,
}

/// `med8k consent revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    #[command(flatten)]
    pub(crate) token: TokenArgs,
    /// The consent record to revoke.
    #[arg(long)]
    id: String,
    /// The revocation record's own id; default a fresh one.
    #[arg(long)]
    revocation_id: Option<String>,
}

/// `med8k consent list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// The consent ledger (must exist).
    #[arg(long)]
    ledger: PathBuf,
    /// The patient's pseudonym (64 hex digits, printed by `grant`).
    #[arg(long)]
    patient: String,
    /// Status at this time (RFC 3339) instead of now.
    #[arg(long)]
    at: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `med8k consent check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The demo PKI directory (trust anchors, policy OIDs, CRLs).
    #[arg(long)]
    pub(crate) pki: PathBuf,
    /// The consent ledger (must exist).
    #[arg(long)]
    ledger: PathBuf,
    /// The audit log (created if missing).
    #[arg(long)]
    audit: PathBuf,
    /// The physician's HPKI certificate (PEM; further blocks are
    /// intermediates).
    #[arg(long)]
    physician_cert: PathBuf,
    /// The facility the request comes from.
    #[arg(long)]
    facility: String,
    /// The patient's pseudonym.
    #[arg(long)]
    patient: String,
    /// The data asked for.
    #[arg(long, value_enum)]
    category: CategoryArg,
    /// Why.
    #[arg(long, value_enum)]
    purpose: PurposeArg,
    /// The visit the data belongs to.
    #[arg(long)]
    visit: Option<String>,
    /// Decide at this time (RFC 3339) instead of now.
    #[arg(long)]
    at: Option<String>,
}

/// Runs a `med8k consent` subcommand.
pub fn run(command: &ConsentCommand) -> anyhow::Result<Outcome> {
    match command {
        ConsentCommand::Grant(args) => grant(args),
        ConsentCommand::Revoke(args) => revoke(args),
        ConsentCommand::List(args) => list(args),
        ConsentCommand::Check(args) => check(args),
        ConsentCommand::Stop(args) => stop(args),
    }
}

/// The site's audit salt, `audit.salt` beside `pki.toml` (made on first use).
fn audit_salt(pki: &PkiFile) -> anyhow::Result<Vec<u8>> {
    let path = pki.path(Path::new("audit.salt"));
    med8k_auth::audit::site_salt(&path).with_context(|| format!("audit salt {}", path.display()))
}

/// The JPKI CRLs of `pki.toml` (`[crl] jpki`): a grant or revocation is
/// not signed on a certificate whose status is unknown.
fn jpki_crls(pki: &PkiFile) -> anyhow::Result<CrlFile> {
    pki.crls(StoreKind::Jpki)?.context(
        "pki.toml names no JPKI CRL ([crl] jpki): the patient's signing certificate must be \
         checked for revocation",
    )
}

/// `--at`, or now.
fn at_or_now(at: Option<&str>) -> anyhow::Result<SystemTime> {
    match at {
        Some(s) => Ok(from_unix(parse_rfc3339(s).context("--at")?)),
        None => Ok(SystemTime::now()),
    }
}

fn open_audit(path: &Path) -> anyhow::Result<AuditLog> {
    AuditLog::open(path).with_context(|| format!("audit log {}", path.display()))
}

/// Opens the patient's card named by `args` (the PIN from `--pin-env` or
/// the demo PIN in pki.toml).
fn open_card(
    args: &TokenArgs,
    pki: &PkiFile,
    check: &SignatureCheck<'_>,
    now: SystemTime,
) -> Result<PatientCard, WorkflowError> {
    let label = args.patient_token.as_str();
    let pin = pki.pin(label, "--pin-env", args.pin_env.as_deref())?;
    let module = pki.module()?;
    let session = module.login(label, &pin)?;
    drop(pin);
    PatientCard::from_session(module.clone(), &session, check, now)
}

/// The draft `args` describe; checks every argument, touches nothing.
fn draft(args: &GrantArgs, now: SystemTime) -> anyhow::Result<ConsentDraft> {
    let start = match &args.from {
        Some(s) => parse_rfc3339(s).context("--from")?,
        None => unix(now),
    };
    let end = match (&args.until, args.days) {
        (Some(s), _) => parse_rfc3339(s).context("--until")?,
        (None, Some(days)) if days > 0 => start
            .checked_add(i64::from(days) * 86_400)
            .context("--days: too far")?,
        _ => bail!("--days must be at least 1"),
    };
    if end <= start {
        bail!(
            "the period ends ({}) before it starts ({})",
            rfc3339(end),
            rfc3339(start)
        );
    }
    let grantees = args
        .grantee
        .iter()
        .map(|g| FacilityId::new(g.as_str()).with_context(|| format!("--grantee {g:?}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let coverage = match &args.visit {
        Some(v) => {
            Coverage::PerVisit(VisitId::new(v.as_str()).with_context(|| format!("--visit {v:?}"))?)
        }
        None => Coverage::AllLaterVisits,
    };
    let id = args
        .id
        .as_deref()
        .map(|id| RecordId::new(id).with_context(|| format!("--id {id:?}")))
        .transpose()?;
    Ok(ConsentDraft {
        id,
        scope: args.scope.iter().map(|s| s.scope()).collect(),
        grantees,
        purposes: args.purpose.iter().map(|p| p.purpose()).collect(),
        categories: args.category.iter().map(|c| c.category()).collect(),
        period: Period { start, end },
        coverage,
    })
}

fn grant(args: &GrantArgs) -> anyhow::Result<Outcome> {
    let now = SystemTime::now();
    // Check the arguments before touching the token, ledger or log.
    let draft = draft(args, now)?;
    draft.record(PatientId::parse("0".repeat(64))?, None, now)?;

    let t = &args.token;
    let pki = PkiFile::load(&t.pki)?;
    let salt = audit_salt(&pki)?;
    let jpki = pki.store(StoreKind::Jpki)?;
    let crls = jpki_crls(&pki)?;
    let profile = pki.profile();
    let check = SignatureCheck::new(&jpki, &profile).with_revocation(&crls);
    let mut audit = open_audit(&t.audit)?;
    let mut desk = Desk {
        ledger: &t.ledger,
        audit: &mut audit,
        salt: &salt,
        check: &check,
    };
    let card = || open_card(t, &pki, &check, now);
    let record = workflow::grant(&mut desk, &t.patient_token, card, &draft, now)
        .with_context(|| format!("consent grant (audit log {})", t.audit.display()))?;
    println!("granted consent {}", record.id);
    println!("  patient: {}", record.patient);
    match &record.login {
        Some(card) => println!("  card (JPKI authentication certificate): {card}"),
        None => println!(
            "  card: none on the token; a gate that has the patient log in will refuse this consent"
        ),
    }
    println!(
        "  period: {} to {}",
        rfc3339(record.period.start),
        rfc3339(record.period.end)
    );
    Ok(Outcome::Done)
}

fn revoke(args: &RevokeArgs) -> anyhow::Result<Outcome> {
    let now = SystemTime::now();
    let revokes = RecordId::new(args.id.as_str()).with_context(|| format!("--id {:?}", args.id))?;
    let own_id = args
        .revocation_id
        .as_deref()
        .map(|id| RecordId::new(id).with_context(|| format!("--revocation-id {id:?}")))
        .transpose()?;
    let t = &args.token;
    let pki = PkiFile::load(&t.pki)?;
    let salt = audit_salt(&pki)?;
    let jpki = pki.store(StoreKind::Jpki)?;
    let crls = jpki_crls(&pki)?;
    let profile = pki.profile();
    let check = SignatureCheck::new(&jpki, &profile).with_revocation(&crls);
    let mut audit = open_audit(&t.audit)?;
    let mut desk = Desk {
        ledger: &t.ledger,
        audit: &mut audit,
        salt: &salt,
        check: &check,
    };
    let card = || open_card(t, &pki, &check, now);
    let rev = workflow::revoke(&mut desk, &t.patient_token, card, &revokes, own_id, now)
        .with_context(|| format!("consent revoke (audit log {})", t.audit.display()))?;
    println!("revoked consent {} (revocation {})", rev.revokes, rev.id);
    Ok(Outcome::Done)
}

fn kebab<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::from("?"),
    }
}

fn joined<T: serde::Serialize>(items: &[T]) -> String {
    items.iter().map(kebab).collect::<Vec<_>>().join(",")
}

fn list(args: &ListArgs) -> anyhow::Result<Outcome> {
    let patient = PatientId::parse(args.patient.as_str()).context("--patient")?;
    let now = unix(at_or_now(args.at.as_deref())?);
    let ledger = workflow::open_existing(&args.ledger)?;
    let states = ledger.list(&patient)?;
    let status = |s| ConsentStatus::of(s, now).to_string();
    if args.json {
        let rows: Vec<serde_json::Value> = states
            .iter()
            .map(|s| {
                let r = &s.record;
                serde_json::json!({
                    "id": r.id,
                    "status": status(s),
                    "decision": r.decision,
                    "scope": r.scope,
                    "grantees": r.grantees,
                    "purposes": r.purposes,
                    "categories": r.categories,
                    "from": rfc3339(r.period.start),
                    "until": rfc3339(r.period.end),
                    "visit": match &r.coverage {
                        Coverage::PerVisit(v) => Some(v.as_str()),
                        Coverage::AllLaterVisits => None,
                    },
                    "created": rfc3339(r.created),
                    "revoked_at": s.revoked_at.map(rfc3339),
                    "card": r.login,
                })
            })
            .collect();
        let text = serde_json::to_string_pretty(&serde_json::json!({
            "patient": patient,
            "consents": rows,
        }))?;
        println!("{text}");
        return Ok(Outcome::Done);
    }
    if states.is_empty() {
        println!("no consents for patient {patient}");
        return Ok(Outcome::Done);
    }
    println!("consents of patient {patient}:");
    for s in &states {
        let r = &s.record;
        let visits = match &r.coverage {
            Coverage::PerVisit(v) => format!("visit {v}"),
            Coverage::AllLaterVisits => "all later visits".to_owned(),
        };
        println!(
            "{}  {}  {}  to {}  for {}  {}  scope {}  {} to {}  {}",
            r.id,
            status(s),
            kebab(&r.decision),
            joined(&r.grantees),
            joined(&r.purposes),
            joined(&r.categories),
            joined(&r.scope),
            rfc3339(r.period.start),
            rfc3339(r.period.end),
            visits,
        );
    }
    Ok(Outcome::Done)
}

/// Verifies the physician's certificate at `at` (chain to the HPKI trust
/// anchors for authentication or signing, profile, CRLs when pki.toml names
/// them). The outer error is a file that cannot be read (a failure of the
/// command); the inner one a certificate refused (a denial).
fn verify_physician(
    pki: &PkiFile,
    profile: &Profile,
    cert: &Path,
    at: SystemTime,
) -> anyhow::Result<Result<Physician, CertError>> {
    let bytes = std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?;
    let certs = if bytes.starts_with(b"-----BEGIN") {
        pem_blocks(&bytes, "CERTIFICATE").with_context(|| cert.display().to_string())?
    } else {
        vec![bytes]
    };
    let (leaf, inters) = certs
        .split_first()
        .with_context(|| format!("{} holds no certificate", cert.display()))?;
    let inters: Vec<&[u8]> = inters.iter().map(Vec::as_slice).collect();
    let store = pki.store(StoreKind::Hpki)?;
    let crls = match &pki.crl.hpki {
        Some(crl) => {
            let mut crls = CrlFile::new();
            let path = pki.path(crl);
            crls.add_file(&path)
                .with_context(|| format!("CRL {}", path.display()))?;
            Some(crls)
        }
        None => None,
    };
    let chain = match verify_chain(leaf, &inters, &store, Purpose::HpkiAuth, at) {
        Ok(chain) => chain,
        Err(auth_err) => match verify_chain(leaf, &inters, &store, Purpose::HpkiSign, at) {
            Ok(chain) => chain,
            Err(_) => return Ok(Err(auth_err)),
        },
    };
    if let Some(crls) = crls {
        // A CRL speaks for its own time: a check at a future `--at` uses
        // the revocation status known now.
        if let Err(e) = crls.check_chain(&chain, at.min(SystemTime::now())) {
            return Ok(Err(e));
        }
    }
    Ok(Physician::from_chain(profile, &chain))
}

fn check(args: &CheckArgs) -> anyhow::Result<Outcome> {
    let now = SystemTime::now();
    let at = at_or_now(args.at.as_deref())?;
    let patient = PatientId::parse(args.patient.as_str()).context("--patient")?;
    let facility = FacilityId::new(args.facility.as_str())
        .with_context(|| format!("--facility {:?}", args.facility))?;
    let visit = args
        .visit
        .as_deref()
        .map(|v| VisitId::new(v).with_context(|| format!("--visit {v:?}")))
        .transpose()?;
    let pki = PkiFile::load(&args.pki)?;
    let salt = audit_salt(&pki)?;
    let profile = pki.profile();
    let mut ledger = workflow::open_existing(&args.ledger)?;
    // The consents' signers are checked again against the JPKI CRLs.
    if let Some(crls) = pki.crls(StoreKind::Jpki)? {
        ledger = ledger.with_revocation(std::sync::Arc::new(crls));
    }
    let mut audit = open_audit(&args.audit)?;

    let physician = verify_physician(&pki, &profile, &args.physician_cert, at)?;
    let decision = match &physician {
        Ok(physician) => Ok(ledger.decide(
            &AccessRequest {
                physician: physician.clone(),
                facility: facility.clone(),
                patient: patient.clone(),
                category: args.category.category(),
                purpose: args.purpose.purpose(),
                action: Scope::Disclose,
                visit,
                // A check from the desk: no patient at a card reader.
                patient_login: None,
            },
            at,
        )?),
        Err(e) => Err(e.clone()),
    };
    let who = AccessAttempt {
        physician: physician.as_ref().ok().map(|p| p.id.as_str()),
        facility: facility.as_str(),
        patient: patient.as_str(),
        category: args.category.category(),
    };
    audit
        .append(&workflow::decision_event(now, &salt, &who, &decision))
        .with_context(|| format!("audit log {}", args.audit.display()))?;
    match decision {
        Ok(Decision::Permit { consent_id }) => {
            println!("permit (consent {consent_id})");
            Ok(Outcome::Done)
        }
        Ok(Decision::Deny(reason)) => {
            println!("deny: {reason}");
            Ok(Outcome::Denied)
        }
        Err(e) => {
            println!("deny: physician certificate refused: {e}");
            Ok(Outcome::Denied)
        }
    }
}

fn stop(args: &StopArgs) -> anyhow::Result<Outcome> {
    let now = SystemTime::now();
    let consent = RecordId::new(args.id.as_str()).with_context(|| format!("--id {:?}", args.id))?;
    if args.operator.trim().is_empty() {
        bail!("--operator: name who stops the consent");
    }
    let pki = PkiFile::load(&args.pki)?;
    let salt = audit_salt(&pki)?;
    let jpki = pki.store(StoreKind::Jpki)?;
    let profile = pki.profile();
    let check = SignatureCheck::new(&jpki, &profile);
    let mut audit = open_audit(&args.audit)?;
    let mut desk = Desk {
        ledger: &args.ledger,
        audit: &mut audit,
        salt: &salt,
        check: &check,
    };
    let reason = args.reason.reason();
    workflow::stop(&mut desk, &args.operator, &consent, reason, now)
        .with_context(|| format!("consent stop (audit log {})", args.audit.display()))?;
    println!("stopped consent {consent} ({})", reason.name());
    Ok(Outcome::Done)
}
