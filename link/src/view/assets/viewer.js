// med8k view: a deep-zoom viewer of a 7-band specimen held by the local
// med8k process. Everything shown lives in this page's memory; nothing is
// written to localStorage, IndexedDB or the Cache API, and no service worker
// is registered. The marks being drawn are kept by the server.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  let info = null;
  // The shared transform: image point at the canvas centre, screen pixels per image pixel.
  const t = { cx: 0, cy: 0, zoom: 1 };
  let tool = "pan";
  let drawing = null; // { shape, points } while a mark is being drawn
  let marks = [];
  let editing = null; // { id?, shape, points } awaiting label and text
  let spectrumAt = null;
  const tiles = new Map(); // key -> Image (memory only)
  let tilesLoaded = 0;
  let firstFrameMs = null;
  const started = performance.now();

  async function api(path, opts) {
    const r = await fetch(path, Object.assign({ credentials: "same-origin", cache: "no-store" }, opts || {}));
    if (!r.ok) {
      const text = (await r.text()).replace(/^med8k view: /, "").trim();
      throw new Error(text || r.status + " " + r.statusText);
    }
    const type = r.headers.get("content-type") || "";
    return type.includes("json") ? r.json() : r.text();
  }

  function viewQuery(kind) {
    const v = kind || $("view").value;
    const ill = "ill=" + encodeURIComponent($("ill").value);
    if (v === "tc") return "view=tc&" + ill;
    if (v === "rgb") return "view=rgb&" + ill;
    if (v === "band") return "view=band&b=" + $("band").value;
    return "view=fc&r=" + $("fc-r").value + "&g=" + $("fc-g").value + "&bl=" + $("fc-b").value;
  }

  class Pane {
    constructor(canvas, kind) {
      this.canvas = canvas;
      this.kind = kind; // null: the selected view; "rgb": the camera
      this.ctx = canvas.getContext("2d");
    }
    resize() {
      const r = this.canvas.getBoundingClientRect();
      const d = window.devicePixelRatio || 1;
      this.canvas.width = Math.max(1, Math.round(r.width * d));
      this.canvas.height = Math.max(1, Math.round(r.height * d));
      this.dpr = d;
    }
    // Image coordinates -> CSS pixels in this canvas.
    toScreen(x, y) {
      const w = this.canvas.width / this.dpr, h = this.canvas.height / this.dpr;
      return [(x - t.cx) * t.zoom + w / 2, (y - t.cy) * t.zoom + h / 2];
    }
    toImage(sx, sy) {
      const w = this.canvas.width / this.dpr, h = this.canvas.height / this.dpr;
      return [(sx - w / 2) / t.zoom + t.cx, (sy - h / 2) / t.zoom + t.cy];
    }
    level() {
      const l = Math.floor(Math.log2(1 / t.zoom));
      return Math.max(0, Math.min(info.levels - 1, l));
    }
    tile(level, tx, ty) {
      const q = viewQuery(this.kind);
      const key = q + "|" + level + "|" + tx + "|" + ty;
      let img = tiles.get(key);
      if (!img) {
        img = new Image();
        img.decoding = "async";
        img.onload = () => { tilesLoaded++; scheduleDraw(); };
        img.src = "/api/tile/" + level + "/" + tx + "/" + ty + "?" + q;
        tiles.set(key, img);
      }
      return img;
    }
    drawLevel(level, onlyLoaded) {
      const ctx = this.ctx, f = 2 ** level, size = info.tile * f;
      const w = this.canvas.width / this.dpr, h = this.canvas.height / this.dpr;
      const [x0, y0] = this.toImage(0, 0), [x1, y1] = this.toImage(w, h);
      const tx0 = Math.max(0, Math.floor(x0 / size)), ty0 = Math.max(0, Math.floor(y0 / size));
      const tx1 = Math.min(Math.ceil(info.width / size) - 1, Math.floor(x1 / size));
      const ty1 = Math.min(Math.ceil(info.height / size) - 1, Math.floor(y1 / size));
      let missing = 0;
      for (let ty = ty0; ty <= ty1; ty++) {
        for (let tx = tx0; tx <= tx1; tx++) {
          const img = onlyLoaded ? tiles.get(viewQuery(this.kind) + "|" + level + "|" + tx + "|" + ty) : this.tile(level, tx, ty);
          if (img && img.complete && img.naturalWidth > 0) {
            const [sx, sy] = this.toScreen(tx * size, ty * size);
            ctx.drawImage(img, sx, sy, img.naturalWidth * f * t.zoom, img.naturalHeight * f * t.zoom);
          } else missing++;
        }
      }
      return missing;
    }
    draw() {
      const ctx = this.ctx;
      ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
      ctx.imageSmoothingEnabled = t.zoom < 1;
      ctx.fillStyle = "#000";
      ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
      const level = this.level();
      // Coarser levels first, so something shows while tiles arrive.
      for (let l = info.levels - 1; l > level; l--) this.drawLevel(l, true);
      const missing = this.drawLevel(level, false);
      if (missing === 0 && firstFrameMs === null && tilesLoaded > 0) {
        firstFrameMs = performance.now() - started;
      }
      this.drawMarks();
    }
    drawMarks() {
      const ctx = this.ctx;
      const all = info.shown.map((m) => [m, "#ffd400"]).concat(marks.map((m) => [m, null]));
      if (editing) all.push([editing, "#fff"]);
      if (drawing) all.push([drawing, "#fff"]);
      for (const [m, colour] of all) {
        if (!m.points.length) continue;
        ctx.beginPath();
        m.points.forEach(([x, y], i) => {
          const [sx, sy] = this.toScreen(x, y);
          if (i === 0) ctx.moveTo(sx, sy); else ctx.lineTo(sx, sy);
        });
        if (m.shape !== "polyline" && m !== drawing) ctx.closePath();
        ctx.lineWidth = 2.5;
        ctx.strokeStyle = colour || (m.shape === "polyline" ? "#ff3030" : "#00c8ff");
        ctx.stroke();
        if (m.label) {
          const [sx, sy] = this.toScreen(m.points[0][0], m.points[0][1]);
          ctx.fillStyle = ctx.strokeStyle;
          ctx.font = "12px system-ui";
          ctx.fillText(m.label, sx + 4, sy - 4);
        }
      }
      if (spectrumAt) {
        const [sx, sy] = this.toScreen(spectrumAt[0] + 0.5, spectrumAt[1] + 0.5);
        ctx.strokeStyle = "#fff";
        ctx.lineWidth = 1.5;
        ctx.strokeRect(sx - 5, sy - 5, 10, 10);
      }
    }
  }

  let panes = [];
  let pending = false;
  function scheduleDraw() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      for (const p of panes) if (!p.canvas.parentElement.hidden) p.draw();
      drawScaleBar();
      $("status").textContent = "zoom " + (t.zoom >= 1 ? t.zoom.toFixed(1) + "×" : "1/" + (1 / t.zoom).toFixed(1)) + "  level " + panes[0].level();
    });
  }

  function fit() {
    const c = panes[0].canvas.getBoundingClientRect();
    t.zoom = Math.min(c.width / info.width, c.height / info.height);
    t.cx = info.width / 2;
    t.cy = info.height / 2;
    scheduleDraw();
  }

  function zoomAt(factor, sx, sy, pane) {
    const p = pane || panes[0];
    const [ix, iy] = p.toImage(sx, sy);
    const max = 16, min = Math.min(1, 0.5 * Math.min(p.canvas.width / p.dpr / info.width, p.canvas.height / p.dpr / info.height));
    t.zoom = Math.min(max, Math.max(min, t.zoom * factor));
    const [nx, ny] = p.toImage(sx, sy);
    t.cx += ix - nx;
    t.cy += iy - ny;
    scheduleDraw();
  }

  function drawScaleBar() {
    const um = info.pixel_spacing_um;
    if (!um) return;
    $("scalebar").hidden = false;
    const target = 120 / t.zoom * um; // micrometres in about 120 CSS pixels
    const steps = [1, 2, 5];
    let nice = 1;
    for (let e = -1; e < 7; e++) for (const s of steps) if (s * 10 ** e <= target) nice = s * 10 ** e;
    $("scalebar-bar").style.width = (nice / um * t.zoom) + "px";
    $("scalebar-text").textContent = nice >= 1000 ? (nice / 1000) + " mm" : nice + " µm";
  }

  function setTool(name) {
    tool = name;
    drawing = null;
    for (const n of ["pan", "line", "polygon", "rect"]) $("tool-" + n).classList.toggle("on", n === name);
    for (const p of panes) p.canvas.style.cursor = name === "pan" ? "grab" : "crosshair";
    scheduleDraw();
  }

  function clampPoint([x, y]) {
    return [Math.min(info.width, Math.max(0, x)), Math.min(info.height, Math.max(0, y))];
  }

  function attach(pane) {
    const c = pane.canvas;
    let drag = null;
    const local = (e) => { const r = c.getBoundingClientRect(); return [e.clientX - r.left, e.clientY - r.top]; };
    c.addEventListener("pointerdown", (e) => {
      const [sx, sy] = local(e);
      c.setPointerCapture(e.pointerId);
      if (tool === "pan") drag = { sx, sy, cx: t.cx, cy: t.cy, moved: false };
      else if (tool === "rect") drag = { rect: clampPoint(pane.toImage(sx, sy)) };
    });
    c.addEventListener("pointermove", (e) => {
      const [sx, sy] = local(e);
      if (drag && drag.cx !== undefined) {
        if (Math.abs(sx - drag.sx) + Math.abs(sy - drag.sy) > 3) drag.moved = true;
        t.cx = drag.cx - (sx - drag.sx) / t.zoom;
        t.cy = drag.cy - (sy - drag.sy) / t.zoom;
        scheduleDraw();
      } else if (drag && drag.rect) {
        const [x, y] = clampPoint(pane.toImage(sx, sy));
        const [x0, y0] = drag.rect;
        drawing = { shape: "rectangle", points: [[x0, y0], [x, y0], [x, y], [x0, y]] };
        scheduleDraw();
      }
    });
    c.addEventListener("pointerup", (e) => {
      const [sx, sy] = local(e);
      if (drag && drag.cx !== undefined && !drag.moved) readSpectrum(pane.toImage(sx, sy));
      if (drag && drag.rect && drawing) { finishShape(); }
      drag = null;
    });
    c.addEventListener("click", (e) => {
      if (tool !== "line" && tool !== "polygon") return;
      const [sx, sy] = local(e);
      const p = clampPoint(pane.toImage(sx, sy));
      if (!drawing) drawing = { shape: tool === "line" ? "polyline" : "polygon", points: [] };
      const last = drawing.points[drawing.points.length - 1];
      if (!last || last[0] !== p[0] || last[1] !== p[1]) drawing.points.push(p);
      scheduleDraw();
    });
    c.addEventListener("dblclick", (e) => {
      e.preventDefault();
      if (drawing && (tool === "line" || tool === "polygon")) finishShape();
    });
    c.addEventListener("wheel", (e) => {
      e.preventDefault();
      const [sx, sy] = local(e);
      zoomAt(Math.pow(1.0015, -e.deltaY), sx, sy, pane);
    }, { passive: false });
  }

  function finishShape() {
    const d = drawing;
    drawing = null;
    const need = d.shape === "polyline" ? 2 : d.shape === "polygon" ? 3 : 4;
    if (d.points.length < need) { status("A " + d.shape + " needs " + need + " points.", true); scheduleDraw(); return; }
    openForm({ shape: d.shape, points: d.points.map(([x, y]) => [Math.round(x * 10) / 10, Math.round(y * 10) / 10]) });
  }

  function openForm(m) {
    editing = m;
    $("mark-form").hidden = false;
    $("mark-form-title").textContent = (m.id ? "Edit " : "New ") + m.shape + " (" + m.points.length + " points)";
    $("mark-label").value = m.label || "";
    $("mark-text").value = m.text || "";
    $("mark-label").focus();
    scheduleDraw();
  }

  async function saveForm(e) {
    e.preventDefault();
    const m = editing;
    if (!m) return;
    const body = JSON.stringify({ shape: m.shape, points: m.points, label: $("mark-label").value, text: $("mark-text").value });
    try {
      if (m.id) await api("/api/marks/" + m.id, { method: "PUT", body, headers: { "content-type": "application/json" } });
      else await api("/api/marks", { method: "POST", body, headers: { "content-type": "application/json" } });
      editing = null;
      $("mark-form").hidden = true;
      await loadMarks();
    } catch (err) { status(err.message, true); }
  }

  async function loadMarks() {
    const r = await api("/api/marks");
    marks = r.marks;
    const ol = $("marks");
    ol.textContent = "";
    for (const m of marks) {
      const li = document.createElement("li");
      li.dataset.id = m.id;
      li.textContent = m.label + " — " + m.shape + ", " + m.points.length + " points" + (m.text ? ": " + m.text : "");
      const ed = document.createElement("button");
      ed.textContent = "Edit";
      ed.className = "edit";
      ed.onclick = () => openForm(Object.assign({}, m));
      const del = document.createElement("button");
      del.textContent = "Delete";
      del.className = "delete";
      del.onclick = async () => { await api("/api/marks/" + m.id, { method: "DELETE" }); await loadMarks(); };
      li.append(ed, del);
      ol.append(li);
    }
    scheduleDraw();
  }

  async function readSpectrum([x, y]) {
    if (x < 0 || y < 0 || x >= info.width || y >= info.height) return;
    const s = await api("/api/spectrum?x=" + Math.floor(x) + "&y=" + Math.floor(y));
    spectrumAt = [s.x, s.y];
    $("spec-where").textContent = "Pixel (" + s.x + ", " + s.y + ")";
    const tb = $("spec-table").tBodies[0];
    tb.textContent = "";
    s.bands.forEach((b, i) => {
      const tr = document.createElement("tr");
      for (const v of [i + 1, b.nm.toFixed(0), b.raw, b.reflectance.toFixed(4)]) {
        const td = document.createElement("td");
        td.textContent = v;
        tr.append(td);
      }
      tb.append(tr);
    });
    drawSpectrum(s);
    scheduleDraw();
  }

  function drawSpectrum(s) {
    const c = $("spec-chart"), ctx = c.getContext("2d");
    const W = c.width, H = c.height, nm0 = 380, nm1 = 780;
    const X = (nm) => 30 + (nm - nm0) / (nm1 - nm0) * (W - 40);
    const Y = (r) => H - 20 - Math.max(0, Math.min(1.1, r)) / 1.1 * (H - 30);
    ctx.fillStyle = "#111"; ctx.fillRect(0, 0, W, H);
    ctx.strokeStyle = "#444"; ctx.fillStyle = "#999"; ctx.font = "10px system-ui";
    for (const nm of [400, 500, 600, 700]) { ctx.beginPath(); ctx.moveTo(X(nm), 10); ctx.lineTo(X(nm), H - 20); ctx.stroke(); ctx.fillText(nm, X(nm) - 9, H - 6); }
    for (const r of [0, 0.5, 1]) { ctx.beginPath(); ctx.moveTo(30, Y(r)); ctx.lineTo(W - 10, Y(r)); ctx.stroke(); ctx.fillText(r.toFixed(1), 6, Y(r) + 3); }
    ctx.strokeStyle = "#7fd1ff"; ctx.lineWidth = 1.5; ctx.beginPath();
    s.curve.values.forEach((v, i) => { const nm = s.curve.start_nm + i * s.curve.step_nm; if (i === 0) ctx.moveTo(X(nm), Y(v)); else ctx.lineTo(X(nm), Y(v)); });
    ctx.stroke();
    ctx.fillStyle = "#ffb347";
    for (const b of s.bands) { ctx.beginPath(); ctx.arc(X(b.nm), Y(b.reflectance), 3, 0, 7); ctx.fill(); }
  }

  function status(text, error) {
    const el = $("send-status");
    el.textContent = text;
    el.className = error ? "error" : "ok";
  }

  async function send() {
    try {
      await api("/api/report", { method: "PUT", body: JSON.stringify({ report: $("report").value }), headers: { "content-type": "application/json" } });
      status("Signing…");
      const r = await api("/api/send", { method: "POST" });
      status(r.sent);
    } catch (err) { status(err.message, true); }
  }

  async function endSession() {
    try { await api("/api/end", { method: "POST" }); } catch (_) { /* the server is going */ }
    tiles.clear();
    document.body.textContent = "";
    const p = document.createElement("p");
    p.id = "ended";
    p.textContent = "Session ended. The images were dropped; close this tab.";
    document.body.append(p);
  }

  function fillBands() {
    const opts = info.bands.map((b, i) => '<option value="' + i + '">' + (i + 1) + ": " + b.nm.toFixed(0) + " nm</option>").join("");
    for (const id of ["band", "fc-r", "fc-g", "fc-b"]) $(id).innerHTML = opts;
    const n = info.bands.length;
    $("fc-r").value = String(n - 1);
    $("fc-g").value = String(Math.floor(n / 2));
    $("fc-b").value = "0";
    $("ill").innerHTML = info.illuminants.map((i) => "<option>" + i + "</option>").join("");
  }

  function caption() {
    const v = $("view").value;
    let c;
    if (v === "tc") c = "True colour from " + info.bands.length + " bands, " + $("ill").value;
    else if (v === "rgb") c = "Simulated RGB camera, " + $("ill").value;
    else if (v === "band") { const b = info.bands[+$("band").value]; c = "Band " + (+$("band").value + 1) + ": " + b.nm.toFixed(0) + " nm (" + b.fwhm.toFixed(0) + " nm wide)"; }
    else c = "False colour R " + info.bands[+$("fc-r").value].nm + " / G " + info.bands[+$("fc-g").value].nm + " / B " + info.bands[+$("fc-b").value].nm + " nm";
    $("cap-main").textContent = c;
    $("ill-box").hidden = !(v === "tc" || v === "rgb" || $("compare").checked);
    $("band-box").hidden = v !== "band";
    $("fc-box").hidden = v !== "fc";
  }

  async function main() {
    info = await api("/api/info");
    $("title").textContent = info.title + " — " + info.width + "×" + info.height + ", " + info.bands.length + " bands";
    fillBands();
    panes = [new Pane($("main"), null), new Pane($("side"), "rgb")];
    panes.forEach(attach);
    const resize = () => { panes.forEach((p) => p.resize()); scheduleDraw(); };
    window.addEventListener("resize", resize);
    for (const id of ["view", "ill", "band", "fc-r", "fc-g", "fc-b"]) $(id).addEventListener("change", () => { caption(); scheduleDraw(); });
    $("compare").addEventListener("change", () => { $("pane-rgb").hidden = !$("compare").checked; caption(); resize(); });
    for (const n of ["pan", "line", "polygon", "rect"]) $("tool-" + n).addEventListener("click", () => setTool(n));
    $("zoom-in").onclick = () => { const c = panes[0].canvas.getBoundingClientRect(); zoomAt(2, c.width / 2, c.height / 2); };
    $("zoom-out").onclick = () => { const c = panes[0].canvas.getBoundingClientRect(); zoomAt(0.5, c.width / 2, c.height / 2); };
    $("fit").onclick = fit;
    $("mark-form").addEventListener("submit", saveForm);
    $("mark-cancel").onclick = () => { editing = null; $("mark-form").hidden = true; scheduleDraw(); };
    $("send").onclick = send;
    $("send").disabled = !info.can_send;
    if (!info.can_send) $("send").title = "A local copy: there is no link to send on";
    $("end").onclick = endSession;
    if (info.shown.length) $("shown-note").textContent = info.shown.length + " instruction mark(s) received are drawn in yellow.";
    document.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && drawing && (tool === "line" || tool === "polygon")) finishShape();
      if (e.key === "Escape") { drawing = null; scheduleDraw(); }
    });
    caption();
    resize();
    fit();
    await loadMarks();
  }

  // For tests and for the curious: the transform, mapping, load figures.
  window.med8k = {
    state: () => ({ zoom: t.zoom, cx: t.cx, cy: t.cy, level: panes[0] ? panes[0].level() : null, tilesLoaded, firstFrameMs, marks: marks.length, tool }),
    toScreen: (x, y) => { const r = panes[0].canvas.getBoundingClientRect(); const [sx, sy] = panes[0].toScreen(x, y); return [r.left + sx, r.top + sy]; },
  };

  main().catch((err) => { document.body.textContent = "med8k view: " + err.message; });
})();
