//! A site serves several peers at once (`med8k serve`'s flow, in process):
//! seven honest senders stream live frames while an eighth, hostile peer
//! (a valid certificate, then: floods frame streams announcing the largest
//! frames, never reads what the site sends, and sends garbage on its
//! control stream) attacks again and again. The seven are unaffected: each
//! gets nearly every frame through, and they share the site fairly.
//!
//! Memory: each link holds at most its frame budget, all links together at
//! most the site's overall budget (`[link] frame_budget_mb`,
//! `total_frame_budget_mb`), so the hostile peer's announced frames cannot
//! take what the others need; the process's resident set is sampled.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use med8k_link::serve::{LinkReport, ServeEvent, ServeOptions, serve};
use med8k_pipeline::Shutdown;
use med8k_transport::driver::{Client, Credentials, DriverConfig, Site, tls};
use med8k_transport::pki::Ephemeral;
use med8k_transport::proto::{
    self, Auth, CHALLENGE_LEN, Capabilities, Codec, Event, FrameHeader, Hello, Layout, Message,
    PixelFormat, Slice, Token, TokenKind,
};
use quinn::crypto::rustls::QuicClientConfig;

const SITE: &str = "jp.hospital-b";
const HONEST: &str = "jp.hospital-a";
const HOSTILE: &str = "jp.hospital-x";
const LINKS: usize = 7;
const SECONDS: u64 = 8;
const FPS: u64 = 20;
const FRAME: usize = 64 * 1024;

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

/// The serving site's files: its certificate, the CA, its configuration
/// (both peers' facilities allowed, the development gate).
fn site_files(dir: &Path, ca: &Ephemeral) {
    let leaf = ca.facility(SITE).unwrap();
    write(dir, "ca.pem", &ca.cert_pem);
    write(dir, "b.pem", &leaf.cert_pem);
    write(dir, "b.key", &leaf.key_pem);
    write(
        dir,
        "site-b.toml",
        &format!(
            "[site]\nid = \"{SITE}\"\nname = \"Site B\"\n\n[tls]\ncert = \"b.pem\"\n\
             key = \"b.key\"\nroots = [\"ca.pem\"]\nallowed = [\"{HONEST}\", \"{HOSTILE}\"]\n\n\
             [link]\ndeadline_ms = 500\nframe_budget_mb = 128\ntotal_frame_budget_mb = 512\n\n\
             [gate]\nkind = \"allow-authenticated\"\n"
        ),
    );
}

fn resident() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn credentials() -> Arc<dyn Credentials> {
    Arc::new(|_: &Hello, _: &[u8; CHALLENGE_LEN]| {
        vec![Token {
            kind: TokenKind::Consent,
            bytes: b"development".to_vec(),
        }]
    })
}

fn header(payload: &[u8], capture_us: u64) -> FrameHeader {
    FrameHeader {
        channel: 0,
        seq: 0,
        capture_us,
        codec: Codec::WaveletLossy,
        width: 7680,
        height: 4320,
        format: PixelFormat {
            layout: Layout::Yuv422,
            bit_depth: 10,
        },
        slices: vec![Slice {
            len: payload.len() as u32,
            crc: crc32fast::hash(payload),
        }],
        payload_len: payload.len() as u32,
    }
}

/// One honest sender: `FPS` frames a second for `SECONDS`; returns the
/// frames it sent and those the site reported lost.
async fn honest(addr: SocketAddr, ca: Arc<Ephemeral>, n: u64) -> (u64, u64) {
    let site = Site {
        identity: ca.facility(HONEST).unwrap().identity(),
        trust: ca.trust(vec![SITE.to_owned()]),
        hello: Hello::new(HONEST, "Site A", Capabilities::SEND_LIVE),
    };
    let mut link = Client::connect(addr, &site, SITE, credentials(), &DriverConfig::default())
        .await
        .unwrap();
    match tokio::time::timeout(Duration::from_secs(10), link.next_event()).await {
        Ok(Some(Event::Open { .. })) => {}
        other => panic!("honest link {n} did not open: {other:?}"),
    }
    let payload: Vec<u8> = (0..FRAME).map(|i| (i as u64 * 7 + n) as u8).collect();
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / FPS));
    let (mut sent, mut lost) = (0u64, 0u64);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(SECONDS) {
        tokio::select! {
            _ = tick.tick() => {
                let h = header(&payload, start.elapsed().as_micros() as u64);
                link.send_frame(h, payload.clone()).await.unwrap();
                sent += 1;
            }
            event = link.next_event() => match event {
                Some(Event::PeerFramesLost { ranges, .. }) => {
                    lost += med8k_link::count_lost(&ranges);
                }
                Some(Event::Closed { by, why, detail }) => {
                    panic!("honest link {n} closed: {by:?} {why:?} {detail}")
                }
                _ => {}
            },
        }
    }
    // The last reports.
    let until = tokio::time::Instant::now() + Duration::from_secs(1);
    while let Ok(Some(event)) = tokio::time::timeout_at(until, link.next_event()).await {
        if let Event::PeerFramesLost { ranges, .. } = event {
            lost += med8k_link::count_lost(&ranges);
        }
    }
    link.close("done");
    let _ = tokio::time::timeout(Duration::from_secs(2), link.into_transfers()).await;
    (sent, lost)
}

/// The hostile peer, again and again until `until`: a valid handshake,
/// then frame streams announcing 64 MiB frames it never completes, valid
/// small frames as fast as it can, nothing read, and garbage on the
/// control stream. Returns how many connections it made.
async fn hostile(addr: SocketAddr, ca: Arc<Ephemeral>, until: Instant) -> u32 {
    let leaf = ca.facility(HOSTILE).unwrap();
    let crypto = tls::client_config(&leaf.identity(), &ca.trust(vec![SITE.to_owned()])).unwrap();
    let crypto = QuicClientConfig::try_from(crypto).unwrap();
    let config = quinn::ClientConfig::new(Arc::new(crypto));
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut attacks = 0;
    while Instant::now() < until {
        let Ok(connecting) =
            endpoint.connect_with(config.clone(), addr, &tls::facility_dns_name(SITE))
        else {
            break;
        };
        let Ok(Ok(conn)) = tokio::time::timeout(Duration::from_secs(5), connecting).await else {
            continue;
        };
        attacks += 1;
        let Ok((mut control, _never_read)) = conn.open_bi().await else {
            continue;
        };
        let hello = Hello::new(HOSTILE, "Hostile", Capabilities::SEND_LIVE);
        let auth = Auth {
            tokens: vec![Token {
                kind: TokenKind::Consent,
                bytes: vec![0; 8],
            }],
        };
        for m in [Message::Hello(hello), Message::Auth(auth)] {
            let _ = control.write_all(&proto::encode_to_vec(&m).unwrap()).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        // The flood: announced giants that never come, and small frames.
        let flood_until = Instant::now() + Duration::from_millis(1500);
        let mut seq = 0u64;
        while Instant::now() < flood_until && Instant::now() < until {
            let Ok(Ok(mut s)) =
                tokio::time::timeout(Duration::from_millis(50), conn.open_uni()).await
            else {
                continue;
            };
            let giant = seq.is_multiple_of(2);
            let len = if giant { 64 << 20 } else { 1000 };
            let payload = vec![0xee; if giant { 100_000 } else { len }];
            let mut h = header(&payload, 0);
            h.seq = seq;
            h.payload_len = len as u32;
            h.slices = Vec::new();
            seq += 1;
            let bytes = proto::encode_to_vec(&Message::FrameHeader(h)).unwrap();
            let _ = s.write_all(&bytes).await;
            let _ = tokio::time::timeout(Duration::from_millis(20), s.write_all(&payload)).await;
            if !giant {
                let _ = s.finish();
            }
            // Giants are left open: their readers wait, holding budget.
            std::mem::forget(s);
        }
        let _ = control.write_all(&[0xff; 64]).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), conn.closed()).await;
    }
    endpoint.close(0u32.into(), b"done");
    attacks
}

#[test]
fn seven_links_are_unaffected_by_a_hostile_eighth() {
    let tmp = tempfile::TempDir::new().unwrap();
    let ca = Arc::new(Ephemeral::new("Test CA").unwrap());
    site_files(tmp.path(), &ca);
    let options = ServeOptions::new(
        "127.0.0.1:0".parse().unwrap(),
        tmp.path().join("site-b.toml"),
    );
    let shutdown = Shutdown::new();
    let (tx, rx) = mpsc::channel::<(Option<SocketAddr>, Option<LinkReport>)>();
    let server = std::thread::spawn({
        let shutdown = shutdown.clone();
        move || {
            serve(&options, &shutdown, &mut |event| match event {
                ServeEvent::Listening(a) => {
                    let _ = tx.send((Some(a), None));
                }
                ServeEvent::LinkEnded(r) => {
                    let _ = tx.send((None, Some(*r)));
                }
                _ => {}
            })
            .unwrap()
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(10)).unwrap().0.unwrap();
    let rss_before = resident();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let peak = Arc::new(std::sync::Mutex::new(rss_before));
    let (results, attacks) = rt.block_on(async {
        let until = Instant::now() + Duration::from_secs(SECONDS + 1);
        let attacker = tokio::spawn(hostile(addr, ca.clone(), until));
        let sampler = tokio::spawn({
            let peak = peak.clone();
            async move {
                while Instant::now() < until {
                    let r = resident();
                    {
                        let mut p = peak.lock().unwrap();
                        *p = (*p).max(r);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
        let senders: Vec<_> = (0..LINKS as u64)
            .map(|n| tokio::spawn(honest(addr, ca.clone(), n)))
            .collect();
        let mut results = Vec::new();
        for s in senders {
            results.push(s.await.unwrap());
        }
        let attacks = attacker.await.unwrap();
        sampler.await.unwrap();
        (results, attacks)
    });
    // Let the site report the links, then stop it.
    std::thread::sleep(Duration::from_secs(1));
    shutdown.request();
    let summary = server.join().unwrap();
    let reports: Vec<LinkReport> = rx.try_iter().filter_map(|(_, r)| r).collect();
    let peak = *peak.lock().unwrap();

    let honest: Vec<&LinkReport> = reports.iter().filter(|r| r.facility == HONEST).collect();
    let hostile: Vec<&LinkReport> = reports.iter().filter(|r| r.facility == HOSTILE).collect();
    for r in &reports {
        eprintln!(
            "link {} ({:?}): {} frames, {} lost, {} late; {}",
            r.facility, r.remote, r.frames, r.lost, r.late, r.ended
        );
    }
    eprintln!(
        "senders (sent, reported lost): {results:?}; {attacks} hostile connections; \
         {} links in all; resident set {} MB before, {} MB peak",
        summary.links,
        rss_before >> 20,
        peak >> 20
    );
    assert!(attacks >= 2, "the hostile peer attacked {attacks} times");
    assert!(!hostile.is_empty(), "the hostile links were never served");
    for r in &hostile {
        assert!(
            r.ended.contains("ProtocolViolation"),
            "a hostile link ended otherwise: {}",
            r.ended
        );
    }
    assert_eq!(honest.len(), LINKS, "every honest link served and reported");
    let sent_min = results.iter().map(|(s, _)| *s).min().unwrap();
    for (sent, lost) in &results {
        assert!(
            lost * 100 <= sent * 5,
            "an honest link lost {lost} of {sent}"
        );
    }
    let frames: Vec<u64> = honest.iter().map(|r| r.frames).collect();
    let (lo, hi) = (*frames.iter().min().unwrap(), *frames.iter().max().unwrap());
    assert!(
        lo * 100 >= sent_min * 95,
        "an honest link got {lo} of {sent_min}"
    );
    assert!(lo * 10 >= hi * 9, "unfair shares: {frames:?}");
    assert!(
        peak.saturating_sub(rss_before) < 1 << 30,
        "resident set grew from {} MB to {} MB",
        rss_before >> 20,
        peak >> 20
    );
}
