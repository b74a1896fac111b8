// Shapes drawn on an image (viewer.js draw mode): rectangles, ellipses and polygons in image
// pixel coordinates (x the column, y the row; a whole number is a pixel's centre), made from
// drags and clicks, edited by their handles. Pure functions of plain objects, no drawing.
//
// A rectangle is whole pixels: {x, y, width, height} covers columns x to x + width - 1 and
// rows y to y + height - 1, as the server's blanking regions do. An ellipse is
// {cx, cy, rx, ry} and a polygon {points: [[x, y], ...]}, as a locate question's region is.

export const KINDS = ["rectangle", "ellipse", "polygon"];

function clamp(value, low, high) {
  return Math.min(high, Math.max(low, value));
}

/** To a tenth of a pixel: what the numeric fields show, and enough for a finding's outline. */
export function tenth(value) {
  return Math.round(value * 10) / 10;
}

/** The rectangle of whole pixels between two image points (a drag), inside the image. */
export function rectangleBetween(a, b, columns, rows) {
  const left = clamp(Math.round(Math.min(a[0], b[0]) + 0.5), 0, columns);
  const right = clamp(Math.round(Math.max(a[0], b[0]) + 0.5), 0, columns);
  const top = clamp(Math.round(Math.min(a[1], b[1]) + 0.5), 0, rows);
  const bottom = clamp(Math.round(Math.max(a[1], b[1]) + 0.5), 0, rows);
  return { x: left, y: top, width: right - left, height: bottom - top };
}

/** The ellipse inscribed in the box between two image points. */
export function ellipseBetween(a, b) {
  return {
    cx: tenth((a[0] + b[0]) / 2),
    cy: tenth((a[1] + b[1]) / 2),
    rx: tenth(Math.abs(b[0] - a[0]) / 2),
    ry: tenth(Math.abs(b[1] - a[1]) / 2),
  };
}

/** A shape worth keeping: some area (a click without a drag makes none). */
export function hasArea(shape) {
  if (shape.kind === "rectangle") return shape.width >= 1 && shape.height >= 1;
  if (shape.kind === "ellipse") return shape.rx > 0 && shape.ry > 0;
  if (shape.kind === "polygon") {
    const points = shape.points || [];
    if (points.length < 3) return false;
    const [x0, y0] = points[0];
    return points.some(([x1, y1]) =>
      points.some(([x2, y2]) => Math.abs((x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0)) > 1e-9),
    );
  }
  return false;
}

/** The points by which a shape is edited, in image coordinates, each with its name. */
export function handles(shape) {
  if (shape.kind === "rectangle") {
    const left = shape.x - 0.5;
    const top = shape.y - 0.5;
    const right = left + shape.width;
    const bottom = top + shape.height;
    return [
      { name: "nw", at: [left, top] },
      { name: "ne", at: [right, top] },
      { name: "se", at: [right, bottom] },
      { name: "sw", at: [left, bottom] },
    ];
  }
  if (shape.kind === "ellipse") {
    return [
      { name: "e", at: [shape.cx + shape.rx, shape.cy] },
      { name: "w", at: [shape.cx - shape.rx, shape.cy] },
      { name: "s", at: [shape.cx, shape.cy + shape.ry] },
      { name: "n", at: [shape.cx, shape.cy - shape.ry] },
    ];
  }
  return (shape.points || []).map((point, i) => ({ name: i, at: point }));
}

/** The shape with handle `name` moved to image point `to`. */
export function moveHandle(shape, name, to, columns, rows) {
  if (shape.kind === "rectangle") {
    const corners = Object.fromEntries(handles(shape).map((h) => [h.name, h.at]));
    const opposite = { nw: "se", ne: "sw", se: "nw", sw: "ne" }[name];
    // The corners are pixel edges, as the points of a drag are: the fixed one stays put.
    return { ...shape, ...rectangleBetween(corners[opposite], to, columns, rows) };
  }
  if (shape.kind === "ellipse") {
    if (name === "e" || name === "w") return { ...shape, rx: tenth(Math.abs(to[0] - shape.cx)) };
    return { ...shape, ry: tenth(Math.abs(to[1] - shape.cy)) };
  }
  const points = shape.points.map((p) => p.slice());
  points[name] = [tenth(to[0]), tenth(to[1])];
  return { ...shape, points };
}

/** The shape moved by (dx, dy) image pixels (rectangles by whole pixels, inside the image). */
export function moveShape(shape, dx, dy, columns, rows) {
  if (shape.kind === "rectangle") {
    return {
      ...shape,
      x: clamp(shape.x + Math.round(dx), 0, columns - shape.width),
      y: clamp(shape.y + Math.round(dy), 0, rows - shape.height),
    };
  }
  if (shape.kind === "ellipse") {
    return { ...shape, cx: tenth(shape.cx + dx), cy: tenth(shape.cy + dy) };
  }
  return { ...shape, points: shape.points.map(([x, y]) => [tenth(x + dx), tenth(y + dy)]) };
}

/** Whether image point (x, y) is inside the shape. */
export function contains(shape, x, y) {
  if (shape.kind === "rectangle") {
    return x >= shape.x - 0.5 && x <= shape.x + shape.width - 0.5 && y >= shape.y - 0.5 && y <= shape.y + shape.height - 0.5;
  }
  if (shape.kind === "ellipse") {
    const u = (x - shape.cx) / (shape.rx || 1e-9);
    const v = (y - shape.cy) / (shape.ry || 1e-9);
    return u * u + v * v <= 1;
  }
  let inside = false;
  const points = shape.points || [];
  for (let i = 0, j = points.length - 1; i < points.length; j = i, i += 1) {
    const [ax, ay] = points[j];
    const [bx, by] = points[i];
    if (ay > y !== by > y && x < ax + ((y - ay) * (bx - ax)) / (by - ay)) inside = !inside;
  }
  return inside;
}

/** A sentence naming the shape's numbers, for the status line. */
export function describe(shape) {
  if (shape.kind === "rectangle") {
    return `Rectangle at column ${shape.x}, row ${shape.y}, ${shape.width} by ${shape.height} pixels`;
  }
  if (shape.kind === "ellipse") {
    return `Ellipse centred at column ${shape.cx}, row ${shape.cy}, radii ${shape.rx} and ${shape.ry} pixels`;
  }
  return `Polygon of ${shape.points.length} points`;
}
