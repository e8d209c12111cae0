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

const start = () => {
  // A form sent back with its errors: the focus starts on the summary, which names each
  // problem and links to its field (a keyboard or screen reader user lands on it); an edit
  // refused for a change made meanwhile, on the conflict, which comes before its form.
  document.querySelector('[data-testid="conflict"], [data-testid="error-summary"]')?.focus();
  enhanceTimezone(document);
  enhanceTasks(document);
  enhanceChat(document);
  enhanceNotifications(document);
  document.addEventListener("keydown", closeDisclosure);
};

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", start);
} else {
  start();
}
