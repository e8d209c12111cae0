// The task list in place: complete/reopen at once (rolled back on error), delete with a few
// seconds to undo, "load more" appended, and the list refreshed when the assistant changed it.
import { messageOf, post, signedOut } from "./http.js";
import { plural } from "./words.js";

const UNDO_MS = 5000;
const pending = new Map(); // task id -> {timer, row, url}

// The task id whose Undo the toast shows now (null: a message, or nothing).
let toastFor = null;

const toast = (text, action, id = null) => {
  const box = document.getElementById("toast");
  if (!box) return;
  toastFor = id;
  box.replaceChildren();
  const p = document.createElement("span");
  p.id = "toast-text";
  p.textContent = text;
  box.append(p);
  if (action) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = action.label;
    // Focused on its own, "Undo" is also told what it undoes.
    button.setAttribute("aria-describedby", p.id);
    button.dataset.testid = "toast-action";
    button.addEventListener("click", action.run, { once: true });
    box.append(" ", button);
  }
  box.hidden = false;
};

const hideToast = () => {
  const box = document.getElementById("toast");
  if (box) box.hidden = true;
  toastFor = null;
};

// Escape closes the toast (a deletion in it still goes ahead; the focus on its Undo goes to
// the next task). The disclosure the focus is in is app.js's, and closes only when no toast
// was open.
const onEscape = (event) => {
  const box = document.getElementById("toast");
  if (event.key !== "Escape" || !box || box.hidden) return;
  const focused = box.contains(document.activeElement);
  const entry = toastFor === null ? null : pending.get(toastFor);
  hideToast();
  if (focused) ((entry && neighbour(entry.row)) ?? document.getElementById("list-heading"))?.focus();
  event.preventDefault();
};

// A task's Delete is a link to its confirmation page, for a browser without this script; here
// it hides the row in place, so it becomes the button it now is (and is announced as one).
const deleteButtons = (root) => {
  for (const link of root.querySelectorAll('a[data-module="delete"]')) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "link-button";
    button.dataset.module = "delete";
    button.dataset.testid = link.dataset.testid;
    button.append(...link.childNodes);
    link.replaceWith(button);
  }
};

const setDone = (row, done) => {
  row.classList.toggle("done", done);
  const button = row.querySelector("button.check");
  if (button) button.setAttribute("aria-pressed", String(done));
};

const complete = async (form) => {
  const row = form.closest("li.task");
  const wasDone = row.classList.contains("done");
  setDone(row, !wasDone);
  let body;
  try {
    const response = await post(form.action, form);
    if (signedOut(response)) return;
    if (!response.ok) throw new Error(await messageOf(response));
    body = await response.json();
    const holder = document.createElement("template");
    holder.innerHTML = body.html.trim();
    const fresh = holder.content.firstElementChild;
    deleteButtons(fresh);
    row.replaceWith(fresh);
    fresh.querySelector("button.check")?.focus();
  } catch (error) {
    setDone(row, wasDone);
    toast(error.message || "That did not work. Nothing was changed.");
    return;
  }
  // A repeating task's completion made its next occurrence: the note says when it is due,
  // and the list shows it at once. The focus stays on this task (the new one's when a
  // filter leaves this one out).
  if (body.notice) toast(body.notice);
  if (!body.next_occurrence_id) return;
  await refreshList();
  const shown =
    document.getElementById(`task-${row.dataset.taskId}`) ??
    document.getElementById(`task-${body.next_occurrence_id}`);
  (shown?.querySelector("button.check") ?? document.getElementById("list-heading"))?.focus();
};

const sendDelete = async (id) => {
  const entry = pending.get(id);
  if (!entry) return;
  pending.delete(id);
  try {
    const response = await post(entry.url, null, "application/json", {
      "Content-Type": "application/x-www-form-urlencoded",
    });
    if (signedOut(response)) return;
    if (!response.ok && response.status !== 404) throw new Error(await messageOf(response));
    // The toast goes only if it is this deletion's: another deletion made meanwhile keeps
    // its Undo (and the focus on it). Focus on this one's Undo goes to the next task (or the
    // previous, or the list's heading) rather than to the page's start when the toast goes.
    const ours = toastFor === id;
    const box = document.getElementById("toast");
    const focusWasHere =
      (ours && box?.contains(document.activeElement)) || document.activeElement === document.body;
    const near = neighbour(entry.row);
    entry.row.remove();
    adjustTotal(-1);
    showEmpty();
    if (ours) hideToast();
    if (focusWasHere) (near ?? document.getElementById("list-heading"))?.focus();
  } catch (error) {
    entry.row.hidden = false;
    toast(error.message || "The task could not be deleted.");
  }
};

// The toggle of the nearest visible task after ``row`` (else before it), to take the focus.
const neighbour = (row) => {
  for (const step of ["nextElementSibling", "previousElementSibling"]) {
    for (let other = row[step]; other; other = other[step]) {
      if (!other.hidden && other.matches("li.task")) return other.querySelector("button.check");
    }
  }
  return null;
};

// "No tasks" shown when the list has none left (the last one deleted, or the assistant's).
const showEmpty = () => {
  const list = document.querySelector('[data-module="task-list"]');
  const empty = document.getElementById("tasks-empty");
  if (list && empty) empty.hidden = list.querySelector("li.task") !== null;
};

// The list's heading: "1 task", "2 tasks".
const setTotal = (count) => {
  const total = document.getElementById("task-total");
  const unit = document.getElementById("task-total-unit");
  if (total) total.textContent = String(count);
  if (unit) unit.textContent = plural("task", count);
};

const adjustTotal = (delta) => {
  const total = document.getElementById("task-total");
  if (total) setTotal(Math.max(0, Number(total.textContent) + delta));
};

const remove = (button) => {
  const row = button.closest("li.task");
  const id = row.dataset.taskId;
  const url = `/tasks/${id}/delete`;
  row.hidden = true;
  const timer = window.setTimeout(() => sendDelete(id), UNDO_MS);
  pending.set(id, { timer, row, url });
  const title = row.querySelector(".task-title")?.textContent ?? "Task";
  toast(`Deleted “${title}”.`, {
    label: "Undo",
    run: () => {
      window.clearTimeout(timer);
      // The row as the list holds it now (a refresh meanwhile replaced it).
      const shown = pending.get(id)?.row ?? row;
      pending.delete(id);
      shown.hidden = false;
      hideToast();
      shown.querySelector("button.check")?.focus();
    },
  }, id);
  // The button pressed is hidden with its row: the focus goes to Undo, the one thing to do next.
  document.querySelector('#toast [data-testid="toast-action"]')?.focus();
};

const loadMore = async (link) => {
  const list = link.closest("ul");
  link.setAttribute("aria-busy", "true");
  try {
    const response = await fetch(link.dataset.rows, { credentials: "same-origin" });
    if (signedOut(response)) return;
    if (!response.ok) throw new Error("More tasks could not be loaded.");
    const html = await response.text();
    const item = link.closest("li");
    const last = item.previousElementSibling;
    item.remove();
    list.insertAdjacentHTML("beforeend", html);
    deleteButtons(list);
    // The link pressed is gone: the focus goes to the first task it loaded.
    const first = last ? last.nextElementSibling : list.firstElementChild;
    first?.querySelector("button.check")?.focus();
  } catch (error) {
    link.removeAttribute("aria-busy");
    toast(error.message);
  }
};

export const refreshList = async () => {
  const list = document.querySelector('[data-module="task-list"]');
  if (!list) return;
  let response;
  let rows;
  try {
    response = await fetch(list.dataset.refresh, { credentials: "same-origin" });
    if (!response.ok) return;
    rows = await response.text();
  } catch {
    return; // offline for a moment: the list stays as it was until the next change
  }
  list.innerHTML = rows;
  deleteButtons(list);
  // A deletion still waiting for its undo stays hidden in the fresh rows.
  for (const [id, entry] of pending) {
    const fresh = document.getElementById(`task-${id}`);
    if (fresh) {
      fresh.hidden = true;
      entry.row = fresh;
    }
  }
  const total = response.headers.get("X-Total-Count");
  if (total !== null) setTotal(Number(total));
  showEmpty();
};

export const enhanceTasks = (root) => {
  if (!root.querySelector('[data-module="task-list"]')) return;
  deleteButtons(root);
  root.addEventListener("submit", (event) => {
    const form = event.target;
    if (form instanceof HTMLFormElement && form.dataset.module === "complete") {
      event.preventDefault();
      complete(form);
    }
  });
  root.addEventListener("click", (event) => {
    const link = event.target instanceof Element ? event.target.closest("[data-module]") : null;
    if (!link) return;
    if (link.dataset.module === "delete" && link instanceof HTMLButtonElement) {
      remove(link);
    } else if (link.dataset.module === "load-more") {
      event.preventDefault();
      loadMore(link);
    }
  });
  document.addEventListener("keydown", onEscape);
  document.addEventListener("tasks:changed", refreshList);
  // A deletion still waiting for its undo is sent when the page is left.
  window.addEventListener("pagehide", () => {
    for (const [id, entry] of pending) {
      window.clearTimeout(entry.timer);
      const body = new URLSearchParams({ csrf_token: document.querySelector('meta[name="csrf-token"]')?.content ?? "" });
      fetch(entry.url, { method: "POST", body, keepalive: true, credentials: "same-origin", headers: { Accept: "application/json" } });
      pending.delete(id);
    }
  });
};
