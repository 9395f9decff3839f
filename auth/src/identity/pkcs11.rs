//! Keys on cards and tokens, through a PKCS#11 module.
//!
//! [`Module::open`] loads and initialises a module once per process (a
//! module may be initialised only once; every later open of the same path
//! shares that context). [`Module::login`] finds a token by label and logs in
//! with the user PIN; the [`TokenSession`] lists certificates and makes a
//! [`TokenSigner`] from the private key with the certificate's `CKA_ID`,
//! which signs the SHA-256 `DigestInfo` with `CKM_RSA_PKCS` only, as JPKI
//! cards do.
//!
//! For demos and tests the session also provisions a token (SoftHSM2): key
//! pair generation on the token, reading its public key, storing a
//! certificate, importing a key made elsewhere. [`Module::init_token`]
//! initialises a fresh token in the first free slot.
//!
//! SoftHSM2 reads `SOFTHSM2_CONF` when the module is initialised, so in one
//! process every token lives in the directory named by its value at the
//! first open.
//!
//! PINs are never logged nor put in errors.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{
    Attribute, AttributeType, CertificateType, KeyType, ObjectClass, ObjectHandle,
};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use rsa::RsaPrivateKey;
use rsa::traits::{PrivateKeyParts, PublicKeyParts};

use super::RsaSpki;
use super::{IdentityError, Signer, digest_info_sha256};

/// Where Debian's softhsm2 package installs the module.
pub const SOFTHSM2_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// Environment variable SoftHSM2 reads its configuration file from.
pub const SOFTHSM2_CONF_ENV: &str = "SOFTHSM2_CONF";

/// Writes `dir/softhsm2.conf` keeping tokens in `dir/tokens` (created);
/// returns the configuration's path, for [`SOFTHSM2_CONF_ENV`]. Never point
/// tests or demos at the system's token directory.
pub fn write_softhsm2_conf(dir: &Path) -> std::io::Result<PathBuf> {
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens)?;
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "# med8k: a private SoftHSM2 token directory\n\
             directories.tokendir = {}\n\
             objectstore.backend = file\n\
             log.level = ERROR\n\
             slots.removable = false\n",
            tokens.display()
        ),
    )?;
    Ok(conf)
}

fn ck(what: &str) -> impl FnOnce(CkError) -> IdentityError + '_ {
    move |e| match e {
        CkError::Pkcs11(RvError::PinIncorrect | RvError::PinLocked, _) => IdentityError::PinRefused,
        e => IdentityError::Pkcs11(format!("{what}: {e}")),
    }
}

fn pin(p: &str) -> AuthPin {
    AuthPin::from(p.to_owned())
}

/// A loaded and initialised PKCS#11 module, shared process-wide.
#[derive(Debug)]
pub struct Module {
    path: PathBuf,
    ctx: Pkcs11,
    /// Serialises token initialisation (slot lists change under it).
    provisioning: Mutex<()>,
}

fn registry() -> &'static Mutex<HashMap<PathBuf, Arc<Module>>> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Arc<Module>>>> = OnceLock::new();
    MODULES.get_or_init(|| Mutex::new(HashMap::new()))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves no broken invariant here.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A token as listed by [`Module::tokens`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSummary {
    /// The slot holding it.
    pub slot: u64,
    /// Its label, trimmed.
    pub label: String,
    /// Whether it has been initialised.
    pub initialized: bool,
}

impl Module {
    /// Loads and initialises the module at `path`, or returns the context a
    /// previous call made for the same path (canonicalised).
    pub fn open(path: &Path) -> Result<Arc<Module>, IdentityError> {
        let key = path.canonicalize().map_err(|e| {
            IdentityError::NotFound(format!("PKCS#11 module {}: {e}", path.display()))
        })?;
        let mut reg = lock(registry());
        if let Some(m) = reg.get(&key) {
            return Ok(m.clone());
        }
        let ctx = Pkcs11::new(&key).map_err(ck("loading the module"))?;
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) => {}
            // Someone else in this process (e.g. `pkcs11::probe`) holds it.
            Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => return Err(ck("C_Initialize")(e)),
        }
        let m = Arc::new(Module {
            path: key.clone(),
            ctx,
            provisioning: Mutex::new(()),
        });
        reg.insert(key, m.clone());
        Ok(m)
    }

    /// Runs `f` with the registry locked (no module opens meanwhile), with
    /// the module already opened at `path` in this process, if any.
    pub(crate) fn with_opened<R>(path: &Path, f: impl FnOnce(Option<&Module>) -> R) -> R {
        let reg = lock(registry());
        let m = path.canonicalize().ok().and_then(|k| reg.get(&k).cloned());
        f(m.as_deref())
    }

    /// The initialised context.
    pub(crate) fn context(&self) -> &Pkcs11 {
        &self.ctx
    }

    /// The module's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every slot with a token, initialised or not.
    pub fn tokens(&self) -> Result<Vec<TokenSummary>, IdentityError> {
        let slots = self
            .ctx
            .get_slots_with_token()
            .map_err(ck("C_GetSlotList"))?;
        slots
            .into_iter()
            .map(|s| {
                let info = self.ctx.get_token_info(s).map_err(ck("C_GetTokenInfo"))?;
                Ok(TokenSummary {
                    slot: s.id(),
                    label: info.label().trim().to_owned(),
                    initialized: info.token_initialized(),
                })
            })
            .collect()
    }

    fn find_slot(&self, label: &str) -> Result<Slot, IdentityError> {
        let slots = self
            .ctx
            .get_slots_with_initialized_token()
            .map_err(ck("C_GetSlotList"))?;
        for s in slots {
            let info = self.ctx.get_token_info(s).map_err(ck("C_GetTokenInfo"))?;
            if info.label().trim() == label {
                return Ok(s);
            }
        }
        Err(IdentityError::NotFound(format!(
            "no token labelled {label:?} in {}",
            self.path.display()
        )))
    }

    /// Initialises a new token labelled `label` in the first slot without an
    /// initialised token, and sets its user PIN. Refuses a label already in use.
    pub fn init_token(
        &self,
        label: &str,
        so_pin: &str,
        user_pin: &str,
    ) -> Result<(), IdentityError> {
        let _guard = lock(&self.provisioning);
        if self.find_slot(label).is_ok() {
            return Err(IdentityError::Pkcs11(format!(
                "a token labelled {label:?} already exists"
            )));
        }
        let slots = self
            .ctx
            .get_slots_with_token()
            .map_err(ck("C_GetSlotList"))?;
        let mut free = None;
        for s in slots {
            let info = self.ctx.get_token_info(s).map_err(ck("C_GetTokenInfo"))?;
            if !info.token_initialized() {
                free = Some(s);
                break;
            }
        }
        let slot = free.ok_or_else(|| {
            IdentityError::NotFound("no slot with an uninitialised token".to_owned())
        })?;
        self.ctx
            .init_token(slot, &pin(so_pin), label)
            .map_err(ck("C_InitToken"))?;
        let session = self
            .ctx
            .open_rw_session(slot)
            .map_err(ck("C_OpenSession"))?;
        session
            .login(UserType::So, Some(&pin(so_pin)))
            .map_err(ck("C_Login (SO)"))?;
        session.init_pin(&pin(user_pin)).map_err(ck("C_InitPIN"))?;
        session.logout().map_err(ck("C_Logout"))?;
        Ok(())
    }

    /// Opens a read-write session on the token labelled `label` and logs the
    /// user in with `user_pin`; a wrong PIN is [`IdentityError::PinRefused`].
    /// One [`TokenSession`] per token at a time: while one (or a signer made
    /// from it) lives, another login to the same token is refused, since the
    /// module would not check its PIN.
    pub fn login(
        self: &Arc<Self>,
        label: &str,
        user_pin: &str,
    ) -> Result<TokenSession, IdentityError> {
        let slot = self.find_slot(label)?;
        let session = self
            .ctx
            .open_rw_session(slot)
            .map_err(ck("C_OpenSession"))?;
        match session.login(UserType::User, Some(&pin(user_pin))) {
            Ok(()) => {}
            // The module would not check this PIN: refuse rather than let a
            // second caller in on the first one's login.
            Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {
                return Err(IdentityError::Pkcs11(format!(
                    "token {label:?} is already logged in by this process; \
                     drop its other session (and signers) first"
                )));
            }
            Err(e) => return Err(ck("C_Login")(e)),
        }
        Ok(TokenSession {
            label: label.to_owned(),
            session: Arc::new(Mutex::new(session)),
        })
    }
}

/// A certificate object on a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenCert {
    /// `CKA_LABEL`.
    pub label: String,
    /// `CKA_ID`, shared with its private key.
    pub id: Vec<u8>,
    /// `CKA_VALUE`: the DER certificate.
    pub der: Vec<u8>,
}

/// A logged-in session on one token.
#[derive(Debug)]
pub struct TokenSession {
    label: String,
    session: Arc<Mutex<Session>>,
}

impl TokenSession {
    /// The token's label.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The X.509 certificate objects.
    pub fn certificates(&self) -> Result<Vec<TokenCert>, IdentityError> {
        let s = lock(&self.session);
        let handles = s
            .find_objects(&[
                Attribute::Class(ObjectClass::CERTIFICATE),
                Attribute::CertificateType(CertificateType::X_509),
            ])
            .map_err(ck("C_FindObjects"))?;
        let mut out = Vec::new();
        for h in handles {
            let attrs = s
                .get_attributes(
                    h,
                    &[
                        AttributeType::Label,
                        AttributeType::Id,
                        AttributeType::Value,
                    ],
                )
                .map_err(ck("C_GetAttributeValue"))?;
            let mut c = TokenCert {
                label: String::new(),
                id: Vec::new(),
                der: Vec::new(),
            };
            for a in attrs {
                match a {
                    Attribute::Label(l) => c.label = String::from_utf8_lossy(&l).into_owned(),
                    Attribute::Id(i) => c.id = i,
                    Attribute::Value(v) => c.der = v,
                    _ => {}
                }
            }
            out.push(c);
        }
        Ok(out)
    }

    fn find_one(
        s: &Session,
        class: ObjectClass,
        id: &[u8],
        what: &str,
    ) -> Result<ObjectHandle, IdentityError> {
        let found = s
            .find_objects(&[Attribute::Class(class), Attribute::Id(id.to_vec())])
            .map_err(ck("C_FindObjects"))?;
        match found.as_slice() {
            [h] => Ok(*h),
            [] => Err(IdentityError::NotFound(format!(
                "no {what} with CKA_ID {}",
                crate::cert::hex(id)
            ))),
            _ => Err(IdentityError::NotFound(format!(
                "{} objects of {what} with CKA_ID {}",
                found.len(),
                crate::cert::hex(id)
            ))),
        }
    }

    /// A signer for the certificate with `CKA_ID` `id` and the private key
    /// with the same id.
    pub fn signer(&self, id: &[u8]) -> Result<TokenSigner, IdentityError> {
        let cert = self
            .certificates()?
            .into_iter()
            .find(|c| c.id == id)
            .ok_or_else(|| {
                IdentityError::NotFound(format!(
                    "no certificate with CKA_ID {} on token {:?}",
                    crate::cert::hex(id),
                    self.label
                ))
            })?;
        let key = Self::find_one(
            &lock(&self.session),
            ObjectClass::PRIVATE_KEY,
            id,
            "private key",
        )?;
        Ok(TokenSigner {
            session: self.session.clone(),
            key,
            cert: cert.der,
        })
    }

    /// A signer for the certificate labelled `label`.
    pub fn signer_by_label(&self, label: &str) -> Result<TokenSigner, IdentityError> {
        let id = self
            .certificates()?
            .into_iter()
            .find(|c| c.label == label)
            .map(|c| c.id)
            .ok_or_else(|| {
                IdentityError::NotFound(format!(
                    "no certificate labelled {label:?} on token {:?}",
                    self.label
                ))
            })?;
        self.signer(&id)
    }

    /// Generates an RSA key pair of `bits` on the token (private key
    /// sensitive and not extractable), both halves with `id` and `label`;
    /// returns the public key.
    pub fn generate_rsa_key_pair(
        &self,
        id: &[u8],
        label: &str,
        bits: u64,
    ) -> Result<RsaSpki, IdentityError> {
        let s = lock(&self.session);
        let public = [
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::ModulusBits(bits.into()),
            Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
            Attribute::Id(id.to_vec()),
            Attribute::Label(label.as_bytes().to_vec()),
        ];
        let private = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Id(id.to_vec()),
            Attribute::Label(label.as_bytes().to_vec()),
        ];
        s.generate_key_pair(&Mechanism::RsaPkcsKeyPairGen, &public, &private)
            .map_err(ck("C_GenerateKeyPair"))?;
        drop(s);
        self.public_key(id)
    }

    /// The RSA public key object with `id`, as a SubjectPublicKeyInfo.
    pub fn public_key(&self, id: &[u8]) -> Result<RsaSpki, IdentityError> {
        let s = lock(&self.session);
        let h = Self::find_one(&s, ObjectClass::PUBLIC_KEY, id, "public key")?;
        let attrs = s
            .get_attributes(h, &[AttributeType::Modulus, AttributeType::PublicExponent])
            .map_err(ck("C_GetAttributeValue"))?;
        let (mut n, mut e) = (None, None);
        for a in attrs {
            match a {
                Attribute::Modulus(v) => n = Some(v),
                Attribute::PublicExponent(v) => e = Some(v),
                _ => {}
            }
        }
        match (n, e) {
            (Some(n), Some(e)) => Ok(RsaSpki::from_modulus_exponent(&n, &e)),
            _ => Err(IdentityError::UnsupportedKey(
                "public key without modulus or exponent (not RSA?)".to_owned(),
            )),
        }
    }

    /// Stores `der` as a token X.509 certificate object with `id` and `label`.
    pub fn store_certificate(
        &self,
        id: &[u8],
        label: &str,
        der: &[u8],
    ) -> Result<(), IdentityError> {
        let cert = crate::cert::ParsedCert::from_der(der)?;
        let x = cert.x509()?;
        let subject = x.subject().as_raw().to_vec();
        let s = lock(&self.session);
        s.create_object(&[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::CertificateType(CertificateType::X_509),
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Id(id.to_vec()),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Subject(subject),
            Attribute::Value(der.to_vec()),
        ])
        .map_err(ck("C_CreateObject (certificate)"))?;
        Ok(())
    }

    /// Imports an RSA private key made elsewhere (tests, to compare with the
    /// key-file path), and its public half, under `id` and `label`.
    pub fn import_rsa_key(
        &self,
        id: &[u8],
        label: &str,
        key: &RsaPrivateKey,
    ) -> Result<(), IdentityError> {
        let be = |b: &rsa::BigUint| b.to_bytes_be();
        let [p, q] = key.primes() else {
            return Err(IdentityError::UnsupportedKey(
                "multi-prime RSA keys cannot be imported".to_owned(),
            ));
        };
        let (Some(dp), Some(dq), Some(qinv)) = (key.dp(), key.dq(), key.crt_coefficient()) else {
            return Err(IdentityError::UnsupportedKey(
                "RSA key without CRT values".to_owned(),
            ));
        };
        let s = lock(&self.session);
        s.create_object(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::RSA),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Sign(true),
            Attribute::Id(id.to_vec()),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Modulus(be(key.n())),
            Attribute::PublicExponent(be(key.e())),
            Attribute::PrivateExponent(be(key.d())),
            Attribute::Prime1(be(p)),
            Attribute::Prime2(be(q)),
            Attribute::Exponent1(be(dp)),
            Attribute::Exponent2(be(dq)),
            Attribute::Coefficient(be(&qinv)),
        ])
        .map_err(ck("C_CreateObject (private key)"))?;
        s.create_object(&[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::KeyType(KeyType::RSA),
            Attribute::Token(true),
            Attribute::Verify(true),
            Attribute::Id(id.to_vec()),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Modulus(be(key.n())),
            Attribute::PublicExponent(be(key.e())),
        ])
        .map_err(ck("C_CreateObject (public key)"))?;
        Ok(())
    }
}

/// A token's private key with its certificate.
#[derive(Debug)]
pub struct TokenSigner {
    session: Arc<Mutex<Session>>,
    key: ObjectHandle,
    cert: Vec<u8>,
}

impl Signer for TokenSigner {
    fn certificate(&self) -> &[u8] {
        &self.cert
    }

    fn sign_sha256(&self, digest: &[u8; 32]) -> Result<Vec<u8>, IdentityError> {
        let s = lock(&self.session);
        s.sign(&Mechanism::RsaPkcs, self.key, &digest_info_sha256(digest))
            .map_err(ck("C_Sign (CKM_RSA_PKCS)"))
    }
}
