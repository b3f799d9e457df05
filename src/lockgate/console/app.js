// lockgate console: a read-mostly view of the admin API. No framework, no build step, nothing fetched
// from elsewhere. Every piece of data reaches the page as text (textContent / Text nodes), never as
// markup: principals' names, prompts' traces and notices are attacker-controlled.
"use strict";

const KEY = "lockgate.console.key";
const state = { key: null, me: null };

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

// ---- DOM helpers: text only ------------------------------------------------------------------
function el(tag, props, ...kids) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === "class") n.className = v;
    else if (k.startsWith("on")) n.addEventListener(k.slice(2), v);
    else n.setAttribute(k, String(v)); // attribute values are never parsed as markup
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid !== null && kid !== undefined && kid !== false) n.append(kid instanceof Node ? kid : String(kid));
  }
  return n;
}

function text(v) {
  if (v instanceof Node) return v;
  if (v === null || v === undefined || v === "") return "—";
  if (Array.isArray(v)) return v.length ? v.map((x) => (typeof x === "object" ? JSON.stringify(x) : String(x))).join(", ") : "—";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

function table(cols, rows, onRow) {
  if (!rows.length) return el("p", { class: "muted" }, "Nothing to show.");
  const body = el("tbody");
  for (const r of rows) {
    const tr = el("tr", {}, cols.map(([, get]) => el("td", {}, text(get(r)))));
    if (onRow) {
      tr.classList.add("clickable");
      tr.tabIndex = 0;
      tr.addEventListener("click", () => onRow(r, tr));
      tr.addEventListener("keydown", (e) => { if (e.key === "Enter") onRow(r, tr); });
    }
    body.append(tr);
  }
  return el("div", { class: "scroll" },
    el("table", {}, el("thead", {}, el("tr", {}, cols.map(([label]) => el("th", {}, label)))), body));
}

function kv(obj) {
  return el("dl", { class: "kv" }, Object.entries(obj).map(([k, v]) => [el("dt", {}, k), el("dd", {}, text(v))]));
}

const short = (h, n = 12) => (h ? el("code", { title: h }, h.length > n ? h.slice(0, n) + "…" : h) : "—");
const when = (iso) => (iso ? el("time", { title: iso }, String(iso).replace("T", " ").slice(0, 19)) : "—");
const badge = (label, kind) => el("span", { class: "badge " + (kind || "") }, label);
const num = (n) => (typeof n === "number" ? n.toLocaleString() : text(n));
const usd = (n) => (typeof n === "number" ? "$" + n.toFixed(n < 1 ? 4 : 2) : text(n));
const pretty = (v) => el("pre", {}, typeof v === "string" ? v : JSON.stringify(v, null, 2));

function may(permission) {
  const perms = (state.me && state.me.permissions) || [];
  return perms.includes("*") || perms.includes(permission);
}

function notPermitted(what) {
  return el("p", { class: "denied" }, `${what}: not permitted for your role (${state.me ? state.me.role : "?"}).`);
}

// ---- the admin API ---------------------------------------------------------------------------
// path: a route as the API declares it, e.g. "/x/{id}"; opts.path fills the {names}, opts.query adds a query.
async function api(method, path, opts = {}) {
  let url = path.replace(/\{(\w+)\}/g, (_, k) => encodeURIComponent(String(opts.path[k])));
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(opts.query || {})) {
    if (v !== undefined && v !== null && v !== "" && v !== false) query.set(k, String(v));
  }
  if (query.toString()) url += "?" + query.toString();
  const headers = { authorization: "Bearer " + state.key };
  if (opts.text !== undefined) headers["content-type"] = "text/plain; charset=utf-8";
  const r = await fetch(url, { method, headers, body: opts.text, cache: "no-store", credentials: "omit",
                               redirect: "error" });
  const isJson = (r.headers.get("content-type") || "").includes("json");
  const data = isJson ? await r.json().catch(() => null) : await r.text();
  if (r.ok) return data;
  const message = (data && data.error && data.error.message) || (typeof data === "string" && data) || r.statusText;
  if (r.status === 401 && state.me) signOut("Signed out: " + message);
  throw new ApiError(r.status, message);
}

// A titled box whose content comes from `fill`; a refusal or failure shows inside it, never breaks the page.
function panel(parent, title, fill) {
  const body = el("div", { class: "panel-body" });
  const box = el("section", { class: "panel" }, el("h3", {}, title), body);
  parent.append(box);
  const run = async () => {
    body.replaceChildren(el("p", { class: "muted" }, "Loading…"));
    try {
      const content = el("div");
      await fill(content, run);
      body.replaceChildren(content);
    } catch (e) {
      body.replaceChildren(failure(title, e));
    }
  };
  run();
  return run;
}

function failure(what, e) {
  if (e instanceof ApiError && e.status === 403) return notPermitted(what);
  return el("p", { class: "error" }, `${what}: ${e.message || e}`);
}

// ---- Directives ------------------------------------------------------------------------------
function directiveState(d, now = Date.now()) {
  if (d.effective_from && now < Date.parse(d.effective_from)) return badge("scheduled", "warn");
  if (d.effective_until && now >= Date.parse(d.effective_until)) return badge("expired", "muted");
  return badge("in force", "ok");
}

function renderDirectives(root) {
  const report = el("div");
  panel(root, "In force", async (box) => {
    const res = await api("GET", "/admin/v1/directives");
    box.append(el("p", {}, "Policy version ", el("strong", {}, String(res.policy_version)),
      `; ${res.data.length} directive(s) applied (in force or scheduled).`));
    const cols = [
      ["id", (d) => el("code", {}, d.id)], ["title", (d) => d.title], ["state", (d) => directiveState(d)],
      ["effect", (d) => (d.effect === "reroute" ? `reroute → ${d.fallback}` : d.effect)], ["models", (d) => d.models],
      ["when", (d) => el("code", {}, d.when)], ["from", (d) => when(d.effective_from)],
      ["until", (d) => when(d.effective_until)], ["authority", (d) => d.authority || d.issued_by],
      ["notice", (d) => d.notice],
    ];
    if (may("reports.read")) {
      cols.push(["report", (d) => el("button", { type: "button", onclick: () => showReport(d.id) }, "Report")]);
    }
    box.append(table(cols, res.data), report);
  });

  async function showReport(id) {
    report.replaceChildren(el("p", { class: "muted" }, "Loading report…"));
    try {
      const md = await api("GET", "/admin/v1/reports/directives/{directive_id}", { path: { directive_id: id } });
      report.replaceChildren(el("h4", {}, `Transparency report: ${id}`), pretty(md));
    } catch (e) {
      report.replaceChildren(failure("Transparency report", e));
    }
  }

  panel(root, "History and signatures", async (box) => {
    const [hist, ver] = await Promise.all([api("GET", "/admin/v1/directives/history"),
                                           api("GET", "/admin/v1/directives/verify")]);
    const bad = {}; // version -> problems, from messages like "version 3 (id): bad signature"
    for (const p of ver.problems) {
      const m = /^version (\d+)\b/.exec(p);
      if (m) (bad[m[1]] = bad[m[1]] || []).push(p);
    }
    box.append(ver.ok ? el("p", {}, badge("verified", "ok"), " The version chain and every Ed25519 signature check out.")
      : el("div", {}, el("p", {}, badge("FAILED", "bad"), " The directive history does not verify:"),
        el("ul", {}, ver.problems.map((p) => el("li", {}, p)))));
    const rows = hist.data.slice().reverse(); // newest first
    box.append(table([
      ["version", (r) => r.version], ["directive", (r) => el("code", {}, r.directive)], ["action", (r) => r.action],
      ["at", (r) => when(r.at)], ["by", (r) => r.by], ["digest", (r) => short(r.digest)],
      ["prev hash", (r) => short(r.prev_hash)], ["hash", (r) => short(r.hash)], ["signature", (r) => short(r.signature, 16)],
      ["verify", (r) => (bad[r.version] ? el("span", { title: bad[r.version].join("\n") }, badge("✗ " + bad[r.version].length, "bad"))
        : badge("✓", "ok"))],
    ], rows));
  });

  panel(root, "Plan: who would a directive affect?", async (box) => {
    const src = el("textarea", { rows: 8, spellcheck: "false",
      placeholder: "id: example\ntitle: Example\nmodels: [some-model]\nwhen: \"!principal.us_person\"\neffect: deny" });
    const days = el("input", { type: "number", min: 0, max: 90, value: 7 });
    const out = el("div");
    const go = el("button", { type: "button" }, "Plan");
    go.addEventListener("click", async () => {
      out.replaceChildren(el("p", { class: "muted" }, "Planning…"));
      try {
        const p = await api("POST", "/admin/v1/directives/plan", { query: { days: days.value }, text: src.value });
        out.replaceChildren(renderPlan(p));
      } catch (e) {
        out.replaceChildren(failure("Plan", e));
      }
    });
    box.append(el("p", { class: "muted" }, "Nothing is applied: this only evaluates the YAML against every principal ",
      "and replays recent requests. Applying stays with the CLI or the API."),
      src, el("div", { class: "row" }, el("label", {}, "replay days ", days), go), out);
  });
}

function renderPlan(p) {
  const counts = (title, obj) => el("div", {}, el("h4", {}, title),
    table([["", (r) => r[0]], ["principals", (r) => num(r[1])]], Object.entries(obj || {})));
  return el("div", {},
    kv({ directive: p.directive, principals: num(p.principals), "attribute groups": num(p.groups),
         "principals affected": num(p.affected_principals), "requests replayed": num(p.replayed_requests) }),
    counts("Changes of access", p.changes), counts("By citizenship", p.by_citizenship), counts("By org", p.by_org),
    counts("By model", p.by_model), counts("Replayed requests that would change", p.replay_changes),
    p.notes && p.notes.length ? el("ul", {}, p.notes.map((n) => el("li", {}, n))) : null);
}

// ---- Audit -----------------------------------------------------------------------------------
function renderAudit(root) {
  panel(root, "Verify the trail", async (box) => {
    const out = el("div");
    const go = el("button", { type: "button" }, "Verify now");
    go.addEventListener("click", async () => {
      out.replaceChildren(el("p", { class: "muted" }, "Recomputing the chain and checking signed checkpoints…"));
      try {
        const v = await api("GET", "/admin/v1/audit/verify");
        out.replaceChildren(el("p", {}, v.ok ? badge("verified", "ok") : badge("FAILED", "bad"),
          ` ${num(v.records)} record(s), ${num(v.checkpoints)} signed checkpoint(s).`),
          v.ok ? "" : kv({ "first bad record": v.seq, problem: v.problem }),
          v.notes && v.notes.length ? el("ul", {}, v.notes.map((n) => el("li", {}, n))) : "");
      } catch (e) {
        out.replaceChildren(failure("Verify", e));
      }
    });
    box.append(el("p", { class: "muted" }, "Checks the whole hash chain; on a long trail this takes a while."), go, out);
  });

  let before = null;
  const kind = el("select", {}, el("option", { value: "" }, "all"), el("option", { value: "request" }, "requests"),
    el("option", { value: "admin" }, "admin actions"));
  const detail = el("div");
  const reload = panel(root, "Recent records", async (box) => {
    const res = await api("GET", "/admin/v1/audit/records", { query: { limit: 50, kind: kind.value, before } });
    const rows = res.data;
    const older = el("button", { type: "button" }, "Older →");
    older.disabled = rows.length < 50;
    older.addEventListener("click", () => { before = rows[rows.length - 1].seq; reload(); });
    const newest = el("button", { type: "button" }, "Newest");
    newest.addEventListener("click", () => { before = null; reload(); });
    box.append(el("div", { class: "row" }, el("label", {}, "show ", kind), newest, older),
      table([
        ["seq", (r) => r.seq], ["at", (r) => when(r.record.at)], ["kind", (r) => r.kind],
        ["who", (r) => (r.kind === "request" ? [r.record.principal, r.record.org].filter(Boolean).join(" @ ") : r.record.actor)],
        ["what", (r) => (r.kind === "request" ? `${r.record.model_requested} → ${r.record.model_served || "—"}`
          : `${r.record.action} ${r.record.target}`)],
        ["outcome", (r) => outcome(r.record)], ["request", (r) => r.record.request_id], ["hash", (r) => short(r.hash)],
      ], rows, (r) => showRecord(r)), detail);
  });
  kind.addEventListener("change", () => { before = null; reload(); });

  function showRecord(r) {
    const parts = [el("h4", {}, `Record ${r.seq}`), pretty(r.record)];
    if (r.kind === "request" && r.record.request_id && may("content.read")) {
      const out = el("div");
      const btn = el("button", { type: "button" }, "Show stored content (the read is audited)");
      btn.addEventListener("click", async () => {
        try {
          const c = await api("GET", "/admin/v1/audit/content/{request_id}", { path: { request_id: r.record.request_id } });
          out.replaceChildren(pretty(c.content));
        } catch (e) {
          out.replaceChildren(failure("Content", e));
        }
      });
      parts.push(btn, out);
    }
    detail.replaceChildren(...parts);
  }
}

function outcome(rec) {
  if (rec.type !== "request") return rec.details && Object.keys(rec.details).length ? rec.details : "";
  const bits = [String(rec.status ?? "")];
  if (rec.directives && rec.directives.length) bits.push("directives: " + rec.directives.join(", "));
  for (const s of rec.safeguards || []) bits.push(`safeguard ${s.stage || ""} ${s.domain || ""} ${s.action || ""}`.trim());
  if (rec.fallback_reason) bits.push("fallback: " + rec.fallback_reason);
  if (rec.error) bits.push("error: " + rec.error);
  return bits.filter(Boolean).join("; ");
}

// ---- Incidents & monitor ---------------------------------------------------------------------
function renderIncidents(root) {
  const all = el("input", { type: "checkbox" });
  const detail = el("div");
  const reload = panel(root, "Jailbreak monitor", async (box) => {
    const res = await api("GET", "/admin/v1/incidents", { query: { all: all.checked ? "true" : "" } });
    const open = res.data.filter((i) => i.state === "open");
    const level = (l) => open.filter((i) => i.level === l).length;
    box.append(el("p", {}, badge(`${level("flag")} flagged`, "warn"), " ", badge(`${level("throttle")} throttled`, "warn"),
      " ", badge(`${level("suspend")} suspended`, "bad"), " — open incidents by level"));
    const contained = open.filter((i) => i.contained);
    box.append(el("h4", {}, "Contained now"), table([
      ["scope", (i) => i.scope], ["subject", (i) => i.subject], ["level", (i) => levelBadge(i.level)],
      ["limit", (i) => (i.rpm != null ? `${i.rpm} req/min` : "refused")], ["since", (i) => when(i.updated_at)],
    ], contained));
    box.append(el("h4", {}, "Incidents"), el("label", {}, all, " include resolved"), table([
      ["id", (i) => i.id], ["scope", (i) => i.scope], ["subject", (i) => i.subject], ["principal", (i) => i.principal],
      ["org", (i) => i.org], ["state", (i) => i.state], ["level", (i) => levelBadge(i.level)],
      ["contained", (i) => (i.contained ? "yes" : "no")], ["hits", (i) => i.hits], ["opened", (i) => when(i.opened_at)],
      ["updated", (i) => when(i.updated_at)], ["resolved", (i) => when(i.resolved_at)], ["note", (i) => i.note],
    ], res.data, (i) => showIncident(i.id)), detail);
  });
  all.addEventListener("change", () => reload());

  async function showIncident(id) {
    detail.replaceChildren(el("p", { class: "muted" }, "Loading…"));
    try {
      const i = await api("GET", "/admin/v1/incidents/{incident_id}", { path: { incident_id: id } });
      detail.replaceChildren(el("h4", {}, `Incident ${i.id}: ${i.scope} ${i.subject}`),
        el("h4", {}, "Evidence"), table([
          ["at", (e) => when(e.at)], ["request", (e) => e.request_id], ["key", (e) => e.key_id], ["kinds", (e) => e.kinds],
          ["domain", (e) => e.domain], ["score", (e) => e.score], ["similarity", (e) => e.similarity],
          ["template", (e) => e.template],
        ], i.evidence || []),
        el("h4", {}, "History"), table([
          ["at", (h) => when(h.at)], ["action", (h) => h.action], ["by", (h) => h.by], ["hits", (h) => h.hits],
          ["audit seq", (h) => h.audit_seq], ["note", (h) => h.note],
        ], i.history || []));
    } catch (e) {
      detail.replaceChildren(failure("Incident", e));
    }
  }
}

const levelBadge = (l) => badge(l, l === "suspend" ? "bad" : "warn");

// ---- Usage & budgets -------------------------------------------------------------------------
function renderUsage(root) {
  const groups = ["org", "principal", "key", "model", "day"];
  const picked = new Set(["org", "principal", "model"]);
  const boxes = groups.map((g) => {
    const c = el("input", { type: "checkbox" });
    c.checked = picked.has(g);
    c.addEventListener("change", () => { if (c.checked) picked.add(g); else picked.delete(g); });
    return el("label", {}, c, " " + g);
  });
  const since = el("input", { type: "date" });
  const until = el("input", { type: "date" });
  const apply = el("button", { type: "button" }, "Apply");
  const reload = panel(root, "Usage", async (box) => {
    const by = groups.filter((g) => picked.has(g));
    const res = await api("GET", "/admin/v1/usage", { query: { by: by.join(","), since: since.value, until: until.value } });
    const total = { requests: 0, tokens_in: 0, tokens_out: 0, cost_usd: 0 };
    for (const r of res.data) for (const k of Object.keys(total)) total[k] += r[k] || 0;
    box.append(el("div", { class: "row" }, "group by ", boxes, el("label", {}, " since ", since),
      el("label", {}, " until ", until), apply),
      kv({ requests: num(total.requests), "tokens in": num(total.tokens_in), "tokens out": num(total.tokens_out),
           cost: usd(total.cost_usd) }),
      table([...by.map((g) => [g, (r) => r[g]]), ["requests", (r) => num(r.requests)],
        ["tokens in", (r) => num(r.tokens_in)], ["tokens out", (r) => num(r.tokens_out)], ["cost", (r) => usd(r.cost_usd)]],
      res.data));
  });
  apply.addEventListener("click", () => reload());

  panel(root, "Budgets", async (box) => {
    const res = await api("GET", "/admin/v1/budgets");
    box.append(table([
      ["scope", (b) => b.scope], ["id", (b) => b.scope_id], ["period", (b) => b.period], ["metric", (b) => b.metric],
      ["limit", (b) => (b.metric === "usd" ? usd(b.amount / 1e6) : num(b.amount))],
    ], res.data));
  });
}

// ---- Models ----------------------------------------------------------------------------------
function renderModels(root) {
  panel(root, "Deployments", async (box) => {
    const res = await api("GET", "/admin/v1/models");
    box.append(el("p", { class: "muted" }, `Catalog: ${res.catalog.join(", ")}. Load and breaker are this replica's; `,
      "the withdrawn state is shared by every replica."),
      table([
        ["model", (d) => d.model], ["deployment", (d) => el("code", {}, d.deployment)],
        ["state", (d) => badge(d.state, d.state === "withdrawn" ? "bad" : "ok")],
        ["breaker", (d) => (d.breaker ? badge(d.breaker, d.breaker === "closed" ? "ok" : "bad") : "—")],
        ["in flight", (d) => (d.inflight == null ? "—" : `${d.inflight} / ${d.max_concurrency}`)],
        ["since", (d) => when(d.changed_at)], ["by", (d) => d.changed_by], ["withdrawals", (d) => d.incidents],
        ["upstream status", (d) => d.upstream_status], ["reason", (d) => d.reason],
      ], res.data));
  });
}

// ---- shell -----------------------------------------------------------------------------------
const VIEWS = {
  directives: { title: "Directives", needs: "directives.read", render: renderDirectives },
  audit: { title: "Audit", needs: "audit.read", render: renderAudit },
  incidents: { title: "Incidents & monitor", needs: "incidents.read", render: renderIncidents },
  usage: { title: "Usage & budgets", needs: "usage.read", render: renderUsage },
  models: { title: "Models", needs: "models.read", render: renderModels },
};

const $ = (id) => document.getElementById(id);

function show(name) {
  const view = VIEWS[name] ? name : Object.keys(VIEWS).find((v) => may(VIEWS[v].needs)) || "directives";
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.view === view);
  const root = el("div", {}, el("h2", {}, VIEWS[view].title));
  $("view").replaceChildren(root);
  if (!may(VIEWS[view].needs)) root.append(notPermitted(VIEWS[view].title));
  else VIEWS[view].render(root);
}

function showLogin(message) {
  $("login").hidden = false;
  $("who").hidden = true;
  $("tabs").hidden = true;
  $("view").replaceChildren();
  $("login-error").textContent = message || "";
  $("login-key").value = "";
  $("login-key").focus();
}

function signOut(message) {
  sessionStorage.removeItem(KEY);
  state.key = state.me = null;
  showLogin(message);
}

async function signIn(key) {
  state.key = key;
  try {
    state.me = await api("GET", "/admin/v1/whoami");
  } catch (e) {
    state.key = null;
    sessionStorage.removeItem(KEY);
    showLogin(e.status === 401 ? "That key is not an admin key: " + e.message : "Cannot reach the admin API: " + e.message);
    return;
  }
  sessionStorage.setItem(KEY, key);
  $("login").hidden = true;
  $("who").hidden = false;
  $("who-id").textContent = state.me.id;
  $("who-role").textContent = state.me.role;
  for (const b of document.querySelectorAll("#tabs button")) b.hidden = !may(VIEWS[b.dataset.view].needs);
  $("tabs").hidden = false;
  show(location.hash.slice(1));
}

function boot() {
  $("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const key = $("login-key").value.trim();
    if (key) signIn(key);
  });
  $("sign-out").addEventListener("click", () => signOut("Signed out."));
  for (const b of document.querySelectorAll("#tabs button")) {
    b.addEventListener("click", () => {
      if (location.hash === "#" + b.dataset.view) show(b.dataset.view);
      else location.hash = b.dataset.view; // the hash holds the view's name only, never the key
    });
  }
  window.addEventListener("hashchange", () => { if (state.me) show(location.hash.slice(1)); });
  const saved = sessionStorage.getItem(KEY);
  if (saved) signIn(saved);
  else showLogin();
}

boot();
