// Small DOM helpers: build elements without innerHTML (the CSP allows no inline markup styles,
// and text from the server is never parsed as HTML).

/** h("button", {class: "big", onclick: fn}, ["text", child]) */
export function h(tag, attrs = {}, children = []) {
  const svg = ["svg", "rect", "text", "g", "line", "title"].includes(tag);
  const el = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** el.append(...) without the nulls and falses of conditional children (native append prints them). */
export function add(el, ...children) {
  for (const child of children.flat(Infinity)) {
    if (child !== null && child !== undefined && child !== false) el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); }

export function pct(x, digits = 1) { return `${(100 * Number(x || 0)).toFixed(digits)} %`; }

export function when(seconds) {
  if (!seconds) return "–";
  return new Date(Number(seconds) * 1000).toLocaleString();
}

export function ago(seconds) {
  if (!seconds) return "–";
  const s = Math.max(0, Date.now() / 1000 - Number(seconds));
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

/** A horizontal bar (0..1) as an element; its width is set through the CSSOM, which the CSP allows. */
export function bar(fraction, kind = "") {
  const fill = h("span", { class: `fill ${kind}` });
  fill.style.width = `${Math.max(0, Math.min(1, Number(fraction) || 0)) * 100}%`;
  return h("span", { class: "bar" }, fill);
}
