"""What a screen reader would say of a page's changes, roughly: the text each change adds
inside a live region (``aria-live`` other than ``off``, or a ``status``, ``alert`` or ``log``
role), in order. ``listen(page)`` starts recording on the page as it is now (a page load
ends it); ``heard(page)`` returns what was said since, and starts afresh."""

from __future__ import annotations

from playwright.async_api import Page

_LISTEN = """() => {
  window.__heard = [];
  const live = '[aria-live]:not([aria-live="off"]), [role="status"], [role="alert"], [role="log"]';
  new MutationObserver((records) => {
    for (const record of records) {
      const node =
        record.target.nodeType === Node.ELEMENT_NODE ? record.target : record.target.parentElement;
      if (!node?.closest(live)) continue;
      const text = record.type === "characterData"
        ? record.target.data
        : [...record.addedNodes].map((added) => added.textContent).join(" ");
      const said = text.replace(/\\s+/g, " ").trim();
      if (said) window.__heard.push(said);
    }
  }).observe(document.body, { subtree: true, childList: true, characterData: true });
}"""


async def listen(page: Page) -> None:
    await page.evaluate(_LISTEN)


async def heard(page: Page) -> list[str]:
    said: list[str] = await page.evaluate("() => window.__heard.splice(0)")
    return said
