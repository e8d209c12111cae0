// The page's CSRF token and a POST of a form's fields, as our forms send them.
export const csrfToken = () =>
  document.querySelector('meta[name="csrf-token"]')?.getAttribute("content") ?? "";

const send = (url, form, accept, extra) =>
  fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { Accept: accept, "X-CSRF-Token": csrfToken(), ...extra },
    body: form ? new URLSearchParams(new FormData(form)) : undefined,
  });

const refusedForCsrf = async (response) => {
  if (response.status !== 403) return false;
  try {
    return (await response.clone().json()).code === "csrf_refused";
  } catch {
    return false;
  }
};

// The session's token again, into the page (its meta tag and every form): a password change
// in another tab gave the session a new one.
const renewCsrf = async () => {
  const response = await fetch("/session/csrf", {
    credentials: "same-origin",
    headers: { Accept: "application/json" },
  });
  if (!response.ok) return false;
  const { csrf_token: token } = await response.json();
  if (typeof token !== "string" || !token) return false;
  document.querySelector('meta[name="csrf-token"]')?.setAttribute("content", token);
  for (const input of document.querySelectorAll('input[name="csrf_token"]')) input.value = token;
  return true;
};

// A POST as our forms send it; refused for a stale token, it is sent once more with the
// session's current one.
export const post = async (url, form, accept = "application/json", extra = {}) => {
  const response = await send(url, form, accept, extra);
  if (!(await refusedForCsrf(response)) || !(await renewCsrf())) return response;
  return send(url, form, accept, extra);
};

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
