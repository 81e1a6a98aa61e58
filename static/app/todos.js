// The todo list: filter, add, edit, toggle, delete.

import { ApiError, api } from "./api.js";
import { announce, h, show } from "./dom.js";

const FILTERS = [
  { value: "all", label: "All", query: "" },
  { value: "open", label: "Open", query: "&completed=false" },
  { value: "completed", label: "Completed", query: "&completed=true" },
];

export async function renderTodos() {
  let filter = sessionStorage.getItem("todo-filter") || "all";
  let todos = [];
  let nextPage = null;
  let latestLoad = 0;
  let loadsInFlight = 0;

  const status = h("div", { class: "form-errors", role: "alert", hidden: true });
  const list = h("ul", { class: "todo-list", "aria-label": "Todos" });
  const empty = h("p", { class: "empty", hidden: true });
  const more = h("button", { type: "button", class: "secondary", hidden: true, onclick: () => load(nextPage, true) },
    "Show more");

  function showError(error) {
    status.replaceChildren(h("p", {}, error instanceof ApiError ? error.message : "Something went wrong."));
    status.hidden = false;
  }

  function clearError() {
    status.hidden = true;
  }

  async function load(url = null, append = false) {
    const query = FILTERS.find((item) => item.value === filter).query;
    const ticket = ++latestLoad;
    loadsInFlight += 1;
    try {
      const page = await api(url || `/api/todos/?ordering=-created_at${query}`);
      // A slower, older answer (say, for the filter chosen before this one) must not overwrite a newer one.
      if (ticket !== latestLoad) return;
      todos = append ? mergeById(todos, page.results) : page.results;
      nextPage = page.next ? new URL(page.next, location.origin).pathname + new URL(page.next).search : null;
      clearError();
      draw();
    } catch (error) {
      if (error.status !== 401) showError(error);
    } finally {
      loadsInFlight -= 1;
    }
  }

  function draw() {
    list.replaceChildren(...todos.map(renderItem));
    empty.hidden = todos.length > 0;
    empty.textContent = {
      all: "No todos yet. Add your first one above.",
      open: "Nothing left to do. Well done!",
      completed: "No completed todos yet.",
    }[filter];
    more.hidden = !nextPage;
  }

  function renderItem(todo) {
    const checkboxId = `todo-${todo.id}-done`;
    const item = h("li", { class: `todo${todo.completed ? " done" : ""}` },
      h("div", { class: "todo-main" },
        h("input", {
          type: "checkbox", id: checkboxId, checked: todo.completed,
          onchange: (event) => update(todo, { completed: event.target.checked }),
        }),
        h("label", { for: checkboxId, class: "todo-title" }, todo.title),
      ),
      todo.notes ? h("p", { class: "todo-notes" }, todo.notes) : null,
      h("div", { class: "todo-actions" },
        h("button", { type: "button", class: "secondary", "aria-label": `Edit “${todo.title}”`,
          onclick: () => edit(item, todo) }, "Edit"),
        h("button", { type: "button", class: "secondary danger", "aria-label": `Delete “${todo.title}”`,
          onclick: () => remove(todo) }, "Delete"),
      ),
    );
    return item;
  }

  function edit(item, todo) {
    const titleId = `todo-${todo.id}-title`;
    const notesId = `todo-${todo.id}-notes`;
    const fieldErrors = h("div", { class: "form-errors", role: "alert", hidden: true });
    const title = h("input", { type: "text", id: titleId, value: todo.title, maxlength: 200, required: true });
    const notes = h("textarea", { id: notesId, rows: 3 }, todo.notes);
    const form = h("form", {
      class: "todo-edit stack",
      onsubmit: async (event) => {
        event.preventDefault();
        try {
          await update(todo, { title: title.value.trim(), notes: notes.value }, { quiet: true });
          announce("Todo saved.");
        } catch (error) {
          fieldErrors.replaceChildren(...errorLines(error));
          fieldErrors.hidden = false;
          title.focus();
        }
      },
    },
    fieldErrors,
    h("div", { class: "field" }, h("label", { for: titleId }, "Title"), title),
    h("div", { class: "field" }, h("label", { for: notesId }, "Notes"), notes),
    h("div", { class: "todo-actions" },
      h("button", { type: "submit" }, "Save"),
      h("button", { type: "button", class: "secondary", onclick: () => { draw(); focusItem(todo.id); } }, "Cancel"),
    ));
    item.replaceChildren(form);
    title.focus();
  }

  function focusItem(id) {
    document.getElementById(`todo-${id}-done`)?.focus();
  }

  async function update(todo, changes, { quiet = false } = {}) {
    try {
      const saved = await api(`/api/todos/${todo.id}/`, { method: "PATCH", body: changes });
      const keep = filter === "all" || (filter === "completed") === saved.completed;
      todos = keep ? todos.map((item) => (item.id === saved.id ? saved : item)) : todos.filter((item) => item.id !== saved.id);
      clearError();
      draw();
      if (keep) focusItem(saved.id);
      if (!quiet) announce(saved.completed ? `“${saved.title}” done.` : `“${saved.title}” open again.`);
    } catch (error) {
      if (quiet) throw error;
      showError(error);
      draw();
    }
  }

  async function remove(todo) {
    try {
      await api(`/api/todos/${todo.id}/`, { method: "DELETE" });
      todos = todos.filter((item) => item.id !== todo.id);
      clearError();
      draw();
      announce(`Deleted “${todo.title}”.`);
      document.getElementById("new-todo-title").focus();
    } catch (error) {
      showError(error);
    }
  }

  const addErrors = h("div", { class: "form-errors", role: "alert", hidden: true });
  const newTitle = h("input", { type: "text", id: "new-todo-title", maxlength: 200, required: true, autocomplete: "off" });
  const newNotes = h("textarea", { id: "new-todo-notes", rows: 2 });
  const addForm = h("form", {
    class: "stack add-todo",
    novalidate: true,
    onsubmit: async (event) => {
      event.preventDefault();
      addErrors.hidden = true;
      const title = newTitle.value.trim();
      if (!title) {
        addErrors.replaceChildren(h("p", {}, "Give the todo a title."));
        addErrors.hidden = false;
        newTitle.focus();
        return;
      }
      try {
        const created = await api("/api/todos/", { method: "POST", body: { title, notes: newNotes.value } });
        newTitle.value = "";
        newNotes.value = "";
        // A list load that reached the server after this POST may have drawn the new todo already.
        if (filter !== "completed") todos = mergeById([created], todos);
        draw();
        // One still in flight may have been answered before it, and would draw the list without
        // it: load again, which supersedes that one and includes the new todo.
        if (loadsInFlight > 0) load();
        announce(`Added “${created.title}”.`);
        newTitle.focus();
      } catch (error) {
        addErrors.replaceChildren(...errorLines(error));
        addErrors.hidden = false;
        newTitle.focus();
      }
    },
  },
  addErrors,
  h("div", { class: "field" }, h("label", { for: "new-todo-title" }, "New todo"), newTitle),
  h("div", { class: "field" }, h("label", { for: "new-todo-notes" }, "Notes (optional)"), newNotes),
  h("button", { type: "submit" }, "Add"));

  const filters = h("fieldset", { class: "filters" },
    h("legend", {}, "Show"),
    ...FILTERS.map((item) => h("label", { class: "filter" },
      h("input", {
        type: "radio", name: "filter", value: item.value, checked: item.value === filter,
        onchange: () => {
          filter = item.value;
          sessionStorage.setItem("todo-filter", filter);
          load();
        },
      }),
      ` ${item.label}`)));

  show(h("h1", {}, "Your todos"), addForm, filters, status, list, empty, more);
  await load();
}

/** first, then the items of second that first does not hold: every todo appears once. */
function mergeById(first, second) {
  const seen = new Set(first.map((item) => item.id));
  return first.concat(second.filter((item) => !seen.has(item.id)));
}

function errorLines(error) {
  if (error instanceof ApiError && Object.keys(error.fields).length) {
    return Object.values(error.fields).flat().map((message) => h("p", {}, message));
  }
  return [h("p", {}, error instanceof ApiError ? error.message : "Something went wrong.")];
}
