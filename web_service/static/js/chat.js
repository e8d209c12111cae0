// A chat turn streamed in: the tool calls as they happen, then the answer. After a tool call
// the task list beside the chat refreshes; after the turn, the chat page's conversation list.
import { post, signedOut } from "./http.js";

const item = (log, role, text) => {
  const li = document.createElement("li");
  li.className = `message ${role}`;
  li.dataset.testid = `chat-message-${role}`;
  const who = document.createElement("p");
  who.className = "who";
  who.textContent = role === "user" ? "You" : "Assistant";
  const body = document.createElement("p");
  body.className = "text";
  body.textContent = text;
  li.append(who, body);
  log.append(li);
  return li;
};

// The log scrolls within its own box: it shows its latest message, as a chat does.
const showLatest = (log) => {
  log.scrollTop = log.scrollHeight;
};

const events = async function* (response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of frame.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length) {
        try {
          yield { name, data: JSON.parse(data.join("\n")) };
        } catch {
          // a frame that is not JSON is not ours: skipped
        }
      }
    }
  }
};

// A message sent when the session has ended meanwhile (signed out in another tab, or idle
// too long) never reached the assistant: it is kept in this tab while the person signs in
// again, and put back in the box of the page they return to, for the same user only, within
// half an hour (a tab is kept for days: a draft found later is stale, and dropped).
const DRAFT = "chat-draft";
const DRAFT_MS = 30 * 60 * 1000;

const keepDraft = (form, text) => {
  try {
    const draft = {
      owner: form.dataset.draftOwner,
      page: window.location.pathname,
      text,
      at: Date.now(),
    };
    window.sessionStorage.setItem(DRAFT, JSON.stringify(draft));
  } catch {
    // no storage in this tab: the message is not kept
  }
};

const restoreDraft = (form) => {
  let draft = null;
  try {
    draft = JSON.parse(window.sessionStorage.getItem(DRAFT) ?? "null");
  } catch {
    return;
  }
  if (!draft) return;
  const age = Date.now() - Number(draft.at);
  if (!(age >= 0 && age <= DRAFT_MS)) {
    window.sessionStorage.removeItem(DRAFT);
    return;
  }
  // Another person's (signed in next in this tab) is dropped at their first chat form, never
  // shown; the person's own waits for the page it was typed on.
  const own = draft.owner === form.dataset.draftOwner;
  if (own && draft.page !== window.location.pathname) return;
  window.sessionStorage.removeItem(DRAFT);
  const input = form.querySelector("textarea");
  if (own && input && !input.value) input.value = String(draft.text ?? "");
};

const newKey = (form) => {
  const key = form.querySelector('input[name="idempotency_key"]');
  if (key && window.crypto?.randomUUID) key.value = window.crypto.randomUUID();
};

// The chat page as the conversation's own page has it now: the conversation list (and its
// count), where a new conversation appears when its first turn is done and the one just
// continued moves to the top, and the conversation's heading, delete button and title. It is
// this service's HTML; left as it was if it cannot be read.
const refreshChatPage = async (id) => {
  const list = document.querySelector('[data-testid="conversation-list"]');
  if (!list) return;
  try {
    const response = await fetch(`/chat/${encodeURIComponent(id)}`, {
      credentials: "same-origin",
      headers: { Accept: "text/html" },
    });
    if (!response.ok || response.redirected) return;
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    for (const part of ["conversation-list", "conversation-head"]) {
      const fresh = page.querySelector(`[data-testid="${part}"]`);
      const shown = document.querySelector(`[data-testid="${part}"]`);
      if (fresh && shown) shown.replaceWith(document.importNode(fresh, true));
    }
    document.title = page.title;
  } catch {
    // not refreshed: a reload shows it
  }
};

// What the assistant did, in words, as the server writes it (views.tool_words): "add_task"
// is "Add task", with the task's title when the tool answered with one.
const toolWords = (call) => {
  const name = String(call.name || "tool").replaceAll("_", " ").trim();
  const words = name.charAt(0).toUpperCase() + name.slice(1);
  const result = call.result;
  if (result && typeof result === "object" && !Array.isArray(result)) {
    if ("error" in result) return `${words}: did not work`;
    if (typeof result.title === "string" && result.title) return `${words}: ${result.title}`;
  }
  return words;
};

const turn = async (form) => {
  const log = form.parentElement.querySelector(".chat-log");
  const input = form.querySelector("textarea");
  const button = form.querySelector("button[type=submit]");
  const text = input.value.trim();
  if (!text) {
    input.focus();
    return;
  }
  // A failed turn sent again as it was keeps its key; changed, it is a new turn.
  if (form.dataset.retryOf !== undefined && form.dataset.retryOf !== text) newKey(form);
  delete form.dataset.retryOf;
  item(log, "user", text);
  const answer = item(log, "assistant", "…");
  answer.setAttribute("aria-busy", "true");
  const calls = document.createElement("ul");
  calls.className = "tool-calls";
  calls.setAttribute("aria-label", "What the assistant did");
  answer.insertBefore(calls, answer.querySelector(".text"));
  showLatest(log);
  button.disabled = true;
  let failed = false;
  try {
    const response = await post("/chat/stream", form, "text/event-stream");
    if (response.status === 401) keepDraft(form, text);
    if (signedOut(response)) return;
    if (!response.ok || !response.body) throw new Error("The assistant is unavailable just now.");
    input.value = "";
    for await (const { name, data } of events(response)) {
      if (name === "tool_call") {
        const li = document.createElement("li");
        li.className = "tool-call";
        li.dataset.testid = "tool-call";
        li.textContent = toolWords(data);
        calls.append(li);
        showLatest(log);
        document.dispatchEvent(new CustomEvent("tasks:changed"));
      } else if (name === "message") {
        answer.querySelector(".text").textContent = String(data.response ?? "");
      } else if (name === "done") {
        const id = form.querySelector('input[name="conversation_id"]');
        if (id && data.conversation_id) {
          id.value = String(data.conversation_id);
          // A new conversation on the chat page gets its own address, as without JavaScript:
          // a reload (or a bookmark) opens it, not the empty "New conversation".
          if (window.location.pathname === "/chat") {
            window.history.replaceState(null, "", `/chat/${id.value}`);
          }
          refreshChatPage(id.value);
        }
      } else if (name === "error") {
        failed = true;
        answer.classList.add("failed");
        answer.querySelector(".text").textContent = String(
          data.detail ?? "The assistant could not answer. Try again.",
        );
      }
    }
  } catch (error) {
    failed = true;
    answer.classList.add("failed");
    answer.querySelector(".text").textContent = error.message || "The assistant could not answer.";
  } finally {
    answer.removeAttribute("aria-busy");
    showLatest(log);
    button.disabled = false;
    if (failed) {
      // A failed turn keeps what was typed and its key: sending it again retries this turn
      // (the API answers a retry of a turn that did happen with that turn, not a second one).
      if (!input.value) input.value = text;
      form.dataset.retryOf = text;
    } else {
      // The next message is a new turn: a new key.
      newKey(form);
    }
    input.focus();
  }
};

export const enhanceChat = (root) => {
  for (const form of root.querySelectorAll('form[data-module="chat"]')) {
    const log = form.parentElement.querySelector(".chat-log");
    if (log) showLatest(log);
    restoreDraft(form);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      turn(form);
    });
    form.querySelector("textarea")?.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
  }
};
