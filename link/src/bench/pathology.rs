//! A 7-band cube from the sending hospital to a pathologist's screen
//! (`med8k bench`'s pathology scenario), timed on one clock from the start
//! of coding:
//!
//! 1. the cube coded losslessly (the wavelet codec, as `med8k send` codes);
//! 2. the codestream sent as an object (reliable, SHA-256 checked) over a
//!    med8k session (quinn, mutual TLS under a CA made for the run) through
//!    the impairment relay at the inter-hospital class (150 Mbit/s, the
//!    loss and delay of `bench link --classes`);
//! 3. decoded at the receiving site and checked bit-exact;
//! 4. with a PACS (a DICOMweb root): stored as a VL Whole Slide Microscopy
//!    Image (one optical path per band, Explicit VR Little Endian) by
//!    STOW-RS, then read back the way `med8k view --pacs` reads it
//!    ([`med8k_dicom::study::open_spectral`]: QIDO-RS, WADO-RS) and checked
//!    bit-exact again; without one the viewer opens the decoded copy;
//! 5. the viewer's pyramid built and its first screen rendered (the
//!    coarsest level's tile, which shows the whole specimen, in true colour
//!    under D65: what the page asks for first), then every tile of the full
//!    resolution level (the whole image at 1:1).
//!
//! The study is a benchmark's own: no patient's data is involved.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use med8k_colour::Illuminant;
use med8k_dicom::identity::{Patient, StudyInfo};
use med8k_dicom::uid::UidRoot;
use med8k_dicom::web::DicomWeb;
use med8k_dicom::{Site, SpecimenSeries, Syntax, WsiOptions};
use med8k_media::picture::Picture;
use med8k_media::spectral::SpectralCube;
use med8k_pipeline::encode::Backend;
use med8k_transport::driver::{Congestion, Link};
use med8k_transport::proto::{Event, ObjectKind, ObjectOffer};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::live::Ends;
use super::{CONNECT_TIMEOUT, Setup, check_path, driver_config, impairment};
use crate::view::pyramid::{Pyramid, TILE, View};

/// Bytes handed to the link per call (as `med8k send` does).
const PIECE: usize = 1 << 20;
/// The longest the object may take to cross, beyond which the run reports
/// what it saw.
const OBJECT_TIMEOUT: Duration = Duration::from_secs(600);
/// How long the PACS may take to answer one request.
const PACS_TIMEOUT: Duration = Duration::from_secs(300);

/// What [`bench_pathology`] runs.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PathologyOptions {
    /// The relay's cap, Mbit/s.
    pub cap_mbps: f64,
    /// Random loss each way, percent.
    pub loss_percent: f64,
    /// One-way delay, ms.
    pub delay_ms: u64,
    /// A PACS's DICOMweb root (`http://HOST:PORT/dicom-web`), or none.
    pub pacs: Option<String>,
}

impl Default for PathologyOptions {
    fn default() -> Self {
        PathologyOptions {
            cap_mbps: 150.0,
            loss_percent: 1.0,
            delay_ms: 20,
            pacs: None,
        }
    }
}

/// What one cube's journey took. Times are milliseconds from the start of
/// coding unless they say "for".
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct PathologyReport {
    /// Width, height and bands of the cube.
    pub size: (usize, usize, usize),
    /// Bytes of the cube's samples.
    pub raw_bytes: u64,
    /// Bytes of the lossless codestream sent.
    pub coded_bytes: u64,
    /// UDP payload bytes the sender put on the wire.
    pub wire_bytes: u64,
    /// Packets the sender's QUIC connection declared lost, percent of
    /// those it sent (the relay's random loss and its full queue).
    pub packets_lost_percent: f64,
    /// Times the receiver found the object corrupt and it was sent again
    /// from the start.
    pub restarts: u64,
    /// Coding, for.
    pub encode_ms: f64,
    /// Opening the session (handshakes through the relay) until the
    /// receiver holds the whole object, SHA-256 checked, for.
    pub link_ms: f64,
    /// The codestream's rate over the link, Mbit/s.
    pub link_mbps: f64,
    /// Decoding at the receiving site, for.
    pub decode_ms: f64,
    /// The decoded cube equals the one sent.
    pub exact_after_link: bool,
    /// Bytes of the DICOM object stored (with a PACS).
    pub dicom_bytes: Option<u64>,
    /// Building the DICOM object and STOW-RS, for (with a PACS).
    pub store_ms: Option<f64>,
    /// The viewer's QIDO-RS and WADO-RS, for (with a PACS).
    pub retrieve_ms: Option<f64>,
    /// The cube read back from the PACS equals the one sent (with a PACS).
    pub exact_in_pacs: Option<bool>,
    /// Building the viewer's pyramid, for.
    pub pyramid_ms: f64,
    /// From the start to the first screen (the whole specimen, coarsest level).
    pub first_screen_ms: f64,
    /// Tiles at full resolution.
    pub full_tiles: u64,
    /// From the start to the last full-resolution tile.
    pub whole_image_ms: f64,
}

/// Sends `cube` along the whole path and reports.
pub fn bench_pathology(
    cube: &SpectralCube,
    options: &PathologyOptions,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<PathologyReport> {
    check_path(
        Some(options.loss_percent),
        Some(options.delay_ms),
        Some(options.cap_mbps),
    )?;
    let started = Instant::now();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let since = || ms(started.elapsed());

    // 1. Code.
    let picture = Picture::from_cube(cube).context("the cube as a picture")?;
    let (mut encoder, _) = Backend::Auto.encoder(&med8k_codec::Config::lossless())?;
    let coded = encoder.encode(&picture)?.data;
    let encode_ms = since();
    progress(&format!(
        "  {} bytes coded in {:.0} ms; over the link at {} Mbit/s",
        coded.len(),
        encode_ms,
        options.cap_mbps
    ));

    // 2. Across the link.
    let window = 8;
    let setup = Setup::new(
        driver_config(250, window, Congestion::Bbr),
        Some(impairment(
            options.loss_percent,
            Duration::from_millis(options.delay_ms),
            Some(options.cap_mbps),
        )?),
    )?;
    let rt = crate::runtime()?;
    let link_start = Instant::now();
    let (received, wire) = rt.block_on(async {
        let ends = tokio::time::timeout(CONNECT_TIMEOUT, Ends::open(&setup))
            .await
            .map_err(|_| anyhow!("no session within {} s", CONNECT_TIMEOUT.as_secs()))??;
        tokio::time::timeout(OBJECT_TIMEOUT, transfer(ends, &coded))
            .await
            .map_err(|_| {
                anyhow!(
                    "the cube did not cross within {} s",
                    OBJECT_TIMEOUT.as_secs()
                )
            })?
    })?;
    let link_ms = ms(link_start.elapsed());

    // 3. Decode at the receiving site.
    let decode_start = Instant::now();
    let mut decoder = Backend::Auto.decoder()?;
    let decoded = decoder.decode(&received, med8k_codec::DEFAULT_MAX_SAMPLES)?;
    let decoded = cube_of(&decoded, cube)?;
    let decode_ms = ms(decode_start.elapsed());
    let exact_after_link = decoded.data() == cube.data();

    // 4. The PACS, when there is one.
    let (mut dicom_bytes, mut store_ms, mut retrieve_ms, mut exact_in_pacs) =
        (None, None, None, None);
    let shown = match &options.pacs {
        Some(url) => {
            progress("  into the PACS (STOW-RS) and back the viewer's way (QIDO-RS, WADO-RS)");
            let web = DicomWeb::new(url, PACS_TIMEOUT)?;
            let t = Instant::now();
            let (study, bytes) = store(&web, &decoded)?;
            store_ms = Some(ms(t.elapsed()));
            dicom_bytes = Some(bytes);
            let t = Instant::now();
            let found = med8k_dicom::study::open_spectral(&web, &study, None, cube.band_count())?;
            retrieve_ms = Some(ms(t.elapsed()));
            exact_in_pacs = Some(found.image.cube.data() == cube.data());
            found.image.cube
        }
        None => decoded,
    };

    // 5. The viewer: its pyramid, its first screen, then the whole image.
    let t = Instant::now();
    let pyramid = Pyramid::new(shown)?;
    let pyramid_ms = ms(t.elapsed());
    let view = View::TrueColour(Illuminant::D65);
    let top = pyramid.level_count() - 1;
    pyramid.tile(view, top, 0, 0)?;
    let first_screen_ms = since();
    let (w, h) = (cube.width(), cube.height());
    let (tx, ty) = (w.div_ceil(TILE), h.div_ceil(TILE));
    for y in 0..ty {
        for x in 0..tx {
            pyramid.tile(view, 0, x, y)?;
        }
    }
    let whole_image_ms = since();
    Ok(PathologyReport {
        size: (w, h, cube.band_count()),
        raw_bytes: (cube.data().len() * 2) as u64,
        coded_bytes: coded.len() as u64,
        wire_bytes: wire.bytes,
        packets_lost_percent: wire.lost_percent,
        restarts: wire.restarts,
        encode_ms,
        link_ms,
        link_mbps: crate::mbps(coded.len() as u64, link_ms / 1e3),
        decode_ms,
        exact_after_link,
        dicom_bytes,
        store_ms,
        retrieve_ms,
        exact_in_pacs,
        pyramid_ms,
        first_screen_ms,
        full_tiles: (tx * ty) as u64,
        whole_image_ms,
    })
}

/// The decoded picture as a cube with the original's bands.
fn cube_of(pic: &Picture, like: &SpectralCube) -> anyhow::Result<SpectralCube> {
    let (w, h) = (pic.width() as usize, pic.height() as usize);
    if (w, h, pic.planes().len()) != (like.width(), like.height(), like.band_count()) {
        bail!(
            "decoded {}x{} with {} planes, sent {}x{} with {} bands",
            w,
            h,
            pic.planes().len(),
            like.width(),
            like.height(),
            like.band_count()
        );
    }
    let samples: Vec<u16> = pic.planes().concat();
    let data = ndarray::Array3::from_shape_vec((pic.planes().len(), h, w), samples)?;
    let mut cube = SpectralCube::new(like.bands().to_vec(), data)?;
    cube.reflectance_scale = like.reflectance_scale;
    Ok(cube)
}

/// What the sending end's connection saw.
struct Wire {
    bytes: u64,
    lost_percent: f64,
    restarts: u64,
}

/// Offers `bytes` as an object, sends it in pieces from where the receiver
/// asks, and reads it at the far end until it is whole and checked; the
/// bytes received and what the sender's connection saw.
async fn transfer(ends: Ends, bytes: &[u8]) -> anyhow::Result<(Vec<u8>, Wire)> {
    let Ends {
        tx,
        mut rx,
        server,
        relay,
    } = ends;
    let sha: [u8; 32] = Sha256::digest(bytes).into();
    let id = u64::from_be_bytes(sha[..8].try_into()?);
    let offer = ObjectOffer {
        id,
        kind: ObjectKind::SpectralCube,
        size: bytes.len() as u64,
        sha256: sha,
    };
    let receiving = tokio::spawn(async move {
        let mut got = BTreeMap::new();
        let mut restarts = 0u64;
        while let Some(event) = rx.next_event().await {
            match event {
                Event::ObjectData(d) if d.id == id => {
                    got.insert(d.offset, d.data);
                }
                Event::ObjectCorrupt { id: c } if c == id => {
                    restarts += 1;
                    got.clear();
                }
                Event::ObjectComplete { id: c } if c == id => {
                    let whole = got.into_values().flatten().collect::<Vec<u8>>();
                    return Ok((whole, restarts, rx));
                }
                Event::Closed { why, detail, .. } => {
                    bail!("the session closed before the cube arrived: {why:?} ({detail})")
                }
                _ => {}
            }
        }
        bail!("the receiving end ended before the cube arrived")
    });
    let sent = send(tx, offer, bytes).await;
    let (tx, sent) = match sent {
        Ok(tx) => (Some(tx), Ok(())),
        Err(e) => (None, Err(e)),
    };
    let received = receiving
        .await
        .map_err(|e| anyhow!("the receiver failed: {e}"));
    let stats = tx.as_ref().map(Link::stats);
    if let Some(tx) = &tx {
        tx.close("bench done");
    }
    server.close();
    drop(relay);
    sent?;
    let (got, restarts, _rx) = received??;
    let wire = Wire {
        bytes: stats.as_ref().map_or(0, |s| s.bytes_sent),
        lost_percent: stats.as_ref().map_or(0.0, |s| {
            s.packets_lost as f64 * 100.0 / s.packets_sent.max(1) as f64
        }),
        restarts,
    };
    Ok((got, wire))
}

/// The sending end of [`transfer`]: offers, then sends from each resume
/// point until the receiver says it holds the whole object.
async fn send(mut tx: Link, offer: ObjectOffer, bytes: &[u8]) -> anyhow::Result<Link> {
    let id = offer.id;
    tx.offer_object(offer).await?;
    let mut next: Option<usize> = None;
    loop {
        // Send while there is something to send, reading events between pieces.
        while let Some(event) = tx.try_next_event() {
            if handle(&event, id, &mut next)? {
                return Ok(tx);
            }
        }
        match next {
            Some(offset) if offset < bytes.len() => {
                let end = (offset + PIECE).min(bytes.len());
                tx.send_object_data(id, offset as u64, bytes[offset..end].to_vec())
                    .await?;
                next = Some(end);
            }
            _ => match tx.next_event().await {
                Some(event) => {
                    if handle(&event, id, &mut next)? {
                        return Ok(tx);
                    }
                }
                None => bail!("the sending end ended before the cube was delivered"),
            },
        }
    }
}

/// One sender event: `true` once the object is delivered.
fn handle(event: &Event, id: u64, next: &mut Option<usize>) -> anyhow::Result<bool> {
    match event {
        Event::ObjectResume { id: i, from } if *i == id => {
            *next = Some(usize::try_from(*from)?);
            Ok(false)
        }
        Event::ObjectDelivered { id: i } if *i == id => Ok(true),
        Event::ObjectRefused { id: i } if *i == id => bail!("the receiver refused the cube"),
        Event::Closed { why, detail, .. } => {
            bail!("the session closed while sending the cube: {why:?} ({detail})")
        }
        _ => Ok(false),
    }
}

/// Stores `cube` into the PACS as a benchmark study of its own (named by
/// the cube's digest: one spectral image per study, as the viewer expects);
/// its Study Instance UID and the object's bytes.
fn store(web: &DicomWeb, cube: &SpectralCube) -> anyhow::Result<(String, u64)> {
    let site = Site::new(UidRoot::Uuid).with_institution("med8k bench");
    let digest = med8k_dicom::wsi::cube_digest(cube);
    let study = StudyInfo {
        patient: Patient {
            id: "MED8K-BENCH".into(),
            name: "BENCH^PATHOLOGY".into(),
            birth_date: String::new(),
            sex: String::new(),
        },
        study_id: format!("B{}", &digest[..15]),
        accession: "BENCH".into(),
        description: "med8k bench".into(),
        date: "20260101".into(),
        time: "000000".into(),
    };
    let series = SpecimenSeries::new(&site, &study, cube, WsiOptions::default())?;
    let instance = series.spectral_image(cube)?;
    let bytes = instance.to_bytes(Syntax::ExplicitLittle)?;
    let len = bytes.len() as u64;
    web.store(&[("bench.spectral.dcm".into(), bytes)])
        .context("STOW-RS of the cube")?;
    Ok((instance.study_uid(), len))
}
