//! The tests' PACS: [`LocalOrthanc`] (Debian's Orthanc on loopback), or the
//! test fails saying why; and its instance count from the REST API.

use std::ops::Deref;

use med8k_dicom::orthanc::LocalOrthanc;

/// A running Orthanc, stopped when dropped.
pub struct Orthanc(LocalOrthanc);

impl Orthanc {
    /// Starts Orthanc and waits until it answers.
    pub fn start() -> Orthanc {
        Orthanc(LocalOrthanc::start().unwrap_or_else(|e| {
            panic!("{e} (scripts/setup-debian.sh installs orthanc and orthanc-dicomweb)")
        }))
    }

    /// Instance count from its REST API.
    pub fn instance_count(&self) -> u64 {
        let mut r = ureq::get(&format!("http://127.0.0.1:{}/statistics", self.http_port))
            .call()
            .expect("statistics");
        let v: serde_json::Value =
            serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
        v["CountInstances"].as_u64().unwrap()
    }
}

impl Deref for Orthanc {
    type Target = LocalOrthanc;

    fn deref(&self) -> &LocalOrthanc {
        &self.0
    }
}
