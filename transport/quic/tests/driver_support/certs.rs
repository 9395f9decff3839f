//! Test PKI: institution CAs and facility certificates made with rcgen.

use med8k_transport::driver::SiteIdentity;
use med8k_transport::driver::tls::facility_dns_name;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

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
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert: cert.der().clone(),
            key: key.serialize_der(),
        }
    }
}

/// A facility certificate and its key.
pub struct Leaf {
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
