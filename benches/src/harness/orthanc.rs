//! A real PACS for the pathology scenario: Debian's Orthanc with its
//! DICOMweb plugin, started on free loopback ports with a temporary
//! configuration and storage, stopped when dropped. Where Orthanc is not
//! installed the scenario says so and measures without a PACS.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use med8k_dicom::web::DicomWeb;

/// Where Debian puts the DICOMweb plugin.
const DICOMWEB_PLUGIN: &str = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so";
/// The longest Orthanc may take to answer after starting.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running Orthanc.
#[derive(Debug)]
pub struct Orthanc {
    child: Child,
    _dir: tempfile::TempDir,
    http_port: u16,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Orthanc {
    /// Why Orthanc cannot be started here, if it cannot.
    pub fn missing() -> Option<String> {
        let installed = Command::new("Orthanc")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            return Some("Orthanc is not installed (Debian: orthanc, orthanc-dicomweb)".into());
        }
        if !Path::new(DICOMWEB_PLUGIN).exists() {
            return Some(format!(
                "Orthanc's DICOMweb plugin is not installed ({DICOMWEB_PLUGIN}: Debian orthanc-dicomweb)"
            ));
        }
        None
    }

    /// Starts Orthanc and waits until its DICOMweb root answers.
    pub fn start() -> anyhow::Result<Orthanc> {
        let dir = tempfile::tempdir()?;
        let (http_port, dicom_port) = (free_port()?, free_port()?);
        let storage = dir.path().join("storage");
        let config = serde_json::json!({
            "Name": "med8k-bench",
            "StorageDirectory": storage,
            "IndexDirectory": storage,
            "HttpPort": http_port,
            "DicomPort": dicom_port,
            "DicomAet": "ORTHANC",
            "RemoteAccessAllowed": false,
            "AuthenticationEnabled": false,
            "HttpServerEnabled": true,
            "DicomServerEnabled": true,
            "UnknownSopClassAccepted": true,
            "HttpCompressionEnabled": false,
            "StorageCompression": false,
            "Plugins": [DICOMWEB_PLUGIN],
            "DicomWeb": { "Enable": true, "Root": "/dicom-web/", "EnableWado": false },
        });
        let config_path = dir.path().join("orthanc.json");
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config)?)?;
        let child = Command::new("Orthanc")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.path().join("orthanc.log"))?)
            .stderr(std::fs::File::create(dir.path().join("orthanc.err"))?)
            .spawn()
            .context("starting Orthanc")?;
        let mut o = Orthanc {
            child,
            _dir: dir,
            http_port,
        };
        let web = DicomWeb::new(&o.dicomweb(), Duration::from_secs(5))?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = o.child.try_wait() {
                bail!("Orthanc exited ({status}) while starting");
            }
            if std::net::TcpStream::connect(("127.0.0.1", http_port)).is_ok()
                && web.instances("1.2.3.4").is_ok()
            {
                return Ok(o);
            }
            if Instant::now() >= deadline {
                bail!(
                    "Orthanc did not answer within {} s",
                    START_TIMEOUT.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Its DICOMweb root.
    pub fn dicomweb(&self) -> String {
        format!("http://127.0.0.1:{}/dicom-web", self.http_port)
    }
}

impl Drop for Orthanc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
