//! The viewer's web server over real HTTP on loopback (a plain TCP client
//! written here, not axum's): nothing without the one-time token (missing,
//! wrong, reused), nothing without the session cookie, nothing for another
//! Host; every answer `Cache-Control: no-store`; tiles of every view are the
//! engine's tiles for that level and place; the spectrum is the cube's pixel;
//! a mark outside the image is refused; ending the session answers
//! `Clear-Site-Data` and stops the server.
#![allow(clippy::unwrap_used)] // test helpers fail loudly

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use med8k_link::annotations::Target;
use med8k_link::view::{Pyramid, View, ViewOptions, ViewSession, Viewer};
use med8k_media::spectral::{SpectralCube, default_bands};
use ndarray::Array3;

/// A 600x300 7-band cube whose samples differ per band and place.
fn cube() -> SpectralCube {
    let data = Array3::from_shape_fn((7, 300, 600), |(b, y, x)| {
        (2000 + b * 6000 + (x * 13 + y * 7) % 3000) as u16
    });
    let mut c = SpectralCube::new(default_bands(), data).unwrap();
    c.reflectance_scale = Some(60000.0);
    c
}

/// One HTTP/1.1 answer: status, headers (names lower case), body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request with `Connection: close` and reads the whole answer.
fn http(
    addr: &str,
    method: &str,
    path: &str,
    host: &str,
    cookie: Option<&str>,
    body: &[u8],
) -> Answer {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    if let Some(c) = cookie {
        req.push_str(&format!("Cookie: {c}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Answer {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 2 + n + 2..];
    }
}

fn png_size(png: &[u8]) -> (u32, u32) {
    let d = png::Decoder::new(std::io::Cursor::new(png));
    let r = d.read_info().unwrap();
    (r.info().width, r.info().height)
}

#[test]
fn the_viewer_over_http_serves_only_its_session_and_keeps_nothing() {
    let rt = med8k_link::runtime().unwrap();
    let session = ViewSession::new(
        Pyramid::new(cube()).unwrap(),
        Target::Frame { channel: 0, seq: 0 },
        "test specimen",
    );
    let viewer = rt
        .block_on(Viewer::bind(session, ViewOptions::default()))
        .unwrap();
    let url = viewer.url().to_owned();
    let rest = url.strip_prefix("http://").unwrap();
    let (addr, query) = rest.split_once('/').unwrap();
    let addr = addr.to_owned();
    assert!(addr.starts_with("127.0.0.1:"), "{url}");
    let token = query.strip_prefix("?t=").unwrap().to_owned();
    assert_eq!(token.len(), 64, "{url}");
    let running = rt.spawn(viewer.run(std::future::pending()));
    let get = |path: &str, cookie: Option<&str>| http(&addr, "GET", path, &addr, cookie, b"");

    // No token, a wrong one, a wrong Host, no cookie: refused, and all no-store.
    let no_token = get("/", None);
    assert_eq!(no_token.status, 401);
    let mut wrong = token.clone().into_bytes();
    wrong[10] = if wrong[10] == b'0' { b'1' } else { b'0' };
    let wrong = get(&format!("/?t={}", String::from_utf8(wrong).unwrap()), None);
    assert_eq!(wrong.status, 403);
    assert!(String::from_utf8_lossy(&wrong.body).contains("wrong token"));
    let evil = http(
        &addr,
        "GET",
        &format!("/?t={token}"),
        "evil.example:80",
        None,
        b"",
    );
    assert_eq!(
        evil.status, 421,
        "another Host (DNS rebinding) must be refused"
    );
    for path in [
        "/view",
        "/api/info",
        "/api/tile/0/0/0?view=band&b=3",
        "/api/spectrum?x=1&y=1",
    ] {
        let a = get(path, None);
        assert_eq!(a.status, 401, "{path} without the session");
        assert_eq!(a.header("cache-control"), Some("no-store"), "{path}");
    }
    for a in [&no_token, &wrong, &evil] {
        assert_eq!(a.header("cache-control"), Some("no-store"));
    }

    // The token once: a cookie that lives in memory only (no Max-Age/Expires).
    let enter = get(&format!("/?t={token}"), None);
    assert_eq!(enter.status, 303);
    assert_eq!(enter.header("location"), Some("/view"));
    let set_cookie = enter.header("set-cookie").unwrap().to_owned();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"));
    assert!(!set_cookie.to_ascii_lowercase().contains("expires"));
    assert!(!set_cookie.to_ascii_lowercase().contains("max-age"));
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let again = get(&format!("/?t={token}"), None);
    assert_eq!(again.status, 403, "the token is used up");
    let forged = get("/api/info", Some("med8k_view=00"));
    assert_eq!(forged.status, 401);

    // The page and its assets come from the binary.
    let page = get("/view", Some(&cookie));
    assert_eq!(page.status, 200);
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert!(
        page.header("content-security-policy")
            .unwrap()
            .contains("default-src 'self'")
    );
    let html = String::from_utf8(page.body).unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "{html}"
    );
    assert!(!html.contains("serviceWorker"));

    let info: serde_json::Value =
        serde_json::from_slice(&get("/api/info", Some(&cookie)).body).unwrap();
    assert_eq!(info["width"], 600);
    assert_eq!(info["height"], 300);
    assert_eq!(info["bands"].as_array().unwrap().len(), 7);
    assert_eq!(info["can_send"], false);
    let levels = info["levels"].as_u64().unwrap() as usize;
    assert!(levels >= 2, "{info}");

    // Tiles of every view are what the engine renders for that place.
    let twin = Pyramid::new(cube()).unwrap();
    let ill = med8k_colour::Illuminant::D65;
    let cases = [
        ("view=tc&ill=D65", View::TrueColour(ill), 0, 1, 0),
        (
            "view=rgb&ill=A",
            View::RgbCamera(med8k_colour::Illuminant::A),
            0,
            0,
            1,
        ),
        ("view=band&b=0", View::Band(0), 0, 2, 1),
        ("view=band&b=6", View::Band(6), 0, 2, 1),
        (
            "view=fc&r=6&g=3&bl=0",
            View::FalseColour([6, 3, 0]),
            levels - 1,
            0,
            0,
        ),
    ];
    let mut seen = Vec::new();
    for (q, view, level, x, y) in cases {
        let a = get(&format!("/api/tile/{level}/{x}/{y}?{q}"), Some(&cookie));
        assert_eq!(a.status, 200, "{q}: {}", String::from_utf8_lossy(&a.body));
        assert_eq!(a.header("content-type"), Some("image/png"));
        assert_eq!(a.header("cache-control"), Some("no-store"));
        assert_eq!(a.body, *twin.tile(view, level, x, y).unwrap(), "{q}");
        seen.push(a.body);
    }
    assert_ne!(seen[2], seen[3], "bands 0 and 6 must differ");
    // 600 wide: the tile at x=2 is the 600-512 = 88 pixels left over.
    assert_eq!(png_size(&seen[2]), (88, 44));
    for bad in [
        "/api/tile/0/9/0?view=band&b=0",
        "/api/tile/0/0/0?view=band&b=7",
        "/api/tile/0/0/0?view=nope",
        "/api/tile/0/0/0?view=tc&ill=XYZ",
    ] {
        let a = get(bad, Some(&cookie));
        assert!(a.status == 400 || a.status == 404, "{bad}: {}", a.status);
    }

    // The spectrum at a point is the cube's pixel.
    let s: serde_json::Value =
        serde_json::from_slice(&get("/api/spectrum?x=300&y=45", Some(&cookie)).body).unwrap();
    let raw: Vec<u64> = s["bands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["raw"].as_u64().unwrap())
        .collect();
    let want: Vec<u64> = (0..7)
        .map(|b| (2000 + b * 6000 + (300 * 13 + 45 * 7) % 3000) as u64)
        .collect();
    assert_eq!(raw, want);
    assert_eq!(s["curve"]["values"].as_array().unwrap().len(), 81);
    assert_eq!(get("/api/spectrum?x=600&y=0", Some(&cookie)).status, 400);

    // A mark outside the image is refused; one inside is kept, edited, deleted.
    let post =
        |path: &str, body: &str| http(&addr, "POST", path, &addr, Some(&cookie), body.as_bytes());
    let outside = post(
        "/api/marks",
        r#"{"shape":"polyline","points":[[10,10],[650,20]],"label":"cut"}"#,
    );
    assert_eq!(
        outside.status,
        422,
        "{}",
        String::from_utf8_lossy(&outside.body)
    );
    let inside = post(
        "/api/marks",
        r#"{"shape":"polyline","points":[[10,10],[590,20]],"label":"cut"}"#,
    );
    assert_eq!(
        inside.status,
        201,
        "{}",
        String::from_utf8_lossy(&inside.body)
    );
    let marks: serde_json::Value =
        serde_json::from_slice(&get("/api/marks", Some(&cookie)).body).unwrap();
    assert_eq!(marks["marks"].as_array().unwrap().len(), 1);
    assert_eq!(
        marks["marks"][0]["points"][1],
        serde_json::json!([590.0, 20.0])
    );
    // No link on a local copy: nothing to send on.
    assert_eq!(post("/api/send", "").status, 409);

    // The end: Clear-Site-Data, and the server stops.
    let end = post("/api/end", "");
    assert_eq!(end.status, 200);
    let csd = end.header("clear-site-data").unwrap();
    for what in ["\"cache\"", "\"cookies\"", "\"storage\""] {
        assert!(csd.contains(what), "{csd}");
    }
    let ended = rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(10), running).await })
        .expect("the viewer stops after the session ends")
        .unwrap()
        .unwrap();
    assert_eq!(ended.why, "ended");
    assert!(
        TcpStream::connect(&addr).is_err(),
        "nothing listens after the end"
    );
}
