// Filters a long list of checkboxes (a group's members, an assignment's cases) as the
// educator types. Filtering only hides rows: every box stays in the form with its state, so
// saving while filtered drops nobody. Without this script the whole list shows.
const announcer = document.getElementById("announcer");

for (const set of document.querySelectorAll("[data-choices]")) {
  const holder = set.querySelector(".choices-filter");
  const input = set.querySelector("[data-filter]");
  const rows = [...set.querySelectorAll(".checks li")];
  if (!holder || !input || rows.length === 0) continue;
  holder.hidden = false;
  input.addEventListener("input", () => {
    const wanted = input.value.trim().toLocaleLowerCase();
    let shown = 0;
    for (const row of rows) {
      const match = row.textContent.toLocaleLowerCase().includes(wanted);
      const box = row.querySelector("input");
      row.hidden = !match && !(box && box.checked);
      if (!row.hidden) shown += 1;
    }
    if (announcer) announcer.textContent = `${shown} of ${rows.length} shown`;
  });
}
