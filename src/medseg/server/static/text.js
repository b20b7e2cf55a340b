// medseg serve: the text box. A phrase ("the largest lesion on the left") is resolved on the
// server against the session's label map and the class names; the selection, refined by the
// engine from its bounding box, is pasted into the overlay like a click's answer, and the
// reading of the phrase (or the message saying which words were not understood) is shown.
"use strict";

(function () {
  const viewer = window.medsegViewer;
  const section = document.createElement("section");
  section.innerHTML =
    '<h2>Text</h2>' +
    '<form id="text-form" class="row">' +
    '<input id="text-phrase" type="text" maxlength="500" placeholder="the largest lesion on the left" ' +
    'title="Select what a phrase names (see docs/text.md)">' +
    '<button id="text-go" type="submit">find</button></form>' +
    '<div id="text-explain" class="muted"></div>';
  section.querySelector("input").style.cssText =
    "flex: 1; min-width: 0; background: #1d1f23; color: inherit; border: 1px solid #3a3d42; padding: 3px 5px";
  const tools = document.getElementById("tools").closest("section");
  tools.parentNode.insertBefore(section, tools);

  function describe(selected) {
    if (selected.kind === "lesion") {
      const where = selected.structure ? ` in ${selected.structure}` : "";
      return `lesion ${selected.lesion_id} (${selected.volume_ml.toFixed(2)} ml, ${selected.side}${where})`;
    }
    return `${selected.class}${selected.part === "whole" ? "" : ` (${selected.part} part)`}`;
  }

  function find(event) {
    event.preventDefault();
    const phrase = document.getElementById("text-phrase").value.trim();
    // after the clicks and strokes already made, like any other interaction
    if (phrase) viewer.enqueue((session) => ask(session, phrase));
  }

  async function ask(session, phrase) {
    const explain = document.getElementById("text-explain");
    try {
      const answer = await viewer.api(`/api/sessions/${session.session_id}/text`, {
        method: "POST",
        body: { phrase },
      });
      viewer.applyUpdate(answer);
      viewer.showUndoState(answer);
      const clauses = answer.explanation.clauses.filter((c) => !c.context_only);
      const chosen = clauses.flatMap((c) => c.selected.map(describe));
      const read = answer.explanation.corrections.map((c) => ` (read '${c.written}' as '${c.read_as}')`);
      explain.textContent = `${clauses.map((c) => c.reading).join(" + ")}: ${chosen.join(", ")}${read.join("")}`;
      viewer.setStatus(`${session.case_id}: "${phrase}" selected ${chosen.length} (class ${answer.label})`);
      document.body.dataset.text = String(Number(document.body.dataset.text || 0) + 1);
    } catch (err) {
      explain.textContent = err.message;
      viewer.setStatus(err.message, true);
    }
  }

  document.getElementById("text-form").addEventListener("submit", find);
  // typing a phrase must not reach the viewer's keyboard shortcuts (Enter saves, S brushes...)
  document.getElementById("text-phrase").addEventListener("keydown", (event) => event.stopPropagation());
})();
