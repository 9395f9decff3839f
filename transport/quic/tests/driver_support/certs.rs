//! Test PKI: institution CAs and facility certificates made with rcgen.

use med8k_transport::driver::SiteIdentity;
use med8k_transport::driver::tls::facility_dns_name;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SerialNumber,
};
use rustls_pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, PrivatePkcs8KeyDer,
};

/// Serial numbers of the leaves, unique in the test binary.
static SERIALS: AtomicU64 = AtomicU64::new(1000);

/// An institution CA.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// Its self-signed certificate.
    pub der: CertificateDer<'static>,
    /// The same, PEM.
    pub pem: String,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        Ca {
            der: cert.der().clone(),
            pem: cert.pem(),
            issuer: Issuer::new(p, key),
        }
    }

    /// A facility certificate naming `facility`, valid now.
    pub fn facility(&self, facility: &str) -> Leaf {
        self.leaf(facility, false)
    }

    /// A facility certificate that expired in 2021.
    pub fn expired_facility(&self, facility: &str) -> Leaf {
        self.leaf(facility, true)
    }

    fn leaf(&self, facility: &str, expired: bool) -> Leaf {
        let mut p = CertificateParams::new(vec![facility_dns_name(facility)]).unwrap();
        p.distinguished_name.push(DnType::CommonName, facility);
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        if expired {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let serial = SERIALS.fetch_add(1, Ordering::Relaxed);
        p.serial_number = Some(SerialNumber::from(serial));
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            serial,
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert: cert.der().clone(),
            key: key.serialize_der(),
        }
    }
}

impl Ca {
    /// A CRL of this CA, current now, revoking `revoked`.
    pub fn crl(&self, revoked: &[&Leaf]) -> CertificateRevocationListDer<'static> {
        let day = Duration::from_secs(86_400);
        let now = SystemTime::now();
        let params = CertificateRevocationListParams {
            this_update: (now - day).into(),
            next_update: (now + day).into(),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|l| RevokedCertParams {
                    serial_number: SerialNumber::from(l.serial),
                    revocation_time: (now - day).into(),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params.signed_by(&self.issuer).unwrap().der().clone()
    }
}

/// A facility certificate and its key.
pub struct Leaf {
    pub serial: u64,
    pub cert: CertificateDer<'static>,
    pub key: Vec<u8>,
    pub cert_pem: String,
    pub key_pem: String,
}

impl Leaf {
    pub fn identity(&self) -> SiteIdentity {
        SiteIdentity::new(
            vec![self.cert.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone())),
        )
    }
}
