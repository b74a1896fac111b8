// The question page's enhancements over its server-rendered forms:
// - keys 1 to 9 choose a multiple-choice option while the answer form has the focus (a
//   single-key shortcut active only on focus, WCAG 2.1.4; the viewer's act only in it);
// - a locate question's point, placed in the stack viewer (its "locate" event), fills the
//   form's hidden fields and enables the submit button;
// - on the feedback, the right region and the learner's point are drawn on the image
//   (viewer.setOverlays), the verdict is announced, and "Show" buttons open an image.
// The viewer (viewer.js) mounts every [data-viewer] when its module runs, which is before
// this one (module scripts run in document order).

const viewerRoot = document.querySelector("[data-viewer]");
const announcer = document.getElementById("announcer");

function viewer() {
  return viewerRoot ? viewerRoot.stackViewer || null : null;
}

function announce(text) {
  if (!announcer) return;
  announcer.textContent = "";
  // A change after a pause is announced even when the text repeats.
  window.setTimeout(() => {
    announcer.textContent = text;
  }, 100);
}

function typing(target) {
  if (!(target instanceof Element)) return false;
  if (target.closest("[data-viewer]")) return true;
  if (target.isContentEditable) return true;
  const tag = target.tagName;
  if (tag === "TEXTAREA" || tag === "SELECT") return true;
  return tag === "INPUT" && !["radio", "checkbox", "button", "submit"].includes(target.type);
}

function optionKeys(form) {
  form.addEventListener("keydown", (event) => {
    if (event.altKey || event.ctrlKey || event.metaKey || typing(event.target)) return;
    if (!/^[1-9]$/.test(event.key)) return;
    const input = form.querySelector(`input[data-key="${event.key}"]`);
    if (!input) return;
    event.preventDefault();
    if (input.type === "checkbox") input.checked = !input.checked;
    else input.checked = true;
    input.focus();
    const label = form.querySelector(`label[for="${input.id}"]`);
    const name = label ? label.textContent.trim().replace(/^\d\s*/, "") : input.value;
    announce(`${name} ${input.checked ? "selected" : "not selected"}`);
  });
}

function locating(form) {
  const submit = form.querySelector("#answer-submit");
  const status = form.querySelector("#locate-status");
  const fields = ["sop", "frame", "x", "y"].map((name) => form.elements.namedItem(name));
  if (!viewerRoot) {
    if (status) status.textContent = "The images could not be shown, so this question cannot be answered now.";
    return;
  }
  viewerRoot.addEventListener("locate", (event) => {
    const { sop, frame, x, y } = event.detail;
    [sop, frame, x, y].forEach((value, i) => {
      fields[i].value = String(value);
    });
    submit.disabled = false;
    status.textContent = `Point placed at column ${Math.round(x)}, row ${Math.round(y)}. Submit it, or place it again.`;
  });
}

function readJson(id) {
  const element = document.getElementById(id);
  if (!element) return null;
  try {
    return JSON.parse(element.textContent);
  } catch {
    return null;
  }
}

function showButtons() {
  for (const button of document.querySelectorAll("[data-show-sop]")) {
    button.addEventListener("click", () => {
      const v = viewer();
      if (!v) return;
      v.show(button.dataset.showSop, Number(button.dataset.showFrame || 1));
      viewerRoot.scrollIntoView({ block: "nearest" });
      announce("Image shown in the viewer");
    });
  }
}

function localTimes() {
  for (const time of document.querySelectorAll("time[data-local]")) {
    const when = new Date(time.getAttribute("datetime"));
    if (Number.isNaN(when.getTime())) continue;
    time.title = when.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  }
}

function feedback() {
  const overlays = readJson("answer-overlays");
  const v = viewer();
  if (overlays && v) {
    v.setOverlays(overlays);
    const region = overlays[0];
    if (region) v.show(region.sop, region.frame || 1);
  }
  const verdict = document.querySelector("[data-verdict]");
  if (verdict) announce(verdict.textContent.trim());
  if (window.location.hash === "#result") document.getElementById("result")?.focus();
  if (window.location.hash === "#hint") document.getElementById("hint")?.focus();
}

function start() {
  const form = document.getElementById("answer-form");
  if (form && form.dataset.kind === "multiple_choice") optionKeys(form);
  if (form && form.dataset.kind === "locate") locating(form);
  showButtons();
  localTimes();
  feedback();
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
