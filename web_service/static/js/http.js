// The page's CSRF token and a POST of a form's fields, as our forms send them.
export const csrfToken = () =>
  document.querySelector('meta[name="csrf-token"]')?.getAttribute("content") ?? "";

export const post = (url, form, accept = "application/json", extra = {}) =>
  fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { Accept: accept, "X-CSRF-Token": csrfToken(), ...extra },
    body: form ? new URLSearchParams(new FormData(form)) : undefined,
  });

// A refusal's words: the platform's error envelope, its `detail` written for a person.
export const messageOf = async (response) => {
  try {
    const body = await response.json();
    if (body && typeof body.detail === "string") return body.detail;
  } catch {
    // not JSON: fall through to the generic words
  }
  return "Something went wrong. Nothing was changed; try again.";
};

// The session ended under the page: to the sign-in form, which leads back to this page.
export const toSignIn = () => {
  const here = window.location.pathname + window.location.search;
  const next = here === "/tasks" ? "" : `&next=${encodeURIComponent(here)}`;
  window.location.assign(`/signin?notice=session_ended${next}`);
};

export const signedOut = (response) => {
  if (response.status === 401) {
    toSignIn();
    return true;
  }
  return false;
};
