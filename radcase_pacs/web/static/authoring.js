// The educators' pages: the numeric fields of a form and the stack viewer's shapes kept in
// step both ways. Drawing fills the fields (viewer `shape` events); typing in the fields
// redraws the shapes (setShapes). The forms work without this script: the fields are the
// whole of what is posted.

function viewerOf(scope = document) {
  const root = scope.querySelector("[data-viewer]");
  return root ? root.stackViewer || null : null;
}

function number(input) {
  const text = (input?.value || "").trim();
  if (!/^-?\d+(\.\d+)?$/.test(text)) return null;
  return Number(text);
}

function announce(message) {
  const region = document.getElementById("announcer");
  if (!region) return;
  region.textContent = "";
  requestAnimationFrame(() => {
    region.textContent = message;
  });
}

// -- burned-in review: rectangles --------------------------------------------------------

function bindRegions(form, viewer) {
  const image = viewer.manifest.series[0]?.images[0];
  if (!image) return;
  const fieldset = form.querySelector("fieldset.regions");
  const rows = () => [...form.querySelectorAll(".region-row")];
  const multiFrame = form.hasAttribute("data-multi-frame");

  const fromRows = () => {
    const list = [];
    for (const row of rows()) {
      const value = (name) => number(row.querySelector(`[data-field="${name}"]`));
      const [x, y, width, height] = ["x", "y", "width", "height"].map(value);
      if ([x, y, width, height].some((v) => v === null)) continue;
      const frame = value("frame") || viewer.state().frame || 1;
      list.push({ kind: "rectangle", sop: image.sop, frame, x, y, width, height });
    }
    return list;
  };

  if (form.hasAttribute("data-preview")) {
    viewer.setShapes(fromRows());
    viewer.setPreview(true);
    return;
  }

  const addRow = () => {
    const last = rows().at(-1);
    const index = rows().length;
    const row = last.cloneNode(true);
    row.dataset.row = String(index);
    row.setAttribute("aria-label", `Rectangle ${index + 1}`);
    row.querySelector(".region-name").textContent = String(index + 1);
    for (const input of row.querySelectorAll("input")) {
      input.name = `${input.dataset.field}-${index}`;
      input.value = "";
    }
    last.after(row);
    return row;
  };

  form.addEventListener("input", (event) => {
    if (event.target.closest(".region-row")) viewer.setShapes(fromRows());
  });
  fieldset.querySelector("[data-add-row]")?.addEventListener("click", (event) => {
    event.preventDefault();
    addRow().querySelector("input").focus();
  });
  viewer.addEventListener("shape", (event) => {
    const drawn = event.detail.shapes.filter((shape) => shape.kind === "rectangle");
    while (rows().length < drawn.length + 1) addRow();
    rows().forEach((row, i) => {
      const shape = drawn[i];
      for (const name of ["x", "y", "width", "height", "frame"]) {
        const input = row.querySelector(`[data-field="${name}"]`);
        if (!shape) input.value = "";
        else if (name === "frame") input.value = multiFrame ? String(shape.frame) : "";
        else input.value = String(shape[name]);
      }
    });
    announce(`${drawn.length} rectangle${drawn.length === 1 ? "" : "s"} to blank`);
  });
  viewer.setShapes(fromRows());
}

// -- locate questions: a polygon or an ellipse on one image --------------------------------

function parsePoints(text) {
  const points = [];
  for (const line of text.split(/\n|;/)) {
    if (!line.trim()) continue;
    const parts = line.split(/[\s,]+/).filter(Boolean).map(Number);
    if (parts.length !== 2 || parts.some((v) => !Number.isFinite(v))) return null;
    points.push(parts);
  }
  return points;
}

function bindLocate(form, viewer) {
  const sopField = form.querySelector('[name="sop"]');
  const frameField = form.querySelector('[name="frame"]');
  const kindFields = [...form.querySelectorAll('[name="region_shape"]')];
  const pointsField = form.querySelector('[name="points"]');
  const ellipse = Object.fromEntries(["cx", "cy", "rx", "ry"].map((n) => [n, form.querySelector(`[name="${n}"]`)]));
  const kind = () => kindFields.find((f) => f.checked)?.value || "ellipse";

  const fromFields = () => {
    const sop = sopField.value;
    const frame = number(frameField) || 1;
    if (kind() === "ellipse") {
      const values = Object.fromEntries(Object.entries(ellipse).map(([n, input]) => [n, number(input)]));
      if (Object.values(values).some((v) => v === null)) return null;
      return { kind: "ellipse", sop, frame, ...values };
    }
    const points = parsePoints(pointsField.value);
    return points && points.length ? { kind: "polygon", sop, frame, points } : null;
  };

  const redraw = () => {
    const shape = fromFields();
    viewer.setShapes(shape ? [shape] : []);
  };

  const follow = () => {
    if (sopField.value) viewer.show(sopField.value, number(frameField) || 1);
  };

  form.addEventListener("input", (event) => {
    const name = event.target.name;
    if (name === "region_shape") {
      viewer.setDraw(kind());
      fieldsFor(kind());
    }
    if (name === "sop" || name === "frame") follow();
    redraw();
  });
  form.addEventListener("change", (event) => {
    if (event.target.name === "sop") {
      follow();
      redraw();
    }
  });

  const fieldsFor = (which) => {
    for (const group of form.querySelectorAll("[data-shape-fields]")) {
      group.hidden = group.dataset.shapeFields !== which;
    }
  };

  viewer.addEventListener("shape", (event) => {
    const shape = event.detail.shapes.at(-1);
    if (!shape) return;
    sopField.value = shape.sop;
    frameField.value = String(shape.frame);
    for (const field of kindFields) field.checked = field.value === shape.kind;
    if (shape.kind === "ellipse") {
      for (const name of ["cx", "cy", "rx", "ry"]) ellipse[name].value = String(shape[name]);
    } else {
      pointsField.value = shape.points.map(([x, y]) => `${x}, ${y}`).join("\n");
    }
    fieldsFor(shape.kind);
    announce(`Region set on the image shown: ${shape.kind}`);
  });

  viewer.setDraw(kind());
  fieldsFor(kind());
  follow();
  redraw();
}

// -- the learner's preview: a point, and the solution after grading -----------------------

function bindPreview(form, viewer) {
  const x = form.querySelector('[name="x"]');
  const y = form.querySelector('[name="y"]');
  const sop = form.querySelector('[name="sop"]');
  const frame = form.querySelector('[name="frame"]');
  viewer.addEventListener("locate", (event) => {
    x.value = String(event.detail.x);
    y.value = String(event.detail.y);
    sop.value = event.detail.sop;
    frame.value = String(event.detail.frame);
  });
  const solution = document.querySelector("script.solution-overlays");
  if (solution) viewer.setOverlays(JSON.parse(solution.textContent));
}

function start() {
  const viewer = viewerOf();
  if (!viewer) return;
  const regions = document.querySelector("form[data-regions]");
  if (regions) bindRegions(regions, viewer);
  const locate = document.querySelector("form[data-locate-form]");
  if (locate) bindLocate(locate, viewer);
  const preview = document.querySelector("form[data-learner-preview]");
  if (preview) bindPreview(preview, viewer);
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
