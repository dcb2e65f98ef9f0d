// wasmhost's dashboard: one page over the management API (/api/v1) and OIP (/v2).
// Hand-written, no build step, no dependencies. Views are chosen by the URL's hash
// (#/projects, #/projects/NAME, #/catalog, #/upload, #/tokens, #/metrics,
// #/try/PROJECT/MODEL[@VERSION]). Text from the server is only ever set as text
// (textContent), never parsed as HTML.
"use strict";

const TOKEN = "wasmhost.token";
let me = null; // GET /api/v1/whoami: {name, role, project, auth}
let refresh = null; // the metrics view's timer

const $ = (id) => document.getElementById(id);

/** An element: h("a", {href: "#/x"}, "text", child...). */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

const SVG = "http://www.w3.org/2000/svg";
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, String(value));
  for (const child of children) el.append(child instanceof Node ? child : String(child));
  return el;
}

class ApiError extends Error {
  constructor(status, type, message) {
    super(message);
    this.status = status;
    this.type = type;
  }
}

/** A request with the token; answers the parsed JSON (or the text), throws ApiError. */
async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  const token = sessionStorage.getItem(TOKEN);
  if (token) headers.set("Authorization", `Bearer ${token}`);
  let response;
  try {
    response = await fetch(path, { ...options, headers });
  } catch (e) {
    throw new ApiError(0, "network", `the server did not answer (${e.message})`);
  }
  const text = await response.text();
  let doc = text;
  try {
    doc = text ? JSON.parse(text) : null;
  } catch {
    // not JSON (an OIP answer with NaN, say): kept as text
  }
  if (!response.ok) {
    const type = (doc && doc.type) || `HTTP ${response.status}`;
    const message = (doc && doc.error) || text || response.statusText;
    throw new ApiError(response.status, type, message);
  }
  return doc;
}

const list = async (path) => (await api(`${path}?per_page=1000`)).result;

// ---- messages ---------------------------------------------------------------------

function showError(e) {
  const el = $("error");
  el.textContent = e instanceof ApiError ? `${e.type}: ${e.message}` : String(e.message || e);
  el.hidden = false;
}

function clearMessages() {
  $("error").hidden = true;
  $("error").textContent = "";
  $("status").textContent = "";
}

const say = (text) => ($("status").textContent = text);

// ---- formatting -------------------------------------------------------------------

function bytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

const when = (iso) => (iso ? iso.replace("T", " ").replace(/\.\d+/, "").replace(/\+00:00$/, " UTC") : "");
const shape = (dims) => `[${(dims || []).map((d) => (d === null ? "?" : d)).join(", ")}]`;
const ms = (v) => (v === null || v === undefined ? "–" : `${v < 10 ? v.toFixed(2) : v.toFixed(1)} ms`);

function table(caption, headings, rows) {
  return h(
    "table",
    {},
    h("caption", { class: "visually-hidden" }, caption),
    h("thead", {}, h("tr", {}, headings.map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c) => h("td", {}, c))))),
  );
}

// ---- views --------------------------------------------------------------------------

function show(id, title) {
  for (const view of document.querySelectorAll(".view")) view.hidden = view.id !== id;
  document.title = `${title} · wasmhost`;
  for (const a of document.querySelectorAll("#nav a")) {
    if (location.hash.startsWith(a.getAttribute("href"))) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const heading = document.querySelector(`#${id} h1`);
  if (heading) heading.focus({ preventScroll: true });
}

async function login(event) {
  event.preventDefault();
  clearMessages();
  const token = $("login-token").value.trim();
  if (!token) return;
  sessionStorage.setItem(TOKEN, token);
  try {
    me = await api("/api/v1/whoami");
  } catch (e) {
    sessionStorage.removeItem(TOKEN);
    me = null;
    showError(e);
    return;
  }
  $("login-token").value = "";
  signedIn();
  if (location.hash === "#/projects") await route();
  else location.hash = "#/projects";
}

function signedIn() {
  $("nav").hidden = false;
  $("who").hidden = false;
  $("who-name").textContent = `${me.name} (${me.role}${me.project ? `, ${me.project}` : ""})`;
  $("nav-tokens").hidden = me.role !== "admin";
}

function logout() {
  sessionStorage.removeItem(TOKEN);
  me = null;
  $("nav").hidden = true;
  $("who").hidden = true;
  clearMessages();
  location.hash = "#/login";
  route();
}

async function projectsView() {
  show("view-projects", "Projects");
  const projects = await list("/api/v1/projects");
  $("projects-list").replaceChildren(
    projects.length
      ? table(
          "Projects",
          ["Project", "Runtime", "Limits", "Created"],
          projects.map((p) => [
            h("a", { href: `#/projects/${encodeURIComponent(p.name)}` }, p.name),
            p.runtime,
            limits(p.limits),
            when(p.created_at),
          ]),
        )
      : h("p", {}, "No projects yet: an admin token makes one with POST /api/v1/projects or `wasmhost project create`."),
  );
}

function limits(doc) {
  const entries = Object.entries(doc || {});
  return entries.length ? entries.map(([k, v]) => `${k} ${v}`).join(", ") : "defaults";
}

async function projectView(name) {
  show("view-project", name);
  $("project-title").textContent = `Project ${name}`;
  const base = `/api/v1/projects/${encodeURIComponent(name)}`;
  const [project, models] = await Promise.all([api(base), list(`${base}/models`)]);
  $("project-meta").textContent = `Runtime ${project.runtime}; limits: ${limits(project.limits)}.`;
  const details = await Promise.all(
    models.map((m) => api(`${base}/models/${encodeURIComponent(m.name)}`)),
  );
  $("project-models").replaceChildren(
    ...(details.length
      ? details.map((m) => modelSection(name, m))
      : [h("p", {}, "No models yet: ", h("a", { href: "#/upload" }, "upload one"), ".")]),
  );
}

function modelSection(project, m) {
  const aliases = Object.entries(m.aliases || {});
  const tryIt = (v) => `#/try/${encodeURIComponent(project)}/${encodeURIComponent(m.name)}${v ? `@${v}` : ""}`;
  return h(
    "section",
    { class: "model", "data-model": m.name },
    h("h2", {}, m.name),
    m.description ? h("p", {}, m.description) : null,
    h(
      "p",
      {},
      `${m.versions} version${m.versions === 1 ? "" : "s"}, latest ${m.latest_version ?? "none"}; aliases: `,
      aliases.length ? aliases.map(([a, v]) => `${a} → ${v}`).join(", ") : "none",
      ". ",
      h("a", { href: tryIt(null) }, `Try ${m.name}`),
    ),
    table(
      `Versions of ${m.name}`,
      ["Version", "Status", "Size", "Inputs", "Aliases", "Created", ""],
      m.version_list.map((v) => [
        String(v.version),
        v.status + (v.reason ? `: ${v.reason}` : ""),
        v.catalog ? `catalog ${v.catalog}` : bytes(v.size),
        v.inputs.map((t) => `${t.name} ${t.type} ${shape(t.shape)}`).join("; "),
        (v.aliases || []).join(", "),
        `${when(v.created_at)} by ${v.created_by}`,
        v.status === "ready" ? h("a", { href: tryIt(v.version) }, `Try version ${v.version}`) : "",
      ]),
    ),
  );
}

async function catalogView() {
  show("view-catalog", "Catalog");
  const entries = await list("/api/v1/catalog");
  $("catalog-list").replaceChildren(
    table(
      "Catalog models",
      ["Model", "Task", "Description", "Inputs", "Labels", ""],
      entries.map((e) => [
        h("strong", {}, e.name),
        e.task,
        e.description,
        e.inputs.map((t) => `${t.name} ${t.dtype} ${shape(t.shape)}`).join("; "),
        e.labels && e.labels.length ? String(e.labels.length) : "",
        h("a", { href: `#/try/catalog/${encodeURIComponent(e.name)}` }, `Try ${e.name}`),
      ]),
    ),
  );
}

async function uploadView() {
  show("view-upload", "Upload");
  const select = $("upload-project");
  const chosen = select.value;
  const projects = await list("/api/v1/projects");
  select.replaceChildren(...projects.map((p) => h("option", { value: p.name }, p.name)));
  if (chosen) select.value = chosen;
}

async function upload(event) {
  event.preventDefault();
  clearMessages();
  const form = $("upload-form");
  const project = $("upload-project").value;
  const data = new FormData();
  data.append("name", $("upload-name").value.trim());
  const description = $("upload-description").value.trim();
  if (description) data.append("description", description);
  data.append("file", $("upload-file").files[0]);
  $("upload-result").replaceChildren();
  say("Uploading and validating…");
  form.querySelector("button").disabled = true;
  try {
    const v = await api(`/api/v1/projects/${encodeURIComponent(project)}/models`, {
      method: "POST",
      body: data,
    });
    say("");
    $("upload-result").replaceChildren(
      h(
        "p",
        { class: "ok", id: "upload-ok" },
        `Uploaded ${v.project}/${v.model} version ${v.version} (${v.status}, ${bytes(v.size)}). `,
        h("a", { href: `#/projects/${encodeURIComponent(v.project)}` }, `See project ${v.project}`),
      ),
    );
    form.reset();
    $("upload-project").value = project;
  } catch (e) {
    say("");
    showError(e);
  } finally {
    form.querySelector("button").disabled = false;
  }
}

async function tokensView() {
  show("view-tokens", "Tokens");
  $("token-secret").hidden = true;
  $("token-secret-value").textContent = ""; // shown once: gone from the page when it is left
  if (!me || me.role !== "admin") {
    $("tokens-body").hidden = true;
    // Ask anyway, so that the server's own refusal is what the page shows.
    await api("/api/v1/tokens");
  }
  $("tokens-body").hidden = false;
  const [tokens, projects] = await Promise.all([list("/api/v1/tokens"), list("/api/v1/projects")]);
  $("tokens-list").replaceChildren(
    table(
      "Tokens",
      ["Name", "Role", "Project", "Created", ""],
      tokens.map((t) => [
        t.name,
        t.role,
        t.project || "all",
        `${when(t.created_at)} by ${t.created_by}`,
        h("button", { type: "button", class: "danger", onclick: () => revoke(t.name) }, `Revoke ${t.name}`),
      ]),
    ),
  );
  const select = $("token-project");
  select.replaceChildren(
    h("option", { value: "" }, "all projects"),
    ...projects.map((p) => h("option", { value: p.name }, p.name)),
  );
}

async function createToken(event) {
  event.preventDefault();
  clearMessages();
  const body = {
    name: $("token-name").value.trim(),
    role: $("token-role").value,
    project: $("token-project").value || null,
  };
  try {
    const t = await api("/api/v1/tokens", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    await tokensView();
    $("token-secret-value").textContent = t.token;
    $("token-secret").hidden = false;
    $("token-form").reset();
    say(`Token ${t.name} created.`);
  } catch (e) {
    showError(e);
  }
}

async function revoke(name) {
  if (!confirm(`Revoke token ${name}? Requests with it are refused from now on.`)) return;
  clearMessages();
  try {
    await api(`/api/v1/tokens/${encodeURIComponent(name)}`, { method: "DELETE" });
    await tokensView();
    say(`Token ${name} revoked.`);
  } catch (e) {
    showError(e);
  }
}

// ---- metrics ------------------------------------------------------------------------

async function metricsView() {
  show("view-metrics", "Metrics");
  await drawMetrics();
  refresh = setInterval(() => drawMetrics().catch(showError), 5000);
}

async function drawMetrics() {
  const doc = await api("/api/v1/stats");
  $("metrics-list").replaceChildren(
    ...(doc.models.length
      ? doc.models.map(modelMetrics)
      : [h("p", {}, "No model has run since the server started.")]),
  );
}

function modelMetrics(m) {
  const traps = Object.entries(m.traps);
  const counts = m.per_interval.counts;
  const recent = counts.reduce((a, b) => a + b, 0);
  return h(
    "article",
    { class: "card", "data-model": m.model },
    h("h2", {}, m.model),
    h(
      "dl",
      { class: "figures" },
      h("div", {}, h("dt", {}, "Runs"), h("dd", {}, String(m.requests))),
      h("div", {}, h("dt", {}, "Errors"), h("dd", {}, String(m.errors))),
      h("div", {}, h("dt", {}, "p50"), h("dd", { class: "p50" }, ms(m.p50_ms))),
      h("div", {}, h("dt", {}, "p99"), h("dd", { class: "p99" }, ms(m.p99_ms))),
    ),
    h("p", { class: "hint" }, `p50 and p99 over the last ${m.window} runs.`),
    h("div", { class: "charts" },
      figure(
        `Runs per ${m.per_interval.seconds} s, last ${(counts.length * m.per_interval.seconds) / 60} min`,
        bars(counts, `${recent} runs in the last ${(counts.length * m.per_interval.seconds) / 60} minutes`),
      ),
      figure(
        `Latency of the last ${m.latency_ms.length} runs (ms)`,
        line(m.latency_ms, `latest ${ms(m.latency_ms.at(-1))}, slowest ${ms(Math.max(...m.latency_ms))}`),
      ),
      figure(
        "Traps by kind",
        traps.length
          ? bars(traps.map(([, n]) => n), traps.map(([k, n]) => `${k}: ${n}`).join(", "), traps.map(([k]) => k))
          : h("p", { class: "none" }, "none"),
      ),
    ),
  );
}

function figure(caption, chart) {
  return h("figure", {}, chart, h("figcaption", {}, caption));
}

/** A bar chart (SVG) of `values`, described by `summary` for screen readers. */
function bars(values, summary, names) {
  const width = 300;
  const height = 80;
  const max = Math.max(1, ...values);
  const step = Math.min(width / Math.max(1, values.length), names ? 75 : width); // named: narrow
  const svg = s("svg", { viewBox: `0 0 ${width} ${height + (names ? 14 : 0)}`, role: "img", "aria-label": summary, class: "chart" });
  svg.append(s("title", {}, summary));
  values.forEach((v, i) => {
    const barHeight = (v / max) * (height - 4);
    svg.append(s("rect", { x: i * step + 1, y: height - barHeight, width: Math.max(1, step - 2), height: barHeight, class: "bar" }));
    if (names) {
      svg.append(s("text", { x: i * step + step / 2, y: height + 12, "text-anchor": "middle", class: "tick" }, names[i]));
      svg.append(s("text", { x: i * step + step / 2, y: height - barHeight + 11, "text-anchor": "middle", class: "count" }, v));
    }
  });
  svg.append(s("line", { x1: 0, y1: height, x2: width, y2: height, class: "axis" }));
  return svg;
}

/** A line chart (SVG) of `values`. */
function line(values, summary) {
  const width = 300;
  const height = 80;
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": summary, class: "chart" });
  svg.append(s("title", {}, summary));
  if (values.length) {
    const max = Math.max(...values) || 1;
    const step = values.length > 1 ? width / (values.length - 1) : 0;
    const y = (v) => (height - 2 - (v / max) * (height - 16)).toFixed(1);
    const points = values.map((v, i) => `${(i * step).toFixed(1)},${y(v)}`);
    svg.append(s("polyline", { points: points.join(" "), class: "line" }));
    svg.append(s("circle", { cx: ((values.length - 1) * step).toFixed(1), cy: y(values.at(-1)), r: 2.5, class: "dot" }));
    svg.append(s("text", { x: 3, y: 10, class: "tick" }, `max ${ms(max)}`));
  }
  svg.append(s("line", { x1: 0, y1: height, x2: width, y2: height, class: "axis" }));
  return svg;
}

// ---- try it -------------------------------------------------------------------------

let trying = null; // {project, model, version, info}

async function tryView(project, model, version) {
  show("view-try", `Try ${model}`);
  const title = `Try ${project}/${model}${version ? `@${version}` : ""}`;
  $("try-title").textContent = title;
  $("try-image").hidden = true;
  $("try-json").hidden = true;
  $("try-top").replaceChildren();
  $("top-title").hidden = true;
  $("try-timing").textContent = "";
  $("try-output").textContent = "";
  $("try-preview").hidden = true;
  const query = version ? `?version=${encodeURIComponent(version)}` : "";
  const info = await api(`/api/v1/classify/${encodeURIComponent(project)}/${encodeURIComponent(model)}${query}`);
  trying = { project, model, version, info };
  const inputs = info.inputs.map((t) => `${t.name} ${t.type} ${shape(t.shape)}`).join("; ");
  $("try-meta").textContent = `Version ${info.version}. Inputs: ${inputs}.` +
    (info.image ? ` An image classifier (${info.labels.length} labels): the server resizes and normalizes the image, runs the model and answers its top 5.` : "");
  if (info.image) {
    $("try-image").hidden = false;
  } else {
    $("try-json").hidden = false;
    $("try-request").value = JSON.stringify({ inputs: info.inputs.map(example) }, null, 1);
  }
}

const DATATYPES = {
  float: "FP32", float32: "FP32", double: "FP64", float64: "FP64", float16: "FP16",
  int64: "INT64", int32: "INT32", int16: "INT16", int8: "INT8",
  uint64: "UINT64", uint32: "UINT32", uint16: "UINT16", uint8: "UINT8", bool: "BOOL",
};

/** An OIP input of zeros for a tensor of the signature (variable dims as 1). */
function example(t) {
  const dtype = String(t.type).replace(/^tensor\((.*)\)$/, "$1");
  const dims = (t.shape || []).map((d) => (Number.isInteger(d) && d > 0 ? d : 1));
  const size = dims.reduce((a, b) => a * b, 1);
  return { name: t.name, datatype: DATATYPES[dtype] || dtype.toUpperCase(), shape: dims, data: Array(size).fill(0) };
}

async function classify(file) {
  if (!file || !trying) return;
  clearMessages();
  const preview = $("try-preview");
  if (preview.src) URL.revokeObjectURL(preview.src);
  preview.src = URL.createObjectURL(file);
  preview.alt = `The image sent: ${file.name}`;
  preview.hidden = false;
  const data = new FormData();
  data.append("image", file);
  const { project, model, version } = trying;
  const query = version ? `?version=${encodeURIComponent(version)}` : "";
  say("Classifying…");
  $("try-top").replaceChildren();
  try {
    const doc = await api(`/api/v1/classify/${encodeURIComponent(project)}/${encodeURIComponent(model)}${query}`, {
      method: "POST",
      body: data,
    });
    say(`Top: ${doc.top[0].label} (${pct(doc.top[0].probability)}).`);
    $("top-title").textContent = `Top ${doc.top.length}`;
    $("top-title").hidden = false;
    $("try-top").replaceChildren(
      ...doc.top.map((c) => {
        const bar = h("span", { class: "bar", "aria-hidden": "true" });
        bar.style.width = `${Math.max(0.5, c.probability * 100).toFixed(1)}%`; // CSSOM: CSP-safe
        return h(
          "li",
          { "data-label": c.label, "data-probability": c.probability },
          h("span", { class: "label" }, c.label),
          h("span", { class: "track" }, bar),
          h("span", { class: "value" }, pct(c.probability)),
        );
      }),
    );
    $("try-timing").textContent = `Version ${doc.version}; preprocessing ${ms(doc.ms.preprocess)}, run ${ms(doc.ms.run)}.`;
  } catch (e) {
    say("");
    showError(e);
  }
}

const pct = (p) => `${(p * 100).toFixed(p >= 0.1 ? 1 : 2)}%`;

async function runJson(event) {
  event.preventDefault();
  clearMessages();
  const { project, model, version } = trying;
  const name = encodeURIComponent(`${project}.${model}`);
  const path = version ? `/v2/models/${name}/versions/${encodeURIComponent(version)}/infer` : `/v2/models/${name}/infer`;
  $("try-output").textContent = "";
  try {
    const doc = await api(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: $("try-request").value,
    });
    $("try-output").textContent = typeof doc === "string" ? doc : JSON.stringify(doc.outputs ?? doc, null, 1);
  } catch (e) {
    showError(e);
  }
}

// ---- routing ------------------------------------------------------------------------

async function route() {
  clearInterval(refresh);
  refresh = null;
  clearMessages();
  if (!me) {
    if (!sessionStorage.getItem(TOKEN)) {
      // A server run with --no-auth needs no token: ask once.
      try {
        me = await api("/api/v1/whoami");
      } catch {
        me = null;
      }
    } else {
      try {
        me = await api("/api/v1/whoami");
      } catch (e) {
        sessionStorage.removeItem(TOKEN);
        showError(e);
      }
    }
    if (me) signedIn();
  }
  if (!me) {
    show("view-login", "Log in");
    return;
  }
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  try {
    switch (parts[0]) {
      case "projects":
        if (parts[1]) await projectView(parts[1]);
        else await projectsView();
        break;
      case "catalog":
        await catalogView();
        break;
      case "upload":
        await uploadView();
        break;
      case "tokens":
        await tokensView();
        break;
      case "metrics":
        await metricsView();
        break;
      case "try": {
        const [model, version] = (parts[2] || "").split("@");
        await tryView(parts[1], model, version);
        break;
      }
      default:
        location.hash = "#/projects";
    }
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      sessionStorage.removeItem(TOKEN);
      me = null;
      $("nav").hidden = true;
      $("who").hidden = true;
      show("view-login", "Log in");
    }
    showError(e);
  }
}

function start() {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  $("upload-form").addEventListener("submit", upload);
  $("token-form").addEventListener("submit", createToken);
  $("try-json-form").addEventListener("submit", runJson);
  $("try-image-form").addEventListener("submit", (e) => e.preventDefault());
  $("try-file").addEventListener("change", (e) => classify(e.target.files[0]));
  const drop = $("try-drop");
  drop.addEventListener("dragover", (e) => {
    e.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    classify(e.dataTransfer.files[0]);
  });
  window.addEventListener("hashchange", route);
  route();
}

start();
