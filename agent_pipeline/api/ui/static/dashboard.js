// The dashboard's only script: refresh each [data-live] part from its URL every data-every ms, without a reload.
// The server renders (and escapes) the fragment; this only swaps it in. A 401 means the session ended.
"use strict";
document.querySelectorAll("[data-live]").forEach((part) => {
  const every = Math.min(Number(part.dataset.every) || 2000, 2000);
  const refresh = async () => {
    try {
      const answer = await fetch(part.dataset.live, { credentials: "same-origin", cache: "no-store" });
      if (answer.status === 401) {
        window.location.assign("/ui/login");
        return;
      }
      if (answer.ok) {
        part.innerHTML = await answer.text();
      }
    } catch (error) {
      // The API restarting: try again at the next tick.
    }
    window.setTimeout(refresh, every);
  };
  window.setTimeout(refresh, every);
});
