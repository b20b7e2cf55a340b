// medseg serve: the viewer page. NiiVue draws the image (three planes and a 3D render) and the
// label overlay; prompts go to the server in voxel coordinates of the image, and the answers
// (changed box + run-length-encoded labels) are pasted into the overlay volume in place.
"use strict";

const params = new URLSearchParams(location.search);
const token = params.get("token");
const $ = (id) => document.getElementById(id);

const state = {
  info: null,
  session: null,
  tool: "pos",
  label: 1,
  overlay: true,
  opacity: 0.5,
  stroke: null, // {axis, index, points: [[...]], canvas: [[x, y]]}
  boxStart: null,
};

function withToken(url) {
  return token ? `${url}?token=${encodeURIComponent(token)}` : url;
}

async function api(path, { method = "GET", body } = {}) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = response.status === 204 ? null : await response.json();
  if (!response.ok) {
    const detail = data && data.detail;
    const text = Array.isArray(detail) ? detail.map((d) => `${d.loc.join(".")}: ${d.msg}`).join("; ") : detail;
    throw new Error(`${response.status}: ${text || response.statusText}`);
  }
  return data;
}

function setStatus(text, error = false) {
  const el = $("status");
  el.textContent = text;
  el.className = error ? "status error" : "status";
  document.body.dataset.status = error ? "error" : "ok";
}

// ---------------------------------------------------------------------------- viewer

const nv = new niivue.Niivue({
  backColor: [0.07, 0.07, 0.07, 1],
  show3Dcrosshair: true,
  multiplanarShowRender: niivue.SHOW_RENDER.ALWAYS,
  isColorbar: false,
  crosshairWidth: 0.5,
  // the page owns the keyboard: NiiVue's own V (cycle layouts), C and P (clip planes) would
  // fire with the view tool's key and change the layout under the user
  viewModeHotKey: "",
  clipPlaneHotKey: "",
  cycleClipPlaneHotKey: "",
});

function labelColormap() {
  const values = [0, ...state.info.labels.map((l) => l.value)];
  const colours = [[0, 0, 0], ...state.info.labels.map((l) => l.colour)];
  return {
    R: colours.map((c) => c[0]),
    G: colours.map((c) => c[1]),
    B: colours.map((c) => c[2]),
    A: values.map((v) => (v === 0 ? 0 : 255)),
    I: values,
    labels: ["background", ...state.info.labels.map((l) => l.name)],
  };
}

function imageVolume() {
  return nv.volumes[0];
}

function labelVolume() {
  return nv.volumes[1];
}

// Voxel <-> world. NiiVue draws slices of its RAS-reoriented voxel grid, and its own voxel
// helpers (mm2vox, vox2mm) index that grid, which is mirrored for most files (ITK writes i to
// the left). Prompts need the stored file's voxel (i, j, k): go through world millimetres with
// the true (oblique) frame of the drawn grid and the file's own affine (hdr.affine, rows).
function vox2mm(vox) {
  const A = imageVolume().hdr.affine;
  return [0, 1, 2].map((r) => A[r][0] * vox[0] + A[r][1] * vox[1] + A[r][2] * vox[2] + A[r][3]);
}

function mm2vox(mm) {
  const A = imageVolume().hdr.affine;
  const d = [0, 1, 2].map((r) => mm[r] - A[r][3]);
  const m = (r, c) => A[r][c];
  const det =
    m(0, 0) * (m(1, 1) * m(2, 2) - m(1, 2) * m(2, 1)) -
    m(0, 1) * (m(1, 0) * m(2, 2) - m(1, 2) * m(2, 0)) +
    m(0, 2) * (m(1, 0) * m(2, 1) - m(1, 1) * m(2, 0));
  // Cramer's rule: column c of the matrix replaced by d
  return [0, 1, 2].map((c) => {
    const col = (r, k) => (k === c ? d[r] : m(r, k));
    return (
      (col(0, 0) * (col(1, 1) * col(2, 2) - col(1, 2) * col(2, 1)) -
        col(0, 1) * (col(1, 0) * col(2, 2) - col(1, 2) * col(2, 0)) +
        col(0, 2) * (col(1, 0) * col(2, 1) - col(1, 1) * col(2, 0))) /
      det
    );
  });
}

function frac2vox(frac) {
  return mm2vox(imageVolume().convertFrac2MM(frac, true));
}

function vox2frac(vox) {
  return imageVolume().convertMM2Frac(vox2mm(vox), true);
}

// Canvas pixel -> {vox: [i, j, k] NIfTI voxel (fractional), tile axis} or null off the slices.
function locate(event) {
  const rect = $("gl").getBoundingClientRect();
  const dpr = nv.uiData.dpr || window.devicePixelRatio || 1;
  const x = (event.clientX - rect.left) * dpr;
  const y = (event.clientY - rect.top) * dpr;
  const tile = nv.tileIndex(x, y);
  if (tile < 0) return null;
  const slice = nv.screenSlices[tile];
  if (!slice || slice.axCorSag > 2) return null; // the 3D render
  const frac = nv.canvasPos2frac([x, y]);
  if (!frac || frac[0] < 0) return null;
  const vox = frac2vox(frac);
  // the voxel axis orthogonal to this tile: move one voxel along the tile's normal (RAS frac)
  const normal = [2, 1, 0][slice.axCorSag];
  const step = frac.slice();
  step[normal] += 1 / imageVolume().dimsRAS[normal + 1];
  const moved = frac2vox(step);
  const delta = [0, 1, 2].map((a) => Math.abs(moved[a] - vox[a]));
  const niftiAxis = delta.indexOf(Math.max(...delta));
  return { vox, niftiAxis, canvas: [event.clientX - rect.left, event.clientY - rect.top] };
}

// NIfTI (i, j, k) -> medseg array order (z, y, x) for 3D or (y, x) for 2D images.
function toArrayOrder(vox) {
  const v = vox.map((c) => Math.round(c));
  return state.session.shape.length === 3 ? [v[2], v[1], v[0]] : [v[1], v[0]];
}

function slicePrompt(points, niftiAxis) {
  const full = points.map(toArrayOrder);
  if (state.session.shape.length === 2) return { points: full };
  const axis = 2 - niftiAxis;
  const index = full[0][axis];
  return { axis, index, points: full.map((p) => p.filter((_, a) => a !== axis)) };
}

// ---------------------------------------------------------------------------- labels

function applyUpdate(update) {
  if (!update.box.length) return;
  const vol = labelVolume();
  const dims = vol.hdr.dims; // [ndim, nx, ny, nz, ...]
  const nx = dims[1];
  const ny = dims[2];
  const box = update.box.length === 3 ? update.box : [[0, 1], ...update.box];
  const [[z0, z1], [y0, y1], [x0, x1]] = box;
  const img = vol.img;
  const runs = update.rle;
  let run = 0;
  let left = runs[1];
  let value = runs[0];
  for (let z = z0; z < z1; z++) {
    for (let y = y0; y < y1; y++) {
      let idx = x0 + nx * (y + ny * z);
      for (let x = x0; x < x1; x++, idx++) {
        while (left === 0) {
          run += 2;
          value = runs[run];
          left = runs[run + 1];
        }
        img[idx] = value;
        left--;
      }
    }
  }
  nv.updateGLVolume();
}

function showUndoState(update) {
  $("undo").disabled = !update.can_undo;
  $("redo").disabled = !update.can_redo;
}

// Interactions reach the server one after another, in the order they were made: a click made
// while the server is still answering waits for that answer instead of being dropped. A task
// queued for a session that is no longer open is skipped.
let queue = Promise.resolve();

function enqueue(task) {
  const session = state.session;
  if (!session) return queue;
  queue = queue.then(() => (state.session === session ? task(session) : undefined));
  return queue;
}

async function sendNow(session, path, body) {
  const started = performance.now();
  try {
    const update = await api(`/api/sessions/${session.session_id}/${path}`, { method: "POST", body });
    const answered = performance.now();
    applyUpdate(update);
    showUndoState(update);
    const drawn = performance.now();
    $("latency").textContent =
      `last interaction: ${(answered - started).toFixed(0)} ms round trip ` +
      `(engine ${update.engine_ms.toFixed(0)} ms), drawn in ${(drawn - answered).toFixed(0)} ms`;
    document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
    setStatus(`${session.case_id}: ${update.prompts} prompt(s)`);
  } catch (err) {
    setStatus(err.message, true);
  } finally {
    if (!state.stroke && !state.boxStart) clearInk();
  }
}

function send(path, body) {
  return enqueue((session) => sendNow(session, path, body));
}

function sendPrompt(prompt) {
  return send("prompts", { label: state.label, ...prompt });
}

// ---------------------------------------------------------------------------- drawing

const ink = $("ink");

function clearInk() {
  ink.width = ink.clientWidth;
  ink.height = ink.clientHeight;
}

function colourOf(label) {
  const entry = state.info.labels.find((l) => l.value === label);
  return entry ? `rgb(${entry.colour.join(",")})` : "#fff";
}

function drawStroke() {
  clearInk();
  const ctx = ink.getContext("2d");
  if (state.stroke) {
    ctx.strokeStyle = state.tool === "eraser" ? "#bbb" : colourOf(state.label);
    ctx.lineWidth = 3;
    ctx.setLineDash(state.tool === "eraser" ? [4, 3] : []);
    ctx.beginPath();
    state.stroke.canvas.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    ctx.stroke();
  }
  if (state.boxStart && state.boxEnd) {
    const [x0, y0] = state.boxStart.canvas;
    const [x1, y1] = state.boxEnd;
    ctx.strokeStyle = colourOf(state.label);
    ctx.lineWidth = 2;
    ctx.strokeRect(Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0), Math.abs(y1 - y0));
  }
}

const gl = $("gl");
gl.addEventListener("pointerdown", (event) => {
  if (event.button !== 0 || !state.session || state.tool === "view") return;
  const where = locate(event);
  if (!where) return;
  if (state.tool === "pos" || state.tool === "neg") {
    const positive = state.tool === "pos" && !event.shiftKey;
    sendPrompt({ kind: "click", point: toArrayOrder(where.vox), positive });
  } else if (state.tool === "box") {
    state.boxStart = where;
    state.boxEnd = where.canvas;
  } else {
    state.stroke = { niftiAxis: where.niftiAxis, vox: [where.vox], canvas: [where.canvas] };
  }
});

gl.addEventListener("pointermove", (event) => {
  if (state.stroke) {
    const where = locate(event);
    if (where && where.niftiAxis === state.stroke.niftiAxis) {
      state.stroke.vox.push(where.vox);
      state.stroke.canvas.push(where.canvas);
      drawStroke();
    }
  } else if (state.boxStart) {
    const rect = gl.getBoundingClientRect();
    state.boxEnd = [event.clientX - rect.left, event.clientY - rect.top];
    drawStroke();
  }
});

window.addEventListener("pointerup", (event) => {
  if (state.stroke) {
    const stroke = state.stroke;
    state.stroke = null;
    clearInk();
    const points = stroke.vox.filter((_, i) => i % 2 === 0 || i === stroke.vox.length - 1);
    const prompt = slicePrompt(points, stroke.niftiAxis);
    sendPrompt({ kind: "scribble", positive: state.tool === "brush", width: Number($("width").value), ...prompt });
  } else if (state.boxStart) {
    const start = state.boxStart;
    state.boxStart = null;
    clearInk();
    const end = locate(event);
    if (!end || end.niftiAxis !== start.niftiAxis) return;
    const prompt = slicePrompt([start.vox, end.vox], start.niftiAxis);
    const [a, b] = prompt.points;
    const lo = a.map((v, i) => Math.min(v, b[i]));
    const hi = a.map((v, i) => Math.max(v, b[i]));
    const { points, ...rest } = prompt;
    sendPrompt({ kind: "box", lo, hi, ...rest });
  }
});

function setTool(tool) {
  state.tool = tool;
  document.querySelectorAll("#tools button").forEach((b) => b.classList.toggle("on", b.dataset.tool === tool));
  // clicks keep NiiVue's crosshair (so the slices follow); drags must not move it
  nv.opts.dragModePrimary = ["pos", "neg", "view"].includes(tool) ? niivue.DRAG_MODE.crosshair : niivue.DRAG_MODE.none;
}

function setLabel(value) {
  state.label = value;
  document.querySelectorAll("#classes button").forEach((b) => b.classList.toggle("on", Number(b.dataset.label) === value));
}

function setOpacity() {
  if (nv.volumes.length > 1) nv.setOpacity(1, state.overlay ? state.opacity : 0);
}

function setWindow(spec) {
  const vol = imageVolume();
  if (!vol) return;
  if (spec === "auto") {
    vol.cal_min = vol.robust_min;
    vol.cal_max = vol.robust_max;
  } else {
    const [width, level] = spec.split(",").map(Number);
    vol.cal_min = level - width / 2;
    vol.cal_max = level + width / 2;
  }
  nv.updateGLVolume();
}

// ---------------------------------------------------------------------------- cases

async function refreshCases(selected) {
  const cases = await api("/api/cases");
  const select = $("case");
  select.innerHTML = "";
  for (const c of cases) {
    const option = document.createElement("option");
    option.value = c.case_id;
    option.textContent = `${c.saved ? "✓ " : ""}${c.case_id}`;
    select.appendChild(option);
  }
  if (selected) select.value = selected;
  const saved = cases.filter((c) => c.saved).length;
  $("progress").textContent = `${saved} of ${cases.length} cases saved`;
}

async function openCase(caseId) {
  await queue; // prompts and a save made before switching reach the open session first
  setStatus(`opening ${caseId}…`);
  if (state.session) {
    api(`/api/sessions/${state.session.session_id}`, { method: "DELETE" }).catch(() => {});
    state.session = null;
  }
  const session = await api("/api/sessions", { method: "POST", body: { case_id: caseId } });
  await nv.loadVolumes([
    { url: withToken(`/api/cases/${encodeURIComponent(caseId)}/image.nii`), name: `${caseId}.nii` },
    { url: withToken(`/api/sessions/${session.session_id}/labels.nii`), name: `${caseId}_labels.nii` },
  ]);
  const labels = labelVolume();
  labels.setColormapLabel(labelColormap());
  nv.setOpacity(1, state.opacity);
  nv.updateGLVolume();
  state.session = session;
  // a 2D image (photo, slide, exported slice) is shown as stored: x to the right, y down
  const flat = session.shape.length === 2;
  nv.setRadiologicalConvention(flat);
  nv.setSliceType(flat ? nv.sliceTypeAxial : nv.sliceTypeMultiplanar);
  $("case").value = caseId;
  showUndoState(session);
  document.body.dataset.case = caseId;
  setStatus(`${caseId}: started from ${session.start} mask`);
}

async function nextCase() {
  const order = $("order").value;
  const after = state.session ? `&after=${encodeURIComponent(state.session.case_id)}` : "";
  const next = await api(`/api/cases/next?order=${order}${after}`);
  if (next.case_id) await openCase(next.case_id);
  else setStatus("every case is saved");
}

async function saveNow(session) {
  try {
    const result = await api(`/api/sessions/${session.session_id}/save`, { method: "POST" });
    const dice = result.dice_model === null ? "" : `, Dice to model ${result.dice_model.toFixed(3)}`;
    setStatus(`saved ${result.path} (${result.seconds.toFixed(0)} s${dice})`);
    await refreshCases(session.case_id);
    document.body.dataset.saved = result.path;
  } catch (err) {
    setStatus(err.message, true);
  }
}

function save() {
  return enqueue(saveNow);
}

// ---------------------------------------------------------------------------- wiring

function bindControls() {
  document.querySelectorAll("#tools button").forEach((b) => (b.onclick = () => setTool(b.dataset.tool)));
  document.querySelectorAll("#presets button").forEach((b) => (b.onclick = () => setWindow(b.dataset.wl)));
  $("undo").onclick = () => send("undo");
  $("redo").onclick = () => send("redo");
  $("clear").onclick = () => send("clear", { label: state.label });
  $("restore").hidden = !state.info.model;
  $("restore").onclick = () => send("restore", { label: state.label });
  $("save").onclick = save;
  $("next").onclick = () => nextCase().catch((e) => setStatus(e.message, true));
  $("case").onchange = (e) => openCase(e.target.value).catch((err) => setStatus(err.message, true));
  $("order").value = state.info.next_order;
  $("opacity").oninput = (e) => {
    state.opacity = Number(e.target.value) / 100;
    setOpacity();
  };
  $("width").oninput = (e) => ($("width-val").textContent = e.target.value);
  window.addEventListener("resize", clearInk);
  document.addEventListener("keydown", (event) => {
    // shortcuts stay live after a slider was moved; a select list and a text field keep their keys
    const target = event.target;
    if (target.tagName === "SELECT" || target.tagName === "TEXTAREA") return;
    if (target.tagName === "INPUT" && !["range", "checkbox", "radio"].includes(target.type)) return;
    const key = event.key.toLowerCase();
    const tools = { 1: "pos", 2: "neg", b: "box", s: "brush", e: "eraser", v: "view" };
    const labels = state.info.labels.map((l) => l.value);
    const at = labels.indexOf(state.label);
    if (tools[key]) setTool(tools[key]);
    else if (key === "z") send("undo");
    else if (key === "y") send("redo");
    else if (key === "enter") save();
    else if (key === "m" && state.info.model) send("restore", { label: state.label });
    else if (key === "n") nextCase().catch((e) => setStatus(e.message, true));
    else if (key === "[" && at > 0) setLabel(labels[at - 1]);
    else if (key === "]" && at < labels.length - 1) setLabel(labels[at + 1]);
    else if (key === "o") {
      state.overlay = !state.overlay;
      setOpacity();
    } else return;
    event.preventDefault();
  });
}

async function main() {
  try {
    state.info = await api("/api/info");
    $("dataset").textContent = `${state.info.dataset} · engine ${state.info.engine}`;
    const classes = $("classes");
    for (const label of state.info.labels) {
      const button = document.createElement("button");
      button.dataset.label = label.value;
      button.innerHTML = `<i style="background: rgb(${label.colour.join(",")})"></i>${label.value} ${label.name}`;
      button.onclick = () => setLabel(label.value);
      classes.appendChild(button);
    }
    setLabel(state.info.labels[0].value);
    await nv.attachTo("gl");
    nv.setSliceType(nv.sliceTypeMultiplanar);
    setTool("pos");
    bindControls();
    clearInk();
    const first = params.get("case");
    await refreshCases();
    if (first) await openCase(first);
    else await nextCase();
    document.body.dataset.ready = "1";
  } catch (err) {
    setStatus(err.message, true);
  }
}

// for scripted checks (the browser test) and debugging from the console
window.medsegViewer = {
  nv, state, openCase, save, api, applyUpdate, showUndoState, setStatus, frac2vox, vox2frac,
  enqueue,
};
main();
