// Progressive enhancement: every page works without this file. Each module enhances the
// elements marked with its data-module name and does nothing when there are none.
import { enhanceTimezone } from "./timezone.js";
import { enhanceTasks } from "./tasks.js";
import { enhanceChat } from "./chat.js";
import { enhanceNotifications } from "./notifications.js";

const start = () => {
  // A form sent back with its errors: the focus starts on the summary, which names each
  // problem and links to its field (a keyboard or screen reader user lands on it); an edit
  // refused for a change made meanwhile, on the conflict, which comes before its form.
  document.querySelector('[data-testid="conflict"], [data-testid="error-summary"]')?.focus();
  enhanceTimezone(document);
  enhanceTasks(document);
  enhanceChat(document);
  enhanceNotifications(document);
};

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", start);
} else {
  start();
}
