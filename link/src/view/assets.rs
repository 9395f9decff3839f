//! The page, compiled into the binary: nothing is fetched from the network
//! at run time.

const INDEX: &str = include_str!("assets/index.html");
const JS: &str = include_str!("assets/viewer.js");
const CSS: &str = include_str!("assets/viewer.css");

/// An asset's bytes and media type.
pub(crate) fn get(name: &str) -> Option<(&'static str, &'static str)> {
    match name {
        "index.html" => Some((INDEX, "text/html; charset=utf-8")),
        "viewer.js" => Some((JS, "text/javascript; charset=utf-8")),
        "viewer.css" => Some((CSS, "text/css; charset=utf-8")),
        _ => None,
    }
}
