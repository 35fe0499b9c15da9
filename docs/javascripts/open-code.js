// On a component's page, show the code of forward, backward or the update rule open: it is what
// the page is about (elsewhere in the reference, source stays folded).
document.addEventListener("DOMContentLoaded", () => {
  if (!location.pathname.includes("/components/")) return;
  document.querySelectorAll(".doc-function details").forEach((details) => {
    details.open = true;
  });
});
