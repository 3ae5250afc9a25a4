// The console's few behaviours that need a script (no framework): insert a variable into the
// script editor, copy a link, confirm a destructive action. Served from this origin only.
"use strict";
document.addEventListener("click", (event) => {
  const insert = event.target.closest("[data-insert]");
  if (insert) {
    const area = document.getElementById(insert.dataset.target || "f-body");
    if (area) {
      const text = insert.dataset.insert;
      const start = area.selectionStart ?? area.value.length;
      area.value = area.value.slice(0, start) + text + area.value.slice(area.selectionEnd ?? start);
      area.focus();
      area.selectionStart = area.selectionEnd = start + text.length;
      area.dispatchEvent(new Event("input", { bubbles: true }));
    }
    event.preventDefault();
    return;
  }
  const copy = event.target.closest("[data-copy]");
  if (copy) {
    const done = () => { copy.textContent = "已复制"; };
    if (navigator.clipboard) {
      navigator.clipboard.writeText(copy.dataset.copy).then(done, () => {});
    }
    event.preventDefault();
  }
});
document.addEventListener("submit", (event) => {
  if (event.target.matches && event.target.matches("[data-no-submit]")) {
    event.preventDefault();
    return;
  }
  const ask = event.target.dataset && event.target.dataset.confirm;
  if (ask && !window.confirm(ask)) {
    event.preventDefault();
  }
}, true);
