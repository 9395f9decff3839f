//! A real Orthanc (Debian's `orthanc` with `orthanc-dicomweb`) on loopback,
//! with its own temporary configuration and storage, on free ports; stopped
//! when dropped, also when a test fails (unwinding drops it).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian puts the DICOMweb plugin.
pub const DICOMWEB_PLUGIN: &str = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so";

/// A running Orthanc.
pub struct Orthanc {
    child: Child,
    _dir: tempfile::TempDir,
    pub http_port: u16,
    pub dicom_port: u16,
    pub log: PathBuf,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Orthanc {
    /// Starts Orthanc and waits (at most 60 s) until its REST API answers.
    pub fn start() -> Orthanc {
        let dir = tempfile::tempdir().expect("tempdir");
        let (http_port, dicom_port) = (free_port(), free_port());
        let storage = dir.path().join("storage");
        let config = serde_json::json!({
            "Name": "med8k-test",
            "StorageDirectory": storage,
            "IndexDirectory": storage,
            "HttpPort": http_port,
            "DicomPort": dicom_port,
            "DicomAet": "ORTHANC",
            "RemoteAccessAllowed": false,
            "AuthenticationEnabled": false,
            "HttpServerEnabled": true,
            "DicomServerEnabled": true,
            "DicomCheckCalledAet": false,
            "DicomAlwaysAllowStore": true,
            "DicomAlwaysAllowEcho": true,
            "UnknownSopClassAccepted": true,
            "HttpCompressionEnabled": false,
            "StorageCompression": false,
            "Plugins": [DICOMWEB_PLUGIN],
            "DicomWeb": { "Enable": true, "Root": "/dicom-web/", "EnableWado": false },
        });
        let config_path = dir.path().join("orthanc.json");
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        let log = dir.path().join("orthanc.log");
        let child = Command::new("Orthanc")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.path().join("orthanc.err")).unwrap())
            .spawn()
            .expect(
                "Orthanc (Debian orthanc, orthanc-dicomweb; scripts/setup-debian.sh installs them)",
            );
        let mut o = Orthanc {
            child,
            _dir: dir,
            http_port,
            dicom_port,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = o.child.try_wait() {
                panic!("Orthanc exited ({status}) while starting: {}", o.logs());
            }
            if std::net::TcpStream::connect(("127.0.0.1", http_port)).is_ok()
                && ureq::get(&format!("http://127.0.0.1:{http_port}/dicom-web/studies"))
                    .call()
                    .is_ok_and(|r| r.status().is_success())
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "Orthanc did not answer in 60 s: {}",
                o.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        o
    }

    /// Its DICOMweb root.
    pub fn dicomweb(&self) -> String {
        format!("http://127.0.0.1:{}/dicom-web", self.http_port)
    }

    /// Its Storage SCP.
    pub fn scp(&self) -> String {
        format!("ORTHANC@127.0.0.1:{}", self.dicom_port)
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

    /// The last lines of its log.
    pub fn logs(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default()
            + &std::fs::read_to_string(self.log.with_file_name("orthanc.err")).unwrap_or_default();
        text.lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Orthanc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
