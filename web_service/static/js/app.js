// Progressive enhancement: every page works without this file. Each module enhances the
// elements marked with its data-module name and does nothing when there are none.
import { enhanceTimezone } from "./timezone.js";
import { enhanceTasks } from "./tasks.js";
import { enhanceChat } from "./chat.js";
import { enhanceNotifications } from "./notifications.js";

// Escape closes the disclosure (a <details>) the focus is in, and the focus goes back to
// its summary, as it would after a click there. A module that closed something of its own
// with the same key first (the tasks page's toast) has prevented the default.
const closeDisclosure = (event) => {
  if (event.key !== "Escape" || event.defaultPrevented) return;
  const details = event.target instanceof Element ? event.target.closest("details[open]") : null;
  if (!details) return;
  details.open = false;
  details.querySelector("summary")?.focus();
  event.preventDefault();
};

// A form sent again with the same values within a second (a double click) is not sent: the
// first is on its way, and the second would meet what the first changed (a sign-up its own
// new account, a password change its ended session) and its answer is the one shown. Sent
// with other values (a search put right at once), it is a new send and goes. Forms a
// module sends itself (it has prevented the default) are its own to guard.
const SENT_AGAIN_MS = 1000;
const lastSent = new WeakMap();
const sendOnce = (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || event.defaultPrevented) return;
  const values = new URLSearchParams(new FormData(form, event.submitter)).toString();
  const last = lastSent.get(form);
  if (last && last.values === values && event.timeStamp - last.at < SENT_AGAIN_MS) {
    event.preventDefault();
    return;
  }
  lastSent.set(form, { values, at: event.timeStamp });
};

// The note of the last action ("?notice=created": "Task added.") is for the page that action
// led to: the address loses it once shown, so a reload or a bookmark does not say it again
// (the server leaves it out of the page's own links for the same reason: NOTE_PARAMS).
const NOTE_PARAMS = ["notice", "at"];
const forgetNote = () => {
  const url = new URL(window.location.href);
  if (!NOTE_PARAMS.some((name) => url.searchParams.has(name))) return;
  for (const name of NOTE_PARAMS) url.searchParams.delete(name);
  window.history.replaceState(window.history.state, "", url);
};

const start = () => {
  forgetNote();
  // A form sent back with its errors: the focus starts on the summary, which names each
  // problem and links to its field (a keyboard or screen reader user lands on it); an edit
  // refused for a change made meanwhile, on the conflict, which comes before its form.
  document.querySelector('[data-testid="conflict"], [data-testid="error-summary"]')?.focus();
  // The note of the last action ("Task saved.") is read out where a screen reader would not
  // read it (it reads a new page from its title, not its status): the focus starts on it,
  // unless the page puts the focus somewhere itself (an error summary above, the next task's
  // title, which the note describes).
  const note = document.querySelector('[data-testid="notice"], [data-testid="problem"]');
  if (note && document.activeElement === document.body && !document.querySelector("[autofocus]")) {
    note.tabIndex = -1;
    note.focus();
  }
  enhanceTimezone(document);
  enhanceTasks(document);
  enhanceChat(document);
  enhanceNotifications(document);
  // After the modules' own listeners, which handle (and prevent) the forms they send.
  document.addEventListener("keydown", closeDisclosure);
  document.addEventListener("submit", sendOnce);
};

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", start);
} else {
  start();
}
