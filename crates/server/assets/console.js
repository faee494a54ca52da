// keyward's console: comfort only. Every action works without this file.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // A copy button beside a shown-once key.
  for (const button of document.querySelectorAll("button[data-copy]")) {
    const source = document.getElementById(button.dataset.copy);
    if (!source || !navigator.clipboard) continue;
    button.hidden = false;
    button.addEventListener("click", async () => {
      await navigator.clipboard.writeText(source.textContent.trim());
      button.textContent = "Copied";
    });
  }
});
