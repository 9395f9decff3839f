//! The remote pathologist's desk as a person uses it: two sites on loopback
//! with the demo PKI on SoftHSM2 tokens, the patient's consent, `med8k serve`
//! offering a 7-band cube at hospital A, `med8k view --from` at hospital B
//! (the physician's HPKI login, the specimen in memory only), and headless
//! Chromium (Debian's chromium and chromium-driver) driven over WebDriver:
//! wrong and missing tokens refused, zoom, bands, the spectrum at a point,
//! a cut line drawn, edited and sent; A verifies the signature and stores the
//! same coordinates; after the session the browser's profile holds none of
//! the specimen's bytes and its disk cache is empty. The screenshots in the
//! README come from this test (`MED8K_SCREENSHOTS=DIR`).
#![allow(clippy::unwrap_used)] // test helpers fail loudly

mod common;
#[path = "common/desk.rs"]
mod sites;
#[path = "../../auth/tests/softhsm/mod.rs"]
mod softhsm;
#[path = "common/webdriver.rs"]
mod webdriver;

use std::io::BufRead;
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use common::{Serve, med8k, stderr, stdout};
use med8k_auth::cert::{Profile, StoreKind, TrustStore};
use med8k_auth::consent::{SignatureCheck, cms};
use med8k_auth::identity::pkcs11::SOFTHSM2_MODULE;
use med8k_auth::issue::DemoPki;
use med8k_link::annotations::{InstructionSet, MarkShape};
use med8k_link::view::{Pyramid, View};
use serde_json::{Value, json};
use sites::{cert, desk, grant, sites, specimen};
use webdriver::{Browser, files_holding};

fn screenshot(b: &Browser, name: &str) {
    if let Some(dir) = std::env::var_os("MED8K_SCREENSHOTS") {
        std::fs::create_dir_all(&dir).unwrap();
        b.screenshot(&Path::new(&dir).join(name));
    }
}

fn tiles_settled(b: &Browser) {
    b.wait_for(
        "tiles",
        "const s = window.med8k && med8k.state(); return !!s && s.tilesLoaded > 0 && \
         [...document.images].length === 0 && true",
        Duration::from_secs(60),
    );
    // The page has drawn every tile it asked for when no request is pending.
    b.js_async(
        "const done = arguments[arguments.length - 1]; let last = -1, same = 0; \
         const tick = () => { const n = med8k.state().tilesLoaded; same = n === last ? same + 1 : 0; last = n; \
         if (same >= 8) done(n); else setTimeout(tick, 100); }; tick();",
    );
}

#[test]
fn the_desk_in_headless_chromium() {
    assert!(
        Path::new(SOFTHSM2_MODULE).exists(),
        "SoftHSM2 is not installed"
    );
    softhsm::isolated_in(
        "the_desk_in_headless_chromium",
        "pki/softhsm2.conf",
        desk_in,
    );
}

fn desk_in(dir: &Path) {
    let o = med8k(dir, &["pki", "demo-init", "--out", "pki"]);
    assert!(o.status.success(), "{}", stderr(&o));
    sites(dir);
    let cube = specimen(dir);
    let patient = grant(dir);
    let serve = Serve::start(
        dir,
        "127.0.0.1:0",
        "site-a.toml",
        &[
            "--source",
            "specimen.hdr",
            "--out",
            "a/received",
            "--links",
            "1",
            "--source-patient",
            patient.as_str(),
            "--source-category",
            "pathology-images",
        ],
    );
    let t0 = Instant::now();
    let (mut child, url, mut out) = desk(dir, &serve.addr, &patient);
    let base = url.split("/?t=").next().unwrap().to_owned();

    let browser = Browser::start(&dir.join("profile"));
    // Without the token, with a wrong one, and a page without the session: refused.
    browser.goto(&format!("{base}/"));
    assert!(
        browser.body_text().contains("no token"),
        "{}",
        browser.body_text()
    );
    browser.goto(&format!("{base}/?t=0000"));
    assert!(
        browser.body_text().contains("wrong token"),
        "{}",
        browser.body_text()
    );
    browser.goto(&format!("{base}/view"));
    assert!(
        browser.body_text().contains("no session"),
        "{}",
        browser.body_text()
    );
    browser.goto(&format!("{base}/api/tile/0/0/0?view=tc"));
    assert!(browser.body_text().contains("no session"));

    // With it: the viewer, at first the whole specimen.
    browser.goto(&url);
    browser.wait_for(
        "the first screen",
        "return !!window.med8k && med8k.state().firstFrameMs !== null",
        Duration::from_secs(60),
    );
    let first = browser.js("return med8k.state()", json!([]));
    println!(
        "time to first screen: {:.0} ms in the page ({:.2} s from starting view --from), {} tiles",
        first["firstFrameMs"].as_f64().unwrap(),
        t0.elapsed().as_secs_f64(),
        first["tilesLoaded"]
    );
    // The one-time token is used up.
    let second = Browser::start(&dir.join("profile-2"));
    second.goto(&url);
    assert!(
        second.body_text().contains("used already"),
        "{}",
        second.body_text()
    );
    second.quit();
    assert!(
        browser.body_text().contains("1050×1152, 7 bands"),
        "{}",
        browser.body_text()
    );
    tiles_settled(&browser);
    screenshot(&browser, "viewer-true-colour.png");

    // Out with the wheel over the canvas (to half the fitting zoom, the
    // least it allows): a coarser level of the pyramid;
    // then in past 1:1: the full-resolution tiles.
    let [cx, cy] = xy(&browser, 525.0, 576.0);
    let fit = browser.js("return med8k.state()", json!([]));
    browser.wheel(cx, cy, 800);
    browser.wait_for(
        "zoom out",
        &format!(
            "return med8k.state().zoom < {}",
            fit["zoom"].as_f64().unwrap() * 0.6
        ),
        Duration::from_secs(10),
    );
    tiles_settled(&browser);
    let before = browser.js("return med8k.state()", json!([]));
    assert!(before["level"].as_u64().unwrap() >= 1, "{fit} -> {before}");
    let [cx, cy] = xy(&browser, 525.0, 576.0);
    browser.wheel(cx, cy, -1600);
    browser.wait_for(
        "zoom in",
        "return med8k.state().zoom > 1",
        Duration::from_secs(10),
    );
    let after = browser.js("return med8k.state()", json!([]));
    assert!(after["level"].as_u64().unwrap() == 0, "{before} -> {after}");
    tiles_settled(&browser);
    // Back to the whole specimen for what follows.
    browser.click("#fit");
    tiles_settled(&browser);

    // One band alone, with its wavelength; false colour; the RGB camera beside.
    select(&browser, "#view", "band");
    select(&browser, "#band", "5");
    assert!(
        browser.text("#cap-main").contains("610 nm"),
        "{}",
        browser.text("#cap-main")
    );
    tiles_settled(&browser);
    screenshot(&browser, "viewer-band.png");
    select(&browser, "#view", "fc");
    assert!(browser.text("#cap-main").starts_with("False colour"));
    select(&browser, "#view", "tc");
    browser.click("#compare");
    tiles_settled(&browser);

    // The spectrum at a point: the page shows the cube's 7 samples there.
    let (px, py) = (600usize, 500usize);
    let [sx, sy] = xy(&browser, px as f32 + 0.5, py as f32 + 0.5);
    browser.mouse(&[("click", sx, sy)]);
    browser.wait_for(
        "the spectrum",
        "return document.querySelectorAll('#spec-table tbody tr').length === 7",
        Duration::from_secs(20),
    );
    // At the fitting zoom a screen pixel covers 1.5 image pixels: the page
    // reads the one under the click, within a pixel of the aim.
    let at = browser.text("#spec-where");
    let (px, py) = at
        .strip_prefix("Pixel (")
        .and_then(|r| r.strip_suffix(')'))
        .and_then(|r| r.split_once(", "))
        .map(|(x, y)| (x.parse::<usize>().unwrap(), y.parse::<usize>().unwrap()))
        .unwrap_or_else(|| panic!("{at}"));
    assert!(px.abs_diff(600) <= 1 && py.abs_diff(500) <= 1, "{at}");
    let cells: Vec<Value> = browser
        .js("return [...document.querySelectorAll('#spec-table tbody tr')].map(r => r.cells[2].textContent)", json!([]))
        .as_array()
        .unwrap()
        .clone();
    for (b, c) in cells.iter().enumerate() {
        assert_eq!(
            c.as_str().unwrap(),
            cube.data()[[b, py, px]].to_string(),
            "band {b}"
        );
    }
    screenshot(&browser, "viewer-compare-spectrum.png");

    // A cut line: three clicks and a double-click, a label, then edited.
    browser.click("#tool-line");
    let pts: [(f32, f32); 3] = [(300.0, 400.0), (520.0, 470.0), (760.0, 430.0)];
    for &(x, y) in &pts {
        let [sx, sy] = xy(&browser, x, y);
        browser.mouse(&[("click", sx, sy)]);
    }
    // The double-click: two clicks in one action chain, as a hand makes them.
    let [sx, sy] = xy(&browser, pts[2].0, pts[2].1);
    browser.mouse(&[("click", sx, sy), ("click", sx, sy)]);
    browser.wait_for(
        "the mark form",
        "return !document.getElementById('mark-form').hidden",
        Duration::from_secs(10),
    );
    browser.type_into("#mark-label", "cut 1");
    browser.type_into("#mark-text", "through the lesion, 5 mm from the margin");
    browser.click("#mark-save");
    browser.wait_for(
        "the mark",
        "return document.querySelectorAll('#marks li').length === 1",
        Duration::from_secs(10),
    );
    browser.click("#marks li .edit");
    browser.type_into("#mark-label", "cut A");
    browser.click("#mark-save");
    browser.wait_for(
        "the edit",
        "return document.querySelector('#marks li').textContent.startsWith('cut A')",
        Duration::from_secs(10),
    );
    // A region drawn and deleted again.
    browser.click("#tool-rect");
    let [x0, y0] = xy(&browser, 200.0, 200.0);
    let [x1, y1] = xy(&browser, 350.0, 320.0);
    browser.mouse(&[
        ("down", x0, y0),
        ("move", (x0 + x1) / 2.0, (y0 + y1) / 2.0),
        ("up", x1, y1),
    ]);
    browser.wait_for(
        "the region form",
        "return !document.getElementById('mark-form').hidden",
        Duration::from_secs(10),
    );
    browser.type_into("#mark-label", "region 1");
    browser.click("#mark-save");
    browser.wait_for(
        "two marks",
        "return document.querySelectorAll('#marks li').length === 2",
        Duration::from_secs(10),
    );
    browser.click("#marks li:nth-child(2) .delete");
    browser.wait_for(
        "one mark",
        "return document.querySelectorAll('#marks li').length === 1",
        Duration::from_secs(10),
    );
    let marks = browser.js_async(
        "const done = arguments[arguments.length - 1]; fetch('/api/marks').then(r => r.json()).then(done);",
    );
    let page_points = marks["marks"][0]["points"].clone();
    browser.type_into("#report", "Adenocarcinoma suspected; cut along A.");
    browser.click("#tool-pan");
    screenshot(&browser, "viewer-cut-line.png");
    browser.click("#send");
    browser.wait_for("sent", "return document.getElementById('send-status').className === 'ok' && document.getElementById('send-status').textContent.startsWith('sent')", Duration::from_secs(30));
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(
        line.starts_with("sent 1 signed mark(s) to jp.hospital-a"),
        "{line}"
    );

    // Nothing in the page's storage, no service worker.
    let storage = browser.js_async(
        "const done = arguments[arguments.length - 1]; (async () => done({ \
           local: localStorage.length, session: sessionStorage.length, \
           caches: (await caches.keys()).length, idb: (await indexedDB.databases()).length, \
           workers: (await navigator.serviceWorker.getRegistrations()).length }))();",
    );
    assert_eq!(
        storage,
        json!({"local": 0, "session": 0, "caches": 0, "idb": 0, "workers": 0})
    );

    // End the session: Clear-Site-Data, the viewer stops, the images go.
    browser.click("#end");
    browser.wait_for(
        "the end",
        "return !!document.getElementById('ended')",
        Duration::from_secs(10),
    );
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert!(status.success(), "{rest}");
    assert!(
        rest.contains("session ended: the images were dropped"),
        "{rest}"
    );
    // The viewer is gone: nothing answers there any more.
    browser.goto("about:blank");
    assert!(TcpStream::connect(base.trim_start_matches("http://")).is_err());
    browser.quit();

    // A received the same coordinates, with a signature it verified.
    let served = serve.wait(Duration::from_secs(30));
    let text = stdout(&served);
    assert!(
        text.contains("instructions from jp.hospital-b: 1 mark(s), 1 cut line(s), signed by"),
        "{text}{}",
        stderr(&served)
    );
    assert!(text.contains("(verified)"), "{text}");
    let stored: Vec<_> = std::fs::read_dir(dir.join("a/received/instructions"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    let json_path = stored
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .unwrap();
    let set = InstructionSet::from_document(&std::fs::read(json_path).unwrap()).unwrap();
    assert_eq!(set.marks.len(), 1);
    assert_eq!(set.marks[0].shape, MarkShape::Polyline);
    assert_eq!(set.marks[0].label, "cut A");
    // The same coordinates as the page's, to the f32 the marks are kept in
    // (the page prints doubles shortest-first; serde_json may read the last
    // digit differently).
    let page_points: Vec<[f32; 2]> = serde_json::from_value(page_points).unwrap();
    assert_eq!(set.marks[0].points, page_points);
    for (p, want) in set.marks[0].points.iter().zip(pts) {
        assert!(
            (p[0] - want.0).abs() <= 1.0 && (p[1] - want.1).abs() <= 1.0,
            "{p:?} vs {want:?}"
        );
    }
    assert_eq!(set.report, "Adenocarcinoma suspected; cut along A.");
    let p7s = json_path.with_extension("p7s");
    let mut hpki = TrustStore::new(StoreKind::Hpki);
    hpki.add_pem(&std::fs::read(dir.join("pki/ca/hpki.pem")).unwrap())
        .unwrap();
    let profile = Profile::new(DemoPki::profile_config());
    let (chain, _) = cms::verify_detached_for(
        &std::fs::read(&p7s).unwrap(),
        &std::fs::read(json_path).unwrap(),
        &SignatureCheck::new(&hpki, &profile),
        med8k_auth::cert::Purpose::HpkiSign,
        SystemTime::now(),
    )
    .unwrap();
    assert_eq!(chain.leaf().der(), cert(dir, "med8k-physician-sign"));
    assert!(json_path.with_extension("overlay.png").is_file());
    // Both audit logs verify and record the instructions.
    for log in ["a/audit.jsonl", "b/audit.jsonl"] {
        let o = med8k(dir, &["audit", "verify", "--log", log]);
        assert!(o.status.success(), "{log}: {}", stderr(&o));
        let text = std::fs::read_to_string(dir.join(log)).unwrap();
        assert!(text.contains("cut-out instructions"), "{log}");
        assert!(!text.contains(patient.as_str()), "{log}");
    }

    // The browser's profile holds none of the specimen's bytes: no tile the
    // page showed (rendered again here, byte for byte as the server sent
    // it), no run of the cube's samples; and its disk cache holds no entry.
    let pyramid = Pyramid::new(cube.clone()).unwrap();
    let mut needles = Vec::new();
    let top = pyramid.level_count() - 1;
    for view in [
        View::TrueColour(med8k_colour::Illuminant::D65),
        View::RgbCamera(med8k_colour::Illuminant::D65),
    ] {
        let png = pyramid.tile(view, top, 0, 0).unwrap();
        // The image data of the tile (past the PNG header).
        needles.push(png[png.len() / 2..png.len() / 2 + 64].to_vec());
    }
    let png = pyramid.tile(View::Band(5), 0, 2, 1).unwrap();
    needles.push(png[png.len() / 2..png.len() / 2 + 64].to_vec());
    let raw: Vec<u8> = cube
        .data()
        .iter()
        .skip(500 * 1050 + 600)
        .take(32)
        .flat_map(|v| v.to_le_bytes())
        .collect();
    needles.push(raw);
    let profile_dir = dir.join("profile");
    let files = count_files(&profile_dir);
    assert!(files > 10, "the profile was used ({files} files)");
    for n in &needles {
        let found = files_holding(&profile_dir, n);
        assert!(found.is_empty(), "specimen bytes in the profile: {found:?}");
    }
    let cache = profile_dir.join("Default/Cache/Cache_Data");
    let entries: Vec<String> = std::fs::read_dir(&cache)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let stored_entries: Vec<&String> = entries
        .iter()
        .filter(|n| n.ends_with("_0") || n.ends_with("_1") || n.ends_with("_s"))
        .collect();
    assert!(
        stored_entries.is_empty(),
        "disk cache entries: {stored_entries:?}"
    );
    println!(
        "profile: {files} files searched for {} needles; disk cache: {entries:?}",
        needles.len()
    );
}

fn count_files(dir: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                n += 1;
            }
        }
    }
    n
}

/// The viewport point of image point (`x`, `y`).
fn xy(b: &Browser, x: f32, y: f32) -> [f64; 2] {
    let v = b.js(
        "return med8k.toScreen(arguments[0], arguments[1])",
        json!([x, y]),
    );
    [v[0].as_f64().unwrap(), v[1].as_f64().unwrap()]
}

/// Chooses `value` in a `<select>` as a person does (a click on the option).
fn select(b: &Browser, css: &str, value: &str) {
    b.click(&format!("{css} option[value=\"{value}\"]"));
    b.wait_for(
        "the choice",
        &format!("return document.querySelector('{css}').value === '{value}'"),
        Duration::from_secs(5),
    );
}
