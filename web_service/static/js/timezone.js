// Sign-up: the browser's time zone fills the field when the person has not typed one.
export const enhanceTimezone = (root) => {
  for (const input of root.querySelectorAll('[data-module="timezone"]')) {
    if (input.value) continue;
    try {
      input.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch {
      // an old browser: the person picks from the list
    }
  }
};
