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
//! # Order of writes, and `kill -9`
//!
//! `grant` and `revoke` open the audit log first (refusing a log whose last
//! line is torn), then store the record in the ledger (one SQLite transaction
//! in WAL mode with `synchronous=FULL`: all or nothing), then append the
//! event with its outcome (one `write` of a whole line, then `fsync`). A
//! process killed in between leaves a stored record without its audit event;
//! it never leaves a partial record or an event claiming a record that was
//! not stored.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail};
use clap::{Args, Subcommand, ValueEnum};
use med8k_auth::audit::{
    AuditEvent, AuditLog, EventKind, Outcome as AuditOutcome, Participant, Role as AuditRole,
};
use med8k_auth::cert::{
    CrlFile, Profile, Purpose, Revocation, StoreKind, pem_blocks, verify_chain,
};
use med8k_auth::consent::{
    AccessRequest, ConsentDecision, ConsentPurpose, ConsentRecord, ConsentRevocation, ConsentState,
    Coverage, DataCategory, Decision, DenyReason, FacilityId, Ledger, LedgerError, PatientId,
    Period, Physician, RecordId, Scope, SignatureCheck, VerifyError, VisitId, cms,
};
use med8k_auth::identity::{IdentityError, Module, TokenSigner, sha256};

use crate::Outcome;
use crate::pkifile::PkiFile;
use crate::time::{from_unix, micros, parse_rfc3339, rfc3339, unix};
use med8k_auth::hex;

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
    pki: PathBuf,
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
    token: TokenArgs,
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
    token: TokenArgs,
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
    pki: PathBuf,
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
    }
}

// ---------------------------------------------------------------- pki.toml

/// The site's audit salt, `audit.salt` beside `pki.toml` (made on first use).
fn audit_salt(pki: &PkiFile) -> anyhow::Result<Vec<u8>> {
    let path = pki.path(Path::new("audit.salt"));
    med8k_auth::audit::site_salt(&path).with_context(|| format!("audit salt {}", path.display()))
}

/// `--at`, or now.
fn at_or_now(at: Option<&str>) -> anyhow::Result<SystemTime> {
    match at {
        Some(s) => Ok(from_unix(parse_rfc3339(s).context("--at")?)),
        None => Ok(SystemTime::now()),
    }
}

// ---------------------------------------------------------------- helpers

/// A fresh record id: `prefix-` and 24 hex digits from the time, the process
/// and the patient (no patient data can be read back from it).
fn fresh_id(prefix: &str, patient: &PatientId, now: SystemTime) -> anyhow::Result<RecordId> {
    let nanos = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let seed = format!("{nanos}:{}:{patient}", std::process::id());
    let digest = sha256(seed.as_bytes());
    Ok(RecordId::new(format!(
        "{prefix}-{}",
        hex(digest.get(..12).unwrap_or(&digest))
    ))?)
}

/// Opens the ledger at `path`, which must already exist (reading never
/// creates one).
fn open_existing(path: &Path) -> anyhow::Result<Ledger> {
    if !path.is_file() {
        bail!("consent ledger {}: no such file", path.display());
    }
    Ok(Ledger::open(path)?)
}

fn open_audit(path: &Path) -> anyhow::Result<AuditLog> {
    AuditLog::open(path).with_context(|| format!("audit log {}", path.display()))
}

/// A fixed, patient-data-free category for an error, for the audit detail.
/// The audit event of an action on the patient's token (grant, revoke): its
/// outcome, the token as the system participant and, on failure, the
/// failure's category (never its text).
fn token_event<T>(
    kind: EventKind,
    now: SystemTime,
    result: &anyhow::Result<T>,
    salt: &[u8],
    token: &TokenArgs,
) -> AuditEvent {
    let outcome = match result {
        Ok(_) => AuditOutcome::Success,
        Err(_) => AuditOutcome::SeriousFailure,
    };
    let event = AuditEvent::new(kind, micros(now), outcome).with_participant(Participant::new(
        AuditRole::System,
        salt,
        &format!("token:{}", token.patient_token),
    ));
    match result {
        Ok(_) => event,
        Err(e) => event.with_detail(failure_category(e)),
    }
}

fn failure_category(err: &anyhow::Error) -> &'static str {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<IdentityError>() {
            return match e {
                IdentityError::PinRefused => "PIN refused",
                IdentityError::NotFound(_) => "token or key not found",
                _ => "token error",
            };
        }
        if let Some(e) = cause.downcast_ref::<LedgerError>() {
            return match e {
                LedgerError::Refused(VerifyError::Signature(_)) => "signature refused",
                LedgerError::Refused(_) => "record refused",
                LedgerError::DuplicateId(_) => "duplicate record id",
                LedgerError::UnknownConsent(_) => "unknown consent",
                LedgerError::AlreadyRevoked(_) => "already revoked",
                LedgerError::OtherPatient { .. } => "other patient",
                _ => "ledger error",
            };
        }
    }
    "failed"
}

/// The patient's token, logged in, with its JPKI signing key.
struct PatientCard {
    signer: TokenSigner,
    patient: PatientId,
    /// The pseudonym of the card's JPKI authentication certificate, when it
    /// holds one (bound into the consent: see `ConsentRecord::login`).
    login: Option<PatientId>,
    // The loaded module, kept until the signing is done.
    _module: std::sync::Arc<Module>,
}

/// Logs in to `args.patient_token` and finds its JPKI signing certificate
/// (the one that verifies for JPKI signing against `check` at `now`) and its
/// JPKI authentication certificate.
fn open_card(
    args: &TokenArgs,
    pki: &PkiFile,
    check: &SignatureCheck<'_>,
    now: SystemTime,
) -> anyhow::Result<PatientCard> {
    let label = args.patient_token.as_str();
    let pin = pki
        .pin(label, "--pin-env", args.pin_env.as_deref())
        .map_err(|e| anyhow!("unknown token {label:?}: {e:#}"))?;
    let module = pki.module()?;
    let session = module
        .login(label, &pin)
        .with_context(|| format!("token {label:?}"))?;
    drop(pin);
    let certs = session
        .certificates()
        .with_context(|| format!("token {label:?}"))?;
    let holds = |purpose: Purpose| {
        certs.iter().find(move |c| {
            verify_chain(&c.der, &[], check.store, purpose, now)
                .ok()
                .is_some_and(|chain| check.profile.check(&chain).is_ok())
        })
    };
    let login = holds(Purpose::JpkiAuth).map(|c| PatientId::of_cert(&c.der));
    let cert = holds(Purpose::JpkiSign).with_context(|| {
        format!("token {label:?} holds no JPKI signing certificate trusted by pki.toml")
    })?;
    let signer = session
        .signer(&cert.id)
        .with_context(|| format!("token {label:?}"))?;
    Ok(PatientCard {
        patient: PatientId::from_signing_cert(&cert.der),
        login,
        signer,
        _module: module,
    })
}

// ---------------------------------------------------------------- grant

/// The record `args` describe, for `patient`, made at `now`. Checks every
/// argument; touches nothing.
fn build_record(
    args: &GrantArgs,
    patient: PatientId,
    login: Option<PatientId>,
    now: SystemTime,
) -> anyhow::Result<ConsentRecord> {
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
    let id = match &args.id {
        Some(id) => RecordId::new(id.as_str()).with_context(|| format!("--id {id:?}"))?,
        None => fresh_id("consent", &patient, now)?,
    };
    let mut record = ConsentRecord {
        id,
        patient,
        created: unix(now),
        decision: ConsentDecision::Permit,
        scope: args.scope.iter().map(|s| s.scope()).collect(),
        grantees,
        purposes: args.purpose.iter().map(|p| p.purpose()).collect(),
        categories: args.category.iter().map(|c| c.category()).collect(),
        period: Period { start, end },
        coverage,
        login,
    };
    record.normalize();
    record.validate()?;
    Ok(record)
}

fn grant(args: &GrantArgs) -> anyhow::Result<Outcome> {
    let now = SystemTime::now();
    // Check the arguments before touching the token, ledger or log.
    let placeholder = PatientId::parse("0".repeat(64))?;
    build_record(args, placeholder, None, now)?;

    let pki = PkiFile::load(&args.token.pki)?;
    let salt = audit_salt(&pki)?;
    let jpki = pki.store(StoreKind::Jpki)?;
    let profile = pki.profile();
    let check = SignatureCheck::new(&jpki, &profile);
    let mut audit = open_audit(&args.token.audit)?;

    let result = (|| -> anyhow::Result<ConsentRecord> {
        let card = open_card(&args.token, &pki, &check, now)?;
        let record = build_record(args, card.patient.clone(), card.login.clone(), now)?;
        let bytes = record.canonical_bytes()?;
        let blob = cms::sign_detached(&bytes, &card.signer, record.created)
            .context("signing with the token")?;
        drop(card);
        let mut ledger = Ledger::open(&args.token.ledger)?;
        ledger.grant(&bytes, &blob, &check, now)?;
        Ok(record)
    })();

    let mut event = token_event(EventKind::ConsentGranted, now, &result, &salt, &args.token);
    if let Ok(record) = &result {
        event = event
            .with_participant(Participant::new(
                AuditRole::Patient,
                &salt,
                record.patient.as_str(),
            ))
            .with_object(record.id.as_str());
        for g in &record.grantees {
            event =
                event.with_participant(Participant::new(AuditRole::Facility, &salt, g.as_str()));
        }
    }
    let appended = audit
        .append(&event)
        .with_context(|| format!("audit log {}", args.token.audit.display()));
    let record = result?;
    appended?;
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

// ---------------------------------------------------------------- revoke

fn revoke(args: &RevokeArgs) -> anyhow::Result<Outcome> {
    let now = SystemTime::now();
    let revokes = RecordId::new(args.id.as_str()).with_context(|| format!("--id {:?}", args.id))?;
    let own_id = args
        .revocation_id
        .as_deref()
        .map(|id| RecordId::new(id).with_context(|| format!("--revocation-id {id:?}")))
        .transpose()?;

    let pki = PkiFile::load(&args.token.pki)?;
    let salt = audit_salt(&pki)?;
    let jpki = pki.store(StoreKind::Jpki)?;
    let profile = pki.profile();
    let check = SignatureCheck::new(&jpki, &profile);
    let mut audit = open_audit(&args.token.audit)?;

    let result = (|| -> anyhow::Result<ConsentRevocation> {
        let mut ledger = open_existing(&args.token.ledger)?;
        let card = open_card(&args.token, &pki, &check, now)?;
        let id = match &own_id {
            Some(id) => id.clone(),
            None => fresh_id("revocation", &card.patient, now)?,
        };
        let rev = ConsentRevocation {
            id,
            patient: card.patient.clone(),
            created: unix(now),
            revokes: revokes.clone(),
        };
        let bytes = rev.canonical_bytes()?;
        let blob = cms::sign_detached(&bytes, &card.signer, rev.created)
            .context("signing with the token")?;
        drop(card);
        ledger.revoke(&bytes, &blob, &check, now)?;
        Ok(rev)
    })();

    let mut event = token_event(EventKind::ConsentRevoked, now, &result, &salt, &args.token)
        .with_object(revokes.as_str());
    if let Ok(rev) = &result {
        event = event.with_participant(Participant::new(
            AuditRole::Patient,
            &salt,
            rev.patient.as_str(),
        ));
    }
    let appended = audit
        .append(&event)
        .with_context(|| format!("audit log {}", args.token.audit.display()));
    let rev = result?;
    appended?;
    println!("revoked consent {} (revocation {})", rev.revokes, rev.id);
    Ok(Outcome::Done)
}

// ---------------------------------------------------------------- list

/// A consent's status at `now` (unix seconds).
fn status(state: &ConsentState, now: i64) -> &'static str {
    let r = &state.record;
    if state.revoked_at.is_some_and(|t| t <= now) {
        "revoked"
    } else if now >= r.period.end {
        "expired"
    } else if now < r.period.start {
        "not yet valid"
    } else {
        "in force"
    }
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
    let ledger = open_existing(&args.ledger)?;
    let states = ledger.list(&patient)?;
    if args.json {
        let rows: Vec<serde_json::Value> = states
            .iter()
            .map(|s| {
                let r = &s.record;
                serde_json::json!({
                    "id": r.id,
                    "status": status(s, now),
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
            status(s, now),
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

// ---------------------------------------------------------------- check

fn deny_text(reason: DenyReason) -> &'static str {
    match reason {
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
        _ => "refused",
    }
}

/// Verifies the physician's certificate at `at` (chain to the HPKI trust
/// anchors for authentication or signing, profile, CRLs when pki.toml names
/// them). The outer error is a file that cannot be read (a failure of the
/// command); the inner one a certificate refused (a denial), as one line.
fn verify_physician(
    pki: &PkiFile,
    profile: &Profile,
    cert: &Path,
    at: SystemTime,
) -> anyhow::Result<Result<Physician, String>> {
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
    let refused = |e: med8k_auth::cert::CertError| format!("physician certificate refused: {e}");
    let chain = match verify_chain(leaf, &inters, &store, Purpose::HpkiAuth, at) {
        Ok(chain) => chain,
        Err(auth_err) => match verify_chain(leaf, &inters, &store, Purpose::HpkiSign, at) {
            Ok(chain) => chain,
            Err(_) => return Ok(Err(refused(auth_err))),
        },
    };
    if let Some(crls) = crls {
        // A CRL speaks for its own time: a check at a future `--at` uses
        // the revocation status known now.
        if let Err(e) = crls.check_chain(&chain, at.min(SystemTime::now())) {
            return Ok(Err(refused(e)));
        }
    }
    Ok(Physician::from_chain(profile, &chain).map_err(refused))
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
    let ledger = open_existing(&args.ledger)?;
    let mut audit = open_audit(&args.audit)?;

    let physician = verify_physician(&pki, &profile, &args.physician_cert, at)?;
    let decision = match &physician {
        Ok(physician) => {
            let request = AccessRequest {
                physician: physician.clone(),
                facility: facility.clone(),
                patient: patient.clone(),
                category: args.category.category(),
                purpose: args.purpose.purpose(),
                action: Scope::Disclose,
                visit,
                // A check from the desk: no patient at a card reader.
                patient_login: None,
            };
            Ok(ledger.decide(&request, at)?)
        }
        Err(e) => Err(e.clone()),
    };

    let (kind, outcome, detail) = match &decision {
        Ok(Decision::Permit { .. }) => (EventKind::AccessPermitted, AuditOutcome::Success, None),
        Ok(Decision::Deny(r)) => (
            EventKind::AccessDenied,
            AuditOutcome::MinorFailure,
            Some(deny_text(*r)),
        ),
        Err(_) => (
            EventKind::AccessDenied,
            AuditOutcome::MinorFailure,
            Some("physician certificate refused"),
        ),
    };
    let mut event = AuditEvent::new(kind, micros(now), outcome)
        .with_participant(Participant::new(
            AuditRole::Patient,
            &salt,
            patient.as_str(),
        ))
        .with_participant(Participant::new(
            AuditRole::Facility,
            &salt,
            facility.as_str(),
        ));
    if let Ok(p) = &physician {
        event = event.with_participant(Participant::new(AuditRole::Physician, &salt, &p.id));
    }
    if let Ok(Decision::Permit { consent_id }) = &decision {
        event = event.with_object(consent_id.as_str());
    }
    if let Some(d) = detail {
        event = event.with_detail(d);
    }
    audit
        .append(&event)
        .with_context(|| format!("audit log {}", args.audit.display()))?;

    match decision {
        Ok(Decision::Permit { consent_id }) => {
            println!("permit (consent {consent_id})");
            Ok(Outcome::Done)
        }
        Ok(Decision::Deny(reason)) => {
            println!("deny: {}", deny_text(reason));
            Ok(Outcome::Denied)
        }
        Err(text) => {
            println!("deny: {text}");
            Ok(Outcome::Denied)
        }
    }
}
