"use strict";
// Sign-in: the token goes once to /api/login as JSON, and is never stored in the browser.
document.getElementById("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const field = document.getElementById("token");
  const shown = document.getElementById("login-error");
  shown.textContent = "";
  const response = await fetch("/api/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ token: field.value.trim() }),
    credentials: "same-origin",
  });
  field.value = "";
  if (response.ok) {
    window.location.assign("/");
    return;
  }
  const body = await response.json().catch(() => ({}));
  shown.textContent = body.error || `sign-in failed (${response.status})`;
});
