//! The self-contained HTML report: tables and inline SVG charts (plotters),
//! no scripts, no fonts, nothing fetched.

use std::fmt::Write as _;

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use super::compare::{Change, Verdict};
use super::{CodecPoint, Report, Scenario, StageFigures};

type PlotResult = Result<(), Box<dyn std::error::Error>>;

const W: u32 = 720;
const H: u32 = 300;

/// Escape text for HTML.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn svg(draw: impl FnOnce(&mut String) -> PlotResult) -> anyhow::Result<String> {
    let mut out = String::new();
    draw(&mut out).map_err(|e| anyhow::anyhow!("drawing a chart: {e}"))?;
    Ok(out)
}

fn top(values: impl Iterator<Item = f64>) -> f64 {
    let m = values.filter(|v| v.is_finite()).fold(0.0f64, f64::max);
    if m > 0.0 { m * 1.15 } else { 1.0 }
}

/// Capture → glass latency of each frame, in arrival order.
fn latency_over_time(series: &[(u64, f64)]) -> anyhow::Result<String> {
    svg(|out| {
        let root = SVGBackend::with_string(out, (W, H)).into_drawing_area();
        root.fill(&WHITE)?;
        let xmax = series.last().map_or(1, |(s, _)| *s + 1) as f64;
        let ymax = top(series.iter().map(|(_, v)| *v)).max(1e3 / 60.0 * 1.2);
        let mut chart = ChartBuilder::on(&root)
            .caption("capture → glass latency per frame", ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(32)
            .y_label_area_size(48)
            .build_cartesian_2d(0f64..xmax, 0f64..ymax)?;
        chart
            .configure_mesh()
            .x_desc("camera frame")
            .y_desc("ms")
            .draw()?;
        chart
            .draw_series(LineSeries::new(
                [(0.0, 1e3 / 60.0), (xmax, 1e3 / 60.0)],
                RED.stroke_width(1),
            ))?
            .label("one frame at 60 fps (16.7 ms)")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], RED));
        chart
            .draw_series(LineSeries::new(
                series.iter().map(|(s, v)| (*s as f64, *v)),
                BLUE.stroke_width(2),
            ))?
            .label("capture → glass")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLUE));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    })
}

/// A histogram of the capture → glass latencies.
fn latency_histogram(series: &[(u64, f64)]) -> anyhow::Result<String> {
    const BINS: usize = 24;
    let max = top(series.iter().map(|(_, v)| *v)) / 1.15;
    let width = (max / BINS as f64).max(0.01);
    let mut counts = [0u32; BINS];
    for (_, v) in series {
        counts[((v / width) as usize).min(BINS - 1)] += 1;
    }
    let ymax = f64::from(counts.iter().copied().max().unwrap_or(1)) * 1.15;
    svg(|out| {
        let root = SVGBackend::with_string(out, (W, H)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("capture → glass latency histogram", ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(32)
            .y_label_area_size(48)
            .build_cartesian_2d((0..BINS as i32 - 1).into_segmented(), 0f64..ymax)?;
        chart
            .configure_mesh()
            .x_desc("ms")
            .y_desc("frames")
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                    format!("{:.1}", (f64::from(*i) + 0.5) * width)
                }
                SegmentValue::Last => String::new(),
            })
            .draw()?;
        chart.draw_series(
            plotters::series::Histogram::vertical(&chart)
                .style(BLUE.mix(0.7).filled())
                .margin(2)
                .data(
                    counts
                        .iter()
                        .enumerate()
                        .map(|(i, c)| (i as i32, f64::from(*c))),
                ),
        )?;
        root.present()?;
        Ok(())
    })
}

/// Bars per name: `back` (wide, light) behind `front` (dark), both in `unit`.
fn bars(
    title: &str,
    unit: &str,
    names: &[String],
    back: &[f64],
    front: Option<&[f64]>,
) -> anyhow::Result<String> {
    let n = names.len().max(1) as i32;
    let ymax = top(back.iter().chain(front.unwrap_or(&[])).copied());
    // Room for each bar's label: wider than the other charts when many.
    let width = W.max(80 * names.len() as u32 + 60);
    svg(|out| {
        let root = SVGBackend::with_string(out, (width, H)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(48)
            .build_cartesian_2d((0..n - 1).into_segmented(), 0f64..ymax)?;
        chart
            .configure_mesh()
            .y_desc(unit)
            .x_labels(names.len().max(1))
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                    names.get(*i as usize).cloned().unwrap_or_default()
                }
                SegmentValue::Last => String::new(),
            })
            .draw()?;
        chart.draw_series(
            plotters::series::Histogram::vertical(&chart)
                .style(BLUE.mix(0.35).filled())
                .margin(8)
                .data(back.iter().enumerate().map(|(i, v)| (i as i32, *v))),
        )?;
        if let Some(front) = front {
            chart.draw_series(
                plotters::series::Histogram::vertical(&chart)
                    .style(BLUE.filled())
                    .margin(24)
                    .data(front.iter().enumerate().map(|(i, v)| (i as i32, *v))),
            )?;
        }
        root.present()?;
        Ok(())
    })
}

/// Compression ratio against encode speed, one colour per codec.
fn ratio_vs_speed(points: &[CodecPoint]) -> anyhow::Result<String> {
    let mut codecs: Vec<String> = points.iter().map(|p| p.codec.clone()).collect();
    codecs.dedup();
    codecs.sort();
    codecs.dedup();
    let xmax = top(points.iter().map(|p| p.encode_mpx_s));
    let ymax = top(points.iter().map(|p| p.ratio));
    svg(|out| {
        let root = SVGBackend::with_string(out, (W, H + 60)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("compression ratio against encode speed", ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(32)
            .y_label_area_size(48)
            .build_cartesian_2d(0f64..xmax, 0f64..ymax)?;
        chart
            .configure_mesh()
            .x_desc("encode Mpx/s")
            .y_desc("ratio (:1)")
            .draw()?;
        for (k, codec) in codecs.iter().enumerate() {
            let colour = Palette99::pick(k).to_rgba();
            chart
                .draw_series(
                    points
                        .iter()
                        .filter(|p| &p.codec == codec)
                        .map(|p| Circle::new((p.encode_mpx_s, p.ratio), 5, colour.filled())),
                )?
                .label(codec.as_str())
                .legend(move |(x, y)| Circle::new((x + 8, y), 5, colour.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    })
}

fn fmt(v: f64) -> String {
    if !v.is_finite() {
        "-".into()
    } else if v.abs() >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), fmt)
}

fn stages_table(h: &mut String, stages: &[StageFigures]) {
    h.push_str(
        "<table><tr><th>stage</th><th>fps</th><th>since capture p50 ms</th>\
         <th>p99 ms</th><th>max ms</th><th>dropped</th></tr>",
    );
    for s in stages {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&s.name),
            fmt(s.fps),
            fmt(s.p50_ms),
            fmt(s.p99_ms),
            fmt(s.max_ms),
            s.dropped
        );
    }
    h.push_str("</table>");
}

fn codecs_table(h: &mut String, codecs: &[CodecPoint]) {
    h.push_str(
        "<table><tr><th>input</th><th>codec</th><th>mode</th><th>ratio</th><th>bpp</th>\
         <th>enc Mpx/s</th><th>dec Mpx/s</th><th>PSNR dB</th><th>SSIM</th><th>exact</th></tr>",
    );
    for c in codecs {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&c.input),
            esc(&c.codec),
            esc(&c.mode),
            fmt(c.ratio),
            fmt(c.bpp),
            fmt(c.encode_mpx_s),
            opt(c.decode_mpx_s),
            opt(c.psnr_db),
            opt(c.ssim),
            if c.exact { "yes" } else { "no" }
        );
    }
    h.push_str("</table>");
}

fn scenario(h: &mut String, s: &Scenario, changes: &[Change]) -> anyhow::Result<()> {
    let _ = write!(
        h,
        "<section class=\"scenario\" id=\"{0}\"><h2>{0}</h2><p class=\"what\">{1}</p>",
        esc(&s.name),
        esc(&s.what)
    );
    h.push_str("<table class=\"figures\"><tr><th>figure</th><th>value</th><th>unit</th>");
    if !changes.is_empty() {
        h.push_str("<th>before</th><th>change</th>");
    }
    h.push_str("</tr>");
    for f in &s.figures {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"num\">{}</td><td>{}</td>",
            esc(&f.name),
            fmt(f.value),
            esc(&f.unit)
        );
        if !changes.is_empty() {
            match changes
                .iter()
                .find(|c| c.scenario == s.name && c.figure == f.name)
            {
                Some(c) => {
                    let class = match c.verdict {
                        Verdict::Gain => "gain",
                        Verdict::Regression => "regression",
                        Verdict::Same => "same",
                    };
                    let pct = c
                        .percent
                        .map_or_else(|| "from 0".into(), |p| format!("{p:+.1}%"));
                    let _ = write!(
                        h,
                        "<td class=\"num\">{}</td><td class=\"{class}\">{pct} {class}</td>",
                        fmt(c.old)
                    );
                }
                None => h.push_str("<td></td><td>new</td>"),
            }
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");
    if !s.series.is_empty() {
        h.push_str("<div class=\"chart\">");
        h.push_str(&latency_over_time(&s.series)?);
        h.push_str(&latency_histogram(&s.series)?);
        h.push_str("</div>");
    }
    if !s.stages.is_empty() {
        let names: Vec<String> = s.stages.iter().map(|st| st.name.clone()).collect();
        let p99: Vec<f64> = s.stages.iter().map(|st| st.p99_ms).collect();
        let p50: Vec<f64> = s.stages.iter().map(|st| st.p50_ms).collect();
        let fps: Vec<f64> = s.stages.iter().map(|st| st.fps).collect();
        h.push_str("<div class=\"chart\">");
        h.push_str(&bars(
            "latency since capture per stage (dark p50, light p99)",
            "ms",
            &names,
            &p99,
            Some(&p50),
        )?);
        h.push_str(&bars("throughput per stage", "fps", &names, &fps, None)?);
        h.push_str("</div>");
        stages_table(h, &s.stages);
    }
    if !s.codecs.is_empty() {
        h.push_str("<div class=\"chart\">");
        h.push_str(&ratio_vs_speed(&s.codecs)?);
        h.push_str("</div>");
        codecs_table(h, &s.codecs);
    }
    // Short labels: `image AUROC, smoke (held out)` is `smoke*`.
    let aurocs: Vec<(String, f64)> = s
        .figures
        .iter()
        .filter(|f| f.name.contains("AUROC"))
        .map(|f| {
            let name = f
                .name
                .trim_start_matches("image AUROC, ")
                .replace(" (held out)", "*");
            (name, f.value)
        })
        .collect();
    if !aurocs.is_empty() {
        let names: Vec<String> = aurocs.iter().map(|(n, _)| n.clone()).collect();
        let values: Vec<f64> = aurocs.iter().map(|(_, v)| *v).collect();
        h.push_str("<div class=\"chart\">");
        h.push_str(&bars(
            "detection AUROC (1 is perfect, 0.5 is chance; * a kind no model was fitted on)",
            "AUROC",
            &names,
            &values,
            None,
        )?);
        h.push_str("</div>");
    }
    let delta_e: Vec<(String, f64)> = s
        .figures
        .iter()
        .filter(|f| f.name.contains("ΔE2000 mean"))
        .map(|f| (f.name.replace(" over the link: ΔE2000 mean", ""), f.value))
        .collect();
    if !delta_e.is_empty() {
        let names: Vec<String> = delta_e.iter().map(|(n, _)| n.clone()).collect();
        let values: Vec<f64> = delta_e.iter().map(|(_, v)| *v).collect();
        h.push_str("<div class=\"chart\">");
        h.push_str(&bars(
            "colour fidelity of the lossy paths: mean CIE ΔE2000 (under 1 is invisible)",
            "ΔE2000",
            &names,
            &values,
            None,
        )?);
        h.push_str("</div>");
    }
    if !s.notes.is_empty() {
        h.push_str("<ul class=\"notes\">");
        for n in &s.notes {
            let _ = write!(h, "<li>{}</li>", esc(n));
        }
        h.push_str("</ul>");
    }
    h.push_str("</section>");
    Ok(())
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;max-width:1500px}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #bbb;padding:2px 8px}\
th{background:#eee}.num{text-align:right}.gain{color:#060;font-weight:bold}\
.regression{color:#b00;font-weight:bold}.chart svg{margin:4px}.what{color:#444}\
.notes{color:#555;font-size:90%}";

/// The report as one HTML page; with `changes`, each figure shows its old
/// value and change.
pub fn render(report: &Report, changes: Option<&[Change]>) -> anyhow::Result<String> {
    let changes = changes.unwrap_or(&[]);
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>med8k bench report</title><style>{STYLE}</style></head><body>\
         <h1>med8k bench{}</h1>",
        if report.quick { " (quick)" } else { "" }
    );
    if let Some(why) = &report.stopped {
        let _ = write!(
            h,
            "<p class=\"regression\"><b>Partial report:</b> {}; only the scenarios below ran.</p>",
            esc(why)
        );
    }
    let m = &report.machine;
    let _ = write!(
        h,
        "<table class=\"machine\"><tr><th>med8k</th><td>{}</td></tr>\
         <tr><th>CPU</th><td>{} ({} cores)</td></tr><tr><th>memory</th><td>{:.1} GiB</td></tr>\
         <tr><th>kernel</th><td>{}</td></tr><tr><th>GPU</th><td>{}</td></tr>\
         <tr><th>GStreamer</th><td>{}</td></tr><tr><th>clip</th><td>{}</td></tr>\
         <tr><th>clip SHA-256</th><td>{}</td></tr><tr><th>run</th><td>{:.1} s</td></tr></table>",
        esc(&report.med8k),
        esc(&m.cpu),
        m.cores,
        m.memory_gib,
        esc(&m.kernel),
        if m.gpus.is_empty() {
            "none found".to_owned()
        } else {
            esc(&m.gpus.join("; "))
        },
        esc(&m.gstreamer),
        esc(&report.inputs.clip.display().to_string()),
        esc(report.inputs.clip_sha256.as_deref().unwrap_or("-")),
        report.seconds
    );
    if !changes.is_empty() {
        let gains = changes
            .iter()
            .filter(|c| c.verdict == Verdict::Gain)
            .count();
        let regressions = changes
            .iter()
            .filter(|c| c.verdict == Verdict::Regression)
            .count();
        let _ = write!(
            h,
            "<p class=\"compare\">Against the older report: <span class=\"gain\">{gains} gains</span>, \
             <span class=\"regression\">{regressions} regressions</span> (changes over {}%).</p>",
            super::compare::THRESHOLD_PERCENT
        );
    }
    for s in &report.scenarios {
        scenario(&mut h, s, changes)?;
    }
    h.push_str("</body></html>\n");
    Ok(h)
}
