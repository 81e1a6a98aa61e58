// Building DOM nodes from data without ever parsing user text as HTML.

/**
 * h("p", {class: "x", onclick: fn}, "text", child) -> HTMLElement.
 * Attributes starting with "on" become listeners; false/null attributes are skipped.
 */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (value === true) {
      element.setAttribute(name, "");
    } else {
      element.setAttribute(name, String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** Replace the main region's content and move focus to its heading. */
export function show(...nodes) {
  const main = document.getElementById("main");
  main.replaceChildren(...nodes);
  const heading = main.querySelector("h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus();
  }
}

/** Say something to screen-reader users without moving focus. */
export function announce(message) {
  const announcer = document.getElementById("announcer");
  announcer.textContent = "";
  // A separate task, so that repeating the same message is announced again.
  setTimeout(() => { announcer.textContent = message; }, 50);
}

export function formatDate(iso) {
  return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}
