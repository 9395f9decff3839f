//! The demo's remote-pathology loop: hospital A serves a 7-band specimen
//! behind its consent gate, the pathologist's desk at hospital B fetches it
//! into memory and serves the viewer on loopback, a scripted pathologist
//! (the viewer's own HTTP API, as the page uses it) draws a cut line and
//! sends it signed, and A verifies and stores it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use med8k_link::desk::{DeskEvent, DeskOptions};
use med8k_link::instructions::InstructionOutcome;
use med8k_link::serve::{ServeEvent, ServeOptions};
use med8k_link::view::ViewOptions;
use med8k_pipeline::Shutdown;
use serde::Serialize;

/// What the loop came to.
#[derive(Debug, Serialize)]
pub struct DeskRound {
    /// The specimen's size.
    pub specimen: (usize, usize),
    /// What A printed about the instructions.
    pub outcome: String,
    /// Whether A stored them, verified.
    pub stored: bool,
}

/// One HTTP/1.1 request to the viewer; the answer's head and body.
fn http(
    addr: &str,
    method: &str,
    path: &str,
    cookie: &str,
    body: &str,
) -> anyhow::Result<(String, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    Ok((head.to_owned(), body.to_owned()))
}

fn site(dir: &Path, id: &str, peer: &str, gate: &str) -> anyhow::Result<()> {
    let pki = crate::demo::DEMO_PKI;
    let text = format!(
        "[site]\nid = \"{id}\"\nname = \"{id}\"\n\n[tls]\n\
         cert = \"../{pki}/facility/{id}.crt.pem\"\nkey = \"../{pki}/facility/{id}.key.pem\"\n\
         roots = [\"../{pki}/ca/facility.pem\"]\nallowed = [\"{peer}\"]\n\n[link]\ndeadline_ms = 5000\n{gate}"
    );
    let path = dir.join(format!("{id}.toml"));
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

/// Runs the loop with the demo PKI under `samples/pki-v2` (consent granted to
/// jp.hospital-b already) on a 1024×1024 cut of `cube`.
pub fn desk_round(samples: &Path, cube: &Path, patient: &str) -> anyhow::Result<DeskRound> {
    let dir = samples.join("desk");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let gate = format!(
        "\n[gate]\nkind = \"consent\"\nledger = \"../{pki}/consent.sqlite\"\naudit = \"../{pki}/audit.jsonl\"\n\
         hpki_roots = [\"../{pki}/ca/hpki.pem\"]\nhpki_policies = [\"{}\"]\nhpki_sign_policies = [\"{}\"]\n\
         jpki_roots = [\"../{pki}/ca/jpki.pem\"]\nrequire_patient = true\n\
         crl = [\"../{pki}/crl/hpki.crl.pem\", \"../{pki}/crl/jpki.crl.pem\"]\n",
        med8k_auth::issue::DEMO_HPKI_AUTH_POLICY,
        med8k_auth::issue::DEMO_HPKI_SIGN_POLICY,
        pki = crate::demo::DEMO_PKI,
    );
    site(&dir, "jp.hospital-a", "jp.hospital-b", &gate)?;
    site(&dir, "jp.hospital-b", "jp.hospital-a", "")?;
    let full = med8k_media::spectral::envi::read(cube)
        .with_context(|| format!("reading {}", cube.display()))?;
    let side = 1024.min(full.width()).min(full.height());
    let (x0, y0) = ((full.width() - side) / 2, (full.height() - side) / 2);
    let crop = full
        .data()
        .slice(ndarray::s![.., y0..y0 + side, x0..x0 + side])
        .to_owned();
    let mut specimen = med8k_media::spectral::SpectralCube::new(full.bands().to_vec(), crop)?;
    specimen.reflectance_scale = full.reflectance_scale;
    drop(full);
    let stem = dir.join("specimen");
    med8k_media::spectral::envi::write(&specimen, &stem, "med8k demo specimen")?;

    // A: serve the specimen behind the consent gate.
    let (addr_tx, addr_rx) = mpsc::channel();
    let (out_tx, out_rx) = mpsc::channel::<String>();
    let mut options = ServeOptions::new("127.0.0.1:0".parse()?, dir.join("jp.hospital-a.toml"));
    options.source = Some(stem.with_extension("hdr"));
    options.out = Some(dir.join("received"));
    options.links = Some(1);
    options.source_patient = Some(patient.to_owned());
    options.source_category = Some(med8k_auth::consent::DataCategory::PathologyImages);
    let shutdown = Shutdown::new();
    let stop = shutdown.clone();
    let a = std::thread::spawn(move || {
        med8k_link::serve::serve(&options, &stop, &mut |e| match e {
            ServeEvent::Listening(addr) => {
                let _ = addr_tx.send(addr);
            }
            ServeEvent::Instructions(outcome) => {
                let stored = matches!(*outcome, InstructionOutcome::Stored { .. });
                let line = match *outcome {
                    InstructionOutcome::Stored {
                        facility,
                        signer,
                        marks,
                        files,
                        ..
                    } => format!(
                        "A stored {marks} mark(s) from {facility}, signed by {signer} (verified): {}",
                        files.json.display()
                    ),
                    InstructionOutcome::Refused { facility, reason } => {
                        format!("A refused instructions from {facility}: {reason}")
                    }
                    _ => String::new(),
                };
                let _ = out_tx.send(format!("{}{line}", if stored { "+" } else { "-" }));
            }
            _ => {}
        })
    });
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(30))
        .context("serve did not start")?;

    // B: the desk, the specimen in memory only.
    let (url_tx, url_rx) = mpsc::channel();
    let desk = DeskOptions {
        from: addr,
        config: dir.join("jp.hospital-b.toml"),
        facility: None,
        pki: samples.join(crate::demo::DEMO_PKI),
        physician_token: "med8k-physician".into(),
        patient_token: Some("med8k-patient".into()),
        pin_env: (None, None),
        patient: patient.to_owned(),
        category: med8k_auth::consent::DataCategory::PathologyImages,
        purpose: med8k_auth::consent::ConsentPurpose::RemoteConsultation,
        audit: dir.join("b-audit.jsonl"),
        view: ViewOptions::default(),
    };
    let b = std::thread::spawn(move || {
        med8k_link::desk::desk(
            &desk,
            Box::new(move |e| {
                if let DeskEvent::Url(u) = e {
                    let _ = url_tx.send(u);
                }
            }),
        )
    });
    let url = match url_rx.recv_timeout(Duration::from_secs(300)) {
        Ok(u) => u,
        Err(_) => {
            shutdown.request();
            let e = b.join().map_err(|_| anyhow!("the desk panicked"))?;
            bail!("the desk did not start: {:?}", e.err());
        }
    };
    println!(
        "desk: the viewer is at {url} (scripted here; `med8k view --from` opens it in a browser)"
    );

    // The scripted pathologist: the page's own requests.
    let rest = url.strip_prefix("http://").context("viewer URL")?;
    let (host, query) = rest.split_once('/').context("viewer URL")?;
    let (head, _) = http(host, "GET", &format!("/{query}"), "", "")?;
    let cookie = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .and_then(|c| c.split(';').next())
        .context("the viewer set no session cookie")?
        .to_owned();
    let s = side as f32;
    let mark = serde_json::json!({
        "shape": "polyline",
        "points": [[0.2 * s, 0.5 * s], [0.5 * s, 0.45 * s], [0.8 * s, 0.55 * s]],
        "label": "cut 1",
        "text": "through the lesion",
    });
    for (method, path, body) in [
        ("POST", "/api/marks", mark.to_string()),
        (
            "PUT",
            "/api/report",
            r#"{"report":"demo: cut along 1"}"#.to_owned(),
        ),
        ("POST", "/api/send", String::new()),
    ] {
        let (head, body) = http(host, method, path, &cookie, &body)?;
        if !head.starts_with("HTTP/1.1 2") {
            bail!("viewer {method} {path}: {}", body.trim());
        }
        if path == "/api/send" {
            println!("desk: {}", body.trim());
        }
    }
    let outcome = out_rx
        .recv_timeout(Duration::from_secs(60))
        .context("A said nothing about the instructions")?;
    http(host, "POST", "/api/end", &cookie, "")?;
    let ended = b.join().map_err(|_| anyhow!("the desk panicked"))??;
    println!("desk: session {}: the images were dropped", ended.why);
    let served = a.join().map_err(|_| anyhow!("serve panicked"))??;
    let _ = served;
    let stored = outcome.starts_with('+');
    let outcome = outcome[1..].to_owned();
    println!("{outcome}");
    Ok(DeskRound {
        specimen: (side, side),
        outcome,
        stored,
    })
}
