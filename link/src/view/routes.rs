//! The viewer's routes and layers: thin handlers over the pyramid and the
//! session's marks.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State as Shared};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Deserialize;
use tower_http::set_header::SetResponseHeaderLayer;

use super::pyramid::{TILE, View};
use super::{State, assets, set_end};
use crate::annotations::{FORMAT, InstructionSet, Mark, MarkShape};

type St = Arc<State>;

const COOKIE: &str = "med8k_view";
/// Largest request body (a mark with its points).
const BODY_LIMIT: usize = 1 << 20;

pub(crate) fn router(state: St) -> Router {
    let api = Router::new()
        .route("/view", get(page))
        .route("/assets/{name}", get(asset))
        .route("/api/info", get(info))
        .route("/api/tile/{level}/{x}/{y}", get(tile))
        .route("/api/spectrum", get(spectrum))
        .route("/api/marks", get(list_marks).post(add_mark))
        .route("/api/marks/{id}", put(edit_mark).delete(delete_mark))
        .route("/api/report", put(set_report))
        .route("/api/send", post(send))
        .route("/api/end", post(end))
        .route_layer(middleware::from_fn_with_state(state.clone(), session));
    Router::new()
        .route("/", get(enter))
        .merge(api)
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), host))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self'; connect-src 'self'; script-src 'self'; \
                 style-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; \
                 form-action 'none'",
            ),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .with_state(state)
}

fn refuse(status: StatusCode, why: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("med8k view: {why}\n"),
    )
        .into_response()
}

/// Refuses a request for another host name (DNS rebinding).
async fn host(Shared(st): Shared<St>, req: Request, next: Next) -> Response {
    let ok = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|h| h == st.host);
    if !ok {
        return refuse(StatusCode::MISDIRECTED_REQUEST, "wrong host");
    }
    next.run(req).await
}

fn has_session(st: &State, headers: &HeaderMap) -> bool {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .any(|(k, v)| k == COOKIE && constant_eq(v.as_bytes(), st.cookie.as_bytes()))
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Everything but `/` needs the session cookie.
async fn session(Shared(st): Shared<St>, req: Request, next: Next) -> Response {
    if !has_session(&st, req.headers()) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "no session: open the URL med8k view printed",
        );
    }
    if let Ok(mut l) = st.last.lock() {
        *l = Instant::now();
    }
    next.run(req).await
}

#[derive(Deserialize)]
struct Enter {
    t: Option<String>,
}

/// `/?t=TOKEN`: the one-time token for the session cookie.
async fn enter(Shared(st): Shared<St>, headers: HeaderMap, Query(q): Query<Enter>) -> Response {
    if has_session(&st, &headers) {
        return redirect("/view", None);
    }
    let Some(t) = q.t else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "no token: open the URL med8k view printed",
        );
    };
    if !constant_eq(t.as_bytes(), st.token.as_bytes()) {
        return refuse(StatusCode::FORBIDDEN, "wrong token");
    }
    if st.token_used.swap(true, Ordering::SeqCst) {
        return refuse(
            StatusCode::FORBIDDEN,
            "this link was used already: start med8k view again",
        );
    }
    if let Ok(mut l) = st.last.lock() {
        *l = Instant::now();
    }
    let cookie = format!("{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/", st.cookie);
    redirect("/view", Some(cookie))
}

fn redirect(to: &'static str, cookie: Option<String>) -> Response {
    let mut r = Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, to);
    if let Some(c) = cookie {
        r = r.header(header::SET_COOKIE, c);
    }
    r.body(Body::empty())
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn not_found() -> Response {
    refuse(StatusCode::NOT_FOUND, "not found")
}

async fn page() -> Response {
    asset_response("index.html")
}

async fn asset(Path(name): Path<String>) -> Response {
    asset_response(&name)
}

fn asset_response(name: &str) -> Response {
    match assets::get(name) {
        Some((body, mime)) => ([(header::CONTENT_TYPE, mime)], body).into_response(),
        None => refuse(StatusCode::NOT_FOUND, "no such asset"),
    }
}

async fn info(Shared(st): Shared<St>) -> Response {
    let s = &st.session;
    let p = &s.pyramid;
    let bands: Vec<serde_json::Value> = p
        .bands()
        .iter()
        .map(|b| serde_json::json!({"nm": b.centre_nm, "fwhm": b.fwhm_nm}))
        .collect();
    axum::Json(serde_json::json!({
        "title": s.title,
        "width": s.specimen.width,
        "height": s.specimen.height,
        "bands": bands,
        "levels": p.level_count(),
        "tile": TILE,
        "pixel_spacing_um": st.options.pixel_spacing_um,
        "study_uid": s.specimen.study_uid,
        "can_send": s.outbox.is_some(),
        "shown": s.shown,
        "illuminants": ["D65", "D50", "A", "FL11", "E"],
        "idle_s": st.options.idle.as_secs(),
    }))
    .into_response()
}

#[derive(Deserialize)]
struct TileQuery {
    view: Option<String>,
    ill: Option<String>,
    b: Option<usize>,
    r: Option<usize>,
    g: Option<usize>,
    bl: Option<usize>,
}

fn parse_view(q: &TileQuery) -> Result<View, String> {
    let ill = || -> Result<med8k_colour::Illuminant, String> {
        q.ill
            .as_deref()
            .unwrap_or("D65")
            .parse()
            .map_err(|_| "unknown illuminant".to_owned())
    };
    match q.view.as_deref().unwrap_or("tc") {
        "tc" => Ok(View::TrueColour(ill()?)),
        "rgb" => Ok(View::RgbCamera(ill()?)),
        "band" => Ok(View::Band(q.b.ok_or("band view needs b")?)),
        "fc" => Ok(View::FalseColour([
            q.r.ok_or("false colour needs r")?,
            q.g.ok_or("false colour needs g")?,
            q.bl.ok_or("false colour needs bl")?,
        ])),
        other => Err(format!("unknown view {other:?}")),
    }
}

async fn tile(
    Shared(st): Shared<St>,
    Path((level, x, y)): Path<(usize, usize, usize)>,
    Query(q): Query<TileQuery>,
) -> Response {
    let view = match parse_view(&q) {
        Ok(v) => v,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, &e),
    };
    // Rendering is CPU work: off the async workers.
    let result =
        tokio::task::spawn_blocking(move || st.session.pyramid.tile(view, level, x, y)).await;
    match result {
        Ok(Ok(png)) => {
            ([(header::CONTENT_TYPE, "image/png")], png.as_ref().clone()).into_response()
        }
        Ok(Err(e)) => refuse(StatusCode::NOT_FOUND, &e.to_string()),
        Err(_) => refuse(StatusCode::INTERNAL_SERVER_ERROR, "tile rendering failed"),
    }
}

async fn spectrum(Shared(st): Shared<St>, Query(q): Query<HashMap<String, String>>) -> Response {
    let coord = |k: &str| {
        q.get(k)
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| *v >= 0.0)
    };
    let (Some(x), Some(y)) = (coord("x"), coord("y")) else {
        return refuse(StatusCode::BAD_REQUEST, "spectrum needs x and y");
    };
    let (x, y) = (x.floor() as usize, y.floor() as usize);
    match st.session.pyramid.spectrum(x, y) {
        Ok(s) => {
            let bands: Vec<serde_json::Value> = st
                .session
                .pyramid
                .bands()
                .iter()
                .zip(s.raw.iter().zip(&s.reflectance))
                .map(|(b, (raw, r))| serde_json::json!({"nm": b.centre_nm, "raw": raw, "reflectance": r}))
                .collect();
            axum::Json(serde_json::json!({
                "x": x, "y": y, "bands": bands,
                "curve": {"start_nm": 380, "step_nm": 5, "values": s.curve.to_vec()},
            }))
            .into_response()
        }
        Err(e) => refuse(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

async fn list_marks(Shared(st): Shared<St>) -> Response {
    let marks = st.marks.lock().map(|m| m.clone()).unwrap_or_default();
    let report = st.report.lock().map(|r| r.clone()).unwrap_or_default();
    axum::Json(serde_json::json!({"marks": marks, "report": report})).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MarkIn {
    shape: MarkShape,
    points: Vec<[f32; 2]>,
    label: String,
    #[serde(default)]
    text: String,
}

/// A mark checked the way the receiving site will check it.
fn checked(st: &State, id: u64, m: MarkIn) -> Result<Mark, String> {
    let mark = Mark {
        id,
        shape: m.shape,
        points: m.points,
        label: m.label,
        text: m.text,
    };
    let probe = draft(st, vec![mark.clone()], String::new());
    probe.check().map_err(|e| e.to_string())?;
    Ok(mark)
}

fn draft(st: &State, marks: Vec<Mark>, report: String) -> InstructionSet {
    let s = &st.session;
    InstructionSet {
        format: FORMAT.to_owned(),
        study_uid: s.specimen.study_uid.clone(),
        target: s.target,
        width: s.specimen.width,
        height: s.specimen.height,
        author: String::new(),
        created: 0,
        report,
        marks,
    }
}

fn bad_json(e: impl std::fmt::Display) -> Response {
    refuse(
        StatusCode::BAD_REQUEST,
        &format!("cannot read the request: {e}"),
    )
}

async fn add_mark(Shared(st): Shared<St>, body: axum::body::Bytes) -> Response {
    let m: MarkIn = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => return bad_json(e),
    };
    let id = st.next_id.fetch_add(1, Ordering::SeqCst);
    let mark = match checked(&st, id, m) {
        Ok(m) => m,
        Err(e) => return refuse(StatusCode::UNPROCESSABLE_ENTITY, &e),
    };
    let Ok(mut marks) = st.marks.lock() else {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, "marks lock");
    };
    if marks.len() >= crate::annotations::MAX_MARKS {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "too many marks in one set",
        );
    }
    marks.push(mark.clone());
    (StatusCode::CREATED, axum::Json(mark)).into_response()
}

async fn edit_mark(
    Shared(st): Shared<St>,
    Path(id): Path<u64>,
    body: axum::body::Bytes,
) -> Response {
    let m: MarkIn = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => return bad_json(e),
    };
    let mark = match checked(&st, id, m) {
        Ok(m) => m,
        Err(e) => return refuse(StatusCode::UNPROCESSABLE_ENTITY, &e),
    };
    let Ok(mut marks) = st.marks.lock() else {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, "marks lock");
    };
    match marks.iter_mut().find(|m| m.id == id) {
        Some(slot) => {
            *slot = mark.clone();
            axum::Json(mark).into_response()
        }
        None => refuse(StatusCode::NOT_FOUND, "no such mark"),
    }
}

async fn delete_mark(Shared(st): Shared<St>, Path(id): Path<u64>) -> Response {
    let Ok(mut marks) = st.marks.lock() else {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, "marks lock");
    };
    let before = marks.len();
    marks.retain(|m| m.id != id);
    if marks.len() == before {
        return refuse(StatusCode::NOT_FOUND, "no such mark");
    }
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportIn {
    report: String,
}

async fn set_report(Shared(st): Shared<St>, body: axum::body::Bytes) -> Response {
    let r: ReportIn = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad_json(e),
    };
    if r.report.len() > crate::annotations::MAX_REPORT_LEN {
        return refuse(StatusCode::UNPROCESSABLE_ENTITY, "the report is too long");
    }
    if let Ok(mut slot) = st.report.lock() {
        *slot = r.report;
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn send(Shared(st): Shared<St>) -> Response {
    if st.session.outbox.is_none() {
        return refuse(
            StatusCode::CONFLICT,
            "this viewer has no link to send on (a local copy)",
        );
    }
    let marks = st.marks.lock().map(|m| m.clone()).unwrap_or_default();
    let report = st.report.lock().map(|r| r.clone()).unwrap_or_default();
    let set = draft(&st, marks, report);
    if let Err(e) = set.check() {
        return refuse(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string());
    }
    // Signing talks to the card: off the async workers.
    let st2 = st.clone();
    let sent = tokio::task::spawn_blocking(move || match &st2.session.outbox {
        Some(o) => o.send(set),
        None => Err("no link".to_owned()),
    })
    .await;
    match sent {
        Ok(Ok(line)) => axum::Json(serde_json::json!({"sent": line})).into_response(),
        Ok(Err(e)) => refuse(StatusCode::BAD_GATEWAY, &e),
        Err(_) => refuse(StatusCode::INTERNAL_SERVER_ERROR, "sending failed"),
    }
}

async fn end(Shared(st): Shared<St>) -> Response {
    set_end(&st, "ended");
    (
        [
            (
                header::HeaderName::from_static("clear-site-data"),
                "\"cache\", \"cookies\", \"storage\"",
            ),
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
        ],
        "session ended\n",
    )
        .into_response()
}
