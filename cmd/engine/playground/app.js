// The playground page: sends the editors to /api/render as they change and
// shows the answer. Plain DOM and fetch, no framework. Text from the
// server is only ever set as textContent; the output as HTML goes into a
// sandboxed iframe, where it runs no scripts.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const editors = ["template", "user", "trigger", "context", "event"];
  const debounceMs = 250;

  let examples = [];
  let latest = 0; // number of the newest render request
  let timer = 0;

  function setStatus(text, isError) {
    const s = $("status");
    s.textContent = text;
    s.classList.toggle("error", !!isError);
  }

  // request POSTs body as JSON (if any) and returns the parsed answer; a non-2xx
  // answer throws with the server's message.
  async function request(url, body) {
    const opts = { method: "POST" };
    if (body !== undefined) {
      opts.headers = { "Content-Type": "application/json" };
      opts.body = JSON.stringify(body);
    }
    const r = await fetch(url, opts);
    const text = await r.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (e) {
      data = { error: text.trim() };
    }
    if (!r.ok) {
      throw new Error((data && data.error) || r.status + " " + r.statusText);
    }
    return data;
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(render, debounceMs);
  }

  async function render() {
    clearTimeout(timer);
    const seq = ++latest;
    const body = {};
    for (const id of editors) body[id] = $(id).value;
    setStatus("Rendering…");
    let result;
    try {
      result = await request("/api/render", body);
    } catch (e) {
      if (seq === latest) setStatus("Could not render: " + e.message, true);
      return;
    }
    // An answer to an older request can arrive after a newer one's.
    if (seq !== latest) return;
    show(result);
    setStatus("");
  }

  function noteText(n) {
    if (n.file && n.line) return n.file + ":" + n.line + ":" + n.column + ": " + n.message;
    if (n.file) return n.file + ": " + n.message;
    return n.message;
  }

  function fillNotes(id, notes) {
    $(id).replaceChildren(...notes.map((n) => {
      const li = document.createElement("li");
      li.textContent = noteText(n);
      return li;
    }));
  }

  // looksLikeHTML: the output has a tag, so an HTML view helps.
  function looksLikeHTML(s) {
    return /<(!doctype\s+html|[a-z][a-z0-9]*)(\s[^>]*)?\/?>/i.test(s);
  }

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function fillCalls(calls) {
    const rows = calls.map((c) => {
      const tr = document.createElement("tr");
      const status = cell(c.status ? String(c.status) : "—");
      if (c.error) {
        tr.className = "failed";
        status.textContent += " " + c.error;
      }
      tr.append(
        cell(c.method),
        cell(c.url, "url"),
        status,
        cell(String(c.bytes), "num"),
        cell(c.cached ? "yes" : "no"),
        cell(String(c.attempts), "num"),
        cell(c.duration_ms.toFixed(1), "num"),
      );
      return tr;
    });
    $("calls").tBodies[0].replaceChildren(...rows);
    $("calls").hidden = rows.length === 0;
    $("no-calls").hidden = rows.length > 0;
  }

  function show(res) {
    const errors = res.errors || [];
    const warnings = res.warnings || [];
    const abort = $("abort");
    abort.hidden = !res.aborted;
    abort.textContent = res.aborted
      ? "Aborted: " + res.abort_reason + ". Braze would not send this message."
      : "";
    $("errors-box").hidden = errors.length === 0;
    fillNotes("errors", errors);
    fillNotes("warnings", warnings);
    $("no-warnings").hidden = warnings.length > 0;

    $("output").textContent = res.output;
    $("output").classList.toggle("empty", res.output === "");
    const html = looksLikeHTML(res.output) ? res.output : "";
    $("html-box").hidden = html === "";
    // Setting srcdoc reloads the frame: only when the HTML changed.
    if ($("html").srcdoc !== html) $("html").srcdoc = html;

    fillCalls(res.connected_content || []);
    const t = res.timing;
    $("timing").textContent = "Rendered in " + t.total_ms.toFixed(1) + " ms" +
      (t.connected_content_ms ? ", of which Connected Content " + t.connected_content_ms.toFixed(1) + " ms." : ".");
  }

  function choose(name) {
    const ex = examples.find((e) => e.name === name);
    if (!ex) return;
    for (const id of editors) $(id).value = ex[id] || "";
    $("context-box").open = !!ex.context;
    $("event-box").open = !!ex.event;
    render();
  }

  async function loadExamples() {
    const select = $("example");
    try {
      const r = await fetch("/api/examples");
      if (!r.ok) throw new Error(r.status + " " + r.statusText);
      examples = await r.json();
    } catch (e) {
      select.replaceChildren(new Option("No examples", ""));
      setStatus("Could not load the examples: " + e.message, true);
      return;
    }
    select.replaceChildren(
      new Option("Choose an example…", ""),
      ...examples.map((ex) => new Option(ex.title, ex.name)),
    );
    if (examples.length > 0) {
      select.value = examples[0].name;
      choose(examples[0].name);
    }
  }

  $("example").addEventListener("change", (e) => choose(e.target.value));
  for (const id of editors) $(id).addEventListener("input", schedule);
  $("clear-cache").addEventListener("click", async () => {
    try {
      await request("/api/cache/clear");
    } catch (e) {
      setStatus("Could not clear the cache: " + e.message, true);
      return;
    }
    await render();
    setStatus("Connected Content cache cleared.");
  });

  loadExamples();
})();
