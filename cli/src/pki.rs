//! `med8k pki`: a demo PKI on SoftHSM2 tokens, and checking a certificate
//! the way med8k does before trusting it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use med8k_auth::cert::{
    CrlFile, ParsedCert, PolicyRule, Profile, ProfileConfig, Purpose, Revocation, TrustStore,
    hc_roles, pem_blocks, verify_chain,
};
use med8k_auth::identity::keyfile::{generate_rsa_key, rsa_key_pem, spki_of};
use med8k_auth::identity::pkcs11::{SOFTHSM2_CONF_ENV, SOFTHSM2_MODULE, write_softhsm2_conf};
use med8k_auth::identity::{Module, sha256};
use med8k_auth::issue::{
    DEMO_HPKI_AUTH_POLICY, DEMO_HPKI_SIGN_POLICY, DemoPki, LeafKind, RevokedEntry, pem,
};
use med8k_auth::pkifile::check_softhsm2_env;

use crate::Outcome;
use med8k_auth::civil::rfc3339;
use med8k_auth::hex;

/// `med8k pki` subcommands.
#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Make a demo PKI: CAs, SoftHSM2 tokens for a patient, a physician and
    /// a pharmacist, facility certificates for two sites, a CRL, pki.toml.
    DemoInit(DemoInitArgs),
    /// Check a certificate for a purpose: chain, validity, profile, role,
    /// revocation. Exit 0 when accepted, 1 with the reason when refused.
    Verify(VerifyArgs),
}

/// `med8k pki demo-init`.
#[derive(Debug, Args)]
pub struct DemoInitArgs {
    /// Directory to create it in (must not hold a pki.toml already).
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// The SoftHSM2 PKCS#11 module.
    #[arg(long, default_value = SOFTHSM2_MODULE)]
    module: PathBuf,
}

/// What a certificate is checked for.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum PurposeArg {
    JpkiSign,
    JpkiAuth,
    HpkiSign,
    HpkiAuth,
    Facility,
}

impl PurposeArg {
    fn purpose(self) -> Purpose {
        match self {
            PurposeArg::JpkiSign => Purpose::JpkiSign,
            PurposeArg::JpkiAuth => Purpose::JpkiAuth,
            PurposeArg::HpkiSign => Purpose::HpkiSign,
            PurposeArg::HpkiAuth => Purpose::HpkiAuth,
            PurposeArg::Facility => Purpose::Facility,
        }
    }
}

/// `med8k pki verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The certificate, PEM or DER; further PEM blocks are intermediates.
    #[arg(long)]
    cert: PathBuf,
    /// Trust anchors (PEM), one or more files.
    #[arg(long, required = true, num_args = 1..)]
    trust: Vec<PathBuf>,
    /// What it must be good for.
    #[arg(long, value_enum)]
    purpose: PurposeArg,
    /// An HPKI role it must hold (e.g. "Medical Doctor").
    #[arg(long)]
    role: Option<String>,
    /// Certificate policy OID(s) accepted for HPKI purposes (they differ
    /// per HPKI CA; the demo's are in its pki.toml).
    #[arg(long)]
    policy: Vec<String>,
    /// CRL files (PEM or DER); with any, revocation is checked.
    #[arg(long)]
    crl: Vec<PathBuf>,
    /// Check at this time (RFC 3339) instead of now.
    #[arg(long)]
    at: Option<String>,
}

/// Runs a `med8k pki` subcommand.
pub fn run(command: &PkiCommand) -> anyhow::Result<Outcome> {
    match command {
        PkiCommand::DemoInit(args) => demo_init(args),
        PkiCommand::Verify(args) => verify(args),
    }
}

const SO_PIN: &str = "demo-so-0000";

/// One demo token: label, user PIN, role (HPKI) or none (JPKI patient).
struct DemoToken {
    label: &'static str,
    pin: &'static str,
    role: Option<&'static str>,
}

const TOKENS: [DemoToken; 3] = [
    DemoToken {
        label: "med8k-patient",
        pin: "1111",
        role: None,
    },
    DemoToken {
        label: "med8k-physician",
        pin: "2222",
        role: Some("Medical Doctor"),
    },
    DemoToken {
        label: "med8k-pharmacist",
        pin: "3333",
        role: Some("Pharmacist"),
    },
];

const SITES: [&str; 2] = ["jp.hospital-a", "jp.hospital-b"];

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Writes a private key, readable by its owner only.
fn write_key(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .with_context(|| format!("writing {}", path.display()))
}

fn demo_init(args: &DemoInitArgs) -> anyhow::Result<Outcome> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let out = args
        .out
        .canonicalize()
        .with_context(|| format!("{}", args.out.display()))?;
    if out.join("pki.toml").exists() {
        bail!(
            "{} already holds a demo PKI (pki.toml); choose another --out",
            out.display()
        );
    }
    for d in ["ca", "certs", "keys", "crl", "facility"] {
        std::fs::create_dir_all(out.join(d))
            .with_context(|| format!("creating {}", out.join(d).display()))?;
    }
    let conf = write_softhsm2_conf(&out).with_context(|| format!("writing {}", out.display()))?;
    // `main` set SoftHSM2's configuration to this file before any thread.
    check_softhsm2_env(&conf)?;
    let module = Module::open(&args.module)
        .with_context(|| format!("PKCS#11 module {}", args.module.display()))?;

    let now = SystemTime::now();
    let pki = DemoPki::new(now, 5).context("making the demo CAs")?;
    write(&out.join("ca/jpki.pem"), pki.jpki.pem())?;
    write(&out.join("ca/hpki.pem"), pki.hpki_root.pem())?;
    write(&out.join("ca/facility.pem"), pki.facility.pem())?;

    let mut toml = String::new();
    let _ = writeln!(
        toml,
        "# med8k demo PKI. The PINs are for this demo only.\n\
         [pkcs11]\nmodule = {:?}\nsofthsm2_conf = {:?}\n\n\
         [trust]\njpki = \"ca/jpki.pem\"\nhpki = \"ca/hpki.pem\"\nfacility = \"ca/facility.pem\"\n\
         hpki_sign_policy = {DEMO_HPKI_SIGN_POLICY:?}\nhpki_auth_policy = {DEMO_HPKI_AUTH_POLICY:?}\n",
        module.path().display().to_string(),
        conf.display().to_string(),
    );

    let mut serial = 1000;
    for t in &TOKENS {
        module
            .init_token(t.label, SO_PIN, t.pin)
            .with_context(|| format!("initialising token {}", t.label))?;
        let session = module
            .login(t.label, t.pin)
            .with_context(|| format!("token {}", t.label))?;
        let _ = writeln!(
            toml,
            "[[token]]\nlabel = {:?}\npin = {:?}\n{}",
            t.label,
            t.pin,
            t.role
                .map(|r| format!("role = {r:?}\n"))
                .unwrap_or_default()
        );
        for (id, use_) in [(1u8, "sign"), (2u8, "auth")] {
            let (kind, chain): (LeafKind, Vec<&[u8]>) = match (t.role, use_) {
                (None, "sign") => (LeafKind::JpkiSign, vec![]),
                (None, _) => (LeafKind::JpkiAuth, vec![]),
                (Some(r), "sign") => (DemoPki::hpki_sign(r), vec![pki.hpki_sub.der()]),
                (Some(r), _) => (DemoPki::hpki_auth(r), vec![pki.hpki_sub.der()]),
            };
            let label = format!("{} {use_}", if t.role.is_some() { "HPKI" } else { "JPKI" });
            let spki = session
                .generate_rsa_key_pair(&[id], &label, 2048)
                .with_context(|| format!("generating the {label} key on {}", t.label))?;
            serial += 1;
            let der = pki
                .issue(&format!("{} {use_}", t.label), serial, kind, &spki)
                .context("issuing a token certificate")?;
            session
                .store_certificate(&[id], &label, &der)
                .with_context(|| format!("storing the {label} certificate on {}", t.label))?;
            let mut text = pem("CERTIFICATE", &der);
            for c in chain {
                text.push_str(&pem("CERTIFICATE", c));
            }
            let file = format!("certs/{}-{use_}.pem", t.label);
            write(&out.join(&file), &text)?;
            let _ = writeln!(
                toml,
                "[[token.key]]\nid = \"{id:02x}\"\nlabel = {label:?}\ncertificate = {file:?}\n"
            );
        }
    }

    for (i, site) in SITES.iter().enumerate() {
        let f = pki
            .facility_cert(site, 5000 + i as u64)
            .with_context(|| format!("facility {site}"))?;
        let cert = format!("facility/{site}.crt.pem");
        let key = format!("facility/{site}.key.pem");
        write(&out.join(&cert), &f.cert_pem)?;
        write_key(&out.join(&key), &f.key_pem)?;
        let _ = writeln!(
            toml,
            "[[facility]]\nid = {site:?}\ncertificate = {cert:?}\nkey = {key:?}\n"
        );
    }

    // A patient whose JPKI authentication certificate was revoked (key file).
    let revoked_serial = 666;
    let key = generate_rsa_key(2048).context("generating the revoked patient's key")?;
    let der = pki
        .issue(
            "med8k-revoked-patient auth",
            revoked_serial,
            LeafKind::JpkiAuth,
            &spki_of(&key),
        )
        .context("issuing the revoked certificate")?;
    write(
        &out.join("certs/revoked-patient-auth.pem"),
        &pem("CERTIFICATE", &der),
    )?;
    write_key(
        &out.join("keys/revoked-patient-auth.key.pem"),
        &rsa_key_pem(&key)?,
    )?;
    let day = Duration::from_secs(86_400);
    let (this, next) = (now - day, now + 30 * day);
    let revoked = [RevokedEntry {
        serial: revoked_serial,
        at: now - day,
    }];
    let jpki_crl = pki.jpki.crl(1, this, next, &revoked).context("JPKI CRL")?;
    write(&out.join("crl/jpki.crl.pem"), &pem("X509 CRL", &jpki_crl))?;
    let mut hpki_crl = pem(
        "X509 CRL",
        &pki.hpki_sub.crl(1, this, next, &[]).context("HPKI CRL")?,
    );
    hpki_crl.push_str(&pem(
        "X509 CRL",
        &pki.hpki_root.crl(1, this, next, &[]).context("HPKI CRL")?,
    ));
    write(&out.join("crl/hpki.crl.pem"), &hpki_crl)?;
    let fac_crl = pki
        .facility
        .crl(1, this, next, &[])
        .context("facility CRL")?;
    write(
        &out.join("crl/facility.crl.pem"),
        &pem("X509 CRL", &fac_crl),
    )?;
    let _ = writeln!(
        toml,
        "[revoked]\ncertificate = \"certs/revoked-patient-auth.pem\"\nkey = \"keys/revoked-patient-auth.key.pem\"\n\
         serial = {revoked_serial}\n\n\
         [crl]\njpki = \"crl/jpki.crl.pem\"\nhpki = \"crl/hpki.crl.pem\"\nfacility = \"crl/facility.crl.pem\""
    );
    write(&out.join("pki.toml"), &toml)?;

    println!("demo PKI in {}", out.display());
    println!(
        "  tokens: {} (PINs in pki.toml)",
        TOKENS.map(|t| t.label).join(", ")
    );
    println!("  facilities: {}", SITES.join(", "));
    println!("  export {SOFTHSM2_CONF_ENV}={}", conf.display());
    Ok(Outcome::Done)
}

fn read_certs(path: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if bytes.starts_with(b"-----BEGIN") {
        let blocks =
            pem_blocks(&bytes, "CERTIFICATE").with_context(|| path.display().to_string())?;
        if blocks.is_empty() {
            bail!("{} holds no CERTIFICATE block", path.display());
        }
        Ok(blocks)
    } else {
        Ok(vec![bytes])
    }
}

fn verify(args: &VerifyArgs) -> anyhow::Result<Outcome> {
    let purpose = args.purpose.purpose();
    let at = match &args.at {
        Some(s) => parse_rfc3339(s).with_context(|| format!("--at {s:?}"))?,
        None => SystemTime::now(),
    };
    let certs = read_certs(&args.cert)?;
    let (leaf, inters) = certs
        .split_first()
        .with_context(|| format!("{} holds no certificate", args.cert.display()))?;
    let inters: Vec<&[u8]> = inters.iter().map(Vec::as_slice).collect();

    let store = TrustStore::from_pem_files(purpose.store(), &args.trust)?;

    let mut config = ProfileConfig::default();
    if matches!(purpose, Purpose::HpkiSign | Purpose::HpkiAuth) {
        if args.policy.is_empty() {
            bail!("HPKI policy OIDs differ per CA: pass --policy OID (the demo's are in pki.toml)");
        }
        config
            .policies
            .insert(purpose, PolicyRule::AnyOf(args.policy.clone()));
    } else if !args.policy.is_empty() {
        config
            .policies
            .insert(purpose, PolicyRule::AnyOf(args.policy.clone()));
    }
    let profile = Profile::new(config);

    let refused = || format!("certificate {} refused", args.cert.display());
    let chain = verify_chain(leaf, &inters, &store, purpose, at).with_context(refused)?;
    profile.check(&chain).with_context(refused)?;

    let role = match &args.role {
        Some(name) => {
            let wanted = profile
                .config()
                .role_names
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name.trim()))
                .map(|(_, r)| *r)
                .with_context(|| format!("unknown role {name:?}"))?;
            Some(
                profile
                    .require_role(chain.leaf(), &[wanted])
                    .with_context(refused)?,
            )
        }
        None => None,
    };

    let revocation = if args.crl.is_empty() {
        "not checked (no --crl)".to_owned()
    } else {
        let mut crls = CrlFile::new();
        for c in &args.crl {
            crls.add_file(c)
                .with_context(|| format!("CRL {}", c.display()))?;
        }
        crls.check_chain(&chain, at).with_context(refused)?;
        format!("not revoked ({} CRL file(s))", args.crl.len())
    };

    let leaf = chain.leaf();
    let x = leaf.x509().context("certificate")?;
    let names = hc_roles(leaf, &profile.config().hc_role_attribute).unwrap_or_default();
    println!("accepted for {}: {}", purpose.name(), leaf.subject());
    println!("  issuer: {}", leaf.issuer());
    println!("  serial: {}", leaf.serial_hex());
    println!(
        "  valid: {} to {}",
        rfc3339(x.validity().not_before.timestamp()),
        rfc3339(x.validity().not_after.timestamp())
    );
    println!(
        "  chain: {}",
        chain
            .certs()
            .iter()
            .map(ParsedCert::subject)
            .collect::<Vec<_>>()
            .join(" <- ")
    );
    if !names.is_empty() {
        println!("  roles: {}", names.join(", "));
    }
    if let Some(r) = role {
        println!("  required role held: {r:?}");
    }
    println!("  revocation: {revocation}");
    println!("  sha256: {}", hex(&sha256(leaf.der())));
    Ok(Outcome::Done)
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`, or a bare date (midnight UTC).
fn parse_rfc3339(s: &str) -> anyhow::Result<SystemTime> {
    Ok(med8k_auth::civil::parse_rfc3339(s).map(med8k_auth::civil::from_unix)?)
}
