// Building the page from data without innerHTML: text is always text.

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** A labelled form field; `hint` is read out with it. */
export function field(label, attrs, hint) {
  const id = `f-${attrs.name}`;
  const hintId = hint ? `${id}-hint` : null;
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, label),
    h("input", { id, "aria-describedby": hintId, ...attrs }),
    hint ? h("small", { id: hintId }, hint) : null,
  );
}

export function votes(n) {
  return n === 1 ? "1 voto" : `${n} votos`;
}

export function seconds(s) {
  if (s === null || s === undefined) return null;
  if (s < 60) return `${Math.max(1, Math.round(s))} s`;
  return `${Math.round(s / 60)} min`;
}
