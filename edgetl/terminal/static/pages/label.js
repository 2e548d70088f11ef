// Label: drop many images, pick their class, and they become labels; add a class (a new defect type).

import { api, attempt, showError, showNotice } from "../core.js";
import { add, clear, h } from "../dom.js";

const PARALLEL = 2;

export async function render(ctx) {
  let task = ctx.task;
  if (!task) {
    add(ctx.root, h("section", { class: "card" }, [h("h1", {}, "Label"), h("p", {}, "There is no task yet; create one on the server first.")]));
    return null;
  }
  let chosen = task.class_names[0];
  const classRow = h("div", { class: "class-row", id: "label-classes" });
  const countsBox = h("div", { id: "label-counts" });
  const results = h("ul", { class: "uploads", id: "uploads" });
  const progress = h("p", { class: "muted", id: "upload-progress" });
  const input = h("input", { type: "file", multiple: true, accept: "image/png,image/jpeg,image/bmp", id: "file-input", hidden: true });
  const drop = h("div", { class: "dropzone", id: "dropzone", tabindex: "0", role: "button" }, [
    h("strong", {}, "Drop images here"), h("span", {}, " or tap to choose files (PNG, JPEG, BMP)"),
  ]);

  function drawClasses() {
    clear(classRow);
    task.class_names.forEach((name) => {
      add(classRow, h("button", {
        class: `class-button big${name === chosen ? " chosen" : ""}`, dataset: { class: name }, "aria-pressed": name === chosen ? "true" : "false",
        onclick: () => { chosen = name; drawClasses(); },
      }, name));
    });
  }

  async function drawCounts() {
    const counts = await attempt(() => api(`/api/tasks/${encodeURIComponent(task.name)}/labels/counts`));
    if (!counts) return;
    clear(countsBox);
    add(countsBox, h("table", { class: "counts" }, [
      h("thead", {}, h("tr", {}, [h("th", {}, "Class"), h("th", {}, "Labels")])),
      h("tbody", {}, counts.classes.map((c) => h("tr", {}, [h("td", {}, c.class_name), h("td", {}, String(Number(c.train) + Number(c.val)))]))),
    ]));
  }

  async function upload(files) {
    const list = [...files];
    if (!list.length) return;
    const target = chosen;
    let done = 0, failed = 0;
    progress.textContent = `Labelling ${list.length} image(s) as ${target}…`;
    const queue = list.map((file) => {
      const row = h("li", { class: "pending" }, [h("span", { class: "file" }, file.name), h("span", { class: "status" }, "waiting")]);
      results.prepend(row);
      return { file, row };
    });
    async function worker() {
      while (queue.length) {
        const { file, row } = queue.shift();
        row.lastChild.textContent = "uploading…";
        const form = new FormData();
        form.append("class_name", target);
        form.append("file", file, file.name);
        try {
          const r = await api(`/api/tasks/${encodeURIComponent(task.name)}/labels`, { method: "POST", form });
          row.className = "ok";
          row.lastChild.textContent = r.unchanged ? `already ${target}` : `${r.relabelled ? "relabelled" : "labelled"} ${target} (${r.split === "val" ? "validation" : "training"})`;
        } catch (err) {
          failed += 1;
          row.className = "failed";
          row.lastChild.textContent = err.message;
        }
        done += 1;
        progress.textContent = `${done} of ${list.length} done${failed ? `, ${failed} failed` : ""}`;
      }
    }
    await Promise.all(Array.from({ length: PARALLEL }, worker));
    if (failed) showError(`${failed} of ${list.length} file(s) were not labelled; see the list below.`);
    else showNotice(`${list.length} image(s) labelled ${target}.`);
    drawCounts();
  }

  input.addEventListener("change", () => { upload(input.files); input.value = ""; });
  drop.addEventListener("click", () => input.click());
  drop.addEventListener("keydown", (event) => { if (event.key === "Enter" || event.key === " ") input.click(); });
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => { event.preventDefault(); drop.classList.remove("over"); upload(event.dataTransfer.files); });

  // A new defect type: admins only (the server says so to anyone else).
  const newClass = h("input", { type: "text", id: "new-class", placeholder: "e.g. porosity", maxlength: 128 });
  const addForm = h("form", { class: "inline-form", id: "add-class" }, [
    h("label", {}, ["New class", newClass]), h("button", { class: "big", type: "submit" }, "Add class"),
  ]);
  addForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = newClass.value.trim();
    if (!name) { showError("Type the new class's name first."); return; }
    const updated = await attempt(() => api(`/api/tasks/${encodeURIComponent(task.name)}/classes`, { method: "POST", body: { class_name: name } }));
    if (!updated) return;
    newClass.value = "";
    task = (await ctx.reloadTasks()) || updated;
    chosen = name;
    drawClasses();
    drawCounts();
    showNotice(`Class ${name} added to ${task.name}. Label its images here; the next training includes it.`);
  });

  add(ctx.root, 
    h("h1", {}, ["Label ", h("span", { class: "muted" }, task.name)]),
    h("section", { class: "card" }, [h("h2", {}, "1. Choose the class"), classRow]),
    h("section", { class: "card" }, [h("h2", {}, "2. Drop the images"), drop, input, progress, results]),
    h("div", { class: "two-columns" }, [
      h("section", { class: "card" }, [h("h2", {}, "Labels so far"), countsBox]),
      h("section", { class: "card" }, [h("h2", {}, "A new defect type"), h("p", { class: "muted" }, "Adds a class to this task (admins). Adapters trained before it answer 0 for it until the next training."), addForm]),
    ]),
  );
  drawClasses();
  await drawCounts();
  return null;
}
