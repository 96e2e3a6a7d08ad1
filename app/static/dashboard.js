// pactwatch dashboard: small progressive enhancements; every page works without it.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // An empty date means "the latest record": drop the empty ?as_of= from the address.
  for (const form of document.querySelectorAll("form.date-control")) {
    form.addEventListener("submit", (event) => {
      const input = form.querySelector('input[name="as_of"]');
      if (input && input.value === "") {
        event.preventDefault();
        window.location.assign(form.getAttribute("action"));
      }
    });
  }
  // Following a link to an accusation or a commitment opens the quotes inside it.
  const openTarget = () => {
    const id = decodeURIComponent(window.location.hash.slice(1));
    const target = id && document.getElementById(id);
    if (target) {
      for (const details of target.querySelectorAll("details.quote")) details.open = true;
    }
  };
  window.addEventListener("hashchange", openTarget);
  openTarget();
});
