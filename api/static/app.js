// Docent's chat page: plain ES module, no build step, no third-party code.
// Every API call carries `Authorization: Bearer <key>`; server data is only ever rendered with textContent.

const KEY_STORAGE = "docent.apiKey";
const PAGE_SIZE = 20;

const $ = (id) => document.getElementById(id);
const els = {
  keyForm: $("key-form"),
  keyInput: $("api-key"),
  keyStatus: $("key-status"),
  forgetKey: $("forget-key"),
  errorBar: $("error-bar"),
  errorText: $("error-text"),
  errorDismiss: $("error-dismiss"),
  newThread: $("new-thread"),
  threadsStatus: $("threads-status"),
  threadList: $("thread-list"),
  moreThreads: $("more-threads"),
  conversation: $("conversation"),
  threadTitle: $("thread-title"),
  exportJson: $("export-json"),
  exportCsv: $("export-csv"),
  deleteThread: $("delete-thread"),
  messages: $("messages"),
  emptyHint: $("empty-hint"),
  askForm: $("ask-form"),
  question: $("question"),
  ask: $("ask"),
  stop: $("stop"),
  ingestPanel: $("ingest-panel"),
  ingestForm: $("ingest-form"),
  dropZone: $("drop-zone"),
  ingestFiles: $("ingest-files"),
  ingestSelected: $("ingest-selected"),
  ingestUrls: $("ingest-urls"),
  ingestCollection: $("ingest-collection"),
  ingestSubmit: $("ingest-submit"),
  ingestClear: $("ingest-clear"),
  ingestJob: $("ingest-job"),
  ingestStatus: $("ingest-status"),
  ingestProgress: $("ingest-progress"),
  ingestResults: $("ingest-results"),
};

const state = {
  key: "",
  threadId: null,
  threadTitle: "",
  threads: [],
  threadsTotal: 0,
  controller: null,
  scopes: [],
  files: [],
  jobId: null,
};

// Token events applied to the page so far (tests read it to see that the answer streamed).
window.__docentTokens = 0;

class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.name = "ApiError";
    this.status = status;
    this.detail = detail;
  }
}

// ---- key -------------------------------------------------------------------------------------------------

function readStoredKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) || "";
  } catch {
    return "";
  }
}

function storeKey(key) {
  try {
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
  } catch {
    // Storage may be disabled: the key then lives until the page is closed.
  }
}

function showKeyStatus() {
  els.keyStatus.textContent = state.key ? "Key saved in this browser" : "No key saved";
  els.forgetKey.disabled = !state.key;
}

// ---- errors ----------------------------------------------------------------------------------------------

function describeDetail(detail) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    // FastAPI's 422: [{loc: [...], msg: "..."}]
    return detail
      .map((item) =>
        item && typeof item === "object" && "msg" in item
          ? `${(item.loc || []).filter((part) => part !== "body").join(".")}: ${item.msg}`
          : String(item),
      )
      .join("; ");
  }
  return detail === undefined ? "" : JSON.stringify(detail);
}

async function errorFrom(response) {
  let detail = response.statusText || "request failed";
  try {
    const body = await response.json();
    detail = describeDetail(body && typeof body === "object" && "detail" in body ? body.detail : body);
  } catch {
    // Not JSON: keep the status text.
  }
  const retryAfter = response.headers.get("Retry-After");
  if (response.status === 429 && retryAfter) detail += ` (retry after ${retryAfter} s)`;
  return new ApiError(response.status, detail);
}

function errorMessage(error) {
  if (!(error instanceof ApiError)) return `Error: ${error && error.message ? error.message : String(error)}`;
  const labels = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    413: "Too large",
    422: "Invalid request",
    429: "Too many requests",
  };
  if (error.status === 0) return error.detail;
  const label = labels[error.status] || "Server error";
  const hint = error.status === 401 ? " Check the API key." : "";
  return `${label} (${error.status}): ${error.detail}${hint}`;
}

function showError(error) {
  els.errorText.textContent = typeof error === "string" ? error : errorMessage(error);
  els.errorBar.hidden = false;
}

function clearError() {
  els.errorBar.hidden = true;
  els.errorText.textContent = "";
}

// ---- HTTP ------------------------------------------------------------------------------------------------

async function api(path, { method = "GET", body, form, signal } = {}) {
  const headers = {};
  if (state.key) headers.Authorization = `Bearer ${state.key}`;
  const init = { method, headers, signal };
  if (form !== undefined) {
    init.body = form; // multipart/form-data: the browser writes the boundary into Content-Type
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error && error.name === "AbortError") throw error;
    throw new ApiError(0, `The server cannot be reached (${error && error.message ? error.message : error}).`);
  }
  if (!response.ok) throw await errorFrom(response);
  return response;
}

// Server-Sent Events over a fetch body (EventSource cannot send headers): yields {event, data} per event.
async function* sseEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let name = "";
  let data = [];
  const take = (line) => {
    if (line === "") {
      const event = data.length ? { event: name || "message", data: data.join("\n") } : null;
      name = "";
      data = [];
      return event;
    }
    if (line.startsWith(":")) return null; // comment, e.g. a keep-alive ping
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") name = value;
    else if (field === "data") data.push(value);
    return null;
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (value) buffer += value;
    let match;
    while ((match = /\r\n|\r|\n/.exec(buffer)) !== null) {
      // A lone "\r" at the end may be the first half of "\r\n": wait for more.
      if (!done && match[0] === "\r" && match.index === buffer.length - 1) break;
      const line = buffer.slice(0, match.index);
      buffer = buffer.slice(match.index + match[0].length);
      const event = take(line);
      if (event) yield event;
    }
    if (done) {
      const event = take(buffer) || take("");
      if (event) yield event;
      return;
    }
  }
}

// ---- formatting ------------------------------------------------------------------------------------------

function el(tag, { text, className, testid, attrs } = {}, children = []) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  if (testid) node.dataset.testid = testid;
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
  for (const child of children) if (child) node.append(child);
  return node;
}

function parseTime(value) {
  if (value === null || value === undefined || value === "") return null;
  const date = typeof value === "number" ? new Date(value < 1e12 ? value * 1000 : value) : new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

function timeElement(value) {
  const date = parseTime(value);
  if (!date) return null;
  return el("time", { text: date.toLocaleString(), attrs: { datetime: date.toISOString() } });
}

function httpUrl(source) {
  try {
    const url = new URL(source);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

function baseName(path) {
  const parts = String(path).split(/[\\/]/).filter(Boolean);
  return parts.length ? parts[parts.length - 1] : String(path);
}

function formatCost(cost) {
  if (cost === null || cost === undefined) return "—";
  if (cost === 0) return "free";
  const digits = cost < 0.01 ? 6 : 4;
  return `$${Number(cost).toFixed(digits)}`;
}

function formatUsage(usage) {
  if (!usage) return "—";
  const total = usage.total_tokens ?? (usage.prompt_tokens || 0) + (usage.completion_tokens || 0);
  let text = `${total} tokens (${usage.prompt_tokens ?? "?"} prompt, ${usage.completion_tokens ?? "?"} completion)`;
  if (usage.estimated) text += ", estimated";
  return text;
}

// ---- messages --------------------------------------------------------------------------------------------

function hideEmptyHint() {
  els.emptyHint.hidden = true;
}

function nearBottom() {
  const box = els.messages;
  return box.scrollHeight - box.scrollTop - box.clientHeight < 80;
}

function scrollDown(force = false) {
  if (force || nearBottom()) els.messages.scrollTop = els.messages.scrollHeight;
}

function addUserMessage(content) {
  hideEmptyHint();
  const node = el("article", { className: "message user", testid: "user-message", attrs: { "aria-label": "You" } }, [
    el("p", { className: "role", text: "You" }),
    el("p", { className: "text", text: content, testid: "user-text" }),
  ]);
  els.messages.append(node);
  scrollDown(true);
  return node;
}

function addAssistantMessage() {
  hideEmptyHint();
  const text = el("div", {
    className: "text",
    testid: "answer-text",
    attrs: { "aria-live": "polite", "aria-atomic": "false" },
  });
  const note = el("p", { className: "note", testid: "answer-note" });
  note.hidden = true;
  const details = el("div", { className: "details" });
  const root = el(
    "article",
    { className: "message assistant", testid: "assistant-message", attrs: { "aria-label": "Docent" } },
    [el("p", { className: "role", text: "Docent" }), text, note, details],
  );
  els.messages.append(root);
  scrollDown(true);
  return { root, text, note, details };
}

function setNote(bubble, message) {
  bubble.note.textContent = message;
  bubble.note.hidden = !message;
}

function renderCitations(citations) {
  const list = el("ol", { className: "citations", testid: "citations", attrs: { "aria-label": "Sources" } });
  for (const citation of citations) {
    const item = el("li", { testid: "citation" });
    if (Number.isInteger(citation.n)) item.value = citation.n;
    const url = httpUrl(citation.source || "");
    const source = url
      ? el("a", {
          text: citation.source,
          testid: "citation-source",
          attrs: { href: url, target: "_blank", rel: "noopener noreferrer" },
        })
      : el("span", {
          text: baseName(citation.source || "unknown source"),
          testid: "citation-source",
          attrs: { title: citation.source || "" },
        });
    item.append(el("span", { className: "cite-n", text: `[${citation.n}] ` }), source);
    if (citation.title) item.append(" — ", el("span", { className: "cite-title", text: citation.title }));
    if (citation.page !== null && citation.page !== undefined) {
      item.append(", ", el("span", { className: "cite-page", testid: "citation-page", text: `p. ${citation.page}` }));
    }
    if (citation.supported === false) {
      item.append(" ", el("span", { className: "cite-unsupported", testid: "citation-unsupported", text: "(not supported by this passage)" }));
    }
    if (citation.snippet) {
      item.append(
        el("details", { className: "snippet" }, [
          el("summary", { text: "Passage" }),
          el("p", { text: citation.snippet }),
        ]),
      );
    }
    list.append(item);
  }
  return list;
}

function renderAnswerDetails(bubble, output) {
  bubble.text.textContent = output.answer ?? output.content ?? "";
  bubble.details.replaceChildren();
  // The passages the answer cites ([n] in its text); `citations` also lists the relevant ones it does not use.
  const citations = (Array.isArray(output.citations) ? output.citations : []).filter((c) => c.cited !== false);
  if (citations.length) bubble.details.append(renderCitations(citations));
  const meta = el("p", { className: "answer-meta" });
  meta.append(
    el("span", { testid: "answer-model", text: `Model: ${output.model || "unknown"}` }),
    el("span", { testid: "answer-usage", text: `Usage: ${formatUsage(output.usage)}` }),
    el("span", { testid: "answer-cost", text: `Cost: ${formatCost(output.cost)}` }),
  );
  if (output.degraded) {
    meta.append(
      el("span", { className: "badge degraded", testid: "degraded", text: "degraded" }),
      el("span", {
        className: "degraded-reason",
        testid: "degraded-reason",
        text: output.degraded_reason || "a model failed; a fallback answered",
      }),
    );
  }
  bubble.details.append(meta);
}

function clearMessages() {
  els.messages.replaceChildren(els.emptyHint);
  els.emptyHint.hidden = false;
}

// ---- current thread --------------------------------------------------------------------------------------

function setCurrentThread(id, title) {
  state.threadId = id || null;
  state.threadTitle = title || "";
  els.threadTitle.textContent = id ? title || "Untitled thread" : "New thread";
  if (id) els.conversation.dataset.threadId = id;
  else delete els.conversation.dataset.threadId;
  updateThreadButtons();
  for (const button of els.threadList.querySelectorAll("button.thread-item")) {
    if (button.dataset.threadId === state.threadId) button.setAttribute("aria-current", "true");
    else button.removeAttribute("aria-current");
  }
}

function updateThreadButtons() {
  const idle = !state.controller;
  els.exportJson.disabled = els.exportCsv.disabled = els.deleteThread.disabled = !(state.threadId && idle);
}

function setStreaming(controller) {
  state.controller = controller;
  const streaming = Boolean(controller);
  els.conversation.dataset.streaming = String(streaming);
  els.ask.disabled = streaming;
  els.stop.hidden = !streaming;
  updateThreadButtons();
}

function startNewThread() {
  if (state.controller) state.controller.abort();
  clearError();
  clearMessages();
  setCurrentThread(null);
  els.question.focus();
}

async function openThread(id) {
  if (state.controller) state.controller.abort();
  clearError();
  try {
    const response = await api(`/threads/${encodeURIComponent(id)}`);
    const thread = await response.json();
    clearMessages();
    const messages = Array.isArray(thread.messages) ? thread.messages : [];
    for (const message of messages) {
      if (message.role === "user") addUserMessage(message.content);
      else renderAnswerDetails(addAssistantMessage(), message);
    }
    if (!messages.length) els.emptyHint.hidden = false;
    setCurrentThread(thread.id || id, thread.title);
    scrollDown(true);
  } catch (error) {
    showError(error);
  }
}

// ---- thread list -----------------------------------------------------------------------------------------

function threadItem(thread) {
  const button = el("button", { className: "thread-item", testid: "thread-item", attrs: { type: "button" } }, [
    el("span", { className: "thread-name", testid: "thread-name", text: thread.title || "Untitled thread" }),
  ]);
  button.dataset.threadId = thread.id;
  const meta = el("span", { className: "thread-meta" });
  const turns = Number(thread.turns) || 0;
  meta.append(`${turns} ${turns === 1 ? "turn" : "turns"}`);
  const when = timeElement(thread.updated_at ?? thread.created_at);
  if (when) meta.append(" · ", when);
  button.append(meta);
  if (thread.id === state.threadId) button.setAttribute("aria-current", "true");
  button.addEventListener("click", () => openThread(thread.id));
  return el("li", {}, [button]);
}

function renderThreads() {
  els.threadList.replaceChildren(...state.threads.map(threadItem));
  els.moreThreads.hidden = state.threads.length >= state.threadsTotal;
  const total = state.threadsTotal;
  if (!state.threads.length) els.threadsStatus.textContent = "No threads yet.";
  else if (state.threads.length < total) els.threadsStatus.textContent = `${state.threads.length} of ${total} threads`;
  else els.threadsStatus.textContent = `${total} ${total === 1 ? "thread" : "threads"}`;
}

async function loadThreads({ append = false } = {}) {
  const offset = append ? state.threads.length : 0;
  try {
    const response = await api(`/threads?limit=${PAGE_SIZE}&offset=${offset}`);
    const page = await response.json();
    const threads = Array.isArray(page.threads) ? page.threads : [];
    state.threads = append ? state.threads.concat(threads) : threads;
    state.threadsTotal = Number(page.total) || state.threads.length;
    renderThreads();
  } catch (error) {
    if (!append) {
      state.threads = [];
      els.threadList.replaceChildren();
      els.moreThreads.hidden = true;
    }
    if (error instanceof ApiError && error.status === 401 && !state.key) {
      els.threadsStatus.textContent = "Enter an API key above to see your threads.";
      return;
    }
    els.threadsStatus.textContent =
      error instanceof ApiError && error.status === 404
        ? "The thread list is not available on this server (404)."
        : "The thread list could not be loaded.";
    showError(error);
  }
}

// ---- asking ----------------------------------------------------------------------------------------------

async function ask(question) {
  clearError();
  addUserMessage(question);
  const bubble = addAssistantMessage();
  bubble.text.setAttribute("aria-busy", "true");
  const controller = new AbortController();
  setStreaming(controller);
  const previousThread = state.threadId;
  const configurable = state.threadId ? { thread_id: state.threadId } : {};
  const body = { input: { message: question }, config: { configurable } };
  let streamed = "";
  let ended = false;
  let failed = false;
  try {
    const response = await api("/stream", { method: "POST", body, signal: controller.signal });
    for await (const { event, data } of sseEvents(response)) {
      let payload;
      try {
        payload = JSON.parse(data);
      } catch {
        continue;
      }
      if (event === "metadata") {
        if (payload.thread_id && payload.thread_id !== state.threadId) {
          setCurrentThread(payload.thread_id, previousThread ? state.threadTitle : question);
        }
      } else if (event === "sources") {
        const count = Array.isArray(payload.sources) ? payload.sources.length : 0;
        setNote(bubble, count ? `Found ${count} passages; answering…` : "No passages found; answering…");
      } else if (event === "token") {
        if (!streamed) setNote(bubble, "");
        streamed += payload.text ?? "";
        bubble.text.textContent = streamed;
        window.__docentTokens += 1;
        scrollDown();
      } else if (event === "error") {
        if (payload.reason) {
          setNote(bubble, `The model failed mid-answer (${payload.reason}); a fallback answer replaces it.`);
        } else {
          failed = true;
          showError(new ApiError(payload.status || 0, describeDetail(payload.detail) || "the turn failed"));
        }
      } else if (event === "end") {
        ended = true;
        const stick = nearBottom();
        if (!bubble.note.textContent.startsWith("The model failed")) setNote(bubble, "");
        renderAnswerDetails(bubble, payload);
        scrollDown(stick);
        if (payload.thread_id && payload.thread_id !== state.threadId) {
          setCurrentThread(payload.thread_id, question);
        }
      }
    }
    if (!ended && !failed) throw new ApiError(0, "The answer stream ended before the answer was complete.");
  } catch (error) {
    if (error && error.name === "AbortError") setNote(bubble, "Stopped: this answer was not saved.");
    else showError(error);
  } finally {
    bubble.text.setAttribute("aria-busy", "false");
    if (!ended) {
      if (!streamed) bubble.text.textContent = "(no answer)";
      bubble.root.classList.add("incomplete");
    }
    setStreaming(null);
  }
  if (state.threadId) await loadThreads();
}

// ---- export and delete -----------------------------------------------------------------------------------

function fileNameFrom(disposition) {
  if (!disposition) return null;
  const encoded = /filename\*\s*=\s*(?:UTF-8|utf-8)''([^;]+)/.exec(disposition);
  if (encoded) {
    try {
      return decodeURIComponent(encoded[1].trim());
    } catch {
      // fall through to the plain form
    }
  }
  const plain = /filename\s*=\s*"?([^";]+)"?/.exec(disposition);
  return plain ? plain[1].trim() : null;
}

async function exportThread(format) {
  if (!state.threadId) return;
  clearError();
  try {
    const id = state.threadId;
    const response = await api(`/threads/${encodeURIComponent(id)}/export?format=${format}`);
    const blob = await response.blob();
    const name = fileNameFrom(response.headers.get("Content-Disposition")) || `docent-thread-${id}.${format}`;
    const url = URL.createObjectURL(blob);
    const link = el("a", { attrs: { href: url, download: name } });
    link.hidden = true;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch (error) {
    showError(error);
  }
}

async function deleteThread() {
  if (!state.threadId) return;
  const title = state.threadTitle || state.threadId;
  if (!window.confirm(`Delete the thread “${title}”? This cannot be undone.`)) return;
  clearError();
  try {
    await api(`/threads/${encodeURIComponent(state.threadId)}`, { method: "DELETE" });
    startNewThread();
    await loadThreads();
  } catch (error) {
    showError(error);
  }
}

// ---- adding documents ------------------------------------------------------------------------------------

// What the key may do (GET /me); the panel is only for keys with the `ingest` scope. Failing quietly: a
// missing or wrong key already shows its error through the thread list.
async function loadScopes() {
  const key = state.key;
  let scopes = [];
  try {
    const me = await (await api("/me")).json();
    if (Array.isArray(me.scopes)) scopes = me.scopes;
  } catch {
    scopes = [];
  }
  if (key !== state.key) return; // the key changed meanwhile
  state.scopes = scopes;
  els.ingestPanel.hidden = !scopes.includes("ingest");
}

function formatCount(n) {
  return Number(n || 0).toLocaleString("en-US");
}

function plural(n, noun) {
  return `${formatCount(n)} ${noun}${n === 1 ? "" : "s"}`;
}

function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function addFiles(list) {
  for (const file of Array.from(list || [])) {
    // The server keeps one file per name (a later one replaces it): so does the list.
    state.files = state.files.filter((kept) => kept.name !== file.name).concat([file]);
  }
  renderSelected();
}

function renderSelected() {
  els.ingestSelected.replaceChildren(
    ...state.files.map((file) => {
      const remove = el("button", {
        text: "×",
        className: "remove-file",
        attrs: { type: "button", "aria-label": `Remove ${file.name}` },
      });
      remove.addEventListener("click", () => {
        state.files = state.files.filter((kept) => kept !== file);
        renderSelected();
      });
      return el("li", { testid: "selected-file" }, [
        el("span", { testid: "selected-name", text: file.name }),
        el("span", { className: "muted", text: ` (${formatSize(file.size)}) ` }),
        remove,
      ]);
    }),
  );
}

function clearIngestForm() {
  state.files = [];
  els.ingestFiles.value = "";
  els.ingestUrls.value = "";
  renderSelected();
}

function reportLine(report) {
  const parts = [plural(report.pages, "page"), `${formatCount(report.characters_per_page)} characters/page`];
  if (report.empty_pages) parts.push(`${formatCount(report.empty_pages)} empty`);
  if (report.ocr_pages) parts.push(`${formatCount(report.ocr_pages)} OCR'd`);
  parts.push(plural(report.tables, "table"));
  return parts.join(" · ");
}

function resultItem(result) {
  const url = httpUrl(result.source || "");
  const item = el("li", { testid: "ingest-result" }, [
    el("span", { className: `result-status ${result.status}`, testid: "result-status", text: result.status }),
    el("span", {
      className: "result-source",
      testid: "result-source",
      text: url || baseName(result.source || ""),
      attrs: { title: result.source || "" },
    }),
  ]);
  item.dataset.status = result.status;
  if (result.status !== "failed" && result.status !== "duplicate") {
    const chunks = ` · ${plural(result.chunks, "chunk")}`;
    item.append(el("span", { className: "muted", testid: "result-chunks", text: chunks }));
  }
  if (result.report) {
    item.append(el("span", { className: "result-report", testid: "result-report", text: reportLine(result.report) }));
  }
  if (result.reason) {
    const className = `result-reason ${result.status}`;
    item.append(el("span", { className, testid: "result-reason", text: result.reason }));
  }
  return item;
}

function jobHeadline(job) {
  const results = Array.isArray(job.results) ? job.results : [];
  const count = (status) => results.filter((r) => r.status === status).length;
  const progress = `${job.done}/${job.total ?? "?"}`;
  if (job.status === "queued") return "Queued: waiting for a free ingest slot…";
  if (job.status === "running") return `Ingesting… ${progress} sources`;
  if (job.status === "cancelled") return `Cancelled after ${progress} sources.`;
  const tally = ["added", "updated", "unchanged", "duplicate", "failed"]
    .filter((status) => count(status))
    .map((status) => `${count(status)} ${status}`)
    .join(", ");
  if (job.status === "failed") return `Failed: ${job.error || "the job failed"}${tally ? ` (${tally})` : ""}.`;
  return `Done: ${tally || "nothing to do"}.`;
}

function renderJob(job) {
  els.ingestJob.hidden = false;
  els.ingestJob.dataset.status = job.status;
  els.ingestJob.dataset.jobId = job.id;
  els.ingestStatus.textContent = jobHeadline(job);
  els.ingestProgress.max = Math.max(Number(job.total) || 1, 1);
  els.ingestProgress.value = Number(job.done) || 0;
  const results = Array.isArray(job.results) ? job.results : [];
  els.ingestResults.replaceChildren(...results.map(resultItem));
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function followJob(job) {
  const key = state.key;
  state.jobId = job.id;
  renderJob(job);
  while ((job.status === "queued" || job.status === "running") && state.jobId === job.id && state.key === key) {
    await sleep(500);
    job = await (await api(`/ingest/${encodeURIComponent(job.id)}`)).json();
    if (state.jobId === job.id) renderJob(job);
  }
}

async function startIngest() {
  const urls = els.ingestUrls.value.split(/\s+/).filter(Boolean);
  if (!state.files.length && !urls.length) {
    showError("Choose or drop files, or paste URLs, first.");
    return;
  }
  clearError();
  const form = new FormData();
  for (const file of state.files) form.append("file", file, file.name);
  for (const url of urls) form.append("url", url);
  const collection = els.ingestCollection.value.trim();
  if (collection) form.append("collection", collection);
  els.ingestSubmit.disabled = true;
  try {
    const job = await (await api("/ingest", { method: "POST", form })).json();
    clearIngestForm();
    await followJob(job);
  } catch (error) {
    showError(error);
  } finally {
    els.ingestSubmit.disabled = false;
  }
}

function hideIngest() {
  state.scopes = [];
  state.jobId = null;
  els.ingestPanel.hidden = true;
  els.ingestJob.hidden = true;
  els.ingestResults.replaceChildren();
  clearIngestForm();
}

// ---- wiring ----------------------------------------------------------------------------------------------

els.keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const key = els.keyInput.value.trim();
  if (!key) {
    showError("Enter an API key first.");
    els.keyInput.focus();
    return;
  }
  state.key = key;
  storeKey(key);
  els.keyInput.value = "";
  clearError();
  showKeyStatus();
  hideIngest();
  loadThreads();
  loadScopes();
  els.question.focus();
});

els.forgetKey.addEventListener("click", () => {
  if (state.controller) state.controller.abort();
  state.key = "";
  storeKey("");
  showKeyStatus();
  clearError();
  clearMessages();
  setCurrentThread(null);
  state.threads = [];
  state.threadsTotal = 0;
  els.threadList.replaceChildren();
  els.moreThreads.hidden = true;
  els.threadsStatus.textContent = "Enter an API key above to see your threads.";
  hideIngest();
  loadScopes(); // with DOCENT_AUTH=off, no key is needed
  els.keyInput.focus();
});

els.errorDismiss.addEventListener("click", clearError);
els.newThread.addEventListener("click", startNewThread);
els.moreThreads.addEventListener("click", () => loadThreads({ append: true }));
els.exportJson.addEventListener("click", () => exportThread("json"));
els.exportCsv.addEventListener("click", () => exportThread("csv"));
els.deleteThread.addEventListener("click", deleteThread);
els.stop.addEventListener("click", () => state.controller && state.controller.abort());

els.askForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const question = els.question.value.trim();
  if (!question || state.controller) return;
  els.question.value = "";
  ask(question);
});

els.ingestForm.addEventListener("submit", (event) => {
  event.preventDefault();
  startIngest();
});
els.ingestClear.addEventListener("click", clearIngestForm);
els.ingestFiles.addEventListener("change", () => {
  addFiles(els.ingestFiles.files);
  els.ingestFiles.value = ""; // choosing the same file again fires `change` again
});
for (const type of ["dragenter", "dragover"]) {
  els.dropZone.addEventListener(type, (event) => {
    event.preventDefault();
    els.dropZone.classList.add("dragging");
  });
}
for (const type of ["dragleave", "drop"]) {
  els.dropZone.addEventListener(type, () => els.dropZone.classList.remove("dragging"));
}
els.dropZone.addEventListener("drop", (event) => {
  event.preventDefault();
  if (event.dataTransfer) addFiles(event.dataTransfer.files);
});
// A file dropped beside the zone must not make the browser leave the page to show it.
for (const type of ["dragover", "drop"]) {
  els.ingestPanel.addEventListener(type, (event) => event.preventDefault());
}

els.question.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing && !event.ctrlKey && !event.metaKey && !event.altKey) {
    event.preventDefault();
    els.askForm.requestSubmit();
  }
});

state.key = readStoredKey();
showKeyStatus();
setStreaming(null);
loadScopes();
if (state.key) loadThreads();
else els.threadsStatus.textContent = "Enter an API key above to see your threads.";
