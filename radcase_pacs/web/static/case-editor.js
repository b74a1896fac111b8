// The case editor's key images: "Mark as key image" adds the image the viewer shows (its
// instance and frame) to the list, as a row of the case form with a note and a "Remove on
// save" box; "Show" brings a listed image back into the viewer. The list is saved with the
// rest of the form (radcase_pacs/web/teach/case_form.py reads the rows), so nothing is changed
// until the educator saves, and the page works without this script for everything else.

const list = document.getElementById("key-images");
const template = document.getElementById("key-row");
const mark = document.getElementById("mark-key");
const empty = document.getElementById("keys-empty");
const announcer = document.getElementById("announcer");

function viewer() {
  const root = document.querySelector("[data-viewer]");
  return root ? root.stackViewer : null;
}

function announce(text) {
  if (!announcer) return;
  announcer.textContent = "";
  window.setTimeout(() => {
    announcer.textContent = text;
  }, 50);
}

/** "Series 2 · image 14", counted as the viewer counts (every frame of the series). */
function label(state) {
  const found = viewer().manifest.series.find((series) => series.uid === state.series);
  const name = found && found.number !== null ? `Series ${found.number}` : "Series";
  return `${name} · image ${state.index + 1}`;
}

function framesOf(sop) {
  for (const series of viewer().manifest.series) {
    const image = series.images.find((item) => item.sop === sop);
    if (image) return image.frames;
  }
  return 1;
}

function listed(sop, frame) {
  return Array.from(list.querySelectorAll(".key-image")).find(
    (row) => row.dataset.sop === sop && Number(row.dataset.frame) === frame,
  );
}

function wireShow(row) {
  const button = row.querySelector(".show-key");
  button.hidden = false;
  const name = row.querySelector(".key-label").textContent;
  button.setAttribute("aria-label", `Show ${name}`);
  button.addEventListener("click", () => {
    const shown = viewer();
    if (shown && shown.show(row.dataset.sop, Number(row.dataset.frame))) announce(`${name} shown.`);
  });
}

function addCurrent() {
  const shown = viewer();
  const state = shown ? shown.state() : null;
  if (!state || !state.sop) {
    announce("No image is shown yet.");
    return;
  }
  const frame = state.frame || 1;
  const already = listed(state.sop, frame);
  const name = label(state);
  if (already) {
    announce(`${name} is already a key image.`);
    already.querySelector("textarea").focus();
    return;
  }
  const index = Number(list.dataset.next || list.children.length);
  list.dataset.next = String(index + 1);
  const row = template.content.firstElementChild.cloneNode(true);
  row.dataset.sop = state.sop;
  row.dataset.frame = String(frame);
  const single = framesOf(state.sop) === 1;
  const key = row.querySelector('input[type="hidden"]');
  key.name = `key-${index}`;
  key.value = `${state.sop}:${single ? "" : frame}`;
  row.querySelector(".key-label").textContent = name;
  row.querySelector("textarea").name = `key-${index}-note`;
  row.querySelector('input[type="checkbox"]').name = `key-${index}-remove`;
  list.append(row);
  wireShow(row);
  if (empty) empty.hidden = true;
  announce(`${name} added to the key images. Save the case to keep it.`);
  row.querySelector("textarea").focus();
}

if (list && template && mark) {
  mark.hidden = false;
  mark.addEventListener("click", addCurrent);
  for (const row of list.querySelectorAll(".key-image")) wireShow(row);
}
