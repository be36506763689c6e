// Backlot review page: approve, reject and note through the JSON API, then show the result in place.
"use strict";

function showResult(output, ok, message) {
  output.textContent = message;
  output.className = ok ? "ok" : "error";
}

function updateStatus(versionId, status) {
  document.querySelectorAll('[data-status-for="' + versionId + '"]').forEach(function (badge) {
    badge.textContent = status;
    badge.className = "badge status " + status;
  });
}

function addNote(versionId, note) {
  var list = document.querySelector('[data-notes-for="' + versionId + '"]');
  if (!list) return;
  var item = document.createElement("li");
  var author = document.createElement("b");
  author.textContent = note.author;
  item.appendChild(author);
  item.appendChild(document.createTextNode((note.status_change ? " → " + note.status_change : "") + ": " + note.body));
  list.appendChild(item);
}

async function submitReview(event) {
  event.preventDefault();
  var form = event.currentTarget;
  var decision = event.submitter ? event.submitter.value : "note";
  var note = form.elements.note.value.trim();
  var output = form.querySelector("output");
  var path = decision === "note" ? "/notes" : "/" + decision;
  var body = decision === "note" ? { body: note } : { note: note || null };
  var buttons = form.querySelectorAll("button");
  buttons.forEach(function (b) { b.disabled = true; });
  try {
    var response = await fetch(form.dataset.api + path, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-Backlot-CSRF": "1" },
      body: JSON.stringify(body),
    });
    var data = await response.json().catch(function () { return {}; });
    if (!response.ok) {
      showResult(output, false, data.error || ("request failed: HTTP " + response.status));
      return;
    }
    var versionId = form.dataset.version;
    if (decision === "note") {
      addNote(versionId, data);
      showResult(output, true, "note added");
    } else {
      updateStatus(versionId, data.status);
      if (note) addNote(versionId, { author: "you", status_change: data.status, body: note });
      showResult(output, true, data.ref + " is now " + data.status);
    }
    form.elements.note.value = "";
  } catch (error) {
    showResult(output, false, "could not reach the server: " + error);
  } finally {
    buttons.forEach(function (b) { b.disabled = false; });
  }
}

document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("review");
  if (form) form.addEventListener("submit", submitReview);
});
