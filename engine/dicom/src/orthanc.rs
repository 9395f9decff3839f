//! A PACS on this machine for the benchmark and the tests: Debian's Orthanc
//! with its DICOMweb plugin, started on free loopback ports with its own
//! temporary configuration and storage, and stopped when dropped (also when
//! a test fails: unwinding drops it). DICOMweb at [`LocalOrthanc::dicomweb`],
//! a Storage SCP at [`LocalOrthanc::scp`].

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::web::DicomWeb;

/// Where Debian puts the DICOMweb plugin.
pub const DICOMWEB_PLUGIN: &str = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so";
/// The longest Orthanc may take to answer after starting.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a local Orthanc could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OrthancError {
    /// Orthanc or its DICOMweb plugin is not installed.
    #[error("{0}")]
    Missing(String),
    /// Its configuration, storage or process could not be made.
    #[error("starting Orthanc: {0}")]
    Io(#[from] std::io::Error),
    /// It exited while starting; the last lines of its log.
    #[error("Orthanc exited ({status}) while starting: {log}")]
    Exited {
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The end of its log.
        log: String,
    },
    /// It did not answer in [`START_TIMEOUT`]; the last lines of its log.
    #[error("Orthanc did not answer within {} s: {log}", START_TIMEOUT.as_secs())]
    Timeout {
        /// The end of its log.
        log: String,
    },
}

/// A running Orthanc.
#[derive(Debug)]
pub struct LocalOrthanc {
    child: Child,
    _dir: tempfile::TempDir,
    /// Its REST and DICOMweb port.
    pub http_port: u16,
    /// Its DICOM (DIMSE) port.
    pub dicom_port: u16,
    log: PathBuf,
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl LocalOrthanc {
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
        if !std::path::Path::new(DICOMWEB_PLUGIN).exists() {
            return Some(format!(
                "Orthanc's DICOMweb plugin is not installed ({DICOMWEB_PLUGIN}: Debian orthanc-dicomweb)"
            ));
        }
        None
    }

    /// Starts Orthanc and waits (at most [`START_TIMEOUT`]) until its
    /// DICOMweb root answers. It accepts any SOP class and any calling AE.
    pub fn start() -> Result<LocalOrthanc, OrthancError> {
        if let Some(why) = Self::missing() {
            return Err(OrthancError::Missing(why));
        }
        let dir = tempfile::tempdir()?;
        let (http_port, dicom_port) = (free_port()?, free_port()?);
        let storage = dir.path().join("storage");
        let config = serde_json::json!({
            "Name": "med8k-local",
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
        std::fs::write(&config_path, config.to_string())?;
        let log = dir.path().join("orthanc.log");
        let child = Command::new("Orthanc")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log)?)
            .stderr(std::fs::File::create(dir.path().join("orthanc.err"))?)
            .spawn()?;
        let mut o = LocalOrthanc {
            child,
            _dir: dir,
            http_port,
            dicom_port,
            log,
        };
        let web = DicomWeb::new(&o.dicomweb(), Duration::from_secs(5))
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = o.child.try_wait() {
                return Err(OrthancError::Exited {
                    status,
                    log: o.logs(),
                });
            }
            if std::net::TcpStream::connect(("127.0.0.1", http_port)).is_ok()
                && web.instances("1.2.3.4").is_ok()
            {
                return Ok(o);
            }
            if Instant::now() >= deadline {
                return Err(OrthancError::Timeout { log: o.logs() });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Its DICOMweb root.
    pub fn dicomweb(&self) -> String {
        format!("http://127.0.0.1:{}/dicom-web", self.http_port)
    }

    /// Its Storage SCP, as `AE@host:port`.
    pub fn scp(&self) -> String {
        format!("ORTHANC@127.0.0.1:{}", self.dicom_port)
    }

    /// The last 30 lines of its log.
    pub fn logs(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default()
            + &std::fs::read_to_string(self.log.with_file_name("orthanc.err")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for LocalOrthanc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
