// The notification area: the bell's count and new reminders live over this site's
// /notifications/stream (EventSource; the browser reconnects by itself, resuming after the
// last id), "Mark read" and "Snooze" without a reload, and the browser's Notification when
// the person turned desktop notifications on here and the browser allowed them.
import { messageOf, post, signedOut } from "./http.js";
import { plural } from "./words.js";

const DESKTOP_KEY = "desktop-notifications";

const desktopOn = () =>
  "Notification" in window &&
  Notification.permission === "granted" &&
  window.localStorage.getItem(DESKTOP_KEY) === "on";

const say = (text) => {
  const status = document.getElementById("notification-status");
  if (status) status.textContent = text;
};

const setCount = (count) => {
  if (typeof count !== "number" || count < 0) return;
  const badge = document.querySelector("[data-unread-count]");
  const label = document.querySelector("[data-unread-label]");
  if (badge) {
    badge.textContent = String(count);
    badge.hidden = count === 0;
  }
  if (label) label.hidden = count === 0;
};

// Only HTML this service rendered (the event's or the action's `html`) is inserted.
const itemOf = (html) => {
  const holder = document.createElement("template");
  holder.innerHTML = html.trim();
  return holder.content.firstElementChild;
};

const showDesktop = (data) => {
  if (!desktopOn()) return;
  // One per reminder, however many tabs are open: the tag replaces a duplicate.
  const note = new Notification(data.title, { body: data.body, tag: `reminder-${data.id}` });
  note.addEventListener("click", () => {
    window.focus();
    window.location.assign(data.url);
  });
};

// The notifications page's count ("3 notifications", "2 unread notifications"), moved by
// ``delta``.
const addToTotal = (delta) => {
  const total = document.querySelector('[data-testid="notifications-total"]');
  const unit = document.getElementById("notifications-total-unit");
  if (!total || !unit) return;
  const count = Math.max(0, Number(total.textContent) + delta);
  total.textContent = String(count);
  unit.textContent = plural("notification", count);
};

const arrived = (data) => {
  if (!data || typeof data.id !== "number" || data.read) return;
  const list = document.querySelector("[data-notification-list]");
  if (list && !document.getElementById(`notification-${data.id}`) && data.html) {
    const item = itemOf(data.html);
    if (item) list.prepend(item);
    const panel = document.getElementById("notification-panel");
    if (panel) panel.hidden = false;
    // On the notifications page: the list is no longer empty, and one longer.
    document.querySelector('[data-testid="notifications-empty"]')?.remove();
    addToTotal(1);
  }
  say(`New reminder: ${data.title}`);
  showDesktop(data);
};

let source = null;

const listen = (area) => {
  if (!("EventSource" in window) || !area.dataset.stream || source) return;
  source = new EventSource(area.dataset.stream);
  const parse = (event) => {
    try {
      return JSON.parse(event.data);
    } catch {
      return null;
    }
  };
  source.addEventListener("unread", (event) => setCount(parse(event)?.count));
  source.addEventListener("notification", (event) => arrived(parse(event)));
  // `signed_out`: the session this stream was opened with is over, and the stream ends. The
  // browser reconnects by itself: with the session this browser holds now (a new id after a
  // password change) the stream resumes; without one the answer is a 401, which ends the
  // EventSource for good (a page load will ask to sign in).
};

const stop = () => {
  source?.close();
  source = null;
};

const act = async (form) => {
  const item = form.closest("li.notification");
  const buttons = item ? item.querySelectorAll("button") : [];
  buttons.forEach((button) => (button.disabled = true));
  try {
    const response = await post(form.action, form);
    if (signedOut(response)) return;
    if (!response.ok && response.status !== 404) throw new Error(await messageOf(response));
    const body = response.ok ? await response.json() : null;
    if (body) setCount(body.unread);
    const panel = document.getElementById("notification-panel");
    if (item && panel && panel.contains(item)) {
      // In the panel a reminder read or snoozed is done with: it goes.
      const next = item.nextElementSibling ?? item.previousElementSibling;
      item.remove();
      if (next) next.querySelector("button")?.focus();
      else {
        panel.hidden = true;
        document.querySelector('[data-testid="nav-notifications"]')?.focus();
      }
    } else if (item && item.closest("[data-unread-only]")) {
      // On the Unread tab a reminder read or snoozed is unread no more: it leaves the list,
      // and the count with it.
      const next = item.nextElementSibling ?? item.previousElementSibling;
      item.remove();
      addToTotal(-1);
      const all = document.querySelector('[data-testid="notifications-tab-all"]');
      (next?.querySelector("button") ?? all)?.focus();
    } else if (item && body?.html) {
      const fresh = itemOf(body.html);
      item.replaceWith(fresh);
      fresh.querySelector("button")?.focus();
    } else {
      item?.remove();
    }
    // The note the page would show without this script ("Snoozed until 14:01.").
    say(body ? body.notice : await messageOf(response));
  } catch (error) {
    buttons.forEach((button) => (button.disabled = false));
    say(error.message || "That did not work. Nothing was changed.");
  }
};

const enhanceDesktop = (box) => {
  const button = box.querySelector("button");
  const status = box.querySelector('[role="status"]');
  if (!("Notification" in window)) {
    status.textContent = "This browser cannot show desktop notifications.";
    return;
  }
  const update = () => {
    const blocked = Notification.permission === "denied";
    button.hidden = blocked;
    button.textContent = desktopOn()
      ? "Turn off desktop notifications"
      : "Enable desktop notifications";
    if (blocked) {
      status.textContent = "Notifications are blocked for this site in the browser's settings.";
    }
  };
  button.addEventListener("click", async () => {
    if (desktopOn()) {
      window.localStorage.removeItem(DESKTOP_KEY);
      status.textContent = "Desktop notifications are off.";
    } else if ((await Notification.requestPermission()) === "granted") {
      window.localStorage.setItem(DESKTOP_KEY, "on");
      status.textContent = "Desktop notifications are on: reminders show even in another tab.";
    } else {
      status.textContent = "The browser did not allow notifications; reminders show here.";
    }
    update();
  });
  update();
};

export const enhanceNotifications = (root) => {
  const area = root.querySelector('[data-module="notifications"]');
  if (!area) return;
  listen(area);
  window.addEventListener("pagehide", stop);
  // Back from the back-forward cache: listening again (what was missed comes first).
  window.addEventListener("pageshow", (event) => {
    if (event.persisted) listen(area);
  });
  root.addEventListener("submit", (event) => {
    const form = event.target;
    if (form instanceof HTMLFormElement && form.dataset.module === "notification-action") {
      event.preventDefault();
      act(form);
    }
  });
  const desktop = root.querySelector('[data-module="desktop-notifications"]');
  if (desktop) enhanceDesktop(desktop);
};
