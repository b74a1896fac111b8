// The stack viewer: every image of every series of a teaching study, scrolled, windowed,
// zoomed and panned in the browser, with overlays and a locate mode.
//
// Pixels come from the WADO-RS frames resource (PS3.18 §10.4.1.1.4) as native Explicit VR
// Little Endian in a multipart/related body, parsed here; grayscale goes through the
// Modality LUT (rescale, PS3.3 §C.11.1) and the VOI window (PS3.3 §C.11.2.1.2) folded into
// one lookup table from stored value to screen value, so a window change is one table build
// and one pass over the frame: it shows in the next animation frame.
//
// Usage: markup <section class="stack-viewer" data-viewer> holding a
// <script type="application/json" class="stack-manifest"> (radcase_pacs/web/stack.py), this
// module loaded; every [data-viewer] is mounted on load, the instance at element.stackViewer.
//
// Draw mode (`{draw: "rectangle" | "ellipse" | "polygon"}` or setDraw) makes shapes in image
// pixel coordinates (shapes.js): a drag draws a rectangle or an ellipse, clicks or taps place
// a polygon's points (double-click, Enter or "Close shape" ends it), handles edit them; every
// change is a `shape` event. The page's numeric fields are the keyboard's way to the same
// shapes (setShapes), so nothing needs a pointer.

import * as shapes from "./shapes.js";

const ACCEPT =
  'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.1';
const CONCURRENT_REQUESTS = 4;
const FRAMES_PER_REQUEST = 8;
const FIRST_IMAGE_MARK = "radcase:first-image";
const WHEEL_STEP = 50;
const CLICK_SLOP = 5;
const MIN_ZOOM = 0.25;
const MAX_ZOOM = 16;
const PAN_STEP = 40;
const HANDLE_SIZE = 10;
const HANDLE_REACH = { mouse: 12, pen: 16, touch: 24 };
const SHAPE_COLOUR = "#00e5ff";
const DRAW_TOOL = { id: "draw", name: "Draw", key: "d" };
const DRAW_HELP = {
  rectangle: "Drag from corner to corner to draw a rectangle",
  ellipse: "Drag across the finding to draw an ellipse",
  polygon: "Click or tap each point of the outline; double-click, Enter or Close shape ends it",
};

// Center/width in Hounsfield units.
const CT_PRESETS = [
  { name: "Lung", window: [-600, 1500] },
  { name: "Mediastinum", window: [40, 400] },
  { name: "Bone", window: [500, 2000] },
  { name: "Brain", window: [40, 80] },
  { name: "Abdomen", window: [50, 350] },
];

const TOOLS = [
  { id: "scroll", name: "Scroll", key: "s" },
  { id: "window", name: "Window", key: "w" },
  { id: "zoom", name: "Zoom", key: "z" },
  { id: "pan", name: "Pan", key: "m" },
];

const SHORTCUTS = [
  ["Up arrow, Down arrow", "Previous or next image (Scroll tool)"],
  ["Page Up, Page Down", "10 images back or forward"],
  ["Home, End", "First or last image"],
  ["Left arrow, Right arrow", "Narrower or wider window (Window tool)"],
  ["Up arrow, Down arrow", "Brighter or darker (Window tool), zoom (Zoom tool), move (Pan tool)"],
  ["P, Shift+P", "Next or previous window preset"],
  ["S, W, Z, M", "Scroll, Window, Zoom or Pan tool"],
  ["+, -", "Zoom in or out"],
  ["R", "Reset window, zoom and position"],
  ["X", "Show the crosshair, where a point is asked for"],
  ["Arrows, Shift+arrows, Enter", "Move the crosshair by 1 or 10 pixels, place the point"],
  ["Escape", "Hide the crosshair; drop an unfinished outline"],
  ["D", "Draw tool, where shapes are asked for"],
  ["Enter", "End the outline being drawn"],
  ["Delete", "Remove the chosen shape"],
];

// -- multipart/related (RFC 2046 §5.1, PS3.18 §8.7.3.5) --------------------------------

/** A parameter of a media type (`boundary`, `type`...), unquoted; null when absent. */
export function mediaTypeParameter(contentType, name) {
  const pattern = /;\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)/g;
  for (const match of contentType.matchAll(pattern)) {
    if (match[1].toLowerCase() === name) {
      const value = match[2].trim();
      return value.startsWith('"') ? value.slice(1, -1).replace(/\\(.)/g, "$1") : value;
    }
  }
  return null;
}

function asciiBytes(text) {
  return Uint8Array.from(text, (ch) => ch.charCodeAt(0));
}

function indexOfBytes(haystack, needle, from) {
  const first = needle[0];
  let at = haystack.indexOf(first, from);
  while (at !== -1 && at + needle.length <= haystack.length) {
    let k = 1;
    while (k < needle.length && haystack[at + k] === needle[k]) k += 1;
    if (k === needle.length) return at;
    at = haystack.indexOf(first, at + 1);
  }
  return -1;
}

/** The bodies of a multipart response, in order; a single-part response is one body. */
export function multipartBodies(buffer, contentType) {
  const bytes = new Uint8Array(buffer);
  const boundary = mediaTypeParameter(contentType, "boundary");
  if (!/^\s*multipart\//i.test(contentType) || !boundary) return [bytes];
  const delimiter = asciiBytes(`--${boundary}`);
  const separator = asciiBytes(`\r\n--${boundary}`);
  const headEnd = asciiBytes("\r\n\r\n");
  const bodies = [];
  let at = indexOfBytes(bytes, delimiter, 0);
  if (at === -1) throw new Error("the multipart body has no boundary");
  for (;;) {
    const after = at + delimiter.length;
    if (bytes[after] === 0x2d && bytes[after + 1] === 0x2d) break;
    const head = indexOfBytes(bytes, headEnd, after);
    if (head === -1) throw new Error("a multipart part has no end of headers");
    const start = head + headEnd.length;
    const end = indexOfBytes(bytes, separator, start);
    if (end === -1) throw new Error("the multipart body is cut short");
    bodies.push(bytes.subarray(start, end));
    at = end + 2;
  }
  return bodies;
}

// -- pixel data (PS3.5 §8.1.1, PS3.3 §C.7.6.3) ----------------------------------------

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** One frame's bytes as stored values: bits outside Bits Stored masked, signed values
 * sign-extended, colour interleaved (and YBR_FULL turned into RGB). */
export function decodeFrame(bytes, image) {
  const samples = image.samplesPerPixel;
  const count = image.rows * image.columns * samples;
  const wide = image.bitsAllocated === 16;
  const signed = image.pixelRepresentation === 1;
  const needed = count * (wide ? 2 : 1);
  if (bytes.length < needed) {
    throw new Error(`the frame holds ${bytes.length} bytes, ${needed} expected`);
  }
  let raw;
  if (wide) {
    const copy = new Uint8Array(needed);
    copy.set(bytes.subarray(0, needed));
    raw = new Uint16Array(copy.buffer);
    if (!LITTLE_ENDIAN) {
      const view = new DataView(copy.buffer);
      for (let i = 0; i < count; i += 1) raw[i] = view.getUint16(i * 2, true);
    }
  } else {
    raw = Uint8Array.from(bytes.subarray(0, needed));
  }
  const stored = Math.min(image.bitsStored || image.bitsAllocated, image.bitsAllocated);
  let values = raw;
  if (signed) values = wide ? new Int16Array(raw.buffer) : new Int8Array(raw.buffer);
  if (stored < image.bitsAllocated) {
    const mask = (1 << stored) - 1;
    const sign = 1 << (stored - 1);
    const span = 1 << stored;
    for (let i = 0; i < count; i += 1) {
      let v = raw[i] & mask;
      if (signed && v & sign) v -= span;
      values[i] = v;
    }
  }
  if (samples === 3) values = interleavedRgb(values, image);
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < values.length; i += 1) {
    const v = values[i];
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return { values, min, max, rows: image.rows, columns: image.columns, colour: samples === 3 };
}

function interleavedRgb(values, image) {
  const pixels = image.rows * image.columns;
  let out = values;
  if (image.planarConfiguration === 1) {
    out = new values.constructor(values.length);
    for (let i = 0; i < pixels; i += 1) {
      out[i * 3] = values[i];
      out[i * 3 + 1] = values[pixels + i];
      out[i * 3 + 2] = values[2 * pixels + i];
    }
  }
  if (image.photometric === "YBR_FULL" && image.bitsAllocated === 8) {
    const rgb = new Uint8ClampedArray(out.length);
    for (let i = 0; i < out.length; i += 3) {
      const y = out[i];
      const cb = out[i + 1] - 128;
      const cr = out[i + 2] - 128;
      rgb[i] = y + 1.402 * cr;
      rgb[i + 1] = y - 0.344136 * cb - 0.714136 * cr;
      rgb[i + 2] = y + 1.772 * cb;
    }
    out = Uint8Array.from(rgb);
  }
  return out;
}

/** The screen value (0 to 255) of a modality value through a LINEAR window
 * (PS3.3 §C.11.2.1.2.1). */
export function windowed(x, center, width) {
  const c = center - 0.5;
  const w = Math.max(width, 1) - 1;
  if (x <= c - w / 2) return 0;
  if (x > c + w / 2) return 255;
  return w === 0 ? 255 : ((x - c) / w + 0.5) * 255;
}

/** A table from stored value (as an unsigned index of the allocated bits) to an opaque
 * RGBA pixel (grayscale) or to a 0-255 sample (colour). */
function buildLut(image, voi, colour) {
  const size = image.bitsAllocated === 16 ? 65536 : 256;
  const half = size / 2;
  const signed = image.pixelRepresentation === 1;
  const slope = colour ? 1 : image.slope;
  const intercept = colour ? 0 : image.intercept;
  const invert = image.photometric === "MONOCHROME1";
  const [center, width] = voi;
  if (colour) {
    const table = new Uint8Array(size);
    for (let i = 0; i < size; i += 1) table[i] = Math.round(windowed(i, center, width));
    return table;
  }
  const table = new Uint32Array(size);
  const alpha = LITTLE_ENDIAN ? 0xff000000 : 0xff;
  for (let i = 0; i < size; i += 1) {
    const storedValue = signed && i >= half ? i - size : i;
    let y = Math.round(windowed(storedValue * slope + intercept, center, width));
    if (invert) y = 255 - y;
    table[i] = (alpha | (y << 16) | (y << 8) | y) >>> 0;
  }
  return table;
}

// -- the viewer ---------------------------------------------------------------------------

function element(tag, attributes = {}, children = []) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) node.append(child);
  return node;
}

function button(label, attributes = {}) {
  return element("button", { type: "button", ...attributes, text: label });
}

function clamp(value, low, high) {
  return Math.min(high, Math.max(low, value));
}

function formatNumber(value) {
  return String(Math.round(value * 10) / 10);
}

export class StackViewer extends EventTarget {
  /**
   * @param {HTMLElement} root the [data-viewer] element
   * @param {object} manifest see radcase_pacs/web/stack.py
   * @param {{open?: {sop: string, frame?: number}, locate?: boolean,
   *          draw?: "rectangle" | "ellipse" | "polygon", multiple?: boolean}} options
   */
  constructor(root, manifest, options = {}) {
    super();
    this.root = root;
    this.manifest = manifest;
    this.locateMode = Boolean(options.locate);
    this.series = manifest.series.map((series) => ({
      ...series,
      slots: series.images.flatMap((image) =>
        Array.from({ length: image.frames }, (_, k) => ({ image, frame: k + 1 })),
      ),
      index: 0,
      window: null,
      preset: null,
    }));
    this.current = 0;
    this.frames = new Map();
    this.failed = new Map();
    this.inFlight = new Set();
    this.queue = [];
    this.active = 0;
    this.lut = null;
    this.lutKey = "";
    this.drawnKey = "";
    this.overlays = [];
    this.located = null;
    this.crosshair = null;
    this.drawKind = null;
    this.multiple = false;
    this.drawn = [];
    this.chosen = -1;
    this.outline = null;
    this.previewing = false;
    this.tool = "scroll";
    this.zoom = 1;
    this.pan = [0, 0];
    this.pointers = new Map();
    this.gesture = null;
    this.wheelRest = 0;
    this.frameRequested = false;
    this.firstImageShown = false;
    this.announcedLoaded = false;
    root.stackViewer = this;
    const opened = options.open ? this.find(options.open.sop, options.open.frame || 1) : null;
    if (opened) {
      this.current = opened.series;
      this.series[opened.series].index = opened.index;
    }
    // The first image is asked for before anything else, and alone: the rest of the stack
    // and the thumbnails wait for it so as not to compete with it at the server.
    const slot = this.slot();
    const first = slot ? this.fetch(slot.image, [slot.frame], true) : Promise.resolve();
    this.build();
    if (options.draw) this.setDraw(options.draw, { multiple: options.multiple });
    this.refreshControls();
    this.requestRender();
    first.then(() => this.scheduleBackground());
  }

  // -- public API ------------------------------------------------------------------------

  /** Shows frame `frame` (1-based) of instance `sop`, whichever series holds it. */
  show(sop, frame = 1) {
    const found = this.find(sop, frame);
    if (!found) return false;
    if (found.series !== this.current) this.chooseSeries(found.series, false);
    this.go(found.index);
    return true;
  }

  /** Overlays in image pixel coordinates (x column, y row; a value is a pixel's centre). */
  setOverlays(overlays) {
    this.overlays = Array.isArray(overlays) ? overlays.slice() : [];
    this.requestRender();
  }

  /** Turns locate mode on or off (a click, a tap or the crosshair places a point). */
  setLocate(on) {
    this.locateMode = Boolean(on);
    if (!this.locateMode) this.crosshair = null;
    this.canvas.classList.toggle("sv-locating", this.locateMode);
    this.crosshairButton.hidden = !this.locateMode;
    this.requestRender();
  }

  /** Turns draw mode on with a kind of shape ("rectangle", "ellipse", "polygon"), or off
   * (null). `multiple`: several shapes are kept (else a new one replaces the old). */
  setDraw(kind, { multiple = false } = {}) {
    this.drawKind = shapes.KINDS.includes(kind) ? kind : null;
    this.multiple = Boolean(multiple);
    this.outline = null;
    this.drawButton.hidden = !this.drawKind;
    this.setTool(this.drawKind ? "draw" : this.tool === "draw" ? "scroll" : this.tool);
    this.refreshControls();
    this.requestRender();
  }

  /** The shapes drawn so far: [{kind, sop, frame, ...numbers}], copies. */
  shapes() {
    return this.drawn.map((shape) => structuredClone(shape));
  }

  /** Replaces the drawn shapes (from a page's fields); no `shape` event is sent back. */
  setShapes(list) {
    this.drawn = (Array.isArray(list) ? list : [])
      .filter((shape) => shape && shapes.KINDS.includes(shape.kind))
      .map((shape) => ({ frame: 1, ...structuredClone(shape) }));
    if (this.chosen >= this.drawn.length) this.chosen = this.drawn.length - 1;
    this.refreshControls();
    this.requestRender();
  }

  /** Ends the polygon being drawn (three points at least, not all on one line). */
  closeShape() {
    const outline = this.outline;
    if (!outline) return false;
    const shape = { kind: "polygon", sop: outline.sop, frame: outline.frame, points: outline.points };
    if (!shapes.hasArea(shape)) {
      this.announce("An outline needs three points or more, not all on one line");
      return false;
    }
    this.outline = null;
    this.keep(shape);
    return true;
  }

  removeShape(index = this.chosen) {
    if (index < 0 || index >= this.drawn.length) return;
    this.drawn.splice(index, 1);
    this.chosen = -1;
    this.announce("Shape removed");
    this.emitShape({ removed: true, index });
    this.refreshControls();
    this.requestRender();
  }

  /** Shows the drawn rectangles filled black: the image as it will be once they are blanked. */
  setPreview(on) {
    this.previewing = Boolean(on);
    this.requestRender();
  }

  state() {
    const series = this.series[this.current];
    const slot = this.slot();
    const voi = this.currentWindow();
    return {
      series: series ? series.uid : null,
      index: series ? series.index : 0,
      count: series ? series.slots.length : 0,
      sop: slot ? slot.image.sop : null,
      frame: slot ? slot.frame : null,
      window: voi ? [voi[0], voi[1]] : null,
      zoom: this.zoom,
      pan: [this.pan[0], this.pan[1]],
      loaded: series ? series.slots.every((s) => this.frames.has(this.key(s))) : true,
      draw: this.drawKind,
      shapes: this.shapes(),
    };
  }

  /** Where image point (x, y) is drawn, in CSS pixels from the canvas's top-left corner. */
  toScreen(x, y) {
    const t = this.transform();
    return t ? [t.x + (x + 0.5) * t.scale, t.y + (y + 0.5) * t.scale] : null;
  }

  /** The image point under CSS pixel (sx, sy) of the canvas (fractional: 10.5 is the middle
   * of column 10). */
  toImage(sx, sy) {
    const t = this.transform();
    return t ? [(sx - t.x) / t.scale - 0.5, (sy - t.y) / t.scale - 0.5] : null;
  }

  setWindow(center, width) {
    const series = this.series[this.current];
    if (!series) return;
    series.window = [center, Math.max(1, width)];
    series.preset = null;
    this.refreshControls();
    this.requestRender();
  }

  applyPreset(name) {
    const series = this.series[this.current];
    const preset = this.presets().find((p) => p.name === name);
    if (!series || !preset) return false;
    const voi = preset.window || this.ownWindow(preset.fullRange);
    if (!voi) return false;
    series.window = voi.slice();
    series.preset = preset.name;
    this.announce(`${preset.name} window: level ${formatNumber(voi[0])}, width ${formatNumber(voi[1])}`);
    this.refreshControls();
    this.requestRender();
    return true;
  }

  setZoom(zoom, around) {
    const next = clamp(zoom, MIN_ZOOM, MAX_ZOOM);
    const t = this.transform();
    if (t && around) {
      const [ix, iy] = this.toImage(around[0], around[1]);
      this.zoom = next;
      const [sx, sy] = this.toScreen(ix, iy);
      this.pan = [this.pan[0] + around[0] - sx, this.pan[1] + around[1] - sy];
    } else {
      this.zoom = next;
    }
    this.refreshControls();
    this.requestRender();
  }

  panBy(dx, dy) {
    this.pan = [this.pan[0] + dx, this.pan[1] + dy];
    this.requestRender();
  }

  reset() {
    const series = this.series[this.current];
    this.zoom = 1;
    this.pan = [0, 0];
    if (series) {
      series.window = null;
      series.preset = null;
    }
    this.announce("Window, zoom and position reset");
    this.refreshControls();
    this.requestRender();
  }

  // -- building the controls ---------------------------------------------------------------

  build() {
    const root = this.root;
    root.classList.add("stack-viewer");
    const id = `sv-${Math.random().toString(36).slice(2, 9)}`;
    this.seriesList = element("div", { class: "sv-series", role: "group", "aria-label": "Series" });
    this.seriesButtons = this.series.map((series, i) => {
      const thumb = element("img", {
        "data-src": series.thumbnail,
        alt: "",
        width: 48,
        height: 48,
        loading: "lazy",
        decoding: "async",
      });
      thumb.addEventListener("error", () => {
        thumb.hidden = true;
      });
      const choice = element("button", { type: "button", class: "sv-series-choice" }, [
        thumb,
        element("span", { text: series.label }),
      ]);
      choice.addEventListener("click", () => this.chooseSeries(i, true));
      this.seriesList.append(choice);
      return choice;
    });
    if (this.series.length < 2) this.seriesList.hidden = this.series.length === 0;

    this.toolButtons = new Map();
    const tools = element("div", { class: "sv-group", role: "group", "aria-label": "Mouse and touch tool" });
    for (const tool of [...TOOLS, DRAW_TOOL]) {
      const b = button(tool.name, { "aria-pressed": "false", "aria-keyshortcuts": tool.key.toUpperCase() });
      b.addEventListener("click", () => this.setTool(tool.id));
      tools.append(b);
      this.toolButtons.set(tool.id, b);
    }
    this.drawButton = this.toolButtons.get("draw");
    this.drawButton.hidden = true;
    this.closeButton = button("Close shape", { "aria-keyshortcuts": "Enter" });
    this.closeButton.addEventListener("click", () => this.closeShape());
    this.removeButton = button("Remove shape", { "aria-keyshortcuts": "Delete" });
    this.removeButton.addEventListener("click", () => this.removeShape());
    this.closeButton.hidden = true;
    this.removeButton.hidden = true;
    const drawing = element("div", { class: "sv-group", role: "group", "aria-label": "Shapes" }, [
      this.closeButton,
      this.removeButton,
    ]);
    this.presetGroup = element("div", { class: "sv-group", role: "group", "aria-label": "Window presets" });
    const view = element("div", { class: "sv-group", role: "group", "aria-label": "View" });
    const zoomOut = button("Zoom out", { "aria-keyshortcuts": "-" });
    const zoomIn = button("Zoom in", { "aria-keyshortcuts": "+" });
    const reset = button("Reset", { "aria-keyshortcuts": "R" });
    zoomOut.addEventListener("click", () => this.setZoom(this.zoom / 1.25));
    zoomIn.addEventListener("click", () => this.setZoom(this.zoom * 1.25));
    reset.addEventListener("click", () => this.reset());
    this.crosshairButton = button("Crosshair", { "aria-pressed": "false", "aria-keyshortcuts": "X" });
    this.crosshairButton.addEventListener("click", () => {
      this.toggleCrosshair();
      this.canvas.focus();
    });
    this.crosshairButton.hidden = !this.locateMode;
    view.append(zoomOut, zoomIn, reset, this.crosshairButton);
    const toolbar = element("div", { class: "sv-toolbar" }, [tools, drawing, this.presetGroup, view]);

    const more = element("details", { class: "sv-more" }, [element("summary", { text: "More controls" })]);
    const adjust = element("div", { class: "sv-group", role: "group", "aria-label": "Adjust window" });
    for (const [label, dc, dw] of [
      ["Narrower window", 0, 1 / 1.2],
      ["Wider window", 0, 1.2],
      ["Brighter", -0.05, 1],
      ["Darker", 0.05, 1],
    ]) {
      const b = button(label);
      b.addEventListener("click", () => this.adjustWindow(dc, dw));
      adjust.append(b);
    }
    const move = element("div", { class: "sv-group", role: "group", "aria-label": "Move image" });
    for (const [label, dx, dy] of [
      ["Move left", -PAN_STEP, 0],
      ["Move right", PAN_STEP, 0],
      ["Move up", 0, -PAN_STEP],
      ["Move down", 0, PAN_STEP],
    ]) {
      const b = button(label);
      b.addEventListener("click", () => this.panBy(dx, dy));
      move.append(b);
    }
    more.append(adjust, move);

    this.canvas = element("canvas", {
      class: "sv-canvas",
      tabindex: 0,
      role: "application",
      "aria-roledescription": "image stack",
      "aria-describedby": `${id}-help`,
    });
    this.canvas.classList.toggle("sv-locating", this.locateMode);
    this.stage = element("div", { class: "sv-stage" }, [this.canvas]);

    const previous = button("Previous image");
    const next = button("Next image");
    previous.addEventListener("click", () => this.step(-1));
    next.addEventListener("click", () => this.step(1));
    this.slider = element("input", { type: "range", min: 1, max: 1, value: 1, step: 1, id: `${id}-slider` });
    this.slider.addEventListener("input", () => this.go(Number(this.slider.value) - 1));
    this.position = element("span", { class: "sv-position", id: `${id}-position` });
    const sliderLabel = element("label", { for: `${id}-slider`, class: "sv-visually-hidden", text: "Image number" });
    const nav = element("div", { class: "sv-nav" }, [previous, sliderLabel, this.slider, next, this.position]);

    this.status = element("p", { class: "sv-status", role: "status", "aria-live": "polite" });
    const list = element("dl", { id: `${id}-help` });
    for (const [keys, action] of SHORTCUTS) {
      list.append(element("dt", { text: keys }), element("dd", { text: action }));
    }
    const help = element("details", { class: "sv-help" }, [
      element("summary", { text: "Keyboard shortcuts" }),
      element("p", { text: "Shortcuts work while the image or a viewer control has focus." }),
      list,
    ]);
    root.append(this.seriesList, toolbar, more, this.stage, nav, this.status, help);

    this.canvas.addEventListener("wheel", (event) => this.onWheel(event), { passive: false });
    this.canvas.addEventListener("pointerdown", (event) => this.onPointerDown(event));
    this.canvas.addEventListener("pointermove", (event) => this.onPointerMove(event));
    this.canvas.addEventListener("pointerup", (event) => this.onPointerUp(event));
    this.canvas.addEventListener("pointercancel", (event) => this.onPointerUp(event, true));
    this.canvas.addEventListener("contextmenu", (event) => event.preventDefault());
    this.canvas.addEventListener("dblclick", (event) => this.onDoubleClick(event));
    root.addEventListener("keydown", (event) => this.onKey(event));
    if (typeof ResizeObserver === "function") {
      new ResizeObserver(() => this.requestRender()).observe(this.stage);
    }
    this.setTool("scroll");
  }

  refreshControls() {
    const series = this.series[this.current];
    this.seriesButtons.forEach((b, i) => b.setAttribute("aria-pressed", String(i === this.current)));
    if (!series) {
      this.position.textContent = "No images";
      this.canvas.setAttribute("aria-label", "No images to show");
      this.slider.disabled = true;
      return;
    }
    const count = series.slots.length;
    const text = `Image ${series.index + 1} of ${count}`;
    this.slider.max = String(Math.max(1, count));
    this.slider.value = String(series.index + 1);
    this.slider.setAttribute("aria-valuetext", text);
    this.slider.disabled = count < 2;
    this.position.textContent = text;
    const names = this.presets().map((p) => p.name);
    if (this.presetGroup.dataset.names !== names.join("|")) {
      this.presetGroup.dataset.names = names.join("|");
      this.presetGroup.replaceChildren(
        ...names.map((name) => {
          const b = button(name, { "aria-pressed": "false" });
          b.addEventListener("click", () => this.applyPreset(name));
          return b;
        }),
      );
    }
    for (const b of this.presetGroup.querySelectorAll("button")) {
      b.setAttribute("aria-pressed", String(b.textContent === series.preset));
    }
    const voi = this.currentWindow();
    const windowText = voi
      ? `, level ${formatNumber(voi[0])} width ${formatNumber(voi[1])}`
      : "";
    const zoomText = this.zoom === 1 ? "" : `, zoom ${Math.round(this.zoom * 100)}%`;
    const locating = this.locateMode ? ". Click or tap to place a point, or press X for a crosshair" : "";
    const drawing = this.drawKind ? `. ${DRAW_HELP[this.drawKind]}, or use the numeric fields` : "";
    this.canvas.setAttribute("aria-label", `${series.label}: ${text.toLowerCase()}${windowText}${zoomText}${locating}${drawing}`);
    this.crosshairButton.setAttribute("aria-pressed", String(Boolean(this.crosshair)));
    this.closeButton.hidden = !(this.drawKind === "polygon" && this.outline);
    this.removeButton.hidden = !(this.drawKind && this.drawn[this.chosen]);
  }

  announce(message) {
    // Emptied first, so that the same message said twice is announced twice.
    this.status.textContent = "";
    requestAnimationFrame(() => {
      this.status.textContent = message;
    });
  }

  // -- navigation ------------------------------------------------------------------------

  key(slot) {
    return `${slot.image.sop}/${slot.frame}`;
  }

  slot() {
    const series = this.series[this.current];
    return series ? series.slots[series.index] : null;
  }

  find(sop, frame) {
    for (let s = 0; s < this.series.length; s += 1) {
      const index = this.series[s].slots.findIndex((x) => x.image.sop === sop && x.frame === frame);
      if (index !== -1) return { series: s, index };
    }
    return null;
  }

  chooseSeries(index, announce) {
    if (index === this.current || !this.series[index]) return;
    this.current = index;
    this.crosshair = null;
    this.zoom = 1;
    this.pan = [0, 0];
    const series = this.series[index];
    const slot = this.slot();
    if (slot && !this.frames.has(this.key(slot))) this.fetch(slot.image, [slot.frame], true);
    this.scheduleBackground();
    if (announce) this.announce(`${series.label}: image ${series.index + 1}`);
    this.refreshControls();
    this.requestRender();
  }

  go(index) {
    const series = this.series[this.current];
    if (!series) return;
    const next = clamp(Math.round(index), 0, series.slots.length - 1);
    if (next === series.index) return;
    series.index = next;
    const slot = this.slot();
    if (!this.frames.has(this.key(slot)) && !this.failed.has(this.key(slot))) {
      this.fetch(slot.image, [slot.frame], true);
    }
    this.refreshControls();
    this.requestRender();
  }

  step(delta) {
    const series = this.series[this.current];
    if (series) this.go(series.index + delta);
  }

  setTool(tool) {
    if (tool === "draw" && !this.drawKind) return;
    this.tool = tool;
    for (const [id, b] of this.toolButtons) b.setAttribute("aria-pressed", String(id === tool));
    this.canvas.dataset.tool = tool;
  }

  // -- windowing -------------------------------------------------------------------------

  presets() {
    const series = this.series[this.current];
    const own = [{ name: "Default" }, { name: "Full range", fullRange: true }];
    return series && series.modality === "CT" ? [...own, ...CT_PRESETS] : own;
  }

  /** The image's own window (its first Window Center/Width), else the range of its pixels
   * as modality values; `fullRange` asks for the latter. */
  ownWindow(fullRange = false) {
    const slot = this.slot();
    if (!slot) return null;
    const image = slot.image;
    if (!fullRange && image.window) return image.window.slice();
    const frame = this.frames.get(this.key(slot));
    if (!frame) return null;
    if (frame.colour) return [128, 256];
    const a = frame.min * image.slope + image.intercept;
    const b = frame.max * image.slope + image.intercept;
    const low = Math.min(a, b);
    const high = Math.max(a, b);
    return [(low + high + 1) / 2, Math.max(1, high - low + 1)];
  }

  currentWindow() {
    const series = this.series[this.current];
    if (!series) return null;
    if (!series.window) {
      const own = this.ownWindow();
      if (own) series.window = own;
    }
    return series.window;
  }

  adjustWindow(centerShare, widthFactor) {
    const voi = this.currentWindow();
    if (!voi) return;
    this.setWindow(voi[0] + centerShare * voi[1], voi[1] * widthFactor);
  }

  cyclePreset(delta) {
    const series = this.series[this.current];
    const presets = this.presets();
    const at = presets.findIndex((p) => p.name === series?.preset);
    const next = presets[(at + delta + presets.length) % presets.length];
    this.applyPreset(next.name);
  }

  // -- loading ---------------------------------------------------------------------------

  /** Everything not yet loaded, nearest the shown image first, then the other series. */
  scheduleBackground() {
    const order = [];
    const series = this.series[this.current];
    if (series) {
      const slots = series.slots.map((slot, i) => ({ slot, d: Math.abs(i - series.index) }));
      slots.sort((a, b) => a.d - b.d);
      order.push(...slots.map((x) => x.slot));
    }
    this.series.forEach((other, i) => {
      if (i !== this.current) order.push(...other.slots);
    });
    const batches = new Map();
    this.queue = [];
    for (const slot of order) {
      const key = this.key(slot);
      if (this.frames.has(key) || this.inFlight.has(key) || this.failed.has(key)) continue;
      const open = batches.get(slot.image.sop);
      if (open && open.frames.length < FRAMES_PER_REQUEST) {
        open.frames.push(slot.frame);
      } else {
        const task = { image: slot.image, frames: [slot.frame] };
        batches.set(slot.image.sop, task);
        this.queue.push(task);
      }
    }
    this.pump();
  }

  pump() {
    while (this.active < CONCURRENT_REQUESTS && this.queue.length) {
      const task = this.queue.shift();
      const wanted = task.frames.filter((n) => {
        const key = `${task.image.sop}/${n}`;
        return !this.frames.has(key) && !this.inFlight.has(key) && !this.failed.has(key);
      });
      if (wanted.length) this.fetch(task.image, wanted, false);
    }
    if (!this.inFlight.size && !this.queue.length && !this.announcedLoaded && this.series.length) {
      this.announcedLoaded = true;
      const total = this.series.reduce((n, s) => n + s.slots.length, 0);
      const failed = this.failed.size;
      this.announce(
        failed
          ? `${failed} of ${total} images could not be loaded`
          : `All ${total} image${total === 1 ? "" : "s"} loaded`,
      );
    }
  }

  frameUrl(image, numbers) {
    // An image may name its own address (a copy held back for review is not in the archive).
    if (image.url) return `${image.url}/frames/${numbers.join(",")}`;
    const series = this.series.find((s) => s.images.includes(image));
    const { root, study } = this.manifest;
    return `${root}/studies/${study}/series/${series.uid}/instances/${image.sop}/frames/${numbers.join(",")}`;
  }

  async fetch(image, numbers, urgent) {
    const keys = numbers.map((n) => `${image.sop}/${n}`);
    if (keys.every((k) => this.inFlight.has(k))) return;
    for (const k of keys) this.inFlight.add(k);
    if (!urgent) this.active += 1;
    try {
      const response = await fetch(this.frameUrl(image, numbers), {
        headers: { Accept: ACCEPT },
        credentials: "same-origin",
      });
      if (!response.ok) throw new Error(`the server answered ${response.status}`);
      const bodies = multipartBodies(await response.arrayBuffer(), response.headers.get("Content-Type") || "");
      if (bodies.length !== numbers.length) {
        throw new Error(`${bodies.length} frames received, ${numbers.length} asked for`);
      }
      bodies.forEach((body, i) => this.frames.set(keys[i], decodeFrame(body, image)));
    } catch (error) {
      for (const k of keys) this.failed.set(k, String(error.message || error));
      this.announce(`An image could not be loaded: ${error.message || error}`);
    } finally {
      for (const k of keys) this.inFlight.delete(k);
      if (!urgent) this.active -= 1;
      const slot = this.slot();
      if (slot && keys.includes(this.key(slot))) {
        // Drawn now rather than at the next animation frame: the image someone is waiting
        // for goes on the canvas as soon as it is decoded.
        this.refreshControls();
        this.render();
      }
      this.pump();
    }
  }

  // -- drawing ---------------------------------------------------------------------------

  requestRender() {
    if (this.frameRequested) return;
    this.frameRequested = true;
    requestAnimationFrame(() => {
      this.frameRequested = false;
      this.render();
    });
  }

  transform() {
    const slot = this.slot();
    if (!slot) return null;
    const width = this.canvas.clientWidth;
    const height = this.canvas.clientHeight;
    const { rows, columns } = slot.image;
    const scale = Math.min(width / columns, height / rows) * this.zoom;
    return {
      scale,
      x: width / 2 + this.pan[0] - (columns / 2) * scale,
      y: height / 2 + this.pan[1] - (rows / 2) * scale,
    };
  }

  render() {
    const canvas = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    const width = Math.max(1, Math.round(canvas.clientWidth * ratio));
    const height = Math.max(1, Math.round(canvas.clientHeight * ratio));
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    const context = canvas.getContext("2d");
    context.setTransform(1, 0, 0, 1, 0, 0);
    context.fillStyle = "#000";
    context.fillRect(0, 0, width, height);
    context.setTransform(ratio, 0, 0, ratio, 0, 0);
    const slot = this.slot();
    if (!slot) return;
    const key = this.key(slot);
    const frame = this.frames.get(key);
    if (!frame) {
      const problem = this.failed.get(key);
      this.message(context, problem ? `This image could not be loaded (${problem})` : "Loading image…");
      return;
    }
    const voi = this.currentWindow();
    const image = slot.image;
    const lutKey = [image.bitsAllocated, image.pixelRepresentation, image.slope, image.intercept, image.photometric, voi].join("|");
    if (lutKey !== this.lutKey) {
      this.lut = buildLut(image, voi, frame.colour);
      this.lutKey = lutKey;
    }
    const drawnKey = `${key}|${lutKey}`;
    if (drawnKey !== this.drawnKey) {
      this.paint(frame);
      this.drawnKey = drawnKey;
    }
    const t = this.transform();
    context.imageSmoothingEnabled = t.scale < 1;
    context.drawImage(this.offscreen, t.x, t.y, frame.columns * t.scale, frame.rows * t.scale);
    this.drawOverlays(context, slot, t);
    if (!this.firstImageShown) {
      this.firstImageShown = true;
      if (!performance.getEntriesByName(FIRST_IMAGE_MARK).length) performance.mark(FIRST_IMAGE_MARK);
      this.dispatchEvent(new CustomEvent("firstimage"));
      for (const thumb of this.seriesList.querySelectorAll("img[data-src]")) {
        thumb.src = thumb.dataset.src;
      }
    }
  }

  /** The frame through the lookup table into the offscreen canvas, at image size. */
  paint(frame) {
    const { rows, columns, values } = frame;
    if (!this.offscreen || this.offscreen.width !== columns || this.offscreen.height !== rows) {
      this.offscreen = document.createElement("canvas");
      this.offscreen.width = columns;
      this.offscreen.height = rows;
      this.pixels = null;
    }
    const context = this.offscreen.getContext("2d");
    if (!this.pixels) this.pixels = context.createImageData(columns, rows);
    const lut = this.lut;
    const mask = lut.length - 1;
    if (frame.colour) {
      const out = this.pixels.data;
      for (let i = 0, j = 0; i < values.length; i += 3, j += 4) {
        out[j] = lut[values[i] & mask];
        out[j + 1] = lut[values[i + 1] & mask];
        out[j + 2] = lut[values[i + 2] & mask];
        out[j + 3] = 255;
      }
    } else {
      const out = new Uint32Array(this.pixels.data.buffer);
      for (let i = 0; i < values.length; i += 1) out[i] = lut[values[i] & mask];
    }
    context.putImageData(this.pixels, 0, 0);
  }

  message(context, text) {
    context.fillStyle = "#f2f2f2";
    context.font = "16px system-ui, sans-serif";
    context.textAlign = "center";
    context.textBaseline = "middle";
    context.fillText(text, this.canvas.clientWidth / 2, this.canvas.clientHeight / 2, this.canvas.clientWidth - 16);
  }

  drawOverlays(context, slot, t) {
    const here = (o) => o.sop === slot.image.sop && (o.frame || 1) === slot.frame;
    const at = (x, y) => [t.x + (x + 0.5) * t.scale, t.y + (y + 0.5) * t.scale];
    const shapes = this.overlays.filter(here);
    if (this.located && here(this.located)) shapes.push({ ...this.located, kind: "point", color: "#ffd400" });
    for (const shape of shapes) {
      context.save();
      context.lineWidth = 2;
      context.strokeStyle = shape.color || (shape.kind === "point" ? "#ffd400" : "#3ddc84");
      let labelAt = null;
      if (shape.kind === "point") {
        const [x, y] = at(shape.x, shape.y);
        context.beginPath();
        context.arc(x, y, 7, 0, 2 * Math.PI);
        context.moveTo(x - 12, y);
        context.lineTo(x + 12, y);
        context.moveTo(x, y - 12);
        context.lineTo(x, y + 12);
        context.stroke();
        labelAt = [x + 10, y - 10];
      } else if (shape.kind === "polygon" && shape.points?.length) {
        context.beginPath();
        shape.points.forEach(([px, py], i) => {
          const [x, y] = at(px, py);
          if (i === 0) context.moveTo(x, y);
          else context.lineTo(x, y);
        });
        context.closePath();
        context.stroke();
        labelAt = at(shape.points[0][0], shape.points[0][1]);
      } else if (shape.kind === "ellipse") {
        const [x, y] = at(shape.cx, shape.cy);
        context.beginPath();
        context.ellipse(x, y, Math.abs(shape.rx) * t.scale, Math.abs(shape.ry) * t.scale, 0, 0, 2 * Math.PI);
        context.stroke();
        labelAt = [x + Math.abs(shape.rx) * t.scale, y - Math.abs(shape.ry) * t.scale];
      } else if (shape.kind === "rectangle") {
        const [x, y] = at(shape.x - 0.5, shape.y - 0.5);
        if (shape.fill) {
          context.fillStyle = shape.fill;
          context.fillRect(x, y, shape.width * t.scale, shape.height * t.scale);
        } else {
          context.strokeRect(x, y, shape.width * t.scale, shape.height * t.scale);
        }
        labelAt = [x, y - 4];
      }
      if (shape.label && labelAt) {
        context.font = "14px system-ui, sans-serif";
        context.lineWidth = 3;
        context.strokeStyle = "#000";
        context.fillStyle = "#fff";
        context.strokeText(shape.label, labelAt[0] + 4, labelAt[1]);
        context.fillText(shape.label, labelAt[0] + 4, labelAt[1]);
      }
      context.restore();
    }
    this.drawShapes(context, slot, at, t);
    if (this.crosshair) {
      const [x, y] = at(this.crosshair[0], this.crosshair[1]);
      context.save();
      context.strokeStyle = "#00e5ff";
      context.lineWidth = 1;
      context.setLineDash([6, 4]);
      context.beginPath();
      context.moveTo(0, y);
      context.lineTo(this.canvas.clientWidth, y);
      context.moveTo(x, 0);
      context.lineTo(x, this.canvas.clientHeight);
      context.stroke();
      context.restore();
    }
  }

  /** The drawn shapes of this image: outlined, the chosen one thicker, handles on each
   * while drawing; in preview, rectangles filled black as blanking will leave them. */
  drawShapes(context, slot, at, t) {
    const here = (shape) => shape.sop === slot.image.sop && (shape.frame || 1) === slot.frame;
    context.save();
    this.drawn.forEach((shape, index) => {
      if (!here(shape)) return;
      if (this.previewing && shape.kind === "rectangle") {
        const [x, y] = at(shape.x - 0.5, shape.y - 0.5);
        context.fillStyle = "#000";
        context.fillRect(x, y, shape.width * t.scale, shape.height * t.scale);
        return;
      }
      context.strokeStyle = SHAPE_COLOUR;
      context.lineWidth = index === this.chosen ? 3 : 2;
      context.beginPath();
      this.tracePath(context, shape, at, t);
      context.stroke();
      if (this.drawKind && !this.previewing) {
        for (const handle of shapes.handles(shape)) this.drawHandle(context, at(...handle.at));
      }
    });
    const outline = this.outline;
    if (outline && here(outline) && outline.points.length) {
      context.strokeStyle = SHAPE_COLOUR;
      context.lineWidth = 2;
      context.setLineDash([6, 4]);
      context.beginPath();
      outline.points.forEach(([px, py], i) => {
        const [x, y] = at(px, py);
        if (i === 0) context.moveTo(x, y);
        else context.lineTo(x, y);
      });
      context.stroke();
      context.setLineDash([]);
      for (const point of outline.points) this.drawHandle(context, at(...point));
    }
    context.restore();
  }

  tracePath(context, shape, at, t) {
    if (shape.kind === "rectangle") {
      const [x, y] = at(shape.x - 0.5, shape.y - 0.5);
      context.rect(x, y, shape.width * t.scale, shape.height * t.scale);
    } else if (shape.kind === "ellipse") {
      const [x, y] = at(shape.cx, shape.cy);
      context.ellipse(x, y, Math.abs(shape.rx) * t.scale, Math.abs(shape.ry) * t.scale, 0, 0, 2 * Math.PI);
    } else {
      shape.points.forEach(([px, py], i) => {
        const [x, y] = at(px, py);
        if (i === 0) context.moveTo(x, y);
        else context.lineTo(x, y);
      });
      context.closePath();
    }
  }

  drawHandle(context, [x, y]) {
    const half = HANDLE_SIZE / 2;
    context.fillStyle = "#fff";
    context.strokeStyle = "#000";
    context.lineWidth = 1;
    context.fillRect(x - half, y - half, HANDLE_SIZE, HANDLE_SIZE);
    context.strokeRect(x - half, y - half, HANDLE_SIZE, HANDLE_SIZE);
  }

  // -- drawing shapes ----------------------------------------------------------------------

  /** What a press of the draw tool at CSS point (sx, sy) starts: dragging a handle, moving a
   * shape, a new rectangle or ellipse, or a polygon's next point. */
  drawGesture(sx, sy, pointerType) {
    const slot = this.slot();
    const point = this.toImage(sx, sy);
    const base = { tool: "draw", start: [sx, sy], last: [sx, sy], moved: false, rest: 0 };
    if (!slot || !point) return { ...base, mode: "none" };
    const here = (shape) => shape.sop === slot.image.sop && (shape.frame || 1) === slot.frame;
    const reach = HANDLE_REACH[pointerType] || HANDLE_REACH.mouse;
    if (this.outline && here(this.outline)) {
      const first = this.outline.points[0];
      const [fx, fy] = this.toScreen(...first);
      const closing = this.outline.points.length >= 3 && Math.hypot(fx - sx, fy - sy) <= reach;
      return { ...base, mode: closing ? "close" : "point" };
    }
    let best = null;
    this.drawn.forEach((shape, index) => {
      if (!here(shape)) return;
      for (const handle of shapes.handles(shape)) {
        const [hx, hy] = this.toScreen(...handle.at);
        const d = Math.hypot(hx - sx, hy - sy);
        if (d <= reach && (!best || d < best.d)) best = { d, index, name: handle.name };
      }
    });
    if (best) {
      return { ...base, mode: "handle", index: best.index, name: best.name, original: this.drawn[best.index] };
    }
    for (let index = this.drawn.length - 1; index >= 0; index -= 1) {
      const shape = this.drawn[index];
      if (here(shape) && shapes.contains(shape, point[0], point[1])) {
        return { ...base, mode: "move", index, original: shape, from: point };
      }
    }
    return { ...base, mode: this.drawKind === "polygon" ? "point" : "new", from: point, index: -1 };
  }

  drawMove(g, sx, sy) {
    const slot = this.slot();
    const point = this.toImage(sx, sy);
    if (!slot || !point || !g.moved) return;
    const { columns, rows } = slot.image;
    if (g.mode === "handle") {
      this.drawn[g.index] = shapes.moveHandle(g.original, g.name, point, columns, rows);
    } else if (g.mode === "move") {
      this.drawn[g.index] = shapes.moveShape(g.original, point[0] - g.from[0], point[1] - g.from[1], columns, rows);
    } else if (g.mode === "new") {
      const numbers =
        this.drawKind === "rectangle"
          ? shapes.rectangleBetween(g.from, point, columns, rows)
          : shapes.ellipseBetween(g.from, point);
      const shape = { kind: this.drawKind, sop: slot.image.sop, frame: slot.frame, ...numbers };
      if (g.index < 0) {
        if (!this.multiple) this.drawn = [];
        this.drawn.push(shape);
        g.index = this.drawn.length - 1;
        this.chosen = g.index;
      } else {
        this.drawn[g.index] = shape;
      }
    } else {
      return;
    }
    this.requestRender();
  }

  drawEnd(g, sx, sy) {
    const slot = this.slot();
    if (!slot) return;
    if (g.mode === "close") {
      this.closeShape();
    } else if (g.mode === "point" && !g.moved) {
      const point = this.toImage(sx, sy);
      if (!point) return;
      const here = this.outline && this.outline.sop === slot.image.sop && this.outline.frame === slot.frame;
      if (!here) this.outline = { kind: "polygon", sop: slot.image.sop, frame: slot.frame, points: [] };
      this.outline.points.push([shapes.tenth(point[0]), shapes.tenth(point[1])]);
      const count = this.outline.points.length;
      this.announce(`Point ${count} placed${count >= 3 ? "; Close shape or Enter ends the outline" : ""}`);
    } else if ((g.mode === "handle" || g.mode === "move" || g.mode === "new") && g.moved && g.index >= 0) {
      const shape = this.drawn[g.index];
      if (!shapes.hasArea(shape)) {
        this.drawn.splice(g.index, 1);
        this.chosen = -1;
        this.emitShape({ removed: true, index: g.index });
      } else {
        this.chosen = g.index;
        this.announce(shapes.describe(shape));
        this.emitShape(shape);
      }
    } else if ((g.mode === "handle" || g.mode === "move") && !g.moved) {
      this.chosen = g.index;
      this.announce(`${shapes.describe(this.drawn[g.index])} chosen`);
    }
    this.refreshControls();
    this.requestRender();
  }

  /** A finished shape joins the drawn ones (replacing them unless several are kept). */
  keep(shape) {
    if (!this.multiple) this.drawn = [];
    this.drawn.push(shape);
    this.chosen = this.drawn.length - 1;
    this.announce(shapes.describe(shape));
    this.emitShape(shape);
    this.refreshControls();
    this.requestRender();
  }

  /** `shape` on the viewer and, bubbling, on its element: the shape changed (or `removed`),
   * with every drawn shape in `shapes`. */
  emitShape(shape) {
    const detail = { ...structuredClone(shape), index: shape.removed ? shape.index : this.drawn.indexOf(shape), shapes: this.shapes() };
    this.dispatchEvent(new CustomEvent("shape", { detail }));
    this.root.dispatchEvent(new CustomEvent("shape", { detail, bubbles: true }));
  }

  onDoubleClick(event) {
    if (this.drawKind !== "polygon" || !this.outline || this.tool !== "draw") return;
    event.preventDefault();
    // The double-click's two clicks placed two points at one spot: one is enough.
    const points = this.outline.points;
    const [a, b] = [points[points.length - 2], points[points.length - 1]];
    if (a && b) {
      const [ax, ay] = this.toScreen(...a);
      const [bx, by] = this.toScreen(...b);
      if (Math.hypot(ax - bx, ay - by) <= CLICK_SLOP) points.pop();
    }
    this.closeShape();
  }

  // -- locate ----------------------------------------------------------------------------

  place(x, y) {
    const slot = this.slot();
    if (!slot || !this.locateMode) return;
    const column = Math.floor(x + 0.5);
    const row = Math.floor(y + 0.5);
    if (column < 0 || row < 0 || column >= slot.image.columns || row >= slot.image.rows) return;
    const detail = { sop: slot.image.sop, frame: slot.frame, x: column, y: row };
    this.located = detail;
    this.announce(`Point placed at column ${column}, row ${row} of image ${this.series[this.current].index + 1}`);
    this.requestRender();
    this.dispatchEvent(new CustomEvent("locate", { detail }));
    this.root.dispatchEvent(new CustomEvent("locate", { detail, bubbles: true }));
  }

  toggleCrosshair() {
    const slot = this.slot();
    if (!this.locateMode || !slot) return;
    if (this.crosshair) {
      this.crosshair = null;
    } else {
      const start = this.located && this.located.sop === slot.image.sop ? this.located : null;
      this.crosshair = start
        ? [start.x, start.y]
        : [Math.floor(slot.image.columns / 2), Math.floor(slot.image.rows / 2)];
      this.announce("Crosshair shown: arrow keys move it, Enter places the point, Escape hides it");
    }
    this.refreshControls();
    this.requestRender();
  }

  // -- input -----------------------------------------------------------------------------

  localPoint(event) {
    const box = this.canvas.getBoundingClientRect();
    return [event.clientX - box.left, event.clientY - box.top];
  }

  onWheel(event) {
    event.preventDefault();
    const unit = event.deltaMode === 1 ? 40 : event.deltaMode === 2 ? 800 : 1;
    const delta = event.deltaY * unit;
    if (event.ctrlKey || event.metaKey) {
      this.setZoom(this.zoom * Math.exp(-delta * 0.002), this.localPoint(event));
      return;
    }
    if (Math.abs(delta) >= WHEEL_STEP) {
      this.wheelRest = 0;
      this.step(Math.sign(delta));
      return;
    }
    this.wheelRest += delta;
    if (Math.abs(this.wheelRest) >= WHEEL_STEP) {
      this.step(Math.sign(this.wheelRest));
      this.wheelRest = 0;
    }
  }

  onPointerDown(event) {
    this.canvas.focus({ preventScroll: true });
    this.canvas.setPointerCapture?.(event.pointerId);
    this.pointers.set(event.pointerId, this.localPoint(event));
    event.preventDefault();
    if (this.pointers.size === 2) {
      const [a, b] = [...this.pointers.values()];
      this.gesture = {
        pinch: true,
        distance: Math.hypot(a[0] - b[0], a[1] - b[1]) || 1,
        middle: [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2],
        zoom: this.zoom,
      };
      return;
    }
    if (this.pointers.size > 2) return;
    let tool = this.tool;
    if (event.pointerType === "mouse" && event.button === 2) tool = "window";
    if (event.pointerType === "mouse" && event.button === 1) tool = "pan";
    const [x, y] = this.localPoint(event);
    if (tool === "draw" && this.pointers.size === 1) {
      this.gesture = this.drawGesture(x, y, event.pointerType);
      return;
    }
    this.gesture = { tool, start: [x, y], last: [x, y], moved: false, rest: 0 };
  }

  onPointerMove(event) {
    if (!this.pointers.has(event.pointerId) || !this.gesture) return;
    const point = this.localPoint(event);
    this.pointers.set(event.pointerId, point);
    const g = this.gesture;
    if (g.pinch) {
      if (this.pointers.size < 2) return;
      const [a, b] = [...this.pointers.values()];
      const middle = [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2];
      const distance = Math.hypot(a[0] - b[0], a[1] - b[1]) || 1;
      this.panBy(middle[0] - g.middle[0], middle[1] - g.middle[1]);
      g.middle = middle;
      this.setZoom((g.zoom * distance) / g.distance, middle);
      return;
    }
    const dx = point[0] - g.last[0];
    const dy = point[1] - g.last[1];
    g.last = point;
    if (Math.hypot(point[0] - g.start[0], point[1] - g.start[1]) > CLICK_SLOP) g.moved = true;
    if (!g.moved) return;
    if (g.tool === "draw") {
      this.drawMove(g, point[0], point[1]);
    } else if (g.tool === "scroll") {
      const series = this.series[this.current];
      const perImage = clamp(this.canvas.clientHeight / Math.max(1, series?.slots.length || 1), 4, 24);
      g.rest += dy;
      const steps = Math.trunc(g.rest / perImage);
      if (steps) {
        g.rest -= steps * perImage;
        this.step(steps);
      }
    } else if (g.tool === "window") {
      const voi = this.currentWindow();
      if (!voi) return;
      const frame = this.frames.get(this.key(this.slot()));
      const range = frame ? (frame.max - frame.min) * Math.abs(this.slot().image.slope) : 256;
      const k = Math.max(range / 400, 0.25);
      this.setWindow(voi[0] + dy * k, voi[1] + dx * k);
    } else if (g.tool === "zoom") {
      this.setZoom(this.zoom * Math.exp(-dy * 0.01), g.start);
    } else if (g.tool === "pan") {
      this.panBy(dx, dy);
    }
  }

  onPointerUp(event, cancelled = false) {
    if (!this.pointers.has(event.pointerId)) return;
    this.pointers.delete(event.pointerId);
    const g = this.gesture;
    if (g && g.tool === "draw" && !cancelled && this.pointers.size === 0) {
      this.drawEnd(g, ...this.localPoint(event));
    } else if (g && !g.pinch && !g.moved && !cancelled && this.locateMode && this.pointers.size === 0) {
      const point = this.toImage(...this.localPoint(event));
      if (point) this.place(point[0], point[1]);
    }
    if (this.pointers.size === 1) {
      const [remaining] = this.pointers.values();
      this.gesture = { tool: "pan", start: remaining, last: remaining, moved: true, rest: 0 };
    } else if (this.pointers.size === 0) {
      this.gesture = null;
    }
  }

  onKey(event) {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    const target = event.target;
    const onControl = target !== this.canvas;
    const inRange = target === this.slider;
    const key = event.key;
    if (this.crosshair && !onControl && this.crosshairKey(event)) {
      event.preventDefault();
      return;
    }
    if (this.drawKind && !onControl && this.drawKey(event)) {
      event.preventDefault();
      event.stopPropagation();
      return;
    }
    const scrolling = {
      PageUp: -10,
      PageDown: 10,
    };
    let handled = true;
    if (key in scrolling && !inRange) this.step(scrolling[key]);
    else if (key === "Home" && !inRange) this.go(0);
    else if (key === "End" && !inRange) this.go(Number.MAX_SAFE_INTEGER);
    else if (key.startsWith("Arrow") && !onControl) this.arrow(key, event.shiftKey);
    else if (key === "+" || key === "=") this.setZoom(this.zoom * 1.25);
    else if (key === "-" || key === "_") this.setZoom(this.zoom / 1.25);
    else if (key === "r" || key === "R") this.reset();
    else if (key === "p" || key === "P") this.cyclePreset(event.shiftKey ? -1 : 1);
    else if ((key === "x" || key === "X") && this.locateMode) this.toggleCrosshair();
    else {
      const tool = [...TOOLS, DRAW_TOOL].find((t) => t.key === key.toLowerCase());
      if (tool) this.setTool(tool.id);
      else handled = false;
    }
    if (handled) {
      event.preventDefault();
      event.stopPropagation();
    }
  }

  drawKey(event) {
    if (event.key === "Enter" && this.outline) return this.closeShape() || true;
    if (event.key === "Escape" && this.outline) {
      this.outline = null;
      this.announce("Outline dropped");
      this.refreshControls();
      this.requestRender();
      return true;
    }
    if ((event.key === "Delete" || event.key === "Backspace") && this.drawn[this.chosen]) {
      this.removeShape();
      return true;
    }
    return false;
  }

  crosshairKey(event) {
    const slot = this.slot();
    const move = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] }[event.key];
    if (move && slot) {
      const stride = event.shiftKey ? 10 : 1;
      this.crosshair = [
        clamp(this.crosshair[0] + move[0] * stride, 0, slot.image.columns - 1),
        clamp(this.crosshair[1] + move[1] * stride, 0, slot.image.rows - 1),
      ];
      this.requestRender();
      return true;
    }
    if (event.key === "Enter") {
      this.place(this.crosshair[0], this.crosshair[1]);
      return true;
    }
    if (event.key === "Escape") {
      this.crosshair = null;
      this.refreshControls();
      this.requestRender();
      return true;
    }
    return false;
  }

  arrow(key, shift) {
    const vertical = key === "ArrowUp" ? -1 : key === "ArrowDown" ? 1 : 0;
    const horizontal = key === "ArrowLeft" ? -1 : key === "ArrowRight" ? 1 : 0;
    if (this.tool === "window") {
      if (horizontal) this.adjustWindow(0, horizontal > 0 ? 1.1 : 1 / 1.1);
      else this.adjustWindow(vertical * 0.05, 1);
    } else if (this.tool === "zoom") {
      if (vertical) this.setZoom(vertical < 0 ? this.zoom * 1.25 : this.zoom / 1.25);
    } else if (this.tool === "pan") {
      this.panBy(horizontal * PAN_STEP, vertical * PAN_STEP);
    } else if (vertical) {
      this.step(vertical * (shift ? 10 : 1));
    } else if (horizontal) {
      this.adjustWindow(0, horizontal > 0 ? 1.1 : 1 / 1.1);
    }
  }
}

/** Mounts a viewer on `root` from its embedded manifest; options from data attributes:
 * data-open-sop, data-open-frame, data-locate, data-draw (a kind of shape), data-multiple. */
export function mount(root) {
  if (root.stackViewer) return root.stackViewer;
  const source = root.querySelector("script.stack-manifest");
  if (!source) return null;
  const manifest = JSON.parse(source.textContent);
  const sop = root.dataset.openSop;
  const options = {
    open: sop ? { sop, frame: Number(root.dataset.openFrame || 1) } : undefined,
    locate: root.dataset.locate !== undefined && root.dataset.locate !== "false",
    draw: root.dataset.draw || undefined,
    multiple: root.dataset.multiple !== undefined && root.dataset.multiple !== "false",
  };
  return new StackViewer(root, manifest, options);
}

function mountAll() {
  for (const root of document.querySelectorAll("[data-viewer]")) mount(root);
}

if (typeof document !== "undefined") {
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", mountAll);
  else mountAll();
}
